//! The files source with bad input and under edits: broken files, invalid resources and
//! duplicates are reported while the rest is served, and every edit is published within
//! 100 ms.

mod support;

use std::fs;
use std::time::{Duration, Instant};

use mast_config::Level;
use support::*;

#[tokio::test]
async fn syntax_error_costs_only_its_document() {
    let dir = TempDir::new("broken");
    dir.write("good.yaml", &vs("reviews", "reviews", 100));
    let broken = format!(
        "{}---\nspec: [unclosed\nmore: 1\n---\n{}",
        dr("first", "a"),
        dr("last", "b")
    );
    dir.write("broken.yaml", &broken);
    let (_store, _source, mut rx) = start(dir.path());

    let s = rx.borrow_and_update().clone();
    assert_eq!(
        names(&s),
        [
            "DestinationRule/first",
            "DestinationRule/last",
            "VirtualService/reviews"
        ]
    );
    assert_eq!(s.rejected, 1);
    let errors: Vec<_> = s.errors().collect();
    assert_eq!(errors.len(), 1);
    let origin = errors[0].origin.as_ref().unwrap();
    assert!(
        origin.file.ends_with("broken.yaml") && origin.line >= 7,
        "{}",
        errors[0]
    );
    assert!(
        errors[0].message.contains("YAML syntax error"),
        "{}",
        errors[0]
    );

    // Breaking a file while running: its other documents and the other files stay.
    dir.write(
        "good.yaml",
        &format!("{}---\nkind: [\n", vs("reviews", "reviews", 100)),
    );
    let s = wait_for(&mut rx, "second broken document", |s| s.rejected == 2).await;
    assert_eq!(s.resources.len(), 3);

    // Fixing it clears the diagnostics.
    dir.write(
        "broken.yaml",
        &format!("{}---\n{}", dr("first", "a"), dr("last", "b")),
    );
    dir.write("good.yaml", &vs("reviews", "reviews", 100));
    let s = wait_for(&mut rx, "fixed files", |s| s.rejected == 0).await;
    assert!(s.diagnostics.is_empty(), "{:?}", s.diagnostics);
    assert_eq!(s.resources.len(), 3);
}

#[tokio::test]
async fn unreadable_file_is_reported() {
    let dir = TempDir::new("utf8");
    dir.write("good.yaml", &dr("reviews", "reviews"));
    fs::write(dir.join("bad.yaml"), [0xff, 0xfe, 0x00, b'\n']).unwrap();
    let (_store, _source, mut rx) = start(dir.path());
    let s = rx.borrow_and_update().clone();
    assert_eq!((s.resources.len(), s.rejected), (1, 1));
    let e = s.errors().next().unwrap();
    assert!(
        e.to_string()
            .ends_with("bad.yaml: cannot read file: it is not UTF-8 text"),
        "{e}"
    );

    fs::remove_file(dir.join("bad.yaml")).unwrap();
    let s = wait_for(&mut rx, "bad file removed", |s| s.rejected == 0).await;
    assert!(s.diagnostics.is_empty());
}

#[tokio::test]
async fn invalid_resource_is_left_out_and_reported() {
    let dir = TempDir::new("invalid");
    let text = format!(
        "{}---\n{}",
        dr("reviews", "reviews"),
        vs("reviews", "reviews", -10)
    );
    dir.write("mesh.yaml", &text);
    dir.write("other.yaml", &vs("ratings", "ratings", 100));
    let (_store, _source, mut rx) = start(dir.path());

    let s = rx.borrow_and_update().clone();
    assert_eq!(
        names(&s),
        ["DestinationRule/reviews", "VirtualService/ratings"]
    );
    assert_eq!((s.rejected, s.count("VirtualService")), (1, 1));
    let e = s.errors().next().unwrap();
    assert_eq!(e.field.as_deref(), Some("spec.http[0].route[0].weight"));
    assert_eq!(
        e.resource.as_ref().unwrap().to_string(),
        "VirtualService default/reviews"
    );
    assert!(e.message.contains("weight -10 must not be negative"), "{e}");
    assert!(
        e.to_string()
            .contains("mesh.yaml:19: VirtualService default/reviews"),
        "{e}"
    );

    // A warning keeps the resource.
    dir.write(
        "widget.yaml",
        "apiVersion: example.com/v1\nkind: Widget\nmetadata:\n  name: w\n",
    );
    let s = wait_for(&mut rx, "unknown kind", |s| s.count("Widget") == 1).await;
    assert!(s.diagnostics.iter().any(|d| d.level == Level::Warning));

    // Fixing the weight brings the VirtualService in.
    dir.write(
        "mesh.yaml",
        &format!(
            "{}---\n{}",
            dr("reviews", "reviews"),
            vs("reviews", "reviews", 100)
        ),
    );
    let s = wait_for(&mut rx, "fixed weight", |s| has_vs(s, "reviews", "reviews")).await;
    assert_eq!(s.rejected, 0);
    assert_eq!(s.errors().count(), 0);
}

#[tokio::test]
async fn duplicate_resources_first_file_wins() {
    let dir = TempDir::new("dup");
    dir.write("a.yaml", &vs("reviews", "from-a", 100));
    dir.write("b.yaml", &vs("reviews", "from-b", 100));
    let (_store, _source, mut rx) = start(dir.path());

    let s = rx.borrow_and_update().clone();
    assert!(has_vs(&s, "reviews", "from-a"));
    assert_eq!((s.resources.len(), s.rejected), (1, 1));
    let e = s.errors().next().unwrap();
    let (a, b) = (dir.join("a.yaml"), dir.join("b.yaml"));
    assert!(e.message.contains(&format!("{}:1", a.display())), "{e}");
    assert!(e.message.contains(&format!("{}:1", b.display())), "{e}");

    fs::remove_file(&a).unwrap();
    let s = wait_for(&mut rx, "other definition served", |s| {
        has_vs(s, "reviews", "from-b")
    })
    .await;
    assert_eq!((s.rejected, s.diagnostics.len()), (0, 0));
}

#[tokio::test]
async fn every_edit_is_published_within_100ms() {
    let dir = TempDir::new("latency");
    dir.write("other.yaml", &dr("ratings", "ratings"));
    dir.write("vs.yaml", &vs("reviews", "h0", 100));
    let (store, _source, mut rx) = start(dir.path());
    let mut max = Duration::ZERO;
    for i in 1..=20 {
        let before = store.current().generation;
        let host = format!("h{i}");
        let text = vs("reviews", &host, 100);
        let start = Instant::now();
        fs::write(dir.join("vs.yaml"), &text).unwrap();
        let s = wait_for(&mut rx, "edit", |s| has_vs(s, "reviews", &host)).await;
        let took = start.elapsed();
        assert_eq!(s.generation, before + 1, "one update per edit");
        assert_eq!(s.resources.len(), 2);
        assert!(took < Duration::from_millis(100), "edit {i} took {took:?}");
        max = max.max(took);
    }
    println!("files source: 20 edits, max write-to-state {max:?}");
}
