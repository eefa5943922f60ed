//! GitLab webhook payloads → our typed [`Event`] (pure, no I/O).
//!
//! Dispatch is on the `X-Gitlab-Event` header first, then the body's `object_kind` / `event_name`.
//! Parsing never fails for a JSON object: unknown kinds become [`Kind::Unknown`], unknown actions
//! `*::Unknown`, missing objects and odd dates degrade to `None` or the raw text. The event keeps
//! the original payload as `raw` so templates can reach any field we do not model.

mod changes;
mod kinds;
pub mod time;
mod value;
mod variables;

use serde::Serialize;
use serde_json::Value;
use value::{arr_at, bool_at, obj_at, str_at, u64_at, url_at};

pub use changes::Change;
pub use kinds::{
    duration_text, AccessToken, Deployment, Emoji, FeatureFlag, Group, Job, JobSummary, Member,
    MergeRequestRef, Milestone, Pipeline, ProjectEvent, Release, ReleaseLink, Subgroup, TagPush,
    UpstreamPipeline, Vulnerability, WikiPage, FAILED_JOBS_SHOWN,
};
pub use value::clean_url;
pub use variables::{serialized_paths, variables};

/// A Git object id made only of zeros: `before` of a branch creation, `after` of a deletion.
const ZERO_SHA: &str = "0000000000000000000000000000000000000000";
/// How many characters of a commit id a short id keeps.
const SHORT_SHA_LEN: usize = 8;

/// Why a body cannot be an event at all (anything else parses).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ParseError {
    /// Valid JSON, but not an object (`[]`, `"text"`, `42`).
    #[error("payload is a JSON {0}, not an object")]
    NotAnObject(&'static str),
}

/// The kind of GitLab event, from the header and the body.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Kind {
    /// `Issue Hook` with `object_kind: issue` (incidents, requirements, test cases too).
    Issue,
    /// `Issue Hook` with `object_kind: work_item` (tasks, epics, …).
    WorkItem,
    /// `Merge Request Hook`.
    MergeRequest,
    /// `Push Hook`.
    Push,
    /// `Tag Push Hook`.
    TagPush,
    /// `Note Hook` (comments).
    Note,
    /// `Pipeline Hook`.
    Pipeline,
    /// `Job Hook` or the older `Build Hook` (`object_kind: build`).
    Job,
    /// `Release Hook`.
    Release,
    /// `Wiki Page Hook`.
    WikiPage,
    /// `Deployment Hook`.
    Deployment,
    /// `Milestone Hook`.
    Milestone,
    /// `Emoji Hook`.
    Emoji,
    /// `Feature Flag Hook`.
    FeatureFlag,
    /// `Resource Access Token Hook`.
    AccessToken,
    /// `Member Hook` (group members; no `object_kind`).
    Member,
    /// `Project Hook` (group-level project create/destroy; no `object_kind`).
    Project,
    /// `Subgroup Hook`.
    Subgroup,
    /// `Vulnerability Hook`.
    Vulnerability,
    /// Anything else, with the name we saw.
    Unknown(String),
}

impl Kind {
    /// The dotted-key prefix of this kind (`merge_request`, `push`, …).
    pub fn as_str(&self) -> &str {
        match self {
            Kind::Issue => "issue",
            Kind::WorkItem => "work_item",
            Kind::MergeRequest => "merge_request",
            Kind::Push => "push",
            Kind::TagPush => "tag_push",
            Kind::Note => "note",
            Kind::Pipeline => "pipeline",
            Kind::Job => "job",
            Kind::Release => "release",
            Kind::WikiPage => "wiki_page",
            Kind::Deployment => "deployment",
            Kind::Milestone => "milestone",
            Kind::Emoji => "emoji",
            Kind::FeatureFlag => "feature_flag",
            Kind::AccessToken => "access_token",
            Kind::Member => "member",
            Kind::Project => "project",
            Kind::Subgroup => "subgroup",
            Kind::Vulnerability => "vulnerability",
            Kind::Unknown(s) => s,
        }
    }

    fn from_object_kind(s: &str) -> Kind {
        match s {
            "issue" => Kind::Issue,
            "work_item" => Kind::WorkItem,
            "merge_request" => Kind::MergeRequest,
            "push" => Kind::Push,
            "tag_push" => Kind::TagPush,
            "note" => Kind::Note,
            "pipeline" => Kind::Pipeline,
            "build" | "job" => Kind::Job,
            "release" => Kind::Release,
            "wiki_page" => Kind::WikiPage,
            "deployment" => Kind::Deployment,
            "milestone" => Kind::Milestone,
            "emoji" => Kind::Emoji,
            "feature_flag" => Kind::FeatureFlag,
            "access_token" => Kind::AccessToken,
            "vulnerability" => Kind::Vulnerability,
            other => Kind::Unknown(other.to_string()),
        }
    }

