//! GitLab webhook payloads → our typed [`Event`] (pure, no I/O).
//!
//! Dispatch is on the `X-Gitlab-Event` header first, then the body's `object_kind` /
//! `event_name`, through the table of kinds ([`KINDS`]): one row and one file under `kinds/`
//! per kind, holding its detail type, parser, verbs and template variables. Parsing never fails
//! for a JSON object: unknown kinds become [`Kind::Unknown`], unknown actions are keyed but not
//! `known`, missing objects and odd dates degrade to `None` or the raw text. The event keeps the
//! original payload as `raw` so templates can reach any field we do not model.

mod changes;
#[macro_use]
mod table;
mod kinds;
mod shared;
pub mod state;
pub mod time;
mod value;
mod variables;

use serde::Serialize;
use serde_json::Value;
use table::{key_word, Input, Parsed};
use value::{obj_at, str_at};

pub use changes::Change;
pub use kinds::*;
pub use shared::{duration_text, Commit, Group, Project, User};
pub use table::{Action, KindRow, SYSTEM_HOOK};
pub use value::clean_url;
pub use variables::{serialized_paths, variables, KindVariables};

/// Why a body cannot be an event at all (anything else parses).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ParseError {
    /// Valid JSON, but not an object (`[]`, `"text"`, `42`).
    #[error("payload is a JSON {0}, not an object")]
    NotAnObject(&'static str),
}

impl Serialize for Kind {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// One GitLab webhook delivery, normalised.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Event {
    /// Stable dotted key used by filters and template lookup (`issue.open`, `push.branch_created`).
    pub key: String,
    /// The kind.
    pub kind: Kind,
    /// The action: GitLab's word (`open`, `merge`, …), or for kinds that send none the key's last
    /// part (a pipeline's status, `create`/`delete` of a tag, `on`/`off` of a feature flag, …).
    /// Absent when the payload has none (GitLab's *Test* button).
    pub action: Option<String>,
    /// Past-tense verb for people (`opened`, `merged`, `pushed to`, …).
    pub verb: String,
    /// Whether GitLab marked it confidential (header, `event_type` or the object's flag).
    pub confidential: bool,
    /// True when we recognise the kind and action well enough to render it.
    pub known: bool,
    /// Who did it.
    pub actor: User,
    /// Where it happened.
    pub project: Project,
    /// Further keys filters match besides `key` (`pipeline.fixed`, `pipeline.broken`), set by
    /// the router stage from what it remembers ([`Event::note_ref_status`]).
    pub also_keys: Vec<String>,
    /// The kind-specific part.
    #[serde(flatten)]
    pub detail: Detail,
    /// The payload exactly as received (put into template contexts only when a template uses it).
    #[serde(skip)]
    pub raw: Value,
}

impl Event {
    /// `key` and then [`Event::also_keys`].
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.key.as_str()).chain(self.also_keys.iter().map(String::as_str))
    }

    /// For a finished pipeline whose status says something about its ref: the key under which
    /// the router remembers that ref's last status, and the status to remember.
    pub fn ref_status(&self) -> Option<(String, String)> {
        match &self.detail {
            Detail::Pipeline(p) => kinds::pipeline_ref_status(p, &self.project.key()),
            _ => None,
        }
    }

    /// Given the status remembered for this event's ref before it (see [`Event::ref_status`]),
    /// adds `pipeline.fixed` or `pipeline.broken` to [`Event::also_keys`] when the status
    /// changed between failed and success.
    pub fn note_ref_status(&mut self, previous: Option<&str>) {
        let change = match &self.detail {
            Detail::Pipeline(p) => kinds::pipeline_status_change(previous, &p.status),
            _ => None,
        };
        if let Some(key) = change {
            self.also_keys.push(key.to_string());
        }
    }

    /// For a push of new commits (not a branch creation or deletion): the project (id, else
    /// path) and the `before` and `after` commits, to ask GitLab whether it was a force push.
    pub fn push_range(&self) -> Option<(String, String, String)> {
        match &self.detail {
            Detail::Push(p)
                if p.change == "commits" && !p.before.is_empty() && !p.after.is_empty() =>
            {
                Some((self.project.key(), p.before.clone(), p.after.clone()))
            }
            _ => None,
        }
    }

    /// Re-keys a push as `push.force` (`before` is not an ancestor of `after`) that dropped
    /// `dropped` commits.
    pub fn mark_force_push(&mut self, dropped: u64) {
        let Detail::Push(p) = &mut self.detail else {
            return;
        };
        mark_forced(p, dropped);
        self.key = "push.force".to_string();
        self.action = Some("force".to_string());
        self.verb = "force-pushed to".to_string();
    }

    /// Whether [`Event::note_ref_status`] found a change (`pipeline.fixed` or `.broken`).
    pub fn status_changed(&self) -> bool {
        self.also_keys
            .iter()
            .any(|k| k == PIPELINE_FIXED || k == PIPELINE_BROKEN)
    }
    /// The object's ordering key: same project + issue/MR number or ref → same key.
    pub fn object_key(&self) -> String {
        let p = self.project.key();
        self.detail
            .object_key(&p)
            .unwrap_or_else(|| format!("{p}/{}", self.kind.as_str()))
    }
}

