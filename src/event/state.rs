//! An object's accumulated state: what a conversation's root card shows (`thread+edit`).
//!
//! A merge request, an issue (or work item) and a pipeline each get one [`ObjectState`], keyed
//! like their conversation ([`object_key`]: a merge request's comments and pipelines join the
//! merge request, an issue's comments the issue). Every event about the object merges into it
//! ([`ObjectState::merge`]) liberally: what the payload does not carry keeps its old value, so
//! old payloads, nulls and missing objects never erase what is known. Lists and strings are
//! capped, so a state stays small (the router keeps it in its memory, [`memory_key`]).

use super::{Detail, Event, User};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Most people kept per list (assignees, reviewers, approvers): the most recent ones.
pub const MAX_PEOPLE: usize = 20;
/// Most labels kept.
pub const MAX_LABELS: usize = 30;
/// Longest title kept, in characters (longer ones end with `…`).
pub const MAX_TITLE: usize = 300;
/// Longest name, username, ref or state kept, in characters.
pub const MAX_NAME: usize = 100;
/// Longest URL kept; a longer one is dropped (a cut URL leads nowhere).
pub const MAX_URL: usize = 2_000;

/// A person as a root card shows them (`{{mention}}` takes them as it takes an event's people).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct Person {
    /// Display name.
    pub name: String,
    /// Login name, without `@`.
    pub username: Option<String>,
}

impl Person {
    fn of(u: &User) -> Person {
        Person {
            name: cap(&u.name, MAX_NAME),
            username: u.username.as_deref().map(|n| cap(n, MAX_NAME)),
        }
    }

    fn same(&self, other: &Person) -> bool {
        match (&self.username, &other.username) {
            (Some(a), Some(b)) => a.eq_ignore_ascii_case(b),
            _ => self.name == other.name,
        }
    }
}

/// The object's project.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct ProjectState {
    /// `group/project`.
    pub path: String,
    /// Its web page.
    pub url: Option<String>,
}

/// The object's last pipeline (a merge request's latest, or the pipeline itself).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct PipelineState {
    /// Global id.
    pub id: Option<u64>,
    /// `success`, `failed`, `running`, ….
    pub status: String,
    /// Web page.
    pub url: Option<String>,
    /// Branch or tag it ran for.
    #[serde(rename = "ref")]
    pub git_ref: Option<String>,
}

/// What is known about one merge request, issue or pipeline, from every event about it.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct ObjectState {
    /// `merge_request`, `issue` or `pipeline`: which root template renders it.
    pub kind: String,
    /// Title (a pipeline's name, else its ref).
    pub title: String,
    /// Web page.
    pub url: Option<String>,
    /// Project-scoped number (`!1`, `#23`; a pipeline's iid).
    pub iid: Option<u64>,
    /// Where it lives.
    pub project: ProjectState,
    /// `opened`, `draft`, `merged`, `closed` or `reopened` (a pipeline: its status).
    pub state: Option<String>,
    /// Who opened it (who triggered a pipeline), when an event said so.
    pub author: Option<Person>,
    /// Assigned people.
    pub assignees: Vec<Person>,
    /// Requested reviewers (merge requests).
    pub reviewers: Vec<Person>,
    /// Who approved it and did not take it back (merge requests).
    pub approved_by: Vec<Person>,
    /// Label titles.
    pub labels: Vec<String>,
    /// Branch the changes come from (merge requests).
    pub source_branch: Option<String>,
    /// Branch the changes go to (merge requests).
    pub target_branch: Option<String>,
    /// The last pipeline.
    pub pipeline: Option<PipelineState>,
    /// Comments by people (not GitLab's system notes) seen since the state began.
    pub comments: u64,
    /// When the object last changed, as GitLab said (RFC 3339 when parseable).
    pub updated_at: Option<String>,
}

/// The kinds of objects with a state (and a root template).
pub const KINDS: [&str; 3] = ["merge_request", "issue", "pipeline"];