    fn from_header(h: &str) -> Option<Kind> {
        let h = h.trim().strip_prefix("Confidential ").unwrap_or(h.trim());
        Some(match h {
            "Issue Hook" => Kind::Issue,
            "Merge Request Hook" => Kind::MergeRequest,
            "Push Hook" => Kind::Push,
            "Tag Push Hook" => Kind::TagPush,
            "Note Hook" => Kind::Note,
            "Pipeline Hook" => Kind::Pipeline,
            "Job Hook" | "Build Hook" => Kind::Job,
            "Release Hook" => Kind::Release,
            "Wiki Page Hook" => Kind::WikiPage,
            "Deployment Hook" => Kind::Deployment,
            "Milestone Hook" => Kind::Milestone,
            "Emoji Hook" => Kind::Emoji,
            "Feature Flag Hook" => Kind::FeatureFlag,
            "Resource Access Token Hook" => Kind::AccessToken,
            "Member Hook" => Kind::Member,
            "Project Hook" => Kind::Project,
            "Subgroup Hook" => Kind::Subgroup,
            "Vulnerability Hook" => Kind::Vulnerability,
            _ => return None,
        })
    }

    fn from_event_name(name: &str) -> Option<Kind> {
        Some(match name {
            "push" => Kind::Push,
            "tag_push" => Kind::TagPush,
            n if n.starts_with("user_") && n.contains("group") => Kind::Member,
            n if n.starts_with("project_") => Kind::Project,
            n if n.starts_with("subgroup_") => Kind::Subgroup,
            n if n.ends_with("access_token") => Kind::AccessToken,
            _ => return None,
        })
    }
}

impl Serialize for Kind {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// What happened to an issue.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum IssueAction {
    /// Opened.
    Open,
    /// Closed.
    Close,
    /// Reopened.
    Reopen,
    /// Edited (title, labels, assignees, …).
    Update,
    /// No action in the payload: GitLab's "Test" button or a very old GitLab.
    Test,
    /// An action this version does not know.
    Unknown(String),
}

impl IssueAction {
    fn parse(s: Option<&str>) -> Self {
        match s {
            None => IssueAction::Test,
            Some("open") => IssueAction::Open,
            Some("close") => IssueAction::Close,
            Some("reopen") => IssueAction::Reopen,
            Some("update") => IssueAction::Update,
            Some(other) => IssueAction::Unknown(other.to_string()),
        }
    }

    /// The key suffix (`open`, `close`, …).
    pub fn as_str(&self) -> &str {
        match self {
            IssueAction::Open => "open",
            IssueAction::Close => "close",
            IssueAction::Reopen => "reopen",
            IssueAction::Update => "update",
            IssueAction::Test => "test",
            IssueAction::Unknown(s) => s,
        }
    }

    /// The past-tense verb shown to people.
    pub fn verb(&self) -> &str {
        match self {
            IssueAction::Open => "opened",
            IssueAction::Close => "closed",
            IssueAction::Reopen => "reopened",
            IssueAction::Update => "updated",
            IssueAction::Test => "sent a test event for",
            IssueAction::Unknown(s) => s,
        }
    }
}

/// What happened to a merge request.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum MergeRequestAction {
    /// Opened.
    Open,
    /// Closed without merging.
    Close,
    /// Reopened.
    Reopen,
    /// Edited or new commits pushed.
    Update,
    /// Merged.
    Merge,
    /// Fully approved (all required approvals given).
    Approved,
    /// No longer fully approved.
    Unapproved,
    /// One approval added.
    Approval,
    /// One approval removed.
    Unapproval,
    /// No action in the payload: GitLab's "Test" button or a very old GitLab.
    Test,
    /// An action this version does not know.
    Unknown(String),
}

impl MergeRequestAction {
    fn parse(s: Option<&str>) -> Self {
        match s {
            None => Self::Test,
            Some("open") => Self::Open,
            Some("close") => Self::Close,
            Some("reopen") => Self::Reopen,
            Some("update") => Self::Update,
            Some("merge") => Self::Merge,
            Some("approved") => Self::Approved,
            Some("unapproved") => Self::Unapproved,
            Some("approval") => Self::Approval,
            Some("unapproval") => Self::Unapproval,
            Some(other) => Self::Unknown(other.to_string()),
        }
    }

    /// The key suffix (`open`, `merge`, …).
    pub fn as_str(&self) -> &str {
        match self {
            Self::Open => "open",
            Self::Close => "close",
            Self::Reopen => "reopen",
            Self::Update => "update",
            Self::Merge => "merge",
            Self::Approved => "approved",
            Self::Unapproved => "unapproved",
            Self::Approval => "approval",
            Self::Unapproval => "unapproval",
            Self::Test => "test",
            Self::Unknown(s) => s,
        }
    }