/// Parses a JSON body received with the given `X-Gitlab-Event` header (if any).
pub fn parse(header: Option<&str>, body: Value) -> Result<Event, ParseError> {
    if !body.is_object() {
        let what = match body {
            Value::Array(_) => "array",
            Value::String(_) => "string",
            Value::Number(_) => "number",
            Value::Bool(_) => "boolean",
            _ => "null",
        };
        return Err(ParseError::NotAnObject(what));
    }
    let v = &body;
    let kind = Kind::detect(header, v);
    let event_type = str_at(v, &["event_type"]).unwrap_or_default();
    let marked = header.is_some_and(|h| h.trim().starts_with("Confidential "))
        || event_type.starts_with("confidential_");
    let action = obj_at(v, &["object_attributes"])
        .and_then(|a| str_at(a, &["action"]))
        .or_else(|| str_at(v, &["action"]));
    let (parsed, actor, project) = match kind.row() {
        Some(row) => {
            let mut input = Input {
                v,
                row,
                action: action.clone(),
                actor: User::actor(v),
                project: Project::from_payload(v),
            };
            let parsed = (row.parse)(&mut input);
            (parsed, input.actor, input.project)
        }
        None => (None, User::actor(v), Project::from_payload(v)),
    };
    let p = parsed.unwrap_or_else(|| untyped(&kind, action));
    Ok(Event {
        key: p.key,
        kind,
        action: p.action,
        verb: p.verb,
        confidential: marked || p.confidential,
        known: p.known,
        actor,
        project,
        also_keys: Vec::new(),
        detail: p.detail,
        raw: body,
    })
}

/// An event of a kind we do not model, or whose body lacks what its kind needs: keyed by its
/// action, never `known`, [`Detail::Other`].
fn untyped(kind: &Kind, action: Option<String>) -> Parsed {
    let key = match &action {
        Some(a) if !a.is_empty() => format!("{}.{}", kind.as_str(), key_word(a)),
        _ => kind.as_str().to_string(),
    };
    Parsed {
        key,
        verb: action.clone().unwrap_or_default(),
        action,
        known: false,
        confidential: false,
        detail: Detail::Other {},
    }
}

#[cfg(test)]
mod tests {
    use super::shared::ZERO_SHA;
    use super::*;
    use serde_json::json;

    fn ev(header: &str, body: Value) -> Event {
        match parse(Some(header), body) {
            Ok(e) => e,
            Err(e) => panic!("parse failed: {e}"),
        }
    }

    #[test]
    fn non_objects_are_rejected() {
        assert_eq!(
            parse(None, json!([1])).err(),
            Some(ParseError::NotAnObject("array"))
        );
    }

    #[test]
    fn push_create_and_delete_are_told_apart() {
        let created = ev(
            "Push Hook",
            json!({"object_kind":"push","before":ZERO_SHA,"after":"abc","ref":"refs/heads/feat","commits":[]}),
        );
        assert_eq!(created.key, "push.branch_created");
        let deleted = ev(
            "Push Hook",
            json!({"object_kind":"push","before":"abc","after":ZERO_SHA,"ref":"refs/heads/feat","checkout_sha":null}),
        );
        assert_eq!(deleted.key, "push.branch_deleted");
        let normal = ev(
            "Push Hook",
            json!({"object_kind":"push","before":"a","after":"b"}),
        );
        assert_eq!(normal.key, "push");
    }

