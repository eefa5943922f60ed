//! Deployments: `Deployment Hook`, keyed by `status`.

use crate::event::shared::{first_line, timestamp};
use crate::event::table::{each_action, Action, Input, Parsed, Variant};
use crate::event::value::{str_at, u64_at, url_at};
use crate::event::variables::KindVariables;
use crate::event::Detail;
use serde::Serialize;
use serde_json::Value;

/// Deployment statuses.
pub(super) const ACTIONS: &[Action] = &[
    Action::new("created", "created a deployment of"),
    Action::new("running", "is deploying"),
    Action::new("success", "deployed"),
    Action::new("failed", "failed to deploy"),
    Action::new("canceled", "canceled the deployment of"),
    Action::new("skipped", "skipped the deployment of"),
    Action::new("blocked", "is waiting to deploy"),
];

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

/// A deployment event.
pub(super) fn parse(input: &mut Input<'_>) -> Option<Parsed> {
    let v = input.v;
    let status = str_at(v, &["status"]).unwrap_or_default();
    let job_url = url_at(v, &["deployable_url"]);
    let commit_url = url_at(v, &["commit_url"]);
    let environment_url = url_at(v, &["environment_external_url"]);
    let deployment = Deployment {
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
    };
    Some(
        input
            .keyed(Some(&deployment.status))
            .with(Detail::Deployment(Box::new(deployment))),
    )
}

/// Messages about one deployment stay in order.
pub(super) fn object_key(d: &Deployment, p: &str) -> String {
    format!("{p}/deployment/{}", d.id.unwrap_or(0))
}

/// The sample with each status.
pub(super) fn variants(base: &Value) -> Vec<Variant> {
    each_action(base, &["status"], ACTIONS, "status")
}

/// Template variables of deployments.
pub(super) const VARIABLES: KindVariables = (
    "deployment",
    &[
        ("deployment", "the deployment"),
        ("deployment.id", "deployment id"),
        ("deployment.status", "`created`, `running`, `success`, `failed`, `canceled`, `skipped`, `blocked`"),
        ("deployment.status_changed_at", "when the status changed"),
        ("deployment.environment", "environment name (`staging`)"),
        ("deployment.environment_tier", "`production`, `staging`, …"),
        ("deployment.environment_url", "the environment's own address"),
        ("deployment.ref", "branch or tag deployed, when GitLab says"),
        ("deployment.short_sha", "first characters of the deployed commit"),
        ("deployment.commit_url", "web page of the deployed commit"),
        ("deployment.commit_title", "first line of its message"),
        ("deployment.job_id", "id of the job that deploys"),
        ("deployment.job_url", "web page of that job"),
        ("deployment.url", "the best page to open: the job, else the commit, else the environment"),
    ],
);
