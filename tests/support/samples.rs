//! GitLab's example payloads: the one copy, in `samples/`, whose `INDEX.tsv` gives each file's
//! `X-Gitlab-Event` header and `object_kind`.

use gitlab_chat_bridge::event::{self, Event};
use serde_json::Value;
use std::path::{Path, PathBuf};

/// `samples/`.
pub fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("samples")
}

/// One row of `INDEX.tsv`.
#[derive(Debug, Clone)]
pub struct Sample {
    /// The file name in `samples/`.
    pub file: String,
    /// Its `X-Gitlab-Event` header.
    pub header: String,
    /// Its `object_kind` (`-` for payloads without one).
    pub object_kind: String,
}

/// Every row of `INDEX.tsv`, in order.
pub fn index() -> Vec<Sample> {
    std::fs::read_to_string(dir().join("INDEX.tsv"))
        .unwrap()
        .lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let cols: Vec<&str> = l.split('\t').collect();
            Sample {
                file: cols[0].to_string(),
                header: cols[1].to_string(),
                object_kind: cols[2].to_string(),
            }
        })
        .collect()
}

/// A sample's bytes.
pub fn bytes(file: &str) -> Vec<u8> {
    std::fs::read(dir().join(file)).unwrap()
}

/// A sample as JSON.
pub fn json(file: &str) -> Value {
    serde_json::from_slice(&bytes(file)).unwrap()
}

/// A sample's `X-Gitlab-Event` header, from INDEX.tsv.
pub fn header(file: &str) -> String {
    index()
        .into_iter()
        .find(|s| s.file == file)
        .map(|s| s.header)
        .unwrap_or_else(|| panic!("{file} is not in INDEX.tsv"))
}

/// A sample parsed as an event sent with `header`.
pub fn event(file: &str, header: &str) -> Event {
    event::parse(Some(header), json(file))
        .unwrap_or_else(|e| panic!("sample {file} ({header}) does not parse: {e}"))
}

/// Every sample in INDEX.tsv parsed with its own header, as (file name, event).
pub fn events() -> Vec<(String, Event)> {
    index()
        .into_iter()
        .map(|s| {
            let ev = event(&s.file, &s.header);
            (s.file, ev)
        })
        .collect()
}

/// GitLab's `issue__open` payload about issue `iid` with title `title`.
pub fn issue(iid: u64, title: &str) -> Vec<u8> {
    let mut v = json("issue__open.json");
    v["object_attributes"]["iid"] = serde_json::json!(iid);
    v["object_attributes"]["title"] = serde_json::json!(title);
    v.to_string().into_bytes()
}

/// GitLab's `push__basic` payload (same project and ref each time) with one commit, whose
/// message is `message`.
pub fn push(message: &str) -> Vec<u8> {
    let mut v = json("push__basic.json");
    let mut commit = v["commits"][0].clone();
    commit["message"] = serde_json::json!(message);
    v["commits"] = serde_json::json!([commit]);
    v["total_commits_count"] = serde_json::json!(1);
    v.to_string().into_bytes()
}

/// Text that must stay text in every chat: room-wide pings, markup, a script and `javascript:`
/// links in HTML and Markdown, Cliq's `{@all}`, and a mapped user's `@name`.
pub const HOSTILE: &str = "@room @everyone </b><script>alert(1)</script> <a href=\"javascript:alert(1)\">x</a> {@all} [y](javascript:alert(1)) @alice";

/// `v` with [`HOSTILE`] as its object's title, description and note (where it has them) and
/// as its user's name.
pub fn hostile(mut v: Value) -> Value {
    if let Some(o) = v
        .get_mut("object_attributes")
        .and_then(Value::as_object_mut)
    {
        for k in ["title", "description", "note"] {
            if o.contains_key(k) {
                o.insert(k.into(), serde_json::json!(HOSTILE));
            }
        }
    }
    if let Some(u) = v.get_mut("user").and_then(Value::as_object_mut) {
        u.insert("name".into(), serde_json::json!(HOSTILE));
    }
    v
}