    #[test]
    fn test_button_and_unknown_actions() {
        let t = ev(
            "Issue Hook",
            json!({"object_kind":"issue","object_attributes":{"title":"x"}}),
        );
        assert_eq!(t.key, "issue.test");
        assert!(t.known);
        let u = ev(
            "Merge Request Hook",
            json!({"object_kind":"merge_request","object_attributes":{"action":"Frob-nicate"}}),
        );
        assert_eq!(u.key, "merge_request.frob_nicate");
        assert!(!u.known);
    }

    #[test]
    fn confidential_from_header_event_type_or_flag() {
        let by_header = ev(
            "Confidential Issue Hook",
            json!({"object_kind":"issue","object_attributes":{"action":"open"}}),
        );
        assert!(by_header.confidential);
        let by_type = ev(
            "Issue Hook",
            json!({"object_kind":"issue","event_type":"confidential_issue","object_attributes":{"action":"open"}}),
        );
        assert!(by_type.confidential);
        let by_flag = ev(
            "Issue Hook",
            json!({"object_kind":"issue","object_attributes":{"action":"open","confidential":true}}),
        );
        assert!(by_flag.confidential);
        let plain = ev(
            "Issue Hook",
            json!({"object_kind":"issue","object_attributes":{"action":"open"}}),
        );
        assert!(!plain.confidential);
    }

    #[test]
    fn work_items_and_old_build_hooks() {
        let w = ev(
            "Issue Hook",
            json!({"object_kind":"work_item","object_attributes":{"action":"open"}}),
        );
        assert_eq!(w.kind, Kind::WorkItem);
        let b = ev("Build Hook", json!({"object_kind":"build"}));
        assert_eq!(b.kind, Kind::Job);
        let m = parse(None, json!({"event_name":"user_add_to_group"}));
        assert_eq!(m.map(|e| e.kind).ok(), Some(Kind::Member));
    }

    #[test]
    fn new_kinds_are_keyed_by_action_or_status() {
        let cases = [
            (
                "Tag Push Hook",
                json!({"object_kind":"tag_push","before":ZERO_SHA,"after":"abc","ref":"refs/tags/v1"}),
                "tag_push.create",
                true,
            ),
            (
                "Tag Push Hook",
                json!({"object_kind":"tag_push","before":"abc","after":ZERO_SHA,"ref":"refs/tags/v1"}),
                "tag_push.delete",
                true,
            ),
            (
                "Tag Push Hook",
                json!({"object_kind":"tag_push","before":"abc","after":"def","ref":"refs/tags/v1"}),
                "tag_push.update",
                true,
            ),
            (
                "Pipeline Hook",
                json!({"object_kind":"pipeline","object_attributes":{"status":"failed"}}),
                "pipeline.failed",
                true,
            ),
            (
                "Pipeline Hook",
                json!({"object_kind":"pipeline","object_attributes":{"status":"Weird Status"}}),
                "pipeline.weird_status",
                false,
            ),
            (
                "Pipeline Hook",
                json!({"object_kind":"pipeline"}),
                "pipeline",
                true,
            ),
            (
                "Job Hook",
                json!({"object_kind":"build","build_status":"running"}),
                "job.running",
                true,
            ),
            (
                "Release Hook",
                json!({"object_kind":"release","action":"update"}),
                "release.update",
                true,
            ),
            (
                "Wiki Page Hook",
                json!({"object_kind":"wiki_page","object_attributes":{"action":"delete"}}),
                "wiki_page.delete",
                true,
            ),
            (
                "Deployment Hook",
                json!({"object_kind":"deployment","status":"blocked"}),
                "deployment.blocked",
                true,
            ),
            (
                "Milestone Hook",
                json!({"object_kind":"milestone","action":"reopen","object_attributes":{}}),
                "milestone.reopen",
                true,
            ),
            (
                "Emoji Hook",
                json!({"object_kind":"emoji","event_type":"revoke","object_attributes":{}}),
                "emoji.revoke",
                true,
            ),
            (
                "Feature Flag Hook",
                json!({"object_kind":"feature_flag","object_attributes":{"active":false}}),
                "feature_flag.off",
                true,
            ),
            (
                "Resource Access Token Hook",
                json!({"object_kind":"access_token","event_name":"expiring_access_token"}),
                "access_token.expiring",
                true,
            ),
            (
                "Member Hook",
                json!({"event_name":"user_update_for_group"}),
                "member.update",
                true,
            ),
            (
                "Project Hook",
                json!({"event_name":"project_rename"}),
                "project.rename",
                true,
            ),
            (
                "Subgroup Hook",
                json!({"event_name":"subgroup_destroy"}),
                "subgroup.destroy",
                true,
            ),
            (
                "Vulnerability Hook",
                json!({"object_kind":"vulnerability","object_attributes":{"state":"resolved"}}),
                "vulnerability.resolved",
                true,
            ),
            (
                "Issue Hook",
                json!({"object_kind":"work_item","object_attributes":{"action":"close"}}),
                "work_item.close",
                true,
            ),
        ];
        for (header, body, key, known) in cases {
            let e = ev(header, body);
            assert_eq!((e.key.as_str(), e.known), (key, known), "{header}");
            assert!(!matches!(e.detail, Detail::Other {}), "{header}: not typed");
            // Without a header (System Hook), the body alone gives the same key.
            let again = parse(
                Some("System Hook"),
                serde_json::to_value(&e.raw).unwrap_or_default(),
            );
            assert_eq!(
                again.map(|a| a.key).ok().as_deref(),
                Some(key),
                "{header} as System Hook"
            );
        }
    }

