//! The files source on real files: initial load, create / edit / delete, renames and
//! moves in and out, editor-style writes, a ConfigMap-style symlink swap, and stopping.

mod support;

use std::fs;

use mast_registry::{ConfigStore, FilesOptions, FilesSource};
use support::*;

#[tokio::test]
async fn initial_load_reads_every_config_file_recursively() {
    let dir = TempDir::new("initial");
    dir.write(
        "a.yaml",
        &format!(
            "{}---\n{}",
            vs("reviews", "reviews", 100),
            dr("reviews", "reviews")
        ),
    );
    dir.write("sub/deeper/b.yml", &vs("ratings", "ratings", 100));
    dir.write(
        "c.json",
        r#"{"apiVersion":"networking.istio.io/v1","kind":"DestinationRule","metadata":{"name":"ratings","namespace":"prod"},"spec":{"host":"ratings"}}"#,
    );
    dir.write("README.md", "not config");
    dir.write(".hidden.yaml", &vs("hidden", "hidden", 100));
    dir.write(".git/config.yaml", &vs("in-git", "in-git", 100));

    let (store, _source, _rx) = start(dir.path());
    // The initial load is applied before start returns, as one update.
    let s = store.current();
    assert_eq!(s.generation, 1);
    assert_eq!(
        names(&s),
        [
            "DestinationRule/reviews",
            "DestinationRule/ratings",
            "VirtualService/ratings",
            "VirtualService/reviews"
        ]
    );
    assert_eq!(s.resources[1].namespace(), "prod");
    assert!(s.diagnostics.is_empty(), "{:?}", s.diagnostics);
    assert_eq!(
        (
            s.rejected,
            s.count("VirtualService"),
            s.count("DestinationRule")
        ),
        (0, 2, 2)
    );
    // Files are named as the folder was given, with line numbers.
    let b = s.get("VirtualService", "default", "ratings").unwrap();
    assert_eq!(
        b.origin.file.as_ref(),
        dir.join("sub/deeper/b.yml").display().to_string()
    );
}

#[tokio::test]
async fn create_edit_delete() {
    let dir = TempDir::new("crud");
    let (_store, _source, mut rx) = start(dir.path());

    dir.write("vs.yaml", &vs("reviews", "v1", 100));
    wait_for(&mut rx, "created file", |s| has_vs(s, "reviews", "v1")).await;

    dir.write("vs.yaml", &vs("reviews", "v2", 100));
    wait_for(&mut rx, "edited file", |s| has_vs(s, "reviews", "v2")).await;

    dir.write("more/dr.yaml", &dr("reviews", "reviews"));
    wait_for(&mut rx, "file in a new folder", |s| {
        s.count("DestinationRule") == 1
    })
    .await;

    fs::remove_file(dir.join("vs.yaml")).unwrap();
    let s = wait_for(&mut rx, "deleted file", |s| s.count("VirtualService") == 0).await;
    assert_eq!(names(&s), ["DestinationRule/reviews"]);

    fs::remove_dir_all(dir.join("more")).unwrap();
    wait_for(&mut rx, "deleted folder", |s| s.resources.is_empty()).await;
}

#[tokio::test]
async fn renames_and_moves_in_and_out() {
    let dir = TempDir::new("rename");
    let outside = TempDir::new("rename-outside");
    dir.write("a.yaml", &vs("reviews", "reviews", 100));
    let (_store, _source, mut rx) = start(dir.path());

    fs::rename(dir.join("a.yaml"), dir.join("b.yaml")).unwrap();
    wait_for(&mut rx, "renamed within the folder", |s| {
        s.resources.len() == 1 && s.resources[0].origin.file.ends_with("b.yaml")
    })
    .await;

    fs::rename(dir.join("b.yaml"), dir.join("b.yaml.disabled")).unwrap();
    wait_for(&mut rx, "renamed to a non-config name", |s| {
        s.resources.is_empty()
    })
    .await;

    outside.write("c.yaml", &vs("moved", "moved", 100));
    fs::rename(outside.join("c.yaml"), dir.join("c.yaml")).unwrap();
    wait_for(&mut rx, "file moved in", |s| has_vs(s, "moved", "moved")).await;

    fs::rename(dir.join("c.yaml"), outside.join("c.yaml")).unwrap();
    wait_for(&mut rx, "file moved out", |s| s.resources.is_empty()).await;

    outside.write("sub/d.yaml", &vs("d", "d", 100));
    outside.write("sub/deeper/e.yaml", &dr("e", "e"));
    fs::rename(outside.join("sub"), dir.join("sub")).unwrap();
    wait_for(&mut rx, "folder moved in", |s| s.resources.len() == 2).await;

    // The moved-in folder is watched too.
    dir.write("sub/deeper/f.yaml", &dr("f", "f"));
    wait_for(&mut rx, "file created in a moved-in folder", |s| {
        s.resources.len() == 3
    })
    .await;

    fs::rename(dir.join("sub"), outside.join("sub2")).unwrap();
    wait_for(&mut rx, "folder moved out", |s| s.resources.is_empty()).await;
}

