//! Open merge requests as GitLab lists them, their approvals and head pipeline, and fetching
//! them for a review reminder: from project paths and globs to the fewest listings
//! ([`sources`]), then each listing and each candidate's approvals with bounded concurrency and
//! one time budget ([`fetch_open`]).
//!
//! Parsing is lenient: every field but the `iid` has a default, so an older or newer GitLab
//! that leaves something out still gives a list; what is missing is treated as unknown by the
//! selection ([`super::reviews`]).

use super::client::{decode, Client, ProjectRef, PER_PAGE};
use super::error::GitlabError;
use chrono::{DateTime, Utc};
use reqwest::Method;
use serde::{Deserialize, Deserializer};
use std::sync::Arc;
use std::time::Duration;

/// A person as merge request fields show them (author, reviewers, approvers).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct Person {
    /// The login name (`alice`).
    #[serde(default, deserialize_with = "text")]
    pub username: String,
    /// The display name (`Alice Liddell`).
    #[serde(default, deserialize_with = "text")]
    pub name: String,
}

/// The `references` of a merge request.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct References {
    /// `group/project!12`.
    #[serde(default, deserialize_with = "text")]
    pub full: String,
}

/// A merge request's head pipeline (single merge request view only).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct HeadPipeline {
    /// `success`, `failed`, `running`, …
    #[serde(default, deserialize_with = "text")]
    pub status: String,
    /// The pipeline's page.
    #[serde(default, deserialize_with = "text")]
    pub web_url: String,
}

/// One merge request as `GET /projects/:id/merge_requests` (or the group and global lists)
/// shows it: only what reminders use.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct MergeRequest {
    /// The number within its project (`!12`).
    pub iid: u64,
    /// The project's ID.
    #[serde(default)]
    pub project_id: u64,
    /// The title.
    #[serde(default, deserialize_with = "text")]
    pub title: String,
    /// `opened`, `closed`, `merged`, `locked`.
    #[serde(default, deserialize_with = "text")]
    pub state: String,
    /// The merge request's page.
    #[serde(default, deserialize_with = "text")]
    pub web_url: String,
    /// Who opened it.
    #[serde(default)]
    pub author: Option<Person>,
    /// Who is asked to review it.
    #[serde(default, deserialize_with = "people")]
    pub reviewers: Vec<Person>,
    /// A draft (GitLab ≥ 13.2; older versions say `work_in_progress`).
    #[serde(default)]
    pub draft: Option<bool>,
    /// The pre-13.2 name of `draft`.
    #[serde(default)]
    pub work_in_progress: Option<bool>,
    /// When it was opened (ISO 8601), as sent.
    #[serde(default, deserialize_with = "text")]
    pub created_at: String,
    /// `not_approved`, `draft_status`, `ci_must_pass`, `mergeable`, … (GitLab ≥ 15.6).
    #[serde(default, deserialize_with = "text")]
    pub detailed_merge_status: String,
    /// Its references (`full` names the project).
    #[serde(default)]
    pub references: Option<References>,
    /// The head pipeline (only in the single merge request view).
    #[serde(default)]
    pub head_pipeline: Option<HeadPipeline>,
}

impl MergeRequest {
    /// When it was opened, if GitLab said so in a readable form.
    pub fn opened_at(&self) -> Option<DateTime<Utc>> {
        DateTime::parse_from_rfc3339(self.created_at.trim())
            .ok()
            .map(|t| t.with_timezone(&Utc))
    }

    /// Whether it is a draft: the `draft` flag, else `work_in_progress`, else a `Draft:`
    /// (or `WIP:`) title.
    pub fn is_draft(&self) -> bool {
        self.draft.or(self.work_in_progress).unwrap_or_else(|| {
            let t = self.title.trim_start().to_ascii_lowercase();
            ["draft:", "[draft]", "(draft)", "wip:", "[wip]"]
                .iter()
                .any(|p| t.starts_with(p))
        })
    }