    #[test]
    fn pipelines_list_failed_jobs_capped_and_spot_children() {
        let builds: Vec<Value> = (0..13)
            .map(|i| json!({"id": 100 - i, "name": format!("j{i}"), "status": if i % 4 == 3 { "success" } else { "failed" }}))
            .collect();
        let e = ev(
            "Pipeline Hook",
            json!({"object_kind":"pipeline","project":{"id":7,"web_url":"https://g.test/a/b","path_with_namespace":"a/b"},
                   "object_attributes":{"id":9,"status":"failed","source":"pipeline","duration":3725.4},
                   "source_pipeline":{"project":{"id":7,"path_with_namespace":"a/b","web_url":"https://g.test/a/b"},"pipeline_id":8},
                   "builds": builds}),
        );
        let Detail::Pipeline(p) = &e.detail else {
            panic!("{:?}", e.detail)
        };
        assert_eq!(p.failed_jobs_total, 10);
        assert_eq!(p.failed_jobs.len(), FAILED_JOBS_SHOWN);
        assert_eq!(p.more_failed_jobs, 0);
        // Oldest (lowest id) first, with a link built from the project.
        assert_eq!(p.failed_jobs[0].id, Some(88));
        assert_eq!(
            p.failed_jobs[0].url.as_deref(),
            Some("https://g.test/a/b/-/jobs/88")
        );
        assert!(p.child, "upstream in the same project");
        assert_eq!(
            p.upstream.as_ref().and_then(|u| u.url.as_deref()),
            Some("https://g.test/a/b/-/pipelines/8")
        );
        assert_eq!(p.url.as_deref(), Some("https://g.test/a/b/-/pipelines/9"));
        assert_eq!(p.duration_text.as_deref(), Some("1h 2m"));
        assert_eq!(e.object_key(), "7/pipeline/9");
    }

    #[test]
    fn missing_objects_degrade() {
        let e = ev(
            "Merge Request Hook",
            json!({"object_kind":"merge_request","user":null,"project":null,"object_attributes":{"action":"open","title":null,"labels":null}}),
        );
        assert_eq!(e.actor.name, "someone");
        assert_eq!(e.project.path, "");
        match e.detail {
            Detail::MergeRequest(m) => {
                assert_eq!(m.title, "(untitled)");
                assert!(m.labels.is_empty());
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}