#[tokio::test]
async fn editor_writes_through_a_temp_file_as_one_update() {
    let dir = TempDir::new("editor");
    dir.write("vs.yaml", &vs("reviews", "v0", 100));
    let (store, _source, mut rx) = start(dir.path());
    let g0 = store.current().generation;

    // 1. Write a temp file, rename it over the original (most editors, kubectl, Go tools).
    dir.write("vs.yaml.tmp-1234", &vs("reviews", "v1", 100));
    fs::rename(dir.join("vs.yaml.tmp-1234"), dir.join("vs.yaml")).unwrap();
    wait_for(&mut rx, "temp-file write", |s| has_vs(s, "reviews", "v1")).await;
    settle().await;
    assert_eq!(
        store.current().generation,
        g0 + 1,
        "the burst is one update"
    );

    // 2. The temp file has a config extension itself: still one update, no duplicate.
    dir.write("vs.tmp.yaml", &vs("reviews", "v2", 100));
    fs::rename(dir.join("vs.tmp.yaml"), dir.join("vs.yaml")).unwrap();
    wait_for(&mut rx, "temp .yaml write", |s| has_vs(s, "reviews", "v2")).await;
    settle().await;
    let s = store.current();
    assert_eq!(s.generation, g0 + 2, "the burst is one update");
    assert!(s.diagnostics.is_empty(), "{:?}", s.diagnostics);

    // 3. Vim's way: move the original to a backup, write anew, delete the backup. The
    // resource never disappears in between.
    fs::rename(dir.join("vs.yaml"), dir.join("vs.yaml~")).unwrap();
    dir.write("vs.yaml", &vs("reviews", "v3", 100));
    fs::remove_file(dir.join("vs.yaml~")).unwrap();
    wait_for(&mut rx, "backup-style write", |s| {
        has_vs(s, "reviews", "v3")
    })
    .await;
    settle().await;
    assert_eq!(
        store.current().generation,
        g0 + 3,
        "the burst is one update"
    );

    // 4. A hidden swap file next to it changes nothing.
    dir.write(".vs.yaml.swp", "binary-ish swap content");
    settle().await;
    assert_eq!(store.current().generation, g0 + 3);
}

#[cfg(unix)]
#[tokio::test]
async fn configmap_style_symlink_swap() {
    use std::os::unix::fs::symlink;
    let dir = TempDir::new("configmap");
    dir.write("..v1/vs.yaml", &vs("reviews", "v1", 100));
    symlink("..v1", dir.join("..data")).unwrap();
    symlink("..data/vs.yaml", dir.join("vs.yaml")).unwrap();
    let (store, _source, mut rx) = start(dir.path());
    assert_eq!(
        names(&store.current()),
        ["VirtualService/reviews"],
        "hidden folders are not loaded twice"
    );

    // What the kubelet does: a new hidden folder, a new link, renamed over `..data`.
    dir.write("..v2/vs.yaml", &vs("reviews", "v2", 100));
    symlink("..v2", dir.join("..data_tmp")).unwrap();
    fs::rename(dir.join("..data_tmp"), dir.join("..data")).unwrap();
    fs::remove_dir_all(dir.join("..v1")).unwrap();
    let s = wait_for(&mut rx, "swapped ..data", |s| has_vs(s, "reviews", "v2")).await;
    assert_eq!(s.resources.len(), 1);
}

#[tokio::test]
async fn dropping_the_handle_stops_watching() {
    let dir = TempDir::new("drop");
    let store = ConfigStore::new();
    let source = FilesSource::start(dir.path(), store.clone(), FilesOptions::default()).unwrap();
    assert_eq!(source.dir(), dir.path());
    let mut rx = store.subscribe();
    dir.write("a.yaml", &dr("a", "a"));
    wait_for(&mut rx, "file seen while watching", |s| {
        s.resources.len() == 1
    })
    .await;

    drop(source);
    let g = store.current().generation;
    dir.write("b.yaml", &dr("b", "b"));
    fs::remove_file(dir.join("a.yaml")).unwrap();
    settle().await;
    let s = store.current();
    assert_eq!(
        (s.generation, s.resources.len()),
        (g, 1),
        "no update after drop"
    );
}

#[tokio::test]
async fn start_fails_on_a_missing_folder_or_a_file() {
    let dir = TempDir::new("missing");
    let err = FilesSource::start(
        dir.join("nope"),
        ConfigStore::new(),
        FilesOptions::default(),
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("cannot open config folder"),
        "{err}"
    );
    let file = dir.write("f.yaml", "");
    let err = FilesSource::start(&file, ConfigStore::new(), FilesOptions::default()).unwrap_err();
    assert!(err.to_string().contains("is not a folder"), "{err}");
}