    /// The past-tense verb shown to people.
    pub fn verb(&self) -> &str {
        match self {
            Self::Open => "opened",
            Self::Close => "closed",
            Self::Reopen => "reopened",
            Self::Update => "updated",
            Self::Merge => "merged",
            Self::Approved => "approved",
            Self::Unapproved => "unapproved",
            Self::Approval => "added an approval to",
            Self::Unapproval => "removed an approval from",
            Self::Test => "sent a test event for",
            Self::Unknown(s) => s,
        }
    }
}

/// What a push did to its ref.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushChange {
    /// New commits on an existing branch (possibly none: a force-push to an older commit).
    Commits,
    /// The branch was created (`before` is all zeros).
    BranchCreated,
    /// The branch was deleted (`after` is all zeros).
    BranchDeleted,
}

impl PushChange {
    /// The key (`push`, `push.branch_created`, `push.branch_deleted`).
    pub fn key(self) -> &'static str {
        match self {
            PushChange::Commits => "push",
            PushChange::BranchCreated => "push.branch_created",
            PushChange::BranchDeleted => "push.branch_deleted",
        }
    }
}

/// What a comment is attached to.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum NoteTarget {
    /// A commit.
    Commit,
    /// A merge request.
    MergeRequest,
    /// An issue.
    Issue,
    /// A code snippet.
    Snippet,
    /// A `noteable_type` this version does not know.
    Unknown(String),
}

impl NoteTarget {
    fn parse(s: Option<&str>) -> Self {
        match s {
            Some("Commit") => Self::Commit,
            Some("MergeRequest") => Self::MergeRequest,
            Some("Issue") => Self::Issue,
            Some("Snippet") => Self::Snippet,
            other => Self::Unknown(other.unwrap_or("").to_string()),
        }
    }

    /// The key suffix (`commit`, `merge_request`, `issue`, `snippet`).
    pub fn as_str(&self) -> &str {
        match self {
            Self::Commit => "commit",
            Self::MergeRequest => "merge_request",
            Self::Issue => "issue",
            Self::Snippet => "snippet",
            Self::Unknown(s) => s,
        }
    }
}

/// A person as GitLab names them.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct User {
    /// Display name; falls back to the username, then "someone".
    pub name: String,
    /// Login name, without `@`.
    pub username: Option<String>,
    /// E-mail, when GitLab sent a real one (not `[REDACTED]`).
    pub email: Option<String>,
    /// Avatar URL, when it is a usable http(s) URL.
    pub avatar_url: Option<String>,
}

impl User {
    fn from_obj(v: &Value) -> User {
        User::from_parts(
            str_at(v, &["name"]),
            str_at(v, &["username"]),
            str_at(v, &["email"]),
            url_at(v, &["avatar_url"]),
        )
    }

    fn from_parts(
        name: Option<String>,
        username: Option<String>,
        email: Option<String>,
        avatar_url: Option<String>,
    ) -> User {
        let email = email.filter(|e| e.contains('@') && !e.contains("REDACTED"));
        User {
            name: name
                .or_else(|| username.clone())
                .unwrap_or_else(|| "someone".to_string()),
            username,
            email,
            avatar_url,
        }
    }
}

/// The project an event belongs to (empty fields for group-level events).
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Project {
    /// Numeric id.
    pub id: Option<u64>,
    /// Human name.
    pub name: String,
    /// `group/subgroup/project`.
    pub path: String,
    /// Web page of the project.
    pub url: Option<String>,
    /// Namespace display name.
    pub namespace: Option<String>,
    /// Default branch name.
    pub default_branch: Option<String>,
}

impl Project {
    fn from_payload(v: &Value) -> Project {
        let p = obj_at(v, &["project"]);
        let repo = obj_at(v, &["repository"]);
        let get = |key: &str| p.and_then(|p| str_at(p, &[key]));
        let name = get("name")
            .or_else(|| repo.and_then(|r| str_at(r, &["name"])))
            .unwrap_or_default();
        // Old job payloads have no `project` object, only `project_name: "group/project"`.
        let path = get("path_with_namespace")
            .or_else(|| {
                p.is_none()
                    .then(|| str_at(v, &["project_name"]))
                    .flatten()
                    .filter(|n| n.contains('/'))
            })
            .unwrap_or_else(|| name.clone());
        Project {
            id: p
                .and_then(|p| u64_at(p, &["id"]))
                .or_else(|| u64_at(v, &["project_id"])),
            name,
            path,
            url: p
                .and_then(|p| url_at(p, &["web_url"]))
                .or_else(|| repo.and_then(|r| url_at(r, &["homepage"]))),
            namespace: get("namespace"),
            default_branch: get("default_branch"),
        }
    }
}

/// A commit as shown in pushes, notes and merge requests.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Commit {
    /// Full commit id.
    pub id: String,
    /// First characters of the id.
    pub short_id: String,
    /// First line of the message.
    pub title: String,
    /// Whole message.
    pub message: String,
    /// Web page of the commit.
    pub url: Option<String>,
    /// Author's name.
    pub author_name: Option<String>,
    /// Author's e-mail.
    pub author_email: Option<String>,
    /// When it was authored (RFC 3339 when parseable).
    pub timestamp: Option<String>,
}

