//! Pipelines: `Pipeline Hook`, keyed by status (`pipeline.failed`), with the failed jobs, the
//! merge request and the pipeline that triggered this one (child and multi-project pipelines).

use crate::event::shared::{duration_text, short, timestamp, under, Commit};
use crate::event::table::{each_action, with, Action, Input, Parsed, Variant};
use crate::event::value::{arr_at, bool_at, f64_at, obj_at, str_at, u64_at, url_at};
use crate::event::variables::KindVariables;
use crate::event::Detail;
use serde::Serialize;
use serde_json::Value;

/// How many failed jobs a pipeline lists; `more_failed_jobs` counts the rest.
pub const FAILED_JOBS_SHOWN: usize = 10;

/// Pipeline (and job) statuses; the subject is the pipeline or job.
pub(super) const ACTIONS: &[Action] = &[
    Action::new("created", "was created"),
    Action::new("waiting_for_resource", "is waiting for a resource"),
    Action::new("preparing", "is preparing"),
    Action::new("pending", "is pending"),
    Action::new("running", "is running"),
    Action::new("success", "passed"),
    Action::new("failed", "failed"),
    Action::new("canceling", "is being canceled"),
    Action::new("canceled", "was canceled"),
    Action::new("skipped", "was skipped"),
    Action::new("manual", "is waiting for a manual action"),
    Action::new("scheduled", "is scheduled"),
];

/// The further key of a pipeline that passed on a ref whose last finished pipeline failed.
pub const PIPELINE_FIXED: &str = "pipeline.fixed";
/// The further key of a pipeline that failed on a ref whose last finished pipeline passed.
pub const PIPELINE_BROKEN: &str = "pipeline.broken";

/// What a finished pipeline leaves to remember about its ref: the memory key (project and ref)
/// and its status. Only `success` and `failed` count (a canceled or skipped pipeline says
/// nothing about the ref), and child pipelines do not speak for their ref.
pub(crate) fn pipeline_ref_status(x: &Pipeline, project_key: &str) -> Option<(String, String)> {
    let conclusive = matches!(x.status.as_str(), "success" | "failed");
    (conclusive && !x.child && !x.git_ref.is_empty()).then(|| {
        (
            format!("pipeline-status/{project_key}/{}", x.git_ref),
            x.status.clone(),
        )
    })
}

/// The further key of a finished pipeline whose ref last finished with `previous`:
/// [`PIPELINE_FIXED`], [`PIPELINE_BROKEN`], or none (no change, or nothing known before).
pub(crate) fn pipeline_status_change(previous: Option<&str>, now: &str) -> Option<&'static str> {
    match (previous?, now) {
        ("failed", "success") => Some(PIPELINE_FIXED),
        ("success", "failed") => Some(PIPELINE_BROKEN),
        _ => None,
    }
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

/// Whole seconds at `path`.
pub(super) fn secs(v: &Value, path: &[&str]) -> Option<u64> {
    f64_at(v, path).map(|f| f.round().max(0.0) as u64)
}

/// A pipeline's status change.
pub(super) fn parse(input: &mut Input<'_>) -> Option<Parsed> {
    let (v, a, project) = (input.v, input.attrs(), &input.project);
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
    let keyed = input.keyed(Some(&status));
    let pipeline = Pipeline {
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
    };
    Some(keyed.with(Detail::Pipeline(Box::new(pipeline))))
}

/// Messages about one pipeline (and its jobs) stay in order.
pub(super) fn object_key(x: &Pipeline, p: &str) -> String {
    format!("{p}/pipeline/{}", x.id.unwrap_or(0))
}

/// The sample with each status, and a failed child pipeline.
pub(super) fn variants(base: &Value) -> Vec<Variant> {
    let mut out = each_action(base, &["object_attributes", "status"], ACTIONS, "status");
    let child = with(
        &with(
            base,
            &["object_attributes", "source"],
            Value::from("parent_pipeline"),
        ),
        &["object_attributes", "status"],
        Value::from("failed"),
    );
    out.push(("child pipeline, failed".into(), child));
    out
}

