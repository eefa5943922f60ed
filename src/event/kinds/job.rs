//! Jobs: `Job Hook`, or `Build Hook` from older GitLab (`object_kind: build` in both), keyed by
//! status like pipelines (`job.failed`).

use super::pipeline::{self, secs};
use crate::event::shared::{duration_text, first_line, short, timestamp, under};
use crate::event::table::{each_action, Action, Input, Parsed, Variant};
use crate::event::value::{bool_at, f64_at, str_at, u64_at};
use crate::event::variables::KindVariables;
use crate::event::Detail;
use serde::Serialize;
use serde_json::Value;

/// The statuses of pipelines.
pub(super) const ACTIONS: &[Action] = pipeline::ACTIONS;

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

/// A job's status change.
pub(super) fn parse(input: &mut Input<'_>) -> Option<Parsed> {
    let (v, project) = (input.v, &input.project);
    let status = str_at(v, &["build_status"]).unwrap_or_default();
    let id = u64_at(v, &["build_id"]);
    let pipeline_id = u64_at(v, &["pipeline_id"]);
    let sha = str_at(v, &["sha"])
        .or_else(|| str_at(v, &["commit", "sha"]))
        .unwrap_or_default();
    let failed = status == "failed";
    let keyed = input.keyed(Some(&status));
    let job = Job {
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
    };
    Some(keyed.with(Detail::Job(Box::new(job))))
}

/// Jobs stay in order with their pipeline.
pub(super) fn object_key(j: &Job, p: &str) -> String {
    format!("{p}/pipeline/{}", j.pipeline_id.unwrap_or(0))
}

/// The sample with each status.
pub(super) fn variants(base: &Value) -> Vec<Variant> {
    each_action(base, &["build_status"], ACTIONS, "status")
}

/// Template variables of jobs.
pub(super) const VARIABLES: KindVariables = (
    "job",
    &[
        ("job", "the job"),
        ("job.id", "job id"),
        ("job.name", "job name"),
        ("job.stage", "stage name"),
        ("job.status", "`created`, `pending`, `running`, `success`, `failed`, `canceled`, `skipped`, `manual`, …"),
        ("job.ref", "branch or tag it ran for"),
        ("job.tag", "whether `ref` is a tag"),
        ("job.sha", "commit id"),
        ("job.short_sha", "first 8 characters of the commit id"),
        ("job.commit_title", "first line of the commit message"),
        ("job.commit_url", "web page of the commit"),
        ("job.created_at", "creation time (RFC 3339 when parseable)"),
        ("job.started_at", "start time"),
        ("job.finished_at", "finish time"),
        ("job.duration", "run time in seconds"),
        ("job.duration_text", "run time for people (`1m 3s`)"),
        ("job.queued_duration", "seconds it waited for a runner"),
        ("job.allow_failure", "whether the pipeline may pass although this job fails"),
        ("job.failure_reason", "why it failed (`script_failure`, …), for failed jobs only"),
        ("job.retries", "how many times it was retried"),
        ("job.url", "web page of the job"),
        ("job.pipeline_id", "id of its pipeline"),
        ("job.pipeline_url", "web page of its pipeline"),
        ("job.runner", "description of the runner that took it"),
        ("job.environment", "environment it deploys to, if any"),
    ],
);
