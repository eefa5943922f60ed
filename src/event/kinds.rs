//! The kinds beyond issues, merge requests, pushes and comments: tag pushes, pipelines, jobs,
//! releases, wiki pages, deployments, milestones, emoji reactions, feature flags, access tokens,
//! group members, group projects, subgroups and vulnerabilities.
//!
//! Each `parse_*` function reads one payload leniently and returns its key, verb and typed detail.
//! Links GitLab does not send are built from the project's web page (`/-/jobs/ID`, `/-/tags/NAME`,
//! …); when the project is unknown they stay empty rather than being guessed.

use super::value::{arr_at, bool_at, f64_at, obj_at, str_at, u64_at, url_at};
use super::{key_word, time, Commit, Detail, Project, User, SHORT_SHA_LEN, ZERO_SHA};
use serde::Serialize;
use serde_json::Value;

/// How many failed jobs a pipeline lists; `more_failed_jobs` counts the rest.
pub const FAILED_JOBS_SHOWN: usize = 10;

/// What a parser found: the event's key, action, verb, whether we know it, and the detail.
pub(super) struct Parsed {
    /// The event key (`pipeline.failed`).
    pub key: String,
    /// The key's last part, when there is one.
    pub action: Option<String>,
    /// Words for people (`failed`), empty when there was no action.
    pub verb: String,
    /// Whether the action or status is one this version knows.
    pub known: bool,
    /// The typed detail.
    pub detail: Detail,
}

/// Keys `kind.word` with the verb `verbs` gives for `word`; an unknown word is keyed but not known,
/// and no word at all (GitLab's *Test* button, old versions) keys the kind alone.
fn keyed(kind: &str, word: Option<&str>, verbs: fn(&str) -> Option<&'static str>) -> Parsed {
    let (key, action, verb, known) = match word.map(str::trim).filter(|w| !w.is_empty()) {
        None => (kind.to_string(), None, String::new(), true),
        Some(w) => match verbs(w) {
            Some(v) => (
                format!("{kind}.{w}"),
                Some(w.to_string()),
                v.to_string(),
                true,
            ),
            None => (
                format!("{kind}.{}", key_word(w)),
                Some(w.to_string()),
                w.to_string(),
                false,
            ),
        },
    };
    Parsed {
        key,
        action,
        verb,
        known,
        detail: Detail::Other {},
    }
}

/// Makes `s` safe as one URL path segment (tags and branches may hold `#`, `?`, `%`).
fn segment(s: &str) -> String {
    s.replace('%', "%25")
        .replace('#', "%23")
        .replace('?', "%3F")
        .replace(' ', "%20")
}

/// `PROJECT_URL/-/rest`, when the project's web page is known.
fn under(project: &Project, rest: &str) -> Option<String> {
    project.url.as_ref().map(|base| format!("{base}/-/{rest}"))
}

fn short(sha: &str) -> String {
    sha.chars().take(SHORT_SHA_LEN).collect()
}

/// Seconds for people: `45s`, `1m 3s`, `2h 5m`.
pub fn duration_text(secs: f64) -> String {
    let s = secs.round().max(0.0) as u64;
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m {}s", s / 60, s % 60),
        _ => format!("{}h {}m", s / 3600, (s % 3600) / 60),
    }
}

fn timestamp(v: &Value, path: &[&str]) -> Option<String> {
    str_at(v, path).map(|t| time::normalize(&t))
}

fn first_line(s: &str) -> String {
    s.lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("")
        .to_string()
}

/// A group, for group-level events (access tokens, milestones, members).
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Group {
    /// Numeric id.
    pub id: Option<u64>,
    /// Display name.
    pub name: String,
    /// Full path (`parent/child`).
    pub full_path: String,
}