impl Commit {
    fn from_obj(v: &Value) -> Commit {
        let id = str_at(v, &["id"]).unwrap_or_default();
        let message = str_at(v, &["message"]).unwrap_or_default();
        let title = str_at(v, &["title"])
            .unwrap_or_else(|| message.lines().next().unwrap_or_default().to_string());
        Commit {
            short_id: id.chars().take(SHORT_SHA_LEN).collect(),
            id,
            title,
            message: message.trim_end().to_string(),
            url: url_at(v, &["url"]),
            author_name: str_at(v, &["author", "name"]),
            author_email: str_at(v, &["author", "email"]),
            timestamp: str_at(v, &["timestamp"]).map(|t| time::normalize(&t)),
        }
    }
}

/// An issue (also the target of a comment).
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Issue {
    /// Project-scoped number (`#23`).
    pub iid: Option<u64>,
    /// Title.
    pub title: String,
    /// Web page.
    pub url: Option<String>,
    /// `opened` / `closed`.
    pub state: Option<String>,
    /// Body text.
    pub description: Option<String>,
    /// Calendar date `YYYY-MM-DD` (raw text if GitLab sent something else).
    pub due_date: Option<String>,
    /// Label titles.
    pub labels: Vec<String>,
    /// Assigned people.
    pub assignees: Vec<User>,
    /// Issue type (`Issue`, `Incident`, …); for work items their type (`Task`, `Epic`, …).
    pub issue_type: Option<String>,
    /// Whether the issue is confidential.
    pub confidential: bool,
    /// Creation time (RFC 3339 when parseable).
    pub created_at: Option<String>,
    /// Last update time (RFC 3339 when parseable).
    pub updated_at: Option<String>,
    /// What this event changed (see [`Change`]); empty for comments' issues.
    pub changes: Vec<Change>,
}

impl Issue {
    fn from_attrs(a: &Value, payload: Option<&Value>) -> Issue {
        let labels = label_titles(a, payload);
        let assignees = payload.map(assignees).unwrap_or_default();
        Issue {
            iid: u64_at(a, &["iid"]),
            title: str_at(a, &["title"]).unwrap_or_else(|| "(untitled)".to_string()),
            url: url_at(a, &["url"]),
            state: str_at(a, &["state"]),
            description: str_at(a, &["description"]),
            due_date: str_at(a, &["due_date"]).map(|d| time::normalize(&d)),
            labels,
            assignees,
            issue_type: str_at(a, &["type"]).or_else(|| str_at(a, &["issue_type"])),
            confidential: bool_at(a, &["confidential"]).unwrap_or(false),
            created_at: str_at(a, &["created_at"]).map(|t| time::normalize(&t)),
            updated_at: str_at(a, &["updated_at"]).map(|t| time::normalize(&t)),
            changes: payload.map(changes::detect).unwrap_or_default(),
        }
    }
}

/// A merge request (also the target of a comment).
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct MergeRequest {
    /// Project-scoped number (`!1`).
    pub iid: Option<u64>,
    /// Title.
    pub title: String,
    /// Web page.
    pub url: Option<String>,
    /// `opened` / `closed` / `merged` / `locked`.
    pub state: Option<String>,
    /// Body text.
    pub description: Option<String>,
    /// Branch the changes come from.
    pub source_branch: Option<String>,
    /// Branch the changes go to.
    pub target_branch: Option<String>,
    /// `group/project` of the source, when it is a fork.
    pub source_project: Option<String>,
    /// Whether it is marked draft.
    pub draft: bool,
    /// Label titles.
    pub labels: Vec<String>,
    /// Assigned people.
    pub assignees: Vec<User>,
    /// Requested reviewers.
    pub reviewers: Vec<User>,
    /// GitLab's detailed merge status (`mergeable`, …).
    pub merge_status: Option<String>,
    /// Newest commit.
    pub last_commit: Option<Commit>,
    /// Creation time (RFC 3339 when parseable).
    pub created_at: Option<String>,
    /// Last update time (RFC 3339 when parseable).
    pub updated_at: Option<String>,
    /// What this event changed (see [`Change`]); empty for comments' merge requests.
    pub changes: Vec<Change>,
}