/// The conversation object `event` is about, when that object keeps a state: `P/mr/IID` for a
/// merge request, its comments and its pipelines; `P/issue/IID` for an issue, a work item and
/// their comments; `P/pipeline/ID` for another pipeline (`P`: the project's id, else path).
pub fn object_key(event: &Event) -> Option<String> {
    let p = event.project.key();
    let key = match &event.detail {
        Detail::MergeRequest(_) => event.object_key(),
        Detail::Issue(_) | Detail::WorkItem(_) => event.object_key(),
        Detail::Note(n) if n.issue.is_some() || n.merge_request.is_some() => event.object_key(),
        Detail::Pipeline(x) => match x.merge_request.as_ref().and_then(|m| m.iid) {
            Some(iid) => format!("{p}/mr/{iid}"),
            None => event.object_key(),
        },
        _ => return None,
    };
    Some(key)
}

/// The router memory's key of the state of `event`'s object (beside, never equal to, the
/// `pipeline-status/…` keys), for a merge request or an issue: their states are remembered
/// between events. A pipeline of no merge request has none: each of its events carries all its
/// root card shows, and a remembered state per pipeline would only pile up.
pub fn memory_key(event: &Event) -> Option<String> {
    let key = object_key(event)?;
    let remembered = match &event.detail {
        Detail::Pipeline(x) => x.merge_request.as_ref().and_then(|m| m.iid).is_some(),
        _ => true,
    };
    remembered.then(|| format!("object-state/{key}"))
}

impl ObjectState {
    /// The state `event` alone gives (no memory: `render`, the preview page, replays), if its
    /// object keeps one.
    pub fn of(event: &Event) -> Option<ObjectState> {
        object_key(event)?;
        let mut s = ObjectState::default();
        s.merge(event);
        Some(s)
    }

    /// A stored state; `None` when it is not one (a newer or damaged value starts afresh).
    pub fn from_json(text: &str) -> Option<ObjectState> {
        serde_json::from_str(text).ok()
    }

    /// The state as stored.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Takes in what `event` says about the object. What the event does not carry keeps its old
    /// value; an event about another kind of object changes nothing.
    pub fn merge(&mut self, event: &Event) {
        let raw = &event.raw;
        match &event.detail {
            Detail::MergeRequest(m) => {
                self.begin("merge_request", event);
                let a = &raw["object_attributes"];
                self.take_mr(m, a);
                self.take_people(raw);
                let action = event.action.as_deref().unwrap_or_default();
                match action {
                    "approved" | "approval" => self.approve(&event.actor),
                    "unapproved" | "unapproval" => {
                        let who = Person::of(&event.actor);
                        self.approved_by.retain(|p| !p.same(&who));
                    }
                    _ => {}
                }
                self.state = state_after(action, m.state.as_deref(), m.draft, self.state.take());
                if action == "open" && self.author.is_none() {
                    self.author = Some(Person::of(&event.actor));
                }
            }
            Detail::Issue(i) => self.take_issue(event, i),
            Detail::WorkItem(i) => self.take_issue(event, i),
            Detail::Note(n) => {
                if let Some(m) = &n.merge_request {
                    self.begin("merge_request", event);
                    self.take_mr(m, &raw["merge_request"]);
                    self.state = state_after("", m.state.as_deref(), m.draft, self.state.take());
                } else if let Some(i) = &n.issue {
                    self.begin("issue", event);
                    self.take_common(&i.title, &i.url, i.iid, &i.updated_at, &raw["issue"]);
                    self.state = state_after("", i.state.as_deref(), false, self.state.take());
                } else {
                    return;
                }
                if !n.system {
                    self.comments += 1;
                }
            }
            Detail::Pipeline(x) => {
                let run = PipelineState {
                    id: x.id,
                    status: cap(&x.status, MAX_NAME),
                    url: x.url.as_deref().and_then(url),
                    git_ref: (!x.git_ref.is_empty()).then(|| cap(&x.git_ref, MAX_NAME)),
                };
                // A pipeline older than the one known is news of the past (they finish out of order).
                let newer = match (&self.pipeline, run.id) {
                    (Some(p), Some(id)) => p.id.is_none_or(|known| id >= known),
                    _ => true,
                };
                if let Some(m) = &x.merge_request {
                    self.begin("merge_request", event);
                    if self.title.is_empty() && !m.title.is_empty() {
                        self.title = cap(&m.title, MAX_TITLE);
                    }
                    self.iid = self.iid.or(m.iid);
                    self.url = self.url.take().or_else(|| m.url.as_deref().and_then(url));
                    keep_some(&mut self.source_branch, m.source_branch.as_deref());
                    keep_some(&mut self.target_branch, m.target_branch.as_deref());
                    if self.state.is_none() {
                        self.state = state_after("", m.state.as_deref(), false, None);
                    }
                } else {
                    self.begin("pipeline", event);
                    if newer {
                        let title = x.name.clone().unwrap_or_else(|| x.git_ref.clone());
                        if !title.is_empty() {
                            self.title = cap(&title, MAX_TITLE);
                        }
                        self.iid = x.iid.or(self.iid);
                        self.url = run.url.clone().or(self.url.take());
                        self.state = Some(run.status.clone()).filter(|s| !s.is_empty());
                    }
                    if self.author.is_none() {
                        self.author = Some(Person::of(&event.actor));
                    }
                }
                if newer {
                    keep_some(&mut self.updated_at, x.finished_at.as_deref());
                    self.pipeline = Some(run);
                }
            }
            _ => {}
        }
    }