impl Group {
    /// From `group_name`/`group_path`/`group_id`/`full_path` fields of `v`.
    fn from_fields(v: &Value) -> Option<Group> {
        let name = str_at(v, &["group_name"]);
        let full_path = str_at(v, &["full_path"]).or_else(|| str_at(v, &["group_path"]));
        if name.is_none() && full_path.is_none() {
            return None;
        }
        Some(Group {
            id: u64_at(v, &["group_id"]),
            name: name.or_else(|| full_path.clone()).unwrap_or_default(),
            full_path: full_path.unwrap_or_default(),
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Tag push

/// A tag pushed or deleted.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct TagPush {
    /// Full ref (`refs/tags/v1.0.0`).
    #[serde(rename = "ref")]
    pub git_ref: String,
    /// Tag name (`v1.0.0`).
    pub tag: String,
    /// `create`, `delete`, or `update` (an existing tag moved to another commit).
    pub change: &'static str,
    /// Commit the tag pointed to before (zeros on creation).
    pub before: String,
    /// Commit the tag points to now (zeros on deletion).
    pub after: String,
    /// First characters of the tagged commit (of `before` on deletion).
    pub short_id: String,
    /// Message of an annotated tag.
    pub message: Option<String>,
    /// Web page of the tag; of the project's tag list after a deletion.
    pub url: Option<String>,
    /// Web page of the tagged commit (none on deletion).
    pub commit_url: Option<String>,
    /// Commits GitLab listed (usually none).
    pub commits: Vec<Commit>,
    /// `total_commits_count`.
    pub total_commits: u64,
    /// Whether the tag is protected (when GitLab says).
    pub protected: Option<bool>,
}

fn tag_verb(w: &str) -> Option<&'static str> {
    Some(match w {
        "create" => "pushed tag",
        "delete" => "deleted tag",
        "update" => "moved tag",
        _ => return None,
    })
}

pub(super) fn parse_tag_push(v: &Value, project: &Project) -> Parsed {
    let git_ref = str_at(v, &["ref"]).unwrap_or_default();
    let tag = git_ref
        .strip_prefix("refs/tags/")
        .unwrap_or(&git_ref)
        .to_string();
    let before = str_at(v, &["before"]).unwrap_or_default();
    let after = str_at(v, &["after"]).unwrap_or_default();
    let change = if after == ZERO_SHA {
        "delete"
    } else if before == ZERO_SHA || before.is_empty() {
        "create"
    } else {
        "update"
    };
    let commits: Vec<Commit> = arr_at(v, &["commits"])
        .iter()
        .map(Commit::from_obj)
        .collect();
    let listed = commits.len() as u64;
    let sha = if change == "delete" { &before } else { &after };
    let mut p = keyed("tag_push", Some(change), tag_verb);
    p.detail = Detail::TagPush(Box::new(TagPush {
        url: if change == "delete" {
            under(project, "tags")
        } else {
            under(project, &format!("tags/{}", segment(&tag)))
        },
        commit_url: (change != "delete" && !after.is_empty())
            .then(|| under(project, &format!("commit/{after}")))
            .flatten(),
        short_id: short(sha),
        message: str_at(v, &["message"]),
        total_commits: u64_at(v, &["total_commits_count"])
            .unwrap_or(listed)
            .max(listed),
        commits,
        protected: bool_at(v, &["ref_protected"]),
        git_ref,
        tag,
        change,
        before,
        after,
    }));
    p
}

// ---------------------------------------------------------------------------------------------
// Pipelines and jobs

/// Verbs of pipeline and job statuses (the subject is the pipeline or job).
fn status_verb(w: &str) -> Option<&'static str> {
    Some(match w {
        "created" => "was created",
        "waiting_for_resource" => "is waiting for a resource",
        "preparing" => "is preparing",
        "pending" => "is pending",
        "running" => "is running",
        "success" => "passed",
        "failed" => "failed",
        "canceling" => "is being canceled",
        "canceled" => "was canceled",
        "skipped" => "was skipped",
        "manual" => "is waiting for a manual action",
        "scheduled" => "is scheduled",
        _ => return None,
    })
}

/// A merge request as a pipeline names it.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct MergeRequestRef {
    /// Project-scoped number (`!1`).
    pub iid: Option<u64>,
    /// Title.
    pub title: String,
    /// Web page.
    pub url: Option<String>,
    /// Branch the changes come from.
    pub source_branch: Option<String>,
    /// Branch the changes go to.
    pub target_branch: Option<String>,
    /// `opened`, `merged`, ….
    pub state: Option<String>,
}

/// The pipeline that triggered another (parent of a child pipeline, or upstream project).
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct UpstreamPipeline {
    /// Its pipeline id.
    pub id: Option<u64>,
    /// The job that triggered the pipeline.
    pub job_id: Option<u64>,
    /// `group/project` it ran in.
    pub project_path: Option<String>,
    /// Web page of that project.
    pub project_url: Option<String>,
    /// Web page of that pipeline.
    pub url: Option<String>,
}

/// One job as a pipeline lists it.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct JobSummary {
    /// Job id.
    pub id: Option<u64>,
    /// Job name (`test-build`).
    pub name: String,
    /// Stage name.
    pub stage: Option<String>,
    /// `failed`, `success`, ….
    pub status: Option<String>,
    /// Why it failed (`script_failure`, …), for failed jobs.
    pub failure_reason: Option<String>,
    /// Whether the pipeline may pass although this job failed.
    pub allow_failure: bool,
    /// Run time for people (`17s`).
    pub duration_text: Option<String>,
    /// Web page of the job.
    pub url: Option<String>,
}

/// A pipeline's status change.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Pipeline {
    /// Global id (the number in its URL).
    pub id: Option<u64>,
    /// Project-scoped number.
    pub iid: Option<u64>,
    /// Its name, when it has one (`Pipeline for branch: main`).
    pub name: Option<String>,
    /// Branch or tag it ran for.
    #[serde(rename = "ref")]
    pub git_ref: String,
    /// Whether `ref` is a tag.
    pub tag: bool,
    /// Commit id.
    pub sha: String,
    /// First characters of the commit id.
    pub short_sha: String,
    /// What started it: `push`, `web`, `schedule`, `merge_request_event`, `parent_pipeline`,
    /// `pipeline` (another project), `trigger`, `api`, ….
    pub source: Option<String>,
    /// `created`, `waiting_for_resource`, `preparing`, `pending`, `running`, `success`, `failed`,
    /// `canceling`, `canceled`, `skipped`, `manual` or `scheduled`.
    pub status: String,
    /// GitLab's detailed status (`passed`, `failed`, …), when sent.
    pub detailed_status: Option<String>,
    /// Stage names in order.
    pub stages: Vec<String>,
    /// Creation time (RFC 3339 when parseable).
    pub created_at: Option<String>,
    /// Finish time (RFC 3339 when parseable).
    pub finished_at: Option<String>,
    /// Run time in seconds.
    pub duration: Option<u64>,
    /// Run time for people (`1m 3s`).
    pub duration_text: Option<String>,
    /// Seconds it waited for a runner.
    pub queued_duration: Option<u64>,
    /// Web page of the pipeline.
    pub url: Option<String>,
    /// The commit it ran on.
    pub commit: Option<Commit>,
    /// The merge request, for merge request pipelines.
    pub merge_request: Option<MergeRequestRef>,
    /// True for a child pipeline (`source` is `parent_pipeline`, or its upstream is the same project).
    pub child: bool,
    /// The pipeline that triggered this one (child and multi-project pipelines).
    pub upstream: Option<UpstreamPipeline>,
    /// Failed jobs, oldest first, at most 10.
    pub failed_jobs: Vec<JobSummary>,
    /// How many jobs failed in all.
    pub failed_jobs_total: u64,
    /// Failed jobs not listed (`failed_jobs_total` − listed).
    pub more_failed_jobs: u64,
    /// How many jobs GitLab listed.
    pub jobs_total: u64,
}