impl MergeRequest {
    fn from_attrs(a: &Value, payload: Option<&Value>) -> MergeRequest {
        let source = str_at(a, &["source", "path_with_namespace"]);
        let target = str_at(a, &["target", "path_with_namespace"]);
        MergeRequest {
            iid: u64_at(a, &["iid"]),
            title: str_at(a, &["title"]).unwrap_or_else(|| "(untitled)".to_string()),
            url: url_at(a, &["url"]),
            state: str_at(a, &["state"]),
            description: str_at(a, &["description"]),
            source_branch: str_at(a, &["source_branch"]),
            target_branch: str_at(a, &["target_branch"]),
            source_project: source.filter(|s| Some(s) != target.as_ref()),
            draft: bool_at(a, &["draft"])
                .or_else(|| bool_at(a, &["work_in_progress"]))
                .unwrap_or(false),
            labels: label_titles(a, payload),
            assignees: payload.map(assignees).unwrap_or_default(),
            reviewers: payload
                .map(|p| changes::people_at(p, &["reviewers"]))
                .unwrap_or_default(),
            merge_status: str_at(a, &["detailed_merge_status"])
                .or_else(|| str_at(a, &["merge_status"])),
            last_commit: obj_at(a, &["last_commit"]).map(Commit::from_obj),
            created_at: str_at(a, &["created_at"]).map(|t| time::normalize(&t)),
            updated_at: str_at(a, &["updated_at"]).map(|t| time::normalize(&t)),
            changes: payload.map(changes::detect).unwrap_or_default(),
        }
    }
}

/// A push to a branch.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Push {
    /// Full ref (`refs/heads/main`).
    #[serde(rename = "ref")]
    pub git_ref: String,
    /// Branch name (`main`).
    pub branch: String,
    /// `commits`, `branch_created` or `branch_deleted`.
    pub change: &'static str,
    /// Commit before the push (zeros on creation).
    pub before: String,
    /// Commit after the push (zeros on deletion).
    pub after: String,
    /// Commits GitLab listed (at most 20).
    pub commits: Vec<Commit>,
    /// How many commits the push really had (`total_commits_count`).
    pub total_commits: u64,
    /// Commits pushed but not listed (`total_commits` − listed).
    pub more_commits: u64,
    /// Web page comparing `before` and `after`, or the branch's commits on creation.
    pub compare_url: Option<String>,
    /// Whether the ref is protected (when GitLab says).
    pub protected: Option<bool>,
}

/// A code snippet (the target of a comment).
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Snippet {
    /// Snippet id.
    pub id: Option<u64>,
    /// Title.
    pub title: String,
    /// Web page.
    pub url: Option<String>,
    /// File name.
    pub file_name: Option<String>,
}

/// A comment.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Note {
    /// Comment text.
    pub body: String,
    /// Link to the comment.
    pub url: Option<String>,
    /// `commit`, `merge_request`, `issue`, `snippet` (or what GitLab sent).
    pub target: String,
    /// Short human name of the target (`issue #17`, `merge request !1`, `commit cfe32cf6`, `snippet $53`).
    pub target_label: String,
    /// Title of the target (the commit's first line for commits).
    pub target_title: String,
    /// Link to the target.
    pub target_url: Option<String>,
    /// Whether GitLab wrote it (system note) rather than a person.
    pub system: bool,
    /// The issue, for comments on issues.
    pub issue: Option<Issue>,
    /// The merge request, for comments on merge requests.
    pub merge_request: Option<MergeRequest>,
    /// The commit, for comments on commits.
    pub commit: Option<Commit>,
    /// The snippet, for comments on snippets.
    pub snippet: Option<Snippet>,
}

/// The kind-specific part of an event; serialised under its kind's name (`issue`, `push`, …).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Detail {
    /// An issue event.
    Issue(Issue),
    /// A merge request event.
    MergeRequest(Box<MergeRequest>),
    /// A push.
    Push(Push),
    /// A comment.
    Note(Box<Note>),
    /// A work item event (task, epic, …): an issue by another name.
    WorkItem(Box<Issue>),
    /// A tag pushed or deleted.
    TagPush(Box<TagPush>),
    /// A pipeline's status change.
    Pipeline(Box<Pipeline>),
    /// A job's status change.
    Job(Box<Job>),
    /// A release created, edited or deleted.
    Release(Box<Release>),
    /// A wiki page created, edited or deleted.
    WikiPage(Box<WikiPage>),
    /// A deployment's status change.
    Deployment(Box<Deployment>),
    /// A milestone created, closed, reopened or deleted.
    Milestone(Box<Milestone>),
    /// An emoji reaction added or removed.
    Emoji(Box<Emoji>),
    /// A feature flag turned on or off.
    FeatureFlag(Box<FeatureFlag>),
    /// A project or group access token about to expire.
    AccessToken(Box<AccessToken>),
    /// A group membership change.
    Member(Box<Member>),
    /// A project created, deleted, renamed or moved in a group (the project is the event's
    /// `project`; serialised as `project_event`).
    ProjectEvent(Box<ProjectEvent>),
    /// A subgroup created or deleted.
    Subgroup(Box<Subgroup>),
    /// A vulnerability found or changing state.
    Vulnerability(Box<Vulnerability>),
    /// A kind we acknowledge but do not model; templates can still use `raw`.
    Other {},
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
    /// The kind-specific part.
    #[serde(flatten)]
    pub detail: Detail,
    /// The payload exactly as received (put into template contexts only when a template uses it).
    #[serde(skip)]
    pub raw: Value,
}