    /// The project's full path, from `references.full` or else the web URL (empty if neither
    /// says).
    pub fn project_path(&self) -> String {
        if let Some((path, _)) = self
            .references
            .as_ref()
            .and_then(|r| r.full.rsplit_once('!'))
        {
            return path.to_string();
        }
        url::Url::parse(&self.web_url)
            .ok()
            .and_then(|u| {
                let p = u.path().trim_start_matches('/');
                p.split_once("/-/merge_requests")
                    .map(|(a, _)| a.to_string())
            })
            .unwrap_or_default()
    }

    /// `group/project!12`.
    pub fn reference(&self) -> String {
        match &self.references {
            Some(r) if !r.full.is_empty() => r.full.clone(),
            _ => format!("{}!{}", self.project_path(), self.iid),
        }
    }

    /// The project as the API takes it: its ID when known, else its path.
    pub fn project_ref(&self) -> ProjectRef {
        let path = self.project_path();
        ProjectRef {
            id_or_path: if self.project_id > 0 {
                self.project_id.to_string()
            } else {
                path.clone()
            },
            label: path,
        }
    }
}

/// `GET /projects/:id/merge_requests/:iid/approvals`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct Approvals {
    /// Whether the rules are satisfied.
    #[serde(default)]
    pub approved: Option<bool>,
    /// Approvals still needed.
    #[serde(default)]
    pub approvals_left: Option<u32>,
    /// Who approved.
    #[serde(default, deserialize_with = "approvers")]
    pub approved_by: Vec<Person>,
}

impl Approvals {
    /// Whether it still waits for approval: `approvals_left > 0`, else not `approved`.
    pub fn waiting(&self) -> bool {
        match (self.approvals_left, self.approved) {
            (Some(left), _) => left > 0,
            (None, Some(approved)) => !approved,
            (None, None) => true,
        }
    }
}

/// Where merge requests are listed from.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Source {
    /// One project, by path.
    Project(String),
    /// A group and its subgroups, by path.
    Group(String),
    /// Every merge request the token can see (`GET /merge_requests?scope=all`).
    Everything,
}

impl Source {
    /// What it is called in logs and on the card.
    pub fn label(&self) -> String {
        match self {
            Source::Project(p) => format!("project {p}"),
            Source::Group(g) => format!("group {g}"),
            Source::Everything => "every project the token can see".into(),
        }
    }
}

/// The fewest listings that cover project path `globs` (`*` matches anything, `/` included):
/// a glob without `*` is one project; with one, the group made of its whole segments before the
/// first `*` (`acme/*` → group `acme`); with none (`*`, `*/app`), everything. A source inside
/// another one is dropped; the selection filters each merge request by the globs again.
pub fn sources(globs: &[String]) -> Vec<Source> {
    let mut out: Vec<Source> = Vec::new();
    for g in globs.iter().map(|g| g.trim().trim_matches('/')) {
        if g.is_empty() {
            continue;
        }
        let source = match g.find('*') {
            None => Source::Project(g.to_string()),
            Some(star) => match g[..star].rsplit_once('/') {
                Some((group, _)) if !group.is_empty() => Source::Group(group.to_string()),
                _ => Source::Everything,
            },
        };
        out.push(source);
    }
    if out.contains(&Source::Everything) {
        return vec![Source::Everything];
    }
    let groups: Vec<String> = out
        .iter()
        .filter_map(|s| match s {
            Source::Group(g) => Some(g.clone()),
            _ => None,
        })
        .collect();
    let inside = |path: &str, own: bool| {
        groups
            .iter()
            .any(|g| path.starts_with(&format!("{g}/")) || (!own && path == g))
    };
    out.retain(|s| match s {
        Source::Project(p) => !inside(p, false),
        Source::Group(g) => !inside(g, true),
        Source::Everything => true,
    });
    out.sort();
    out.dedup();
    out
}

/// How much a reminder run may ask of GitLab.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FetchLimits {
    /// Requests in flight at once (at least 1).
    pub concurrency: usize,
    /// The whole run's time; what is not fetched by then is left out and the list marked
    /// incomplete.
    pub budget: Duration,
    /// Whether to read each candidate's head pipeline (one more request per candidate).
    pub pipelines: bool,
}