fn secs(v: &Value, path: &[&str]) -> Option<u64> {
    f64_at(v, path).map(|f| f.round().max(0.0) as u64)
}

pub(super) fn parse_pipeline(v: &Value, project: &Project) -> Parsed {
    let empty = Value::Null;
    let a = obj_at(v, &["object_attributes"]).unwrap_or(&empty);
    let status = str_at(a, &["status"]).unwrap_or_default();
    let id = u64_at(a, &["id"]);
    let source = str_at(a, &["source"]);
    let upstream = obj_at(v, &["source_pipeline"]).map(|s| {
        let project_url = url_at(s, &["project", "web_url"]);
        let pid = u64_at(s, &["pipeline_id"]);
        UpstreamPipeline {
            id: pid,
            job_id: u64_at(s, &["job_id"]),
            project_path: str_at(s, &["project", "path_with_namespace"]),
            url: project_url
                .as_ref()
                .zip(pid)
                .map(|(u, i)| format!("{u}/-/pipelines/{i}")),
            project_url,
        }
    });
    let same_project = |u: &UpstreamPipeline| {
        obj_at(v, &["source_pipeline", "project"])
            .and_then(|p| u64_at(p, &["id"]))
            .is_some_and(|i| Some(i) == project.id)
            || (u.project_path.is_some() && u.project_path.as_deref() == Some(&project.path))
    };
    let child =
        source.as_deref() == Some("parent_pipeline") || upstream.as_ref().is_some_and(same_project);
    let builds = arr_at(v, &["builds"]);
    let mut failed: Vec<&Value> = builds
        .iter()
        .filter(|b| str_at(b, &["status"]).as_deref() == Some("failed"))
        .collect();
    failed.sort_by_key(|b| u64_at(b, &["id"]).unwrap_or(u64::MAX));
    let failed_jobs: Vec<JobSummary> = failed
        .iter()
        .take(FAILED_JOBS_SHOWN)
        .map(|b| {
            let jid = u64_at(b, &["id"]);
            JobSummary {
                id: jid,
                name: str_at(b, &["name"]).unwrap_or_else(|| "job".to_string()),
                stage: str_at(b, &["stage"]),
                status: str_at(b, &["status"]),
                failure_reason: str_at(b, &["failure_reason"]),
                allow_failure: bool_at(b, &["allow_failure"]).unwrap_or(false),
                duration_text: f64_at(b, &["duration"]).map(duration_text),
                url: jid.and_then(|j| under(project, &format!("jobs/{j}"))),
            }
        })
        .collect();
    let sha = str_at(a, &["sha"]).unwrap_or_default();
    let merge_request = obj_at(v, &["merge_request"]).map(|m| MergeRequestRef {
        iid: u64_at(m, &["iid"]),
        title: str_at(m, &["title"]).unwrap_or_else(|| "(untitled)".to_string()),
        url: url_at(m, &["url"]),
        source_branch: str_at(m, &["source_branch"]),
        target_branch: str_at(m, &["target_branch"]),
        state: str_at(m, &["state"]),
    });
    let mut p = keyed("pipeline", Some(&status), status_verb);
    p.detail = Detail::Pipeline(Box::new(Pipeline {
        id,
        iid: u64_at(a, &["iid"]),
        name: str_at(a, &["name"]),
        git_ref: str_at(a, &["ref"]).unwrap_or_default(),
        tag: bool_at(a, &["tag"]).unwrap_or(false),
        short_sha: short(&sha),
        sha,
        source,
        detailed_status: str_at(a, &["detailed_status"]),
        stages: arr_at(a, &["stages"])
            .iter()
            .filter_map(|s| s.as_str().map(str::to_string))
            .collect(),
        created_at: timestamp(a, &["created_at"]),
        finished_at: timestamp(a, &["finished_at"]),
        duration: secs(a, &["duration"]),
        duration_text: f64_at(a, &["duration"]).map(duration_text),
        queued_duration: secs(a, &["queued_duration"]),
        url: url_at(a, &["url"])
            .or_else(|| id.and_then(|i| under(project, &format!("pipelines/{i}")))),
        commit: obj_at(v, &["commit"]).map(Commit::from_obj),
        merge_request,
        child,
        upstream,
        failed_jobs_total: failed.len() as u64,
        more_failed_jobs: failed.len().saturating_sub(FAILED_JOBS_SHOWN) as u64,
        failed_jobs,
        jobs_total: builds.len() as u64,
        status,
    }));
    p
}

/// A job's status change (`object_kind: build`).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Job {
    /// Job id.
    pub id: Option<u64>,
    /// Job name.
    pub name: String,
    /// Stage name.
    pub stage: Option<String>,
    /// `created`, `pending`, `running`, `success`, `failed`, `canceled`, `skipped`, `manual`, ….
    pub status: String,
    /// Branch or tag it ran for.
    #[serde(rename = "ref")]
    pub git_ref: String,
    /// Whether `ref` is a tag.
    pub tag: bool,
    /// Commit id.
    pub sha: String,
    /// First characters of the commit id.
    pub short_sha: String,
    /// First line of the commit message.
    pub commit_title: Option<String>,
    /// Web page of the commit.
    pub commit_url: Option<String>,
    /// Creation time (RFC 3339 when parseable).
    pub created_at: Option<String>,
    /// Start time (RFC 3339 when parseable).
    pub started_at: Option<String>,
    /// Finish time (RFC 3339 when parseable).
    pub finished_at: Option<String>,
    /// Run time in seconds.
    pub duration: Option<u64>,
    /// Run time for people (`1m 3s`).
    pub duration_text: Option<String>,
    /// Seconds it waited for a runner.
    pub queued_duration: Option<u64>,
    /// Whether the pipeline may pass although this job fails.
    pub allow_failure: bool,
    /// Why it failed (`script_failure`, …); only meaningful when `status` is `failed`.
    pub failure_reason: Option<String>,
    /// How many times it was retried.
    pub retries: u64,
    /// Web page of the job.
    pub url: Option<String>,
    /// Id of its pipeline.
    pub pipeline_id: Option<u64>,
    /// Web page of its pipeline.
    pub pipeline_url: Option<String>,
    /// Description of the runner that took it.
    pub runner: Option<String>,
    /// Environment it deploys to, if any.
    pub environment: Option<String>,
}

