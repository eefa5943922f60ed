//! Deployments: `Deployment Hook`, keyed by `status`: the deployment's own status changes, and
//! `approved` / `rejected` when someone approves or rejects a deployment waiting for approval
//! (GitLab Premium; the payload then names the `approver` and the `approval`).

use crate::event::shared::{first_line, timestamp, User};
use crate::event::table::{each_action, Action, Input, Parsed, Variant};
use crate::event::value::{obj_at, str_at, u64_at, url_at};
use crate::event::variables::KindVariables;
use crate::event::Detail;
use serde::Serialize;
use serde_json::Value;

/// Deployment statuses, and the approval decisions.
pub(super) const ACTIONS: &[Action] = &[
    Action::new("created", "created a deployment of"),
    Action::new("running", "is deploying"),
    Action::new("success", "deployed"),
    Action::new("failed", "failed to deploy"),
    Action::new("canceled", "canceled the deployment of"),
    Action::new("skipped", "skipped the deployment of"),
    Action::new("blocked", "is waiting to deploy"),
    Action::new("approved", "approved the deployment of"),
    Action::new("rejected", "rejected the deployment of"),
];

/// An approval or rejection of a deployment waiting for one.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct DeploymentApproval {
    /// `approved` or `rejected`.
    pub status: Option<String>,
    /// What the approver wrote.
    pub comment: Option<String>,
    /// When it was given (RFC 3339 when parseable).
    pub created_at: Option<String>,
}

/// A deployment's status change, approval or rejection.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Deployment {
    /// Deployment id.
    pub id: Option<u64>,
    /// `created`, `running`, `success`, `failed`, `canceled`, `skipped`, `blocked`, or
    /// `approved` / `rejected` for an approval decision.
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
    /// Who approved or rejected it, for `approved` and `rejected` (also the event's `actor`).
    pub approver: Option<User>,
    /// The approval or rejection, for `approved` and `rejected`.
    pub approval: Option<DeploymentApproval>,
}

/// A deployment event; an approval's approver becomes the actor (the payload's `user` started
/// the deployment).
pub(super) fn parse(input: &mut Input<'_>) -> Option<Parsed> {
    let v = input.v;
    let status = str_at(v, &["status"]).unwrap_or_default();
    let job_url = url_at(v, &["deployable_url"]);
    let commit_url = url_at(v, &["commit_url"]);
    let environment_url = url_at(v, &["environment_external_url"]);
    let approval = obj_at(v, &["approval"]);
    let approver = obj_at(v, &["approver"])
        .or_else(|| approval.and_then(|a| obj_at(a, &["user"])))
        .map(User::from_obj);
    if let Some(a) = &approver {
        input.actor = a.clone();
    }
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
        approver,
        approval: approval.map(|a| DeploymentApproval {
            status: str_at(a, &["status"]),
            comment: str_at(a, &["comment"]),
            created_at: timestamp(a, &["created_at"]),
        }),
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
        ("deployment.status", "`created`, `running`, `success`, `failed`, `canceled`, `skipped`, `blocked`; `approved` or `rejected` for an approval decision"),
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
        ("deployment.approver", "who approved or rejected it, for `approved` and `rejected` (also `actor`)"),
        ("deployment.approver.name", "display name (falls back to the username, then `someone`)"),
        ("deployment.approver.username", "login name, without `@`"),
        ("deployment.approver.email", "e-mail, only when GitLab sent a real one"),
        ("deployment.approver.avatar_url", "avatar image URL (http(s) only)"),
        ("deployment.approval", "the approval or rejection, for `approved` and `rejected`"),
        ("deployment.approval.status", "`approved` or `rejected`"),
        ("deployment.approval.comment", "what the approver wrote"),
        ("deployment.approval.created_at", "when it was given"),
    ],
);

#[cfg(test)]
mod tests {
    use crate::event::{parse, Detail};
    use serde_json::json;

    fn deployment(body: serde_json::Value) -> (crate::event::Event, super::Deployment) {
        let Ok(e) = parse(Some("Deployment Hook"), body) else {
            panic!("no parse")
        };
        let Detail::Deployment(d) = e.detail.clone() else {
            panic!("{:?}", e.detail)
        };
        (e, *d)
    }

    #[test]
    fn approvals_are_keyed_and_the_approver_acts() {
        let (e, d) = deployment(json!({
            "object_kind": "deployment", "status": "approved", "environment": "production",
            "user": {"name": "Deployer", "username": "dep"},
            "approver": {"id": 100, "name": "Ann Approver", "username": "ann", "email": "[REDACTED]"},
            "approval": {"status": "approved", "comment": "Looks good to me", "created_at": "2022-02-24T20:22:30.097Z"}
        }));
        assert_eq!((e.key.as_str(), e.known), ("deployment.approved", true));
        assert_eq!(e.verb, "approved the deployment of");
        assert_eq!(e.actor.name, "Ann Approver");
        assert_eq!(e.actor.email, None);
        let a = d.approval.unwrap_or_default();
        assert_eq!(a.comment.as_deref(), Some("Looks good to me"));
        assert_eq!(a.created_at.as_deref(), Some("2022-02-24T20:22:30.097+00:00"));
        assert_eq!(d.approver.map(|u| u.username), Some(Some("ann".to_string())));
    }

    #[test]
    fn a_rejection_names_its_approver_from_the_approval_or_not_at_all() {
        let (e, d) = deployment(json!({
            "object_kind": "deployment", "status": "rejected", "user": {"name": "Deployer"},
            "approval": {"status": "rejected", "user": {"name": "Rita"}, "comment": null}
        }));
        assert_eq!((e.key.as_str(), e.actor.name.as_str()), ("deployment.rejected", "Rita"));
        assert_eq!(d.approval.and_then(|a| a.comment), None);
        let (e, d) = deployment(json!({
            "object_kind": "deployment", "status": "approved", "user": {"name": "Deployer"},
            "approver": null, "approval": "yes"
        }));
        assert_eq!((e.known, e.actor.name.as_str()), (true, "Deployer"));
        assert_eq!((d.approver, d.approval), (None, None));
        let (e, _) = deployment(json!({"object_kind": "deployment", "status": "success"}));
        assert_eq!(e.object_key(), "/deployment/0");
    }
}