impl Default for FetchLimits {
    fn default() -> Self {
        FetchLimits {
            concurrency: 4,
            budget: Duration::from_secs(60),
            pipelines: false,
        }
    }
}

/// A merge request worth listing, with what was learnt about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// As listed (with `head_pipeline` when [`FetchLimits::pipelines`]).
    pub mr: MergeRequest,
    /// Its approvals, if they could be read.
    pub approvals: Option<Approvals>,
}

/// What a run fetched.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Fetched {
    /// The merge requests that passed the caller's filter, in listing order.
    pub candidates: Vec<Candidate>,
    /// Sources that could not be read, with why (already logged).
    pub unreadable: Vec<(Source, String)>,
    /// Whether something is missing: an unreadable source, a failed approvals read, or the
    /// time budget ran out.
    pub incomplete: bool,
}

impl Client {
    /// The open merge requests of `source`, every page.
    pub async fn open_merge_requests(
        &self,
        source: &Source,
    ) -> Result<Vec<MergeRequest>, GitlabError> {
        let (mut url, what) = match source {
            Source::Project(p) => (
                self.api_url(&["projects", p, "merge_requests"]),
                format!("listing the open merge requests of project {p}"),
            ),
            Source::Group(g) => {
                let mut u = self.api_url(&["groups", g, "merge_requests"]);
                u.query_pairs_mut().append_pair("include_subgroups", "true");
                (u, format!("listing the open merge requests of group {g}"))
            }
            Source::Everything => {
                let mut u = self.api_url(&["merge_requests"]);
                u.query_pairs_mut().append_pair("scope", "all");
                (
                    u,
                    "listing the open merge requests the token can see".into(),
                )
            }
        };
        url.query_pairs_mut()
            .append_pair("state", "opened")
            .append_pair("per_page", &PER_PAGE.to_string());
        self.get_all(url, &what).await
    }

    /// The approvals of merge request `iid` of `project`.
    pub async fn merge_request_approvals(
        &self,
        project: &ProjectRef,
        iid: u64,
    ) -> Result<Approvals, GitlabError> {
        let what = format!("reading the approvals of {}!{iid}", project.label);
        let iid = iid.to_string();
        let url = self.api_url(&[
            "projects",
            &project.id_or_path,
            "merge_requests",
            &iid,
            "approvals",
        ]);
        let resp = self.send(Method::GET, url, None, &what).await?;
        decode(resp, &what).await
    }

    /// Merge request `iid` of `project` in the single view (with `head_pipeline`).
    pub async fn merge_request(
        &self,
        project: &ProjectRef,
        iid: u64,
    ) -> Result<MergeRequest, GitlabError> {
        let what = format!("reading {}!{iid}", project.label);
        let iid = iid.to_string();
        let url = self.api_url(&["projects", &project.id_or_path, "merge_requests", &iid]);
        let resp = self.send(Method::GET, url, None, &what).await?;
        decode(resp, &what).await
    }
}