pub(super) fn parse_job(v: &Value, project: &Project) -> Parsed {
    let status = str_at(v, &["build_status"]).unwrap_or_default();
    let id = u64_at(v, &["build_id"]);
    let pipeline_id = u64_at(v, &["pipeline_id"]);
    let sha = str_at(v, &["sha"])
        .or_else(|| str_at(v, &["commit", "sha"]))
        .unwrap_or_default();
    let failed = status == "failed";
    let mut p = keyed("job", Some(&status), status_verb);
    p.detail = Detail::Job(Box::new(Job {
        id,
        name: str_at(v, &["build_name"]).unwrap_or_else(|| "job".to_string()),
        stage: str_at(v, &["build_stage"]),
        git_ref: str_at(v, &["ref"]).unwrap_or_default(),
        tag: bool_at(v, &["tag"]).unwrap_or(false),
        short_sha: short(&sha),
        commit_title: str_at(v, &["commit", "message"]).map(|m| first_line(&m)),
        commit_url: (!sha.is_empty())
            .then(|| under(project, &format!("commit/{sha}")))
            .flatten(),
        sha,
        created_at: timestamp(v, &["build_created_at"]),
        started_at: timestamp(v, &["build_started_at"]),
        finished_at: timestamp(v, &["build_finished_at"]),
        duration: secs(v, &["build_duration"]),
        duration_text: f64_at(v, &["build_duration"]).map(duration_text),
        queued_duration: secs(v, &["build_queued_duration"]),
        allow_failure: bool_at(v, &["build_allow_failure"]).unwrap_or(false),
        failure_reason: str_at(v, &["build_failure_reason"]).filter(|_| failed),
        retries: u64_at(v, &["retries_count"]).unwrap_or(0),
        url: id.and_then(|j| under(project, &format!("jobs/{j}"))),
        pipeline_url: pipeline_id.and_then(|i| under(project, &format!("pipelines/{i}"))),
        pipeline_id,
        runner: str_at(v, &["runner", "description"]),
        environment: str_at(v, &["environment", "name"])
            .or_else(|| str_at(v, &["environment"]).filter(|_| !v["environment"].is_object())),
        status,
    }));
    p
}

// ---------------------------------------------------------------------------------------------
// Releases, wiki pages, deployments, milestones

fn crud_verb(w: &str) -> Option<&'static str> {
    Some(match w {
        "create" => "created",
        "update" => "updated",
        "delete" => "deleted",
        _ => return None,
    })
}

/// A link attached to a release.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct ReleaseLink {
    /// Link text.
    pub name: String,
    /// Target.
    pub url: Option<String>,
    /// `other`, `runbook`, `image`, `package`.
    pub link_type: Option<String>,
}

/// A release created, edited or deleted.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Release {
    /// Release id.
    pub id: Option<u64>,
    /// Release name (the tag when unnamed).
    pub name: String,
    /// Tag it is built on.
    pub tag: String,
    /// Release notes.
    pub description: Option<String>,
    /// Web page of the release.
    pub url: Option<String>,
    /// Creation time (RFC 3339 when parseable).
    pub created_at: Option<String>,
    /// Release time (RFC 3339 when parseable; may be in the future).
    pub released_at: Option<String>,
    /// The tagged commit.
    pub commit: Option<Commit>,
    /// Links attached to the release (packages, changelog, …).
    pub links: Vec<ReleaseLink>,
    /// How many assets it has (links and source archives).
    pub assets_count: Option<u64>,
}

pub(super) fn parse_release(v: &Value, action: Option<&str>) -> Parsed {
    let tag = str_at(v, &["tag"]).unwrap_or_default();
    let mut p = keyed("release", action, crud_verb);
    p.detail = Detail::Release(Box::new(Release {
        id: u64_at(v, &["id"]),
        name: str_at(v, &["name"]).unwrap_or_else(|| tag.clone()),
        description: str_at(v, &["description"]),
        url: url_at(v, &["url"]),
        created_at: timestamp(v, &["created_at"]),
        released_at: timestamp(v, &["released_at"]),
        commit: obj_at(v, &["commit"]).map(Commit::from_obj),
        links: arr_at(v, &["assets", "links"])
            .iter()
            .map(|l| ReleaseLink {
                name: str_at(l, &["name"]).unwrap_or_else(|| "link".to_string()),
                url: url_at(l, &["url"]),
                link_type: str_at(l, &["link_type"]),
            })
            .collect(),
        assets_count: u64_at(v, &["assets", "count"]),
        tag,
    }));
    p
}

/// A wiki page created, edited or deleted.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct WikiPage {
    /// Page title.
    pub title: String,
    /// Page slug (its path in the wiki).
    pub slug: Option<String>,
    /// Web page.
    pub url: Option<String>,
    /// Web page of this version's diff.
    pub diff_url: Option<String>,
    /// The edit's commit message.
    pub message: Option<String>,
    /// Page text (markup as written).
    pub content: Option<String>,
    /// `markdown`, `rdoc`, `asciidoc`, `org`.
    pub format: Option<String>,
    /// Web page of the wiki's home.
    pub wiki_url: Option<String>,
}