/// Template variables of pipelines.
pub(super) const VARIABLES: KindVariables = (
    "pipeline",
    &[
        ("pipeline", "the pipeline"),
        ("pipeline.id", "global id (the number in its URL)"),
        ("pipeline.iid", "project-scoped number"),
        ("pipeline.name", "its name, when it has one"),
        ("pipeline.ref", "branch or tag it ran for"),
        ("pipeline.tag", "whether `ref` is a tag"),
        ("pipeline.sha", "commit id"),
        ("pipeline.short_sha", "first 8 characters of the commit id"),
        ("pipeline.source", "what started it: `push`, `web`, `schedule`, `merge_request_event`, `parent_pipeline`, `pipeline`, `trigger`, `api`, …"),
        ("pipeline.status", "`created`, `waiting_for_resource`, `preparing`, `pending`, `running`, `success`, `failed`, `canceling`, `canceled`, `skipped`, `manual`, `scheduled`"),
        ("pipeline.detailed_status", "GitLab's detailed status (`passed`, …), when sent"),
        ("pipeline.stages", "stage names in order"),
        ("pipeline.created_at", "creation time (RFC 3339 when parseable)"),
        ("pipeline.finished_at", "finish time (RFC 3339 when parseable)"),
        ("pipeline.duration", "run time in seconds"),
        ("pipeline.duration_text", "run time for people (`1m 3s`)"),
        ("pipeline.queued_duration", "seconds it waited for a runner"),
        ("pipeline.url", "web page of the pipeline"),
        ("pipeline.commit", "the commit it ran on"),
        ("pipeline.commit.id", "full commit id"),
        ("pipeline.commit.short_id", "first 8 characters of the id"),
        ("pipeline.commit.title", "first line of the message"),
        ("pipeline.commit.message", "whole message"),
        ("pipeline.commit.url", "web page of the commit"),
        ("pipeline.commit.author_name", "author's name"),
        ("pipeline.commit.author_email", "author's e-mail"),
        ("pipeline.commit.timestamp", "when it was authored (RFC 3339 when parseable)"),
        ("pipeline.merge_request", "the merge request, for merge request pipelines"),
        ("pipeline.merge_request.iid", "project-scoped number (`!1`)"),
        ("pipeline.merge_request.title", "title"),
        ("pipeline.merge_request.url", "web page"),
        ("pipeline.merge_request.source_branch", "source branch"),
        ("pipeline.merge_request.target_branch", "target branch"),
        ("pipeline.merge_request.state", "`opened`, `merged`, …"),
        ("pipeline.child", "true for a child pipeline (`source` is `parent_pipeline`, or its upstream is the same project)"),
        ("pipeline.upstream", "the pipeline that triggered this one (child and multi-project pipelines)"),
        ("pipeline.upstream.id", "its pipeline id"),
        ("pipeline.upstream.job_id", "the job that triggered this pipeline"),
        ("pipeline.upstream.project_path", "`group/project` it ran in"),
        ("pipeline.upstream.project_url", "web page of that project"),
        ("pipeline.upstream.url", "web page of that pipeline"),
        ("pipeline.failed_jobs", "failed jobs, oldest first, at most 10"),
        ("pipeline.failed_jobs[].id", "job id"),
        ("pipeline.failed_jobs[].name", "job name"),
        ("pipeline.failed_jobs[].stage", "stage name"),
        ("pipeline.failed_jobs[].status", "`failed`, …"),
        ("pipeline.failed_jobs[].failure_reason", "why it failed (`script_failure`, …)"),
        ("pipeline.failed_jobs[].allow_failure", "whether the pipeline may pass although it failed"),
        ("pipeline.failed_jobs[].duration_text", "run time for people (`17s`)"),
        ("pipeline.failed_jobs[].url", "web page of the job"),
        ("pipeline.failed_jobs_total", "how many jobs failed in all"),
        ("pipeline.more_failed_jobs", "failed jobs not listed"),
        ("pipeline.jobs_total", "how many jobs GitLab listed"),
    ],
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_failed_to_success_and_back_are_changes() {
        let cases = [
            (None, "failed", None),
            (Some("success"), "failed", Some(PIPELINE_BROKEN)),
            (Some("failed"), "failed", None),
            (Some("failed"), "success", Some(PIPELINE_FIXED)),
            (Some("success"), "success", None),
            (Some("failed"), "canceled", None),
        ];
        for (before, now, want) in cases {
            assert_eq!(pipeline_status_change(before, now), want, "{before:?} → {now}");
        }
    }

    #[test]
    fn children_and_inconclusive_statuses_leave_the_ref_alone() {
        let v = serde_json::json!({"object_kind": "pipeline", "project": {"id": 7},
            "object_attributes": {"ref": "main", "status": "failed", "source": "push"}});
        let ev = |edit: &dyn Fn(&mut Value)| {
            let mut v = v.clone();
            edit(&mut v);
            match crate::event::parse(Some("Pipeline Hook"), v) {
                Ok(e) => e,
                Err(e) => panic!("{e}"),
            }
        };
        assert_eq!(
            ev(&|_| {}).ref_status(),
            Some(("pipeline-status/7/main".into(), "failed".into()))
        );
        let canceled = ev(&|v| v["object_attributes"]["status"] = "canceled".into());
        assert_eq!(canceled.ref_status(), None);
        let child = ev(&|v| v["object_attributes"]["source"] = "parent_pipeline".into());
        assert_eq!(child.ref_status(), None);
        let mut broken = ev(&|_| {});
        broken.note_ref_status(Some("success"));
        assert_eq!(broken.keys().collect::<Vec<_>>(), ["pipeline.failed", PIPELINE_BROKEN]);
        assert!(broken.status_changed());
    }
}
