//! Keeps `docs/templates.md` in step with the code: the file must equal what the code generates,
//! and every variable a real event serialises must be documented for its kind.
//! Regenerate with `UPDATE_DOCS=1 cargo test --test tests docs::`.

use crate::support::{samples, turn};
use gitlab_chat_bridge::event::{serialized_paths, variables, Event};
use gitlab_chat_bridge::render::reference;
use std::collections::BTreeSet;
use std::path::Path;

fn doc_path() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/templates.md")
}

#[test]
fn templates_doc_is_current() {
    let _turn = turn::shared();
    let want = reference::markdown();
    if std::env::var_os("UPDATE_DOCS").is_some() {
        std::fs::write(doc_path(), &want).unwrap();
        return;
    }
    let have = std::fs::read_to_string(doc_path()).unwrap_or_default();
    assert!(
        have == want,
        "docs/templates.md is out of date with the code: run `UPDATE_DOCS=1 cargo test --test tests docs::`"
    );
}

/// Every sample with its header, and `check`'s bundled sample variants.
fn fixture_events() -> Vec<(String, Event)> {
    let mut out = samples::events();
    out.extend(gitlab_chat_bridge::commands::check::sample_events());
    out
}

#[test]
fn every_serialized_variable_is_documented() {
    let _turn = turn::shared();
    let documented = |kind: &str| -> BTreeSet<String> {
        let own = if kind == "project" {
            "project_event"
        } else {
            kind
        };
        variables()
            .iter()
            .filter(|(k, _)| *k == "common" || *k == own)
            .flat_map(|(_, vars)| vars.iter().map(|(p, _)| p.to_string()))
            .collect()
    };
    let mut missing = BTreeSet::new();
    let events = fixture_events();
    assert!(events.len() >= 40);
    for (label, ev) in &events {
        let docs = documented(ev.kind.as_str());
        for p in serialized_paths(ev) {
            if !docs.contains(&p) {
                missing.insert(format!("{} ({label}): {p}", ev.kind.as_str()));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "variables not in event::variables() (so not in docs/templates.md):\n{}",
        missing.into_iter().collect::<Vec<_>>().join("\n")
    );
}
