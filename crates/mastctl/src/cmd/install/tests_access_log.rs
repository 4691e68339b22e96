//! `meshConfig.accessLogFile`, `accessLogEncoding` and `accessLogFormat` → mastd's
//! `--access-log-*` flags and the mesh ConfigMap, per profile and with `--set`.

use super::operator::{Input, build};
use super::render::{Object, render};
use super::settings::Settings;

fn objects(sets: &[&str]) -> Vec<Object> {
    let input = Input {
        files: vec![],
        sets: sets.iter().map(|s| s.to_string()).collect(),
    };
    render(&Settings::from_tree(&build(&input).unwrap()).unwrap(), None)
}

fn mastd_args(objs: &[Object]) -> Vec<String> {
    let d = &objs
        .iter()
        .find(|o| o.kind() == "Deployment" && o.name() == "mastd")
        .expect("mastd Deployment")
        .value;
    serde_json::from_value(
        d.pointer("/spec/template/spec/containers/0/args")
            .unwrap()
            .clone(),
    )
    .unwrap()
}

fn mesh(objs: &[Object]) -> String {
    let cm = &objs
        .iter()
        .find(|o| o.kind() == "ConfigMap" && o.name() == "istio")
        .expect("istio ConfigMap")
        .value;
    cm["data"]["mesh"].as_str().unwrap().to_owned()
}

fn has(args: &[String], pair: [&str; 2]) -> bool {
    args.windows(2).any(|w| w == pair)
}

#[test]
fn default_profile_logs_nothing_demo_logs_to_stdout() {
    let a = mastd_args(&objects(&[]));
    assert!(!a.iter().any(|x| x.starts_with("--access-log")), "{a:?}");
    let o = objects(&["profile=demo"]);
    let a = mastd_args(&o);
    assert!(has(&a, ["--access-log-file", "/dev/stdout"]), "{a:?}");
    assert!(mesh(&o).contains("accessLogFile: \"/dev/stdout\""));
}

#[test]
fn encoding_and_format_become_flags() {
    let o = objects(&[
        "meshConfig.accessLogFile=/var/log/access.log",
        "meshConfig.accessLogEncoding=JSON",
    ]);
    let a = mastd_args(&o);
    assert!(
        has(&a, ["--access-log-file", "/var/log/access.log"]),
        "{a:?}"
    );
    assert!(has(&a, ["--access-log-encoding", "json"]), "{a:?}");
    assert!(mesh(&o).contains("accessLogEncoding: JSON"));
    let a = mastd_args(&objects(&[
        "profile=demo",
        "meshConfig.accessLogFormat=%RESPONSE_CODE%",
    ]));
    assert!(has(&a, ["--access-log-format", "%RESPONSE_CODE%"]), "{a:?}");
    // An encoding without a file changes nothing (no access log).
    let a = mastd_args(&objects(&["meshConfig.accessLogEncoding=JSON"]));
    assert!(!a.iter().any(|x| x.starts_with("--access-log")), "{a:?}");
}

#[test]
fn a_bad_encoding_names_the_field() {
    let input = Input {
        files: vec![],
        sets: vec!["meshConfig.accessLogEncoding=XML".into()],
    };
    let e = match build(&input).and_then(|t| Settings::from_tree(&t)) {
        Ok(_) => panic!("XML accepted"),
        Err(e) => e,
    };
    assert!(
        format!("{e:#}").contains("meshConfig.accessLogEncoding"),
        "{e:#}"
    );
}