    /// Sets the kind and project when the state is new.
    fn begin(&mut self, kind: &str, event: &Event) {
        if self.kind.is_empty() {
            self.kind = kind.to_string();
        }
        if !event.project.path.is_empty() {
            self.project.path = cap(&event.project.path, MAX_TITLE);
        }
        if let Some(u) = event.project.url.as_deref().and_then(url) {
            self.project.url = Some(u);
        }
    }

    /// Title, url, iid and update time of the object (`a`: its attributes in the payload).
    fn take_common(
        &mut self,
        title: &str,
        link: &Option<String>,
        iid: Option<u64>,
        updated_at: &Option<String>,
        a: &Value,
    ) {
        // The parser writes "(untitled)" for a missing title: that is no news.
        if a["title"].as_str().is_some_and(|t| !t.is_empty()) || self.title.is_empty() {
            self.title = cap(title, MAX_TITLE);
        }
        if let Some(u) = link.as_deref().and_then(url) {
            self.url = Some(u);
        }
        self.iid = iid.or(self.iid);
        keep_some(&mut self.updated_at, updated_at.as_deref());
    }

    fn take_mr(&mut self, m: &super::MergeRequest, a: &Value) {
        self.take_common(&m.title, &m.url, m.iid, &m.updated_at, a);
        keep_some(&mut self.source_branch, m.source_branch.as_deref());
        keep_some(&mut self.target_branch, m.target_branch.as_deref());
        if has_list(a, "labels") {
            self.labels = labels(&m.labels);
        }
    }

    fn take_issue(&mut self, event: &Event, i: &super::Issue) {
        let raw = &event.raw;
        self.begin("issue", event);
        self.take_common(
            &i.title,
            &i.url,
            i.iid,
            &i.updated_at,
            &raw["object_attributes"],
        );
        self.take_people(raw);
        let action = event.action.as_deref().unwrap_or_default();
        self.state = state_after(action, i.state.as_deref(), false, self.state.take());
        if action == "open" && self.author.is_none() {
            self.author = Some(Person::of(&event.actor));
        }
    }

    /// Labels, assignees and reviewers of an event about the object itself: the payload's
    /// lists, else what its `changes` say they became, else the old ones.
    fn take_people(&mut self, raw: &Value) {
        if let Some(list) = listed(raw, "labels") {
            let titles: Vec<String> = list
                .iter()
                .filter_map(|l| l["title"].as_str().or_else(|| l.as_str()))
                .map(str::to_string)
                .collect();
            self.labels = labels(&titles);
        }
        for (field, into) in [
            ("assignees", &mut self.assignees),
            ("reviewers", &mut self.reviewers),
        ] {
            if let Some(list) = listed(raw, field) {
                *into = people(list);
            }
        }
        if raw["assignees"].as_array().is_none() {
            if let Some(one) = raw["assignee"].as_object() {
                self.assignees = people(&[Value::Object(one.clone())]);
            }
        }
    }