pub(super) fn parse_wiki_page(v: &Value, action: Option<&str>) -> Parsed {
    let empty = Value::Null;
    let a = obj_at(v, &["object_attributes"]).unwrap_or(&empty);
    let mut p = keyed("wiki_page", action, crud_verb);
    p.detail = Detail::WikiPage(Box::new(WikiPage {
        title: str_at(a, &["title"])
            .or_else(|| str_at(a, &["slug"]))
            .unwrap_or_else(|| "(untitled)".to_string()),
        slug: str_at(a, &["slug"]),
        url: url_at(a, &["url"]),
        diff_url: url_at(a, &["diff_url"]),
        message: str_at(a, &["message"]),
        content: str_at(a, &["content"]),
        format: str_at(a, &["format"]),
        wiki_url: url_at(v, &["wiki", "web_url"]),
    }));
    p
}

/// A deployment's status change.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Deployment {
    /// Deployment id.
    pub id: Option<u64>,
    /// `created`, `running`, `success`, `failed`, `canceled`, `skipped` or `blocked`.
    pub status: String,
    /// When the status changed (RFC 3339 when parseable).
    pub status_changed_at: Option<String>,
    /// Environment name (`staging`).
    pub environment: String,
    /// Environment tier (`production`, `staging`, …).
    pub environment_tier: Option<String>,
    /// The environment's own address (`environment_external_url`).
    pub environment_url: Option<String>,
    /// Branch or tag deployed, when GitLab says.
    #[serde(rename = "ref")]
    pub git_ref: Option<String>,
    /// First characters of the deployed commit.
    pub short_sha: Option<String>,
    /// Web page of the deployed commit.
    pub commit_url: Option<String>,
    /// First line of the deployed commit's message.
    pub commit_title: Option<String>,
    /// Id of the job that deploys.
    pub job_id: Option<u64>,
    /// Web page of the job that deploys.
    pub job_url: Option<String>,
    /// The best page to open: the job, else the commit, else the environment.
    pub url: Option<String>,
}

fn deploy_verb(w: &str) -> Option<&'static str> {
    Some(match w {
        "created" => "created a deployment of",
        "running" => "is deploying",
        "success" => "deployed",
        "failed" => "failed to deploy",
        "canceled" => "canceled the deployment of",
        "skipped" => "skipped the deployment of",
        "blocked" => "is waiting to deploy",
        _ => return None,
    })
}

pub(super) fn parse_deployment(v: &Value) -> Parsed {
    let status = str_at(v, &["status"]).unwrap_or_default();
    let job_url = url_at(v, &["deployable_url"]);
    let commit_url = url_at(v, &["commit_url"]);
    let environment_url = url_at(v, &["environment_external_url"]);
    let mut p = keyed("deployment", Some(&status), deploy_verb);
    p.detail = Detail::Deployment(Box::new(Deployment {
        id: u64_at(v, &["deployment_id"]),
        status_changed_at: timestamp(v, &["status_changed_at"]),
        environment: str_at(v, &["environment"]).unwrap_or_else(|| "an environment".into()),
        environment_tier: str_at(v, &["environment_tier"]),
        git_ref: str_at(v, &["ref"]),
        short_sha: str_at(v, &["short_sha"]),
        commit_title: str_at(v, &["commit_title"]).map(|t| first_line(&t)),
        job_id: u64_at(v, &["deployable_id"]),
        url: job_url
            .clone()
            .or_else(|| commit_url.clone())
            .or_else(|| environment_url.clone()),
        job_url,
        commit_url,
        environment_url,
        status,
    }));
    p
}

/// A milestone created, closed, reopened or deleted.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Milestone {
    /// Global id.
    pub id: Option<u64>,
    /// Project- or group-scoped number.
    pub iid: Option<u64>,
    /// Title (`v1.0`).
    pub title: String,
    /// Description.
    pub description: Option<String>,
    /// `active` or `closed`.
    pub state: Option<String>,
    /// Calendar date `YYYY-MM-DD`.
    pub start_date: Option<String>,
    /// Calendar date `YYYY-MM-DD`.
    pub due_date: Option<String>,
    /// Web page (project milestones only: GitLab sends no URL).
    pub url: Option<String>,
    /// The group, for group milestones.
    pub group: Option<Group>,
    /// Creation time (RFC 3339 when parseable).
    pub created_at: Option<String>,
    /// Last update time (RFC 3339 when parseable).
    pub updated_at: Option<String>,
}

fn milestone_verb(w: &str) -> Option<&'static str> {
    Some(match w {
        "create" => "created",
        "update" => "updated",
        "close" => "closed",
        "reopen" => "reopened",
        "delete" => "deleted",
        _ => return None,
    })
}

pub(super) fn parse_milestone(v: &Value, project: &Project, action: Option<&str>) -> Parsed {
    let empty = Value::Null;
    let a = obj_at(v, &["object_attributes"]).unwrap_or(&empty);
    let iid = u64_at(a, &["iid"]);
    let mut p = keyed("milestone", action, milestone_verb);
    p.detail = Detail::Milestone(Box::new(Milestone {
        id: u64_at(a, &["id"]),
        title: str_at(a, &["title"]).unwrap_or_else(|| "(untitled)".to_string()),
        description: str_at(a, &["description"]),
        state: str_at(a, &["state"]),
        start_date: str_at(a, &["start_date"]).map(|d| time::normalize(&d)),
        due_date: str_at(a, &["due_date"]).map(|d| time::normalize(&d)),
        url: url_at(a, &["url"])
            .or_else(|| iid.and_then(|i| under(project, &format!("milestones/{i}")))),
        group: obj_at(v, &["group"]).and_then(Group::from_fields),
        created_at: timestamp(a, &["created_at"]),
        updated_at: timestamp(a, &["updated_at"]),
        iid,
    }));
    p
}