/// Lists every source, keeps the merge requests `keep` accepts (once each), and reads their
/// approvals (and head pipelines if asked), at most `limits.concurrency` requests at a time and
/// all within `limits.budget`. A source GitLab refuses or does not show is logged and reported
/// in [`Fetched::unreadable`]; the run goes on with the others.
pub async fn fetch_open(
    client: &Client,
    sources: &[Source],
    keep: impl Fn(&MergeRequest) -> bool,
    limits: FetchLimits,
) -> Fetched {
    let deadline = tokio::time::Instant::now() + limits.budget;
    let permits = Arc::new(tokio::sync::Semaphore::new(limits.concurrency.max(1)));
    let mut fetched = Fetched::default();

    let mut listings = tokio::task::JoinSet::new();
    for (i, source) in sources.iter().enumerate() {
        let (client, source, permits) = (client.clone(), source.clone(), permits.clone());
        listings.spawn(async move {
            let _permit = permits.acquire_owned().await;
            (i, client.open_merge_requests(&source).await)
        });
    }
    let mut lists: Vec<(usize, Vec<MergeRequest>)> = Vec::new();
    loop {
        match tokio::time::timeout_at(deadline, listings.join_next()).await {
            Ok(None) => break,
            Ok(Some(Ok((i, Ok(mrs))))) => lists.push((i, mrs)),
            Ok(Some(Ok((i, Err(e))))) => {
                let source = sources[i].clone();
                tracing::warn!(source = %source.label(), error = %e, "reminder: cannot list merge requests; the reminder may be incomplete");
                fetched.unreadable.push((source, e.to_string()));
                fetched.incomplete = true;
            }
            Ok(Some(Err(e))) => {
                tracing::warn!(error = %e, "reminder: a listing task failed");
                fetched.incomplete = true;
            }
            Err(_) => {
                tracing::warn!(budget_ms = limits.budget.as_millis(), "reminder: GitLab did not answer within the time budget; the list is incomplete");
                fetched.incomplete = true;
                break;
            }
        }
    }
    listings.abort_all();
    lists.sort_by_key(|(i, _)| *i);

    let mut seen = std::collections::HashSet::new();
    let mut wanted: Vec<MergeRequest> = Vec::new();
    for mr in lists.into_iter().flat_map(|(_, mrs)| mrs) {
        if keep(&mr) && seen.insert((mr.project_path(), mr.iid)) {
            wanted.push(mr);
        }
    }

    let mut details = tokio::task::JoinSet::new();
    for (i, mr) in wanted.iter().enumerate() {
        let (client, permits) = (client.clone(), permits.clone());
        let (project, iid) = (mr.project_ref(), mr.iid);
        details.spawn(async move {
            let _permit = permits.acquire_owned().await;
            let approvals = client.merge_request_approvals(&project, iid).await;
            let single = if limits.pipelines {
                Some(client.merge_request(&project, iid).await)
            } else {
                None
            };
            (i, approvals, single)
        });
    }
    let mut found: Vec<Option<Candidate>> = vec![None; wanted.len()];
    loop {
        match tokio::time::timeout_at(deadline, details.join_next()).await {
            Ok(None) => break,
            Ok(Some(Ok((i, approvals, single)))) => {
                let mut mr = wanted[i].clone();
                let approvals = match approvals {
                    Ok(a) => Some(a),
                    Err(e) => {
                        tracing::warn!(mr = %mr.reference(), error = %e, "reminder: cannot read approvals");
                        fetched.incomplete = true;
                        None
                    }
                };
                match single {
                    Some(Ok(s)) => mr.head_pipeline = s.head_pipeline,
                    Some(Err(e)) => {
                        tracing::warn!(mr = %mr.reference(), error = %e, "reminder: cannot read the head pipeline")
                    }
                    None => {}
                }
                found[i] = Some(Candidate { mr, approvals });
            }
            Ok(Some(Err(e))) => {
                tracing::warn!(error = %e, "reminder: an approvals task failed");
                fetched.incomplete = true;
            }
            Err(_) => {
                tracing::warn!(budget_ms = limits.budget.as_millis(), "reminder: GitLab did not answer within the time budget; the list is incomplete");
                fetched.incomplete = true;
                break;
            }
        }
    }
    details.abort_all();
    fetched.candidates = found.into_iter().flatten().collect();
    fetched
}

/// A string field that may be `null` or another type (taken as empty).
fn text<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(match serde_json::Value::deserialize(d)? {
        serde_json::Value::String(s) => s,
        _ => String::new(),
    })
}

/// A list of people that may be `null`; entries that are not people are skipped.
fn people<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Person>, D::Error> {
    Ok(match serde_json::Value::deserialize(d)? {
        serde_json::Value::Array(items) => items
            .into_iter()
            .filter_map(|v| serde_json::from_value::<Person>(v).ok())
            .filter(|p| !p.username.is_empty())
            .collect(),
        _ => Vec::new(),
    })
}