    fn approve(&mut self, who: &User) {
        let who = Person::of(who);
        if !self.approved_by.iter().any(|p| p.same(&who)) {
            if self.approved_by.len() >= MAX_PEOPLE {
                self.approved_by.remove(0);
            }
            self.approved_by.push(who);
        }
    }
}

/// The state after an event with `action` (`""` for comments and pipelines), the payload's
/// `state` and draft flag, given the state before.
fn state_after(
    action: &str,
    payload: Option<&str>,
    draft: bool,
    before: Option<String>,
) -> Option<String> {
    let named = match action {
        "merge" => Some("merged"),
        "close" => Some("closed"),
        "reopen" => Some("reopened"),
        _ => None,
    };
    if let Some(s) = named {
        return Some(s.to_string());
    }
    match payload {
        Some("merged") => Some("merged".into()),
        Some("closed" | "locked") => Some("closed".into()),
        Some("opened" | "reopened") if draft => Some("draft".into()),
        // Reopened stays reopened until it is merged or closed again.
        Some("opened") if matches!(before.as_deref(), Some("reopened")) && action != "open" => {
            before
        }
        Some("opened") => Some("opened".into()),
        Some(other) if !other.is_empty() => Some(cap(other, MAX_NAME)),
        _ => before,
    }
}

/// The list at `raw[field]`, else at `raw.changes[field].current`.
fn listed<'a>(raw: &'a Value, field: &str) -> Option<&'a [Value]> {
    raw[field]
        .as_array()
        .or_else(|| raw["changes"][field]["current"].as_array())
        .map(Vec::as_slice)
}

fn has_list(a: &Value, field: &str) -> bool {
    a[field].is_array()
}

fn people(list: &[Value]) -> Vec<Person> {
    let mut out: Vec<Person> = Vec::new();
    for v in list.iter().filter(|v| v.is_object()) {
        let name = v["name"].as_str().filter(|n| !n.is_empty());
        let username = v["username"].as_str().filter(|n| !n.is_empty());
        let Some(shown) = name.or(username) else {
            continue;
        };
        let p = Person {
            name: cap(shown, MAX_NAME),
            username: username.map(|u| cap(u, MAX_NAME)),
        };
        if !out.iter().any(|o| o.same(&p)) {
            out.push(p);
        }
    }
    let extra = out.len().saturating_sub(MAX_PEOPLE);
    out.drain(..extra);
    out
}

fn labels(titles: &[String]) -> Vec<String> {
    titles
        .iter()
        .filter(|t| !t.is_empty())
        .take(MAX_LABELS)
        .map(|t| cap(t, MAX_NAME))
        .collect()
}

/// Sets `slot` to `value` when there is one.
fn keep_some(slot: &mut Option<String>, value: Option<&str>) {
    if let Some(v) = value.filter(|v| !v.is_empty()) {
        *slot = Some(cap(v, MAX_NAME));
    }
}

/// A URL short enough to keep.
fn url(u: &str) -> Option<String> {
    (u.len() <= MAX_URL).then(|| u.to_string())
}