// ---------------------------------------------------------------------------------------------
// Emoji reactions and feature flags

/// Common emoji names and their characters; others are shown as `:name:`.
const EMOJI: [(&str, &str); 26] = [
    ("thumbsup", "👍"),
    ("+1", "👍"),
    ("thumbsdown", "👎"),
    ("-1", "👎"),
    ("heart", "❤️"),
    ("tada", "🎉"),
    ("rocket", "🚀"),
    ("eyes", "👀"),
    ("smile", "😄"),
    ("smiley", "😃"),
    ("laughing", "😆"),
    ("joy", "😂"),
    ("slight_smile", "🙂"),
    ("confused", "😕"),
    ("thinking", "🤔"),
    ("white_check_mark", "✅"),
    ("heavy_check_mark", "✔️"),
    ("x", "❌"),
    ("fire", "🔥"),
    ("clap", "👏"),
    ("pray", "🙏"),
    ("100", "💯"),
    ("star", "⭐"),
    ("ok_hand", "👌"),
    ("warning", "⚠️"),
    ("bug", "🐛"),
];

/// An emoji reaction added or removed.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Emoji {
    /// GitLab's name of the emoji (`thumbsup`).
    pub name: String,
    /// The emoji itself when it is a common one (`👍`), else `:name:`.
    pub emoji: String,
    /// What it is on: `issue`, `merge_request`, `note`, `snippet`, `commit`, … (snake case).
    pub target: String,
    /// Short human name of the target (`issue #42`, `a comment on issue #42`, `merge request !1`).
    pub target_label: String,
    /// Title of the target (of the issue or merge request a comment is on).
    pub target_title: String,
    /// Web page of the target (`awarded_on_url`).
    pub target_url: Option<String>,
    /// The comment's text, for reactions on comments.
    pub note: Option<String>,
}

fn emoji_verb(w: &str) -> Option<&'static str> {
    Some(match w {
        "award" => "reacted to",
        "revoke" => "removed a reaction from",
        _ => return None,
    })
}

/// Snake case of a GitLab class name (`MergeRequest` → `merge_request`).
fn snake(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 4);
    for (i, c) in s.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    key_word(&out)
}

/// (label, title, url) of the issue, merge request, snippet or commit of a payload.
fn noteable(v: &Value, kind: &str) -> (String, String, Option<String>) {
    let title = |o: &Value| str_at(o, &["title"]).unwrap_or_default();
    match kind {
        "issue" | "work_item" => {
            let o = obj_at(v, &["issue"]).or_else(|| obj_at(v, &["work_item"]));
            let label = o
                .and_then(|o| u64_at(o, &["iid"]))
                .map_or("an issue".into(), |n| format!("issue #{n}"));
            (
                label,
                o.map(title).unwrap_or_default(),
                o.and_then(|o| url_at(o, &["url"])),
            )
        }
        "merge_request" => {
            let o = obj_at(v, &["merge_request"]);
            let label = o
                .and_then(|o| u64_at(o, &["iid"]))
                .map_or("a merge request".into(), |n| format!("merge request !{n}"));
            (
                label,
                o.map(title).unwrap_or_default(),
                o.and_then(|o| url_at(o, &["url"])),
            )
        }
        "snippet" => {
            let o = obj_at(v, &["snippet"]);
            let label = o
                .and_then(|o| u64_at(o, &["id"]))
                .map_or("a snippet".into(), |n| format!("snippet ${n}"));
            (
                label,
                o.map(title).unwrap_or_default(),
                o.and_then(|o| url_at(o, &["url"])),
            )
        }
        "commit" => {
            let c = obj_at(v, &["commit"]).map(Commit::from_obj);
            let label = c
                .as_ref()
                .map_or("a commit".into(), |c| format!("commit {}", c.short_id));
            (
                label,
                c.as_ref().map(|c| c.title.clone()).unwrap_or_default(),
                c.and_then(|c| c.url),
            )
        }
        other => (other.replace('_', " "), String::new(), None),
    }
}

pub(super) fn parse_emoji(v: &Value, action: Option<&str>) -> Parsed {
    let empty = Value::Null;
    let a = obj_at(v, &["object_attributes"]).unwrap_or(&empty);
    let name = str_at(a, &["name"]).unwrap_or_else(|| "emoji".to_string());
    let emoji = EMOJI
        .iter()
        .find(|(n, _)| *n == name)
        .map_or_else(|| format!(":{name}:"), |(_, e)| (*e).to_string());
    let target = snake(&str_at(a, &["awardable_type"]).unwrap_or_default());
    let (target_label, target_title, url, note) = if target == "note" {
        let parent = snake(&str_at(v, &["note", "noteable_type"]).unwrap_or_default());
        let (label, title, url) = noteable(v, &parent);
        (
            format!("a comment on {label}"),
            title,
            url_at(v, &["note", "url"]).or(url),
            str_at(v, &["note", "note"]),
        )
    } else {
        let (label, title, url) = noteable(v, &target);
        (label, title, url, None)
    };
    let action = action.or_else(|| v.get("event_type").and_then(Value::as_str));
    let mut p = keyed("emoji", action, emoji_verb);
    p.detail = Detail::Emoji(Box::new(Emoji {
        name,
        emoji,
        target_title: if target_title.is_empty() {
            target_label.clone()
        } else {
            target_title
        },
        target_url: url_at(a, &["awarded_on_url"]).or(url),
        target,
        target_label,
        note,
    }));
    p
}

