//! Several folders feeding one store (mastd with repeated `--config-dir`): a change in
//! either folder applies, a resource defined in both is reported and the first folder's
//! definition wins, and removing the winner lets the other one be served.

#![allow(clippy::unwrap_used, reason = "a failure is a test failure")]

mod support;

use std::fs;

use mast_registry::{ConfigStore, FilesOptions, FilesSource, FilesSourceHandle};
use support::*;

/// One store fed by `dirs` in order (rank 0, 1, …).
fn start_all(dirs: &[&TempDir]) -> (ConfigStore, Vec<FilesSourceHandle>) {
    let store = ConfigStore::new();
    let handles = dirs
        .iter()
        .enumerate()
        .map(|(source, d)| {
            let opts = FilesOptions {
                source,
                ..FilesOptions::default()
            };
            FilesSource::start(d.path(), store.clone(), opts).unwrap()
        })
        .collect();
    (store, handles)
}

#[tokio::test]
async fn a_change_in_either_folder_applies() {
    let (user, generated) = (TempDir::new("two-user"), TempDir::new("two-generated"));
    user.write("vs.yaml", &vs("reviews", "v1", 100));
    generated.write("dr.yaml", &dr("ratings", "ratings"));
    let (store, _sources) = start_all(&[&user, &generated]);
    let mut rx = store.subscribe();
    let s = store.current();
    assert_eq!(
        names(&s),
        ["DestinationRule/ratings", "VirtualService/reviews"]
    );
    assert_eq!(
        store.files_of(1),
        [generated.join("dr.yaml").display().to_string()]
    );

    user.write("vs.yaml", &vs("reviews", "v2", 100));
    wait_for(&mut rx, "edit in the first folder", |s| {
        has_vs(s, "reviews", "v2")
    })
    .await;

    generated.write("more.yaml", &dr("details", "details"));
    wait_for(&mut rx, "file created in the second folder", |s| {
        s.count("DestinationRule") == 2
    })
    .await;

    fs::remove_file(generated.join("dr.yaml")).unwrap();
    let s = wait_for(&mut rx, "file removed from the second folder", |s| {
        s.count("DestinationRule") == 1
    })
    .await;
    assert!(s.get("DestinationRule", "default", "details").is_some());
    assert!(has_vs(&s, "reviews", "v2"), "the first folder is untouched");
}

#[tokio::test]
async fn a_clash_is_reported_and_the_first_folder_wins() {
    // Named so that the second folder's file would sort first by name alone.
    let (first, second) = (TempDir::new("zz-first"), TempDir::new("aa-second"));
    first.write("z.yaml", &vs("reviews", "from-first", 100));
    second.write("a.yaml", &vs("reviews", "from-second", 100));
    let (store, _sources) = start_all(&[&first, &second]);
    let mut rx = store.subscribe();
    let s = store.current();
    assert!(has_vs(&s, "reviews", "from-first"), "{:?}", names(&s));
    assert_eq!(s.rejected, 1);
    let errors: Vec<String> = s.errors().map(ToString::to_string).collect();
    let first_file = first.join("z.yaml").display().to_string();
    let second_file = second.join("a.yaml").display().to_string();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].starts_with(&format!("{second_file}:1: VirtualService default/reviews")),
        "{}",
        errors[0]
    );
    assert!(
        errors[0].contains(&format!("also defined at {first_file}:1, which wins")),
        "{}",
        errors[0]
    );

    // Removing the winner serves the other definition, and the clash is gone.
    fs::remove_file(first.join("z.yaml")).unwrap();
    let s = wait_for(&mut rx, "the second definition served", |s| {
        has_vs(s, "reviews", "from-second")
    })
    .await;
    assert_eq!(s.rejected, 0);
    assert!(s.diagnostics.is_empty(), "{:?}", s.diagnostics);
}