/// `approved_by`: `[{ "user": person }]`.
fn approvers<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Person>, D::Error> {
    Ok(match serde_json::Value::deserialize(d)? {
        serde_json::Value::Array(items) => items
            .into_iter()
            .filter_map(|v| serde_json::from_value::<Person>(v["user"].clone()).ok())
            .filter(|p| !p.username.is_empty())
            .collect(),
        _ => Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn mr(v: serde_json::Value) -> MergeRequest {
        serde_json::from_value(v).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn a_listed_merge_request_is_read_leniently() {
        let m = mr(json!({
            "id": 901, "iid": 12, "project_id": 7, "title": "Add the thing", "state": "opened",
            "web_url": "https://gitlab.example.com/acme/app/-/merge_requests/12",
            "author": {"id": 1, "username": "carol", "name": "Carol"},
            "reviewers": [{"id": 2, "username": "alice", "name": "Alice"}, null, {"id": 3}],
            "draft": false, "created_at": "2026-12-01T08:00:00.000Z",
            "detailed_merge_status": "not_approved",
            "references": {"short": "!12", "relative": "!12", "full": "acme/app!12"},
            "labels": ["x"], "something_new": {"a": 1}
        }));
        assert_eq!(m.reference(), "acme/app!12");
        assert_eq!(m.project_path(), "acme/app");
        assert_eq!(m.reviewers.len(), 1);
        assert_eq!(m.reviewers[0].username, "alice");
        assert!(!m.is_draft());
        assert_eq!(
            m.opened_at().map(|t| t.to_rfc3339()),
            Some("2026-12-01T08:00:00+00:00".into())
        );
        assert_eq!(m.project_ref().id_or_path, "7");

        let sparse = mr(json!({
            "iid": 3, "title": "WIP: later", "reviewers": null, "created_at": null,
            "web_url": "https://gitlab.example.com/acme/sub/lib/-/merge_requests/3",
            "work_in_progress": null, "author": null
        }));
        assert!(sparse.is_draft());
        assert_eq!(sparse.reference(), "acme/sub/lib!3");
        assert_eq!(sparse.project_ref().id_or_path, "acme/sub/lib");
        assert!(sparse.reviewers.is_empty());
        assert_eq!(sparse.opened_at(), None);
        assert!(mr(json!({"iid": 4, "work_in_progress": true})).is_draft());
        assert!(!mr(json!({"iid": 4, "draft": false, "title": "Draft: x"})).is_draft());
        assert!(serde_json::from_value::<MergeRequest>(json!({"title": "no iid"})).is_err());
    }

    #[test]
    fn approvals_wait_while_approvals_are_left() {
        let a = |v| serde_json::from_value::<Approvals>(v).unwrap_or_else(|e| panic!("{e}"));
        let waiting = a(json!({"approved": false, "approvals_left": 1,
            "approved_by": [{"user": {"username": "bob", "name": "Bob"}}, {"nope": 1}]}));
        assert!(waiting.waiting());
        assert_eq!(waiting.approved_by.len(), 1);
        assert!(!a(json!({"approved": true, "approvals_left": 0})).waiting());
        assert!(!a(json!({"approved": true})).waiting());
        assert!(a(json!({"approved": false})).waiting());
        assert!(a(json!({})).waiting());
        let pipeline = mr(json!({"iid": 1, "head_pipeline": {"id": 5, "status": "failed"}}));
        assert_eq!(
            pipeline.head_pipeline.map(|p| p.status),
            Some("failed".into())
        );
    }

    #[test]
    fn globs_become_the_fewest_listings() {
        let s = |g: &[&str]| sources(&g.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert_eq!(
            s(&["acme/app", "acme/sub/*", "other/*-api", "/solo/x/"]),
            vec![
                Source::Project("acme/app".into()),
                Source::Project("solo/x".into()),
                Source::Group("acme/sub".into()),
                Source::Group("other".into()),
            ]
        );
        assert_eq!(
            s(&["acme/*", "acme/app", "acme/sub/*", "acme"]),
            vec![Source::Group("acme".into())]
        );
        assert_eq!(s(&["acme/app", "*/app"]), vec![Source::Everything]);
        assert_eq!(s(&["acme*/x"]), vec![Source::Everything]);
        assert_eq!(s(&["", "  "]), Vec::<Source>::new());
    }
}
