//! `format = "event"`: the documented, versioned JSON form of a typed event, the same for every
//! kind that takes it (Cliq bot and extension incoming URLs, `zoho_function`, `webhook`).
//!
//! ```json
//! {"version": 1, "key": "issue.open", "kind": "issue", "action": "open", "verb": "opened",
//!  "confidential": false, "actor": {…}, "project": {…}, "object": {…the kind's detail…},
//!  "changes": […], "links": {"url": "…", …}, "gitlab": {…the payload as received…}}
//! ```
//! `object` is the typed detail templates see under the kind's name (`issue`, `push`, …), or
//! `null` for an event the bridge does not type; `changes` is what an update changed (empty
//! otherwise); `links` holds the detail's top-level `url` and `*_url` fields and the project's
//! page. A field is only ever added within a version; a change of meaning bumps it.

use crate::event::Event;
use serde_json::{json, Map, Value};

/// The version of the event JSON.
pub const VERSION: u64 = 1;

/// The event JSON of `event`.
pub fn body(event: &Event) -> Value {
    let typed = serde_json::to_value(event).unwrap_or(Value::Null);
    let object = typed
        .get(event.kind.as_str())
        .cloned()
        .unwrap_or(Value::Null);
    let changes = object.get("changes").cloned().unwrap_or_else(|| json!([]));
    let mut links = Map::new();
    if let Some(o) = object.as_object() {
        for (k, v) in o {
            if (k == "url" || k.ends_with("_url")) && v.is_string() {
                links.insert(k.clone(), v.clone());
            }
        }
    }
    if let Some(u) = &event.project.url {
        links.insert("project".into(), json!(u));
    }
    json!({
        "version": VERSION,
        "key": event.key,
        "kind": event.kind.as_str(),
        "action": event.action,
        "verb": event.verb,
        "confidential": event.confidential,
        "actor": typed.get("actor").cloned().unwrap_or(Value::Null),
        "project": typed.get("project").cloned().unwrap_or(Value::Null),
        "object": object,
        "changes": changes,
        "links": links,
        "gitlab": event.raw,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_issue_becomes_the_documented_shape() {
        let raw = json!({"object_kind": "issue", "user": {"name": "Al", "username": "al"},
            "project": {"path_with_namespace": "g/p", "web_url": "https://gl.test/g/p"},
            "object_attributes": {"iid": 3, "title": "T", "action": "open", "url": "https://gl.test/g/p/-/issues/3"}});
        let ev = crate::event::parse(Some("Issue Hook"), raw.clone());
        let Ok(ev) = ev else { panic!("parses") };
        let v = body(&ev);
        assert_eq!(v["version"], 1);
        assert_eq!(v["key"], "issue.open");
        assert_eq!(v["kind"], "issue");
        assert_eq!(v["action"], "open");
        assert_eq!(v["object"]["iid"], 3);
        assert_eq!(v["links"]["url"], "https://gl.test/g/p/-/issues/3");
        assert_eq!(v["gitlab"], raw);
        assert!(v["changes"].is_array());
    }
}
