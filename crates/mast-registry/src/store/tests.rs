//! Tests of the store alone, fed with strings: validation, duplicates, counts, publishing.

use mast_config::{Level, LoadOptions, load_str};

use super::*;

fn vs(name: &str, host: &str, weight: i64) -> String {
    format!(
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata:\n  name: {name}\n\
         spec:\n  hosts:\n  - {host}\n  http:\n  - route:\n    - destination:\n        host: {host}\n\
         \x20     weight: {weight}\n"
    )
}

fn dr(name: &str, host: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata:\n  name: {name}\n\
         spec:\n  host: {host}\n"
    )
}

fn set(store: &ConfigStore, file: &str, text: &str) -> Arc<StoreState> {
    store.set_file(file, load_str(text, file, &LoadOptions::default()))
}

#[test]
fn new_store_is_empty_generation_zero() {
    let store = ConfigStore::new();
    let s = store.current();
    assert_eq!(s.generation, 0);
    assert!(s.resources.is_empty() && s.diagnostics.is_empty());
}

#[test]
fn invalid_resource_left_out_rest_of_file_stays() {
    let store = ConfigStore::new();
    let text = format!(
        "{}---\n{}",
        vs("bad", "reviews", -10),
        dr("reviews", "reviews")
    );
    let s = set(&store, "a.yaml", &text);
    assert_eq!(s.generation, 1);
    assert_eq!(s.resources.len(), 1);
    assert!(s.get("DestinationRule", "default", "reviews").is_some());
    assert!(s.get("VirtualService", "default", "bad").is_none());
    assert_eq!(s.rejected, 1);
    let err: Vec<_> = s.errors().collect();
    assert_eq!(err.len(), 1);
    assert_eq!(
        err[0].field.as_deref(),
        Some("spec.http[0].route[0].weight")
    );
    assert!(
        err[0]
            .to_string()
            .starts_with("a.yaml:12: VirtualService default/bad")
    );
    assert_eq!(s.count("DestinationRule"), 1);
    assert_eq!(s.count("VirtualService"), 0);
}

#[test]
fn warnings_keep_the_resource() {
    let store = ConfigStore::new();
    let unknown = "apiVersion: example.com/v1\nkind: Widget\nmetadata:\n  name: w\n";
    let s = set(&store, "w.yaml", unknown);
    assert_eq!(s.resources.len(), 1);
    assert_eq!(s.rejected, 0);
    assert_eq!(s.diagnostics.len(), 1);
    assert_eq!(s.diagnostics[0].level, Level::Warning);
}

#[test]
fn duplicates_first_file_by_name_wins() {
    let store = ConfigStore::new();
    set(&store, "b.yaml", &vs("reviews", "from-b", 100));
    let s = set(&store, "a.yaml", &vs("reviews", "from-a", 100));
    assert_eq!(s.resources.len(), 1);
    let hosts = &s.resources[0].as_virtual_service().unwrap().hosts;
    assert_eq!(hosts, &["from-a".to_owned()]);
    assert_eq!(s.rejected, 1);
    let d = s.errors().next().unwrap();
    assert!(
        d.message.contains("a.yaml:1") && d.message.contains("b.yaml:1"),
        "{d}"
    );
    // The winner goes away: the other definition is served, with no error left.
    let s = store.remove_file("a.yaml");
    let hosts = &s.resources[0].as_virtual_service().unwrap().hosts;
    assert_eq!(hosts, &["from-b".to_owned()]);
    assert_eq!((s.rejected, s.diagnostics.len()), (0, 0));
}

#[test]
fn same_name_in_another_group_is_not_a_duplicate() {
    let store = ConfigStore::new();
    let istio = "apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata:\n  name: gw\n\
                 spec:\n  servers:\n  - port: {number: 80, name: http, protocol: HTTP}\n    hosts: ['*']\n";
    let k8s = "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata:\n  name: gw\n\
               spec:\n  gatewayClassName: istio\n  listeners: [{name: http, port: 80, protocol: HTTP}]\n";
    set(&store, "a.yaml", istio);
    let s = set(&store, "b.yaml", k8s);
    assert_eq!(s.resources.len(), 2, "{:?}", s.diagnostics);
    assert_eq!(s.rejected, 0);
}

#[test]
fn resources_sorted_and_counted() {
    let store = ConfigStore::new();
    let text = format!(
        "{}---\n{}---\n{}",
        vs("z", "z", 100),
        dr("b", "b"),
        vs("a", "a", 100)
    );
    let s = set(&store, "x.yaml", &text);
    let names: Vec<_> = s
        .resources
        .iter()
        .map(|r| format!("{}/{}", r.kind, r.name()))
        .collect();
    assert_eq!(
        names,
        ["DestinationRule/b", "VirtualService/a", "VirtualService/z"]
    );
    assert_eq!(s.count("VirtualService"), 2);
    assert_eq!(s.count("DestinationRule"), 1);
}

#[test]
fn no_op_batch_publishes_nothing() {
    let store = ConfigStore::new();
    let rx = store.subscribe();
    let s = store.remove_file("never-there.yaml");
    assert_eq!(s.generation, 0);
    assert!(!rx.has_changed().unwrap());
    let s = store.update([
        Change::Set {
            file: "a.yaml".into(),
            loaded: load_str(&dr("a", "a"), "a.yaml", &LoadOptions::default()),
        },
        Change::Set {
            file: "b.yaml".into(),
            loaded: load_str(&dr("b", "b"), "b.yaml", &LoadOptions::default()),
        },
    ]);
    assert_eq!(s.generation, 1, "one batch, one generation");
    assert!(rx.has_changed().unwrap());
    assert_eq!(store.files(), ["a.yaml", "b.yaml"]);
}

#[test]
fn load_failures_are_counted_and_reported() {
    let store = ConfigStore::new();
    let text = format!("a: [1, 2\n---\n{}", dr("ok", "ok"));
    let s = set(&store, "broken.yaml", &text);
    assert_eq!(s.resources.len(), 1);
    assert_eq!(s.rejected, 1);
    let d = s.errors().next().unwrap();
    assert!(d.message.contains("YAML syntax error"), "{d}");
}

#[test]
fn lower_source_rank_wins_whatever_the_file_names() {
    let store = ConfigStore::new();
    let load =
        |file: &str, host: &str| load_str(&vs("r", host, 100), file, &LoadOptions::default());
    store.update_source(
        1,
        [Change::Set {
            file: "a.yaml".into(),
            loaded: load("a.yaml", "second"),
        }],
    );
    let s = store.update_source(
        0,
        [Change::Set {
            file: "z.yaml".into(),
            loaded: load("z.yaml", "first"),
        }],
    );
    let r = s.get("VirtualService", "default", "r").unwrap();
    assert_eq!(r.as_virtual_service().unwrap().hosts, ["first"]);
    assert_eq!(s.rejected, 1);
    assert_eq!(store.files(), ["z.yaml", "a.yaml"]);
    assert_eq!(store.files_of(1), ["a.yaml"]);
    // Removing a file of source 1 by name does not touch source 0's files.
    let s = store.update_source(
        1,
        [Change::Remove {
            file: "z.yaml".into(),
        }],
    );
    assert_eq!(s.generation, 2, "nothing changed, nothing published");
    let s = store.update_source(
        1,
        [Change::Remove {
            file: "a.yaml".into(),
        }],
    );
    assert_eq!((s.rejected, s.resources.len()), (0, 1));
}
