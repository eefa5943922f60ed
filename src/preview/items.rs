//! What the preview page can show: the bundled samples, the payloads of `preview.fixtures`, and
//! the most recent stored events, each with an id the page sends back to render it.
//!
//! Stored events are read through the daemon's outbox, on whichever store it has (SQLite, or
//! the PostgreSQL database replicas share), with the engine's read operations; nothing here
//! writes. The page's handlers call these functions on a blocking thread of the runtime.

use crate::deliver::durable::DurableOutbox;
use crate::deliver::store::EventFilter;
use crate::deliver::OutboxError;
use crate::event::{self, Event, KINDS};
use serde::Serialize;
use std::collections::HashMap;
use std::path::Path;

/// The id of the sample review reminder (`reminder.hbs` with every variable set).
pub const REMINDER_ITEM: &str = "reminder:sample";

/// How many stored events the page lists, newest first.
pub const RECENT_EVENTS: usize = 20;

/// One entry of the page's list.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Item {
    /// What the page sends back to render it: `sample:FILE`, `fixture:FILE` or `event:ID`.
    pub id: String,
    /// What the list shows.
    pub label: String,
}

/// The lists, by source.
#[derive(Debug, Clone, Serialize, Default)]
pub struct Items {
    /// Bundled samples (one per file of `samples/`).
    pub samples: Vec<Item>,
    /// Files of `preview.fixtures`.
    pub fixtures: Vec<Item>,
    /// The most recent stored events.
    pub events: Vec<Item>,
    /// Why a source could not be listed, one line each.
    pub problems: Vec<String>,
}

/// Why an item cannot be shown.
#[derive(Debug, thiserror::Error)]
pub enum ItemError {
    /// The id names nothing the page lists.
    #[error("no such item: {0}")]
    Unknown(String),
    /// The payload could not be read or is not a GitLab event.
    #[error("{0}")]
    Unreadable(String),
}

/// Lists every source; a source that cannot be read is reported in `problems`, not fatal.
pub fn list(fixtures: Option<&Path>, store: Option<&DurableOutbox>) -> Items {
    let mut items = Items::default();
    for row in &KINDS {
        for (file, _) in row.samples {
            items.samples.push(Item {
                id: format!("sample:{file}"),
                label: (*file).to_string(),
            });
        }
    }
    items.samples.sort_by(|a, b| a.label.cmp(&b.label));
    items.samples.dedup_by(|a, b| a.id == b.id);
    items.samples.push(Item {
        id: REMINDER_ITEM.into(),
        label: "review reminder (sample)".into(),
    });
    if let Some(dir) = fixtures {
        match fixture_files(dir) {
            Ok(files) => {
                items.fixtures = files
                    .into_iter()
                    .map(|f| Item {
                        id: format!("fixture:{f}"),
                        label: f,
                    })
                    .collect();
            }
            Err(e) => items.problems.push(e),
        }
    }
    if let Some(store) = store {
        match recent_events(store) {
            Ok(events) => items.events = events,
            Err(e) => items.problems.push(e),
        }
    }
    items
}

/// The newest stored event id (0 when none or unreadable): the page re-lists when it changes.
pub fn newest_event(store: Option<&DurableOutbox>) -> i64 {
    let Some(store) = store else { return 0 };
    let filter = EventFilter {
        limit: 1,
        ..EventFilter::default()
    };
    wait(store.list_events(filter))
        .ok()
        .and_then(|rows| rows.first().map(|r| r.id))
        .unwrap_or(0)
}

/// The event behind `id`, parsed as `serve` parses it.
pub fn load(
    id: &str,
    fixtures: Option<&Path>,
    store: Option<&DurableOutbox>,
) -> Result<Event, ItemError> {
    let unknown = || ItemError::Unknown(id.to_string());
    if let Some(file) = id.strip_prefix("sample:") {
        for row in &KINDS {
            if let Some((_, text)) = row.samples.iter().find(|(f, _)| *f == file) {
                return parse(Some(row.sample_header()), text.as_bytes(), file);
            }
        }
        return Err(unknown());
    }
    if let Some(file) = id.strip_prefix("fixture:") {
        let dir = fixtures.ok_or_else(unknown)?;
        // Only names the folder lists: no path from the page reaches the file system.
        let listed = fixture_files(dir).map_err(ItemError::Unreadable)?;
        if !listed.iter().any(|f| f == file) {
            return Err(unknown());
        }
        let path = dir.join(file);
        let bytes = std::fs::read(&path)
            .map_err(|e| ItemError::Unreadable(format!("cannot read {}: {e}", path.display())))?;
        let header = index_headers(dir).remove(file);
        return parse(header.as_deref(), &bytes, file);
    }
    if let Some(n) = id.strip_prefix("event:") {
        let n: i64 = n.parse().map_err(|_| unknown())?;
        let store = store.ok_or_else(unknown)?;
        let stored = wait(store.event(n))
            .map_err(|e| ItemError::Unreadable(format!("cannot read event {n}: {e}")))?
            .ok_or_else(unknown)?;
        let what = format!("event {n}");
        return parse(stored.raw.header("x-gitlab-event"), &stored.raw.body, &what);
    }
    Err(unknown())
}