/// A feature flag turned on or off.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct FeatureFlag {
    /// Flag id.
    pub id: Option<u64>,
    /// Flag name.
    pub name: String,
    /// Description.
    pub description: Option<String>,
    /// Whether it is on now.
    pub active: bool,
    /// Web page of the project's feature flags.
    pub url: Option<String>,
}

fn flag_verb(w: &str) -> Option<&'static str> {
    Some(match w {
        "on" => "turned on",
        "off" => "turned off",
        _ => return None,
    })
}

pub(super) fn parse_feature_flag(v: &Value, project: &Project) -> Parsed {
    let empty = Value::Null;
    let a = obj_at(v, &["object_attributes"]).unwrap_or(&empty);
    let active = bool_at(a, &["active"]);
    let word = active.map(|on| if on { "on" } else { "off" });
    let mut p = keyed("feature_flag", word, flag_verb);
    p.detail = Detail::FeatureFlag(Box::new(FeatureFlag {
        id: u64_at(a, &["id"]),
        name: str_at(a, &["name"]).unwrap_or_else(|| "(unnamed)".to_string()),
        description: str_at(a, &["description"]),
        active: active.unwrap_or(false),
        url: under(project, "feature_flags"),
    }));
    p
}

// ---------------------------------------------------------------------------------------------
// Access tokens, members, group projects, subgroups, vulnerabilities

/// A project or group access token about to expire.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct AccessToken {
    /// Token id.
    pub id: Option<u64>,
    /// Token name.
    pub name: String,
    /// `project` or `group`: what the token belongs to.
    pub scope: &'static str,
    /// Calendar date `YYYY-MM-DD` it expires on.
    pub expires_at: Option<String>,
    /// Creation time (RFC 3339 when parseable).
    pub created_at: Option<String>,
    /// The group, for group tokens.
    pub group: Option<Group>,
    /// Web page of the project's access tokens (project tokens only: GitLab sends no group URL).
    pub url: Option<String>,
}

fn token_verb(w: &str) -> Option<&'static str> {
    Some(match w {
        "expiring" => "expires",
        _ => return None,
    })
}

pub(super) fn parse_access_token(v: &Value, project: &Project) -> Parsed {
    let empty = Value::Null;
    let a = obj_at(v, &["object_attributes"]).unwrap_or(&empty);
    let group = obj_at(v, &["group"]).and_then(Group::from_fields);
    let is_project = obj_at(v, &["project"]).is_some();
    let word = str_at(v, &["event_name"]).map(|n| match n.as_str() {
        "expiring_access_token" => "expiring".to_string(),
        other => other.trim_end_matches("_access_token").to_string(),
    });
    let mut p = keyed("access_token", word.as_deref(), token_verb);
    p.detail = Detail::AccessToken(Box::new(AccessToken {
        id: u64_at(a, &["id"]),
        name: str_at(a, &["name"]).unwrap_or_else(|| "(unnamed)".to_string()),
        scope: if is_project || group.is_none() {
            "project"
        } else {
            "group"
        },
        expires_at: str_at(a, &["expires_at"]).map(|d| time::normalize(&d)),
        created_at: timestamp(a, &["created_at"]),
        url: is_project
            .then(|| under(project, "settings/access_tokens"))
            .flatten(),
        group,
    }));
    p
}

/// A group membership change (group webhooks; no URL in the payload).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Member {
    /// The member (also `actor`: the payload names no one else).
    pub user: User,
    /// The group.
    pub group: Group,
    /// Access level name (`Guest`, `Developer`, …).
    pub access: Option<String>,
    /// When the membership ends (RFC 3339 when parseable).
    pub expires_at: Option<String>,
    /// When the membership was created (RFC 3339 when parseable).
    pub created_at: Option<String>,
}

fn member_verb(w: &str) -> Option<&'static str> {
    Some(match w {
        "add" => "was added to",
        "remove" => "was removed from",
        "update" => "had their access changed in",
        "access_request" => "requested access to",
        "access_request_denied" => "was denied access to",
        _ => return None,
    })
}

pub(super) fn parse_member(v: &Value, actor: &User) -> Parsed {
    let word = str_at(v, &["event_name"]).map(|n| {
        let n = n.strip_prefix("user_").unwrap_or(&n);
        match n {
            "add_to_group" => "add".to_string(),
            "remove_from_group" => "remove".to_string(),
            "update_for_group" => "update".to_string(),
            "access_request_to_group" => "access_request".to_string(),
            "access_request_denied_for_group" => "access_request_denied".to_string(),
            other => other.to_string(),
        }
    });
    let mut p = keyed("member", word.as_deref(), member_verb);
    p.detail = Detail::Member(Box::new(Member {
        user: actor.clone(),
        group: Group::from_fields(v).unwrap_or_default(),
        access: str_at(v, &["group_access"]),
        expires_at: timestamp(v, &["expires_at"]),
        created_at: timestamp(v, &["created_at"]),
    }));
    p
}

/// A project created, deleted, renamed or moved in a group (group webhooks; no URL in the payload).
/// The project itself is the event's `project`.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ProjectEvent {
    /// `private`, `internal` or `public`.
    pub visibility: Option<String>,
    /// The project's owners.
    pub owners: Vec<User>,
    /// The path before a rename or transfer.
    pub old_path: Option<String>,
}

fn project_verb(w: &str) -> Option<&'static str> {
    Some(match w {
        "create" => "was created",
        "destroy" => "was deleted",
        "rename" => "was renamed",
        "transfer" => "was transferred",
        "update" => "was updated",
        _ => return None,
    })
}