impl Event {
    /// The object's ordering key: same project + issue/MR number or ref → same key.
    pub fn object_key(&self) -> String {
        let p = self
            .project
            .id
            .map_or(self.project.path.clone(), |i| i.to_string());
        match &self.detail {
            Detail::Issue(i) => format!("{p}/issue/{}", i.iid.unwrap_or(0)),
            Detail::MergeRequest(m) => format!("{p}/mr/{}", m.iid.unwrap_or(0)),
            Detail::Push(push) => format!("{p}/ref/{}", push.git_ref),
            Detail::Note(n) => match (&n.issue, &n.merge_request) {
                (Some(i), _) => format!("{p}/issue/{}", i.iid.unwrap_or(0)),
                (_, Some(m)) => format!("{p}/mr/{}", m.iid.unwrap_or(0)),
                _ => format!("{p}/note/{}", n.target_label),
            },
            Detail::WorkItem(i) => format!("{p}/issue/{}", i.iid.unwrap_or(0)),
            Detail::TagPush(t) => format!("{p}/ref/{}", t.git_ref),
            Detail::Pipeline(x) => format!("{p}/pipeline/{}", x.id.unwrap_or(0)),
            Detail::Job(j) => format!("{p}/pipeline/{}", j.pipeline_id.unwrap_or(0)),
            Detail::Release(r) => format!("{p}/release/{}", r.tag),
            Detail::WikiPage(w) => format!("{p}/wiki/{}", w.slug.as_deref().unwrap_or(&w.title)),
            Detail::Deployment(d) => format!("{p}/deployment/{}", d.id.unwrap_or(0)),
            Detail::Milestone(m) => match &m.group {
                Some(g) if p.is_empty() => {
                    format!("group/{}/milestone/{}", g.full_path, m.iid.unwrap_or(0))
                }
                _ => format!("{p}/milestone/{}", m.iid.unwrap_or(0)),
            },
            Detail::Emoji(e) => format!("{p}/emoji/{}", e.target_label),
            Detail::FeatureFlag(f) => format!("{p}/feature_flag/{}", f.name),
            Detail::AccessToken(t) => match &t.group {
                Some(g) if p.is_empty() => format!("group/{}/access_token/{}", g.full_path, t.name),
                _ => format!("{p}/access_token/{}", t.name),
            },
            Detail::Member(m) => format!("group/{}/member/{}", m.group.full_path, m.user.name),
            Detail::ProjectEvent(_) => format!("{p}/project"),
            Detail::Subgroup(g) => format!("group/{}", g.full_path),
            Detail::Vulnerability(v) => format!("{p}/vulnerability/{}", v.title),
            Detail::Other {} => format!("{p}/{}", self.kind.as_str()),
        }
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
    let kind = detect_kind(header, v);
    let event_type = str_at(v, &["event_type"]).unwrap_or_default();
    let header_confidential = header.is_some_and(|h| h.trim().starts_with("Confidential "));
    let mut confidential = header_confidential || event_type.starts_with("confidential_");
    let actor = actor(v);
    let mut project = Project::from_payload(v);
    let attrs = obj_at(v, &["object_attributes"]);
    let mut action = attrs
        .and_then(|a| str_at(a, &["action"]))
        .or_else(|| str_at(v, &["action"]));

    let (key, verb, known, detail) = match (&kind, attrs) {
        (Kind::Issue, Some(a)) => {
            let act = IssueAction::parse(action.as_deref());
            let issue = Issue::from_attrs(a, Some(v));
            confidential |= issue.confidential;
            let known = !matches!(act, IssueAction::Unknown(_));
            let key = format!("issue.{}", key_word(act.as_str()));
            (key, act.verb().to_string(), known, Detail::Issue(issue))
        }
        (Kind::MergeRequest, Some(a)) => {
            let act = MergeRequestAction::parse(action.as_deref());
            let mr = MergeRequest::from_attrs(a, Some(v));
            let known = !matches!(act, MergeRequestAction::Unknown(_));
            let key = format!("merge_request.{}", key_word(act.as_str()));
            (
                key,
                act.verb().to_string(),
                known,
                Detail::MergeRequest(Box::new(mr)),
            )
        }
        (Kind::Push, _) => {
            let push = push(v, &project);
            let change = match push.change {
                "branch_created" => PushChange::BranchCreated,
                "branch_deleted" => PushChange::BranchDeleted,
                _ => PushChange::Commits,
            };
            let verb = match change {
                PushChange::Commits => "pushed to",
                PushChange::BranchCreated => "created branch",
                PushChange::BranchDeleted => "deleted branch",
            };
            (
                change.key().to_string(),
                verb.to_string(),
                true,
                Detail::Push(push),
            )
        }
        (Kind::Note, Some(a)) => {
            let (target, n) = note(a, v);
            confidential |= n.issue.as_ref().is_some_and(|i| i.confidential);
            let known = !matches!(target, NoteTarget::Unknown(_));
            let key = format!("note.{}", n.target);
            (
                key,
                "commented on".to_string(),
                known,
                Detail::Note(Box::new(n)),
            )
        }
        (Kind::WorkItem, Some(a)) => {
            let act = IssueAction::parse(action.as_deref());
            let item = Issue::from_attrs(a, Some(v));
            confidential |= item.confidential;
            let known = !matches!(act, IssueAction::Unknown(_));
            let key = format!("work_item.{}", key_word(act.as_str()));
            (
                key,
                act.verb().to_string(),
                known,
                Detail::WorkItem(Box::new(item)),
            )
        }
        _ => {
            let parsed = match &kind {
                Kind::TagPush => Some(kinds::parse_tag_push(v, &project)),
                Kind::Pipeline => Some(kinds::parse_pipeline(v, &project)),
                Kind::Job => Some(kinds::parse_job(v, &project)),
                Kind::Release => Some(kinds::parse_release(v, action.as_deref())),
                Kind::WikiPage => Some(kinds::parse_wiki_page(v, action.as_deref())),
                Kind::Deployment => Some(kinds::parse_deployment(v)),
                Kind::Milestone => Some(kinds::parse_milestone(v, &project, action.as_deref())),
                Kind::Emoji => Some(kinds::parse_emoji(v, action.as_deref())),
                Kind::FeatureFlag => Some(kinds::parse_feature_flag(v, &project)),
                Kind::AccessToken => Some(kinds::parse_access_token(v, &project)),
                Kind::Member => Some(kinds::parse_member(v, &actor)),
                Kind::Project => Some(kinds::parse_project_event(v, &mut project)),
                Kind::Subgroup => Some(kinds::parse_subgroup(v)),
                Kind::Vulnerability => Some(kinds::parse_vulnerability(v, &mut project)),
                _ => None,
            };
            match parsed {
                Some(p) => {
                    action = p.action;
                    (p.key, p.verb, p.known, p.detail)
                }
                None => {
                    let key = match &action {
                        Some(a) if !a.is_empty() => format!("{}.{}", kind.as_str(), key_word(a)),
                        _ => kind.as_str().to_string(),
                    };
                    let verb = action.clone().unwrap_or_default();
                    (key, verb, false, Detail::Other {})
                }
            }
        }
    };

    Ok(Event {
        key,
        kind,
        action,
        verb,
        confidential,
        known,
        actor,
        project,
        detail,
        raw: body,
    })
}

/// Lower-cases and keeps key-safe characters so odd actions cannot forge a key.
fn key_word(s: &str) -> String {
    if s.is_empty() {
        return "unknown".to_string();
    }
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect()
}

fn detect_kind(header: Option<&str>, v: &Value) -> Kind {
    let from_body = str_at(v, &["object_kind"]).map(|k| Kind::from_object_kind(&k));
    // `Issue Hook` carries both issues and work items; the body tells them apart.
    match (header.and_then(Kind::from_header), from_body) {
        (Some(Kind::Issue), Some(b @ (Kind::Issue | Kind::WorkItem))) => b,
        (Some(h), _) => h,
        (None, Some(Kind::Unknown(k))) => str_at(v, &["event_name"])
            .and_then(|n| Kind::from_event_name(&n))
            .unwrap_or(Kind::Unknown(k)),
        (None, Some(b)) => b,
        (None, None) => match str_at(v, &["event_name"]) {
            Some(n) => Kind::from_event_name(&n).unwrap_or(Kind::Unknown(key_word(&n))),
            None => Kind::Unknown(
                header
                    .map(|h| key_word(h.trim().trim_end_matches(" Hook")))
                    .unwrap_or_else(|| "unknown".to_string()),
            ),
        },
    }
}

fn actor(v: &Value) -> User {
    if let Some(u) = obj_at(v, &["user"]) {
        return User::from_obj(u);
    }
    // Push and tag push payloads spell the pusher out in flat fields.
    User::from_parts(
        str_at(v, &["user_name"]),
        str_at(v, &["user_username"]),
        str_at(v, &["user_email"]),
        url_at(v, &["user_avatar"]),
    )
}

fn assignees(v: &Value) -> Vec<User> {
    let list: Vec<User> = arr_at(v, &["assignees"])
        .iter()
        .map(User::from_obj)
        .collect();
    if !list.is_empty() {
        return list;
    }
    // Old payloads only have a singular `assignee`.
    obj_at(v, &["assignee"])
        .map(User::from_obj)
        .into_iter()
        .collect()
}

fn label_titles(attrs: &Value, payload: Option<&Value>) -> Vec<String> {
    let from = |arr: &[Value]| -> Vec<String> {
        arr.iter()
            .filter_map(|l| str_at(l, &["title"]).or_else(|| l.as_str().map(str::to_string)))
            .collect()
    };
    let top = payload
        .map(|p| from(arr_at(p, &["labels"])))
        .unwrap_or_default();
    if top.is_empty() {
        from(arr_at(attrs, &["labels"]))
    } else {
        top
    }
}

fn push(v: &Value, project: &Project) -> Push {
    let git_ref = str_at(v, &["ref"]).unwrap_or_default();
    let branch = git_ref
        .strip_prefix("refs/heads/")
        .unwrap_or(&git_ref)
        .to_string();
    let before = str_at(v, &["before"]).unwrap_or_default();
    let after = str_at(v, &["after"]).unwrap_or_default();
    let change = if after == ZERO_SHA {
        "branch_deleted"
    } else if before == ZERO_SHA {
        "branch_created"
    } else {
        "commits"
    };
    let commits: Vec<Commit> = arr_at(v, &["commits"])
        .iter()
        .map(Commit::from_obj)
        .collect();
    let listed = commits.len() as u64;
    let total_commits = u64_at(v, &["total_commits_count"])
        .unwrap_or(listed)
        .max(listed);
    let compare_url = project.url.as_ref().and_then(|base| match change {
        "commits" if !before.is_empty() && !after.is_empty() => {
            Some(format!("{base}/-/compare/{before}...{after}"))
        }
        "branch_created" => Some(format!("{base}/-/commits/{branch}")),
        _ => None,
    });
    Push {
        git_ref,
        branch,
        change,
        before,
        after,
        commits,
        total_commits,
        more_commits: total_commits - listed,
        compare_url,
        protected: bool_at(v, &["ref_protected"]),
    }
}

fn note(a: &Value, v: &Value) -> (NoteTarget, Note) {
    let target = NoteTarget::parse(str_at(a, &["noteable_type"]).as_deref());
    let url = url_at(a, &["url"]);
    let url_without_fragment = url
        .as_ref()
        .map(|u| u.split('#').next().unwrap_or(u).to_string());
    let mut note = Note {
        body: str_at(a, &["note"]).unwrap_or_default(),
        url,
        target: key_word(target.as_str()),
        target_label: String::new(),
        target_title: String::new(),
        target_url: None,
        system: bool_at(a, &["system"]).unwrap_or(false),
        issue: None,
        merge_request: None,
        commit: None,
        snippet: None,
    };
    match &target {
        NoteTarget::Issue => {
            let issue = obj_at(v, &["issue"]).map(|i| Issue::from_attrs(i, None));
            let iid = issue.as_ref().and_then(|i| i.iid);
            note.target_label = iid.map_or("an issue".into(), |n| format!("issue #{n}"));
            note.target_title = issue.as_ref().map(|i| i.title.clone()).unwrap_or_default();
            note.target_url = issue.as_ref().and_then(|i| i.url.clone());
            note.issue = issue;
        }
        NoteTarget::MergeRequest => {
            let mr = obj_at(v, &["merge_request"]).map(|m| MergeRequest::from_attrs(m, None));
            let iid = mr.as_ref().and_then(|m| m.iid);
            note.target_label =
                iid.map_or("a merge request".into(), |n| format!("merge request !{n}"));
            note.target_title = mr.as_ref().map(|m| m.title.clone()).unwrap_or_default();
            note.target_url = mr.as_ref().and_then(|m| m.url.clone());
            note.merge_request = mr;
        }
        NoteTarget::Commit => {
            let c = obj_at(v, &["commit"]).map(Commit::from_obj);
            note.target_label = c
                .as_ref()
                .map_or("a commit".into(), |c| format!("commit {}", c.short_id));
            note.target_title = c.as_ref().map(|c| c.title.clone()).unwrap_or_default();
            note.target_url = c.as_ref().and_then(|c| c.url.clone());
            note.commit = c;
        }
        NoteTarget::Snippet => {
            let s = obj_at(v, &["snippet"]).map(|s| Snippet {
                id: u64_at(s, &["id"]),
                title: str_at(s, &["title"]).unwrap_or_default(),
                url: url_at(s, &["url"]),
                file_name: str_at(s, &["file_name"]),
            });
            let id = s.as_ref().and_then(|s| s.id);
            note.target_label = id.map_or("a snippet".into(), |n| format!("snippet ${n}"));
            note.target_title = s.as_ref().map(|s| s.title.clone()).unwrap_or_default();
            note.target_url = s.as_ref().and_then(|s| s.url.clone());
            note.snippet = s;
        }
        NoteTarget::Unknown(_) => note.target_label = "something".into(),
    }
    if note.target_url.is_none() {
        note.target_url = url_without_fragment;
    }
    if note.target_title.is_empty() {
        note.target_title = note.target_label.clone();
    }
    (target, note)
}

#[cfg(test)]
mod tests {
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