fn parse(header: Option<&str>, bytes: &[u8], what: &str) -> Result<Event, ItemError> {
    let value: serde_json::Value = serde_json::from_slice(bytes)
        .map_err(|e| ItemError::Unreadable(format!("{what} is not JSON: {e}")))?;
    event::parse(header, value)
        .map_err(|e| ItemError::Unreadable(format!("{what} is not a GitLab event: {e}")))
}

/// The `*.json` files of `dir`, by name.
fn fixture_files(dir: &Path) -> Result<Vec<String>, String> {
    let entries =
        std::fs::read_dir(dir).map_err(|e| format!("cannot read {}: {e}", dir.display()))?;
    let mut files: Vec<String> = entries
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str().map(str::to_string))
        .filter(|n| n.ends_with(".json"))
        .collect();
    files.sort();
    Ok(files)
}

/// Headers by file name from the folder's `INDEX.tsv` (file, X-Gitlab-Event, …), if it has one
/// (also read by `render --dir`).
pub fn index_headers(dir: &Path) -> HashMap<String, String> {
    let Ok(text) = std::fs::read_to_string(dir.join("INDEX.tsv")) else {
        return HashMap::new();
    };
    text.lines()
        .skip(1)
        .filter_map(|l| {
            let mut cols = l.split('\t');
            Some((cols.next()?.to_string(), cols.next()?.to_string()))
        })
        .collect()
}

/// Waits for a read of the store, from a blocking thread of the runtime the outbox runs on.
fn wait<T>(read: impl std::future::Future<Output = Result<T, OutboxError>>) -> Result<T, String> {
    let runtime = tokio::runtime::Handle::try_current().map_err(|e| e.to_string())?;
    runtime.block_on(read).map_err(|e| e.to_string())
}

fn recent_events(store: &DurableOutbox) -> Result<Vec<Item>, String> {
    let filter = EventFilter {
        limit: RECENT_EVENTS,
        ..EventFilter::default()
    };
    let rows =
        wait(store.list_events(filter)).map_err(|e| format!("cannot list stored events: {e}"))?;
    Ok(rows
        .into_iter()
        .map(|r| {
            let what = r.key.or(r.kind).unwrap_or_else(|| r.state.clone());
            let project = r.project.map(|p| format!(" {p}")).unwrap_or_default();
            Item {
                id: format!("event:{}", r.id),
                label: format!("#{} {what}{project}", r.id),
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_are_listed_and_load_with_their_header() {
        let items = list(None, None);
        assert!(items
            .samples
            .iter()
            .any(|i| i.id == "sample:merge_request__open.json"));
        assert!(items.fixtures.is_empty() && items.events.is_empty());
        let ev = load("sample:merge_request__open.json", None, None).map(|e| e.key);
        assert_eq!(ev.ok().as_deref(), Some("merge_request.open"));
    }

    #[test]
    fn ids_outside_the_lists_are_refused() {
        for id in [
            "sample:nope.json",
            "fixture:../Cargo.toml",
            "event:1",
            "event:x",
            "file:/etc/passwd",
        ] {
            assert!(
                matches!(load(id, None, None), Err(ItemError::Unknown(_))),
                "{id}"
            );
        }
        let dir = std::env::temp_dir().join(format!("preview-items-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let _ = std::fs::write(dir.join("a.json"), r#"{"object_kind":"issue"}"#);
        assert_eq!(list(Some(&dir), None).fixtures.len(), 1);
        assert!(load("fixture:a.json", Some(&dir), None).is_ok());
        assert!(matches!(
            load("fixture:../a.json", Some(&dir), None),
            Err(ItemError::Unknown(_))
        ));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