pub(super) fn parse_project_event(v: &Value, project: &mut Project) -> Parsed {
    let word = str_at(v, &["event_name"])
        .map(|n| n.strip_prefix("project_").map_or(n.clone(), str::to_string));
    if project.path.is_empty() {
        project.name = str_at(v, &["name"]).unwrap_or_default();
        project.path = str_at(v, &["path_with_namespace"]).unwrap_or_else(|| project.name.clone());
    }
    let mut p = keyed("project", word.as_deref(), project_verb);
    let mut owners = super::changes::people_at(v, &["owners"]);
    if owners.is_empty() {
        // System hooks name one owner in flat fields.
        if let Some(name) = str_at(v, &["owner_name"]) {
            owners.push(User::from_parts(
                Some(name),
                None,
                str_at(v, &["owner_email"]),
                None,
            ));
        }
    }
    p.detail = Detail::ProjectEvent(Box::new(ProjectEvent {
        visibility: str_at(v, &["project_visibility"]),
        owners,
        old_path: str_at(v, &["old_path_with_namespace"]),
    }));
    p
}

/// A subgroup created or deleted (group webhooks; no URL in the payload).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Subgroup {
    /// Group id.
    pub id: Option<u64>,
    /// Name.
    pub name: String,
    /// Full path (`parent/child`).
    pub full_path: String,
    /// The parent group.
    pub parent: Option<Group>,
}

fn subgroup_verb(w: &str) -> Option<&'static str> {
    Some(match w {
        "create" => "was created",
        "destroy" => "was deleted",
        _ => return None,
    })
}

pub(super) fn parse_subgroup(v: &Value) -> Parsed {
    let word = str_at(v, &["event_name"]).map(|n| {
        n.strip_prefix("subgroup_")
            .map_or(n.clone(), str::to_string)
    });
    let name = str_at(v, &["name"]).unwrap_or_default();
    let mut p = keyed("subgroup", word.as_deref(), subgroup_verb);
    p.detail = Detail::Subgroup(Box::new(Subgroup {
        id: u64_at(v, &["group_id"]),
        full_path: str_at(v, &["full_path"])
            .or_else(|| str_at(v, &["path"]))
            .unwrap_or_else(|| name.clone()),
        name,
        parent: str_at(v, &["parent_full_path"]).map(|full_path| Group {
            id: u64_at(v, &["parent_group_id"]),
            name: str_at(v, &["parent_name"]).unwrap_or_else(|| full_path.clone()),
            full_path,
        }),
    }));
    p
}

/// A vulnerability found or changing state.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Vulnerability {
    /// Title (`REXML DoS vulnerability`).
    pub title: String,
    /// Web page.
    pub url: Option<String>,
    /// `detected`, `confirmed`, `resolved` or `dismissed`.
    pub state: String,
    /// `critical`, `high`, `medium`, `low`, `info`, `unknown`.
    pub severity: Option<String>,
    /// `confirmed`, `unknown`, ….
    pub confidence: Option<String>,
    /// Scanner kind (`dependency_scanning`, `sast`, …).
    pub report_type: Option<String>,
    /// File it was found in.
    pub file: Option<String>,
    /// Identifier names (`CVE-2024-41123`, …).
    pub identifiers: Vec<String>,
    /// Creation time (RFC 3339 when parseable).
    pub created_at: Option<String>,
}

fn vulnerability_verb(w: &str) -> Option<&'static str> {
    Some(match w {
        "detected" => "detected",
        "confirmed" => "confirmed",
        "resolved" => "resolved",
        "dismissed" => "dismissed",
        _ => return None,
    })
}

pub(super) fn parse_vulnerability(v: &Value, project: &mut Project) -> Parsed {
    let empty = Value::Null;
    let a = obj_at(v, &["object_attributes"]).unwrap_or(&empty);
    let url = url_at(a, &["url"]);
    // The payload names the project only by id; its page is the part of the URL before `/-/`.
    if project.url.is_none() {
        if let Some((base, _)) = url.as_deref().and_then(|u| u.split_once("/-/")) {
            project.url = Some(base.to_string());
            if project.path.is_empty() {
                let after_host = base
                    .split_once("://")
                    .and_then(|(_, rest)| rest.split_once('/'))
                    .map(|(_, path)| path.to_string());
                project.path = after_host.unwrap_or_default();
            }
        }
    }
    let state = str_at(a, &["state"]).unwrap_or_default();
    let mut p = keyed("vulnerability", Some(&state), vulnerability_verb);
    p.detail = Detail::Vulnerability(Box::new(Vulnerability {
        title: str_at(a, &["title"]).unwrap_or_else(|| "(untitled)".to_string()),
        url,
        severity: str_at(a, &["severity"]),
        confidence: str_at(a, &["confidence"]),
        report_type: str_at(a, &["report_type"]),
        file: str_at(a, &["location", "file"]),
        identifiers: arr_at(a, &["identifiers"])
            .iter()
            .filter_map(|i| str_at(i, &["name"]))
            .collect(),
        created_at: timestamp(a, &["created_at"]),
        state,
    }));
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_well() {
        assert_eq!(duration_text(0.0), "0s");
        assert_eq!(duration_text(17.4), "17s");
        assert_eq!(duration_text(63.0), "1m 3s");
        assert_eq!(duration_text(7322.0), "2h 2m");
        assert_eq!(duration_text(-5.0), "0s");
    }

    #[test]
    fn segments_and_class_names() {
        assert_eq!(segment("v1#2 ?%"), "v1%232%20%3F%25");
        assert_eq!(snake("MergeRequest"), "merge_request");
        assert_eq!(snake("Note"), "note");
        assert_eq!(snake(""), "unknown");
    }
}