/// `text` cut to `max` characters, ending with `…` when cut.
fn cap(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let mut out: String = text.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sample(file: &str) -> Value {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("samples")
            .join(file);
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{file}: {e}"));
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{file}: {e}"))
    }

    fn event(header: &str, body: Value) -> Event {
        super::super::parse(Some(header), body).unwrap_or_else(|e| panic!("{e}"))
    }

    fn mr(action: &str, state: &str, f: impl FnOnce(&mut Value)) -> Event {
        let mut v = sample("merge_request__open.json");
        v["object_attributes"]["action"] = json!(action);
        v["object_attributes"]["state"] = json!(state);
        f(&mut v);
        event("Merge Request Hook", v)
    }

    fn names(list: &[Person]) -> Vec<&str> {
        list.iter().map(|p| p.name.as_str()).collect()
    }

    #[test]
    fn a_merge_requests_life_accumulates_into_one_state() {
        let open = mr("open", "opened", |_| {});
        let key = object_key(&open).unwrap_or_default();
        let mut s = ObjectState::of(&open).unwrap_or_default();
        assert_eq!(s.kind, "merge_request");
        assert_eq!(s.state.as_deref(), Some("opened"));
        let author = s.author.clone().map(|a| a.name);
        assert!(author.is_some(), "{s:?}");
        assert!(!s.title.is_empty());
        // A comment: counted; a system note: not; neither erases anything.
        let mut note = sample("note__merge_request.json");
        note["project"] = open.raw["project"].clone();
        note["merge_request"]["iid"] = open.raw["object_attributes"]["iid"].clone();
        let comment = event("Note Hook", note.clone());
        assert_eq!(object_key(&comment).as_deref(), Some(key.as_str()));
        s.merge(&comment);
        note["object_attributes"]["system"] = json!(true);
        s.merge(&event("Note Hook", note));
        assert_eq!(s.comments, 1);
        // An approval by someone else, with nothing but the action and the user.
        let approval = mr("approved", "opened", |v| {
            v["user"] = json!({"name": "Ann Approver", "username": "ann"});
            for k in ["labels", "assignees", "reviewers", "changes"] {
                v.as_object_mut().map(|o| o.remove(k));
            }
            if let Some(o) = v["object_attributes"].as_object_mut() {
                o.remove("title");
                o.remove("labels");
            }
        });
        let (title, labels, assignees) = (s.title.clone(), s.labels.clone(), s.assignees.clone());
        s.merge(&approval);
        assert_eq!(names(&s.approved_by), ["Ann Approver"]);
        assert_eq!(s.labels, labels, "missing labels keep the old ones");
        assert_eq!(s.assignees, assignees);
        assert_eq!(s.title, title, "a missing title keeps the old one");
        // Pipelines of the merge request join it; an older one finishing late changes nothing.
        let mut p = sample("pipeline__basic.json");
        p["project"] = open.raw["project"].clone();
        p["merge_request"]["iid"] = open.raw["object_attributes"]["iid"].clone();
        p["object_attributes"]["id"] = json!(20);
        p["object_attributes"]["status"] = json!("success");
        let passed = event("Pipeline Hook", p.clone());
        assert_eq!(object_key(&passed).as_deref(), Some(key.as_str()));
        s.merge(&passed);
        p["object_attributes"]["id"] = json!(10);
        p["object_attributes"]["status"] = json!("failed");
        s.merge(&event("Pipeline Hook", p));
        let pipeline = s.pipeline.clone().unwrap_or_default();
        assert_eq!(
            (pipeline.id, pipeline.status.as_str()),
            (Some(20), "success")
        );
        s.merge(&mr("merge", "merged", |_| {}));
        assert_eq!(s.state.as_deref(), Some("merged"));
        assert_eq!(s.kind, "merge_request");
        assert_eq!(names(&s.approved_by), ["Ann Approver"]);
        // Stored and read back whole.
        assert_eq!(ObjectState::from_json(&s.to_json()), Some(s.clone()));
        assert_eq!(ObjectState::from_json("not json"), None);
        // An unapproval takes the approver back off.
        s.merge(&mr("unapproved", "merged", |v| {
            v["user"] = json!({"name": "Ann Approver", "username": "ann"});
        }));
        assert!(s.approved_by.is_empty());
    }

    #[test]
    fn nulls_missing_objects_and_old_payloads_keep_what_is_known() {
        let mut s = ObjectState::of(&mr("open", "opened", |_| {})).unwrap_or_default();
        let before = s.clone();
        // Every field null, then an update with no object_attributes at all.
        let nulls = mr("update", "opened", |v| {
            for k in ["title", "url", "state", "iid", "updated_at", "labels"] {
                v["object_attributes"][k] = Value::Null;
            }
            for k in [
                "labels",
                "assignees",
                "reviewers",
                "project",
                "repository",
                "user",
                "changes",
            ] {
                v[k] = Value::Null;
            }
        });
        s.merge(&nulls);
        assert_eq!(
            (&s.title, &s.url, s.iid, &s.labels),
            (&before.title, &before.url, before.iid, &before.labels)
        );
        assert_eq!(s.state.as_deref(), Some("opened"));
        assert_eq!(s.project, before.project);
        // A merge request that sends neither reviewers nor assignees, but says what they became.
        s.merge(&mr("update", "opened", |v| {
            v.as_object_mut().map(|o| o.remove("assignees"));
            v["changes"] = json!({"assignees": {"previous": [], "current": [
                {"name": "Zed", "username": "zed"}]}});
        }));
        assert_eq!(names(&s.assignees), ["Zed"]);
        // A draft, then reopened after a close.
        s.merge(&mr("update", "opened", |v| {
            v["object_attributes"]["draft"] = json!(true);
        }));
        assert_eq!(s.state.as_deref(), Some("draft"));
        s.merge(&mr("close", "closed", |_| {}));
        s.merge(&mr("reopen", "opened", |_| {}));
        assert_eq!(s.state.as_deref(), Some("reopened"));
        s.merge(&mr("update", "opened", |_| {}));
        assert_eq!(s.state.as_deref(), Some("reopened"));
        // An old issue payload (no action, no labels); a comment on it counts.
        let mut issue = sample("issue__open.json");
        issue["object_attributes"]
            .as_object_mut()
            .map(|o| o.remove("action"));
        let issue = event("Issue Hook", issue);
        let mut i = ObjectState::of(&issue).unwrap_or_default();
        assert_eq!(i.kind, "issue");
        assert!(i.state.is_some(), "{i:?}");
        let mut note = sample("note__issue.json");
        note["project"] = issue.raw["project"].clone();
        note["issue"]["iid"] = issue.raw["object_attributes"]["iid"].clone();
        let note = event("Note Hook", note);
        assert_eq!(object_key(&note), object_key(&issue));
        i.merge(&note);
        assert_eq!(i.comments, 1);
        // Things that keep no state.
        for (header, file) in [
            ("Push Hook", "push__basic.json"),
            ("Note Hook", "note__commit.json"),
        ] {
            assert_eq!(
                ObjectState::of(&event(header, sample(file))),
                None,
                "{file}"
            );
        }
    }

    #[test]
    fn states_stay_small() {
        let crowd: Vec<Value> = (0..100)
            .map(|n| json!({"name": format!("P{n}"), "username": format!("p{n}")}))
            .collect();
        let s = ObjectState::of(&mr("open", "opened", |v| {
            v["object_attributes"]["title"] = json!("t".repeat(10_000));
            v["assignees"] = json!(crowd);
            v["reviewers"] = json!(crowd);
            v["labels"] = json!((0..100)
                .map(|n| json!({"title": format!("l{n}")}))
                .collect::<Vec<_>>());
        }))
        .unwrap_or_default();
        assert_eq!(s.title.chars().count(), MAX_TITLE);
        assert!(s.title.ends_with('…'));
        assert_eq!(s.assignees.len(), MAX_PEOPLE);
        assert_eq!(s.assignees.last().map(|p| p.name.as_str()), Some("P99"));
        assert_eq!(s.labels.len(), MAX_LABELS);
        assert!(s.to_json().len() < 8_000, "{}", s.to_json().len());
        let mr = mr("open", "opened", |_| {});
        assert_eq!(
            memory_key(&mr),
            object_key(&mr).map(|k| format!("object-state/{k}"))
        );
        let mut branch = sample("pipeline__basic.json");
        branch["merge_request"] = Value::Null;
        let branch = event("Pipeline Hook", branch);
        assert_eq!(
            memory_key(&branch),
            None,
            "a branch pipeline's state is not remembered"
        );
        assert!(ObjectState::of(&branch).is_some());
    }
}
