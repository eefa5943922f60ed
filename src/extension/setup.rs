//! `/gitlab setup <path> [--dry-run]` (admins only): plans and, unless `--dry-run`, applies the
//! bridge's hook on a project, or on each project of a group, with `gitlab::reconcile` as the
//! `setup` command does (a hook GitLab disabled is re-enabled as `setup --repair` does). Every
//! GitLab call is held to the command's [`Deadline`]; once one is late the rest are not made,
//! and the card says so.

use super::answers::{seconds, usage, Deadline, Pending, Unanswered};
use super::invocation::{check_path, Caller};
use super::Context;
use crate::gitlab::{self, Mode, Op, ProjectRef, Visible};
use crate::render::cliq::{self, plain, Table};
use std::sync::Arc;

/// The answer while GitLab takes its time.
pub(super) const PENDING: Pending<'static> = Pending {
    title: "Setting up",
    text: "GitLab is taking a while: the plan and its result will follow here.",
};

/// `/gitlab setup <path> [--dry-run]`.
pub(super) async fn setup(
    ctx: Arc<Context>,
    caller: Caller,
    args: Vec<String>,
    deadline: Deadline,
) -> cliq::Message {
    if !ctx.is_admin(&caller) {
        tracing::warn!(user = %caller.user_id, "refused /gitlab setup from a non-admin");
        return cliq::answer(
            "Admins only",
            "Only the bridge's admins (`cliq_extension.admins`) may run setup; nothing was done.",
            None,
        );
    }
    let dry_run = args.iter().any(|a| a == "--dry-run");
    let paths: Vec<&String> = args.iter().filter(|a| *a != "--dry-run").collect();
    let [path] = paths.as_slice() else {
        return usage("setup <project-or-group path> [--dry-run]");
    };
    let path = match check_path(path) {
        Ok(p) => p,
        Err(m) => return m,
    };
    if let Err(m) = ctx.allowed(&path) {
        return m;
    }
    if ctx.desired.is_none() {
        return cliq::answer(
            "Not configured",
            "setup needs `gitlab.hook_url` (the URL GitLab calls) in the bridge's config; nothing was done.",
            None,
        );
    }
    tracing::info!(user = %caller.user_id, path = %path, dry_run, "setup from Cliq");
    let message = run(&ctx, &path, dry_run, deadline).await;
    tracing::info!(path = %path, result = %message.as_map().get("text").map(|t| t.to_string()).unwrap_or_default(), "setup from Cliq finished");
    message
}

/// Plans (and, unless `dry_run`, applies) the bridge's hook on the project `path`, or on each
/// project of the group `path`; the card that says so.
async fn run(ctx: &Context, path: &str, dry_run: bool, deadline: Deadline) -> cliq::Message {
    let Some(desired) = &ctx.desired else {
        return cliq::answer("Not configured", "setup needs `gitlab.hook_url`.", None);
    };
    let client = &ctx.gitlab;
    let failed = |e: Unanswered| {
        let title = match e {
            Unanswered::Late(_) => "GitLab did not answer",
            Unanswered::Gitlab(_) => "Setup failed",
        };
        cliq::answer(
            title,
            &format!("{}; nothing was done.", plain(&e.to_string())),
            None,
        )
    };
    let projects = match deadline.gitlab(client.visible(path)).await {
        Ok(Some(Visible::Project(p))) => vec![ProjectRef {
            id_or_path: p.clone(),
            label: p,
        }],
        Ok(Some(Visible::Group(g))) => match deadline.gitlab(client.group_projects(&g)).await {
            Ok(list) => list.iter().map(ProjectRef::from_project).collect(),
            Err(e) => return failed(e),
        },
        Ok(None) => {
            return cliq::answer(
                "Not visible",
                &format!(
                    "The bridge's GitLab token cannot see `{}`; nothing was done.",
                    plain(path)
                ),
                None,
            )
        }
        Err(e) => return failed(e),
    };
    let mode = Mode::Install {
        delete_duplicates: false,
    };
    let mut rows = Vec::new();
    let (mut changed, mut errors) = (0, 0);
    let mut late = None;
    for p in &projects {
        if late.is_some() {
            rows.push(vec![
                p.label.clone(),
                "-".into(),
                "-".into(),
                "not reached".into(),
            ]);
            continue;
        }
        let ops = match deadline.gitlab(client.hooks(p)).await {
            Ok(hooks) => gitlab::reconcile(&hooks, desired, mode),
            Err(e) => {
                errors += 1;
                if let Unanswered::Late(d) = e {
                    late = Some(d);
                }
                rows.push(vec![
                    p.label.clone(),
                    "-".into(),
                    e.to_string(),
                    "failed".into(),
                ]);
                continue;
            }
        };
        for op in ops {
            // A hook GitLab disabled after failures is re-enabled as `setup --repair` does.
            let disabled = match op {
                Op::Unchanged {
                    hook_id,
                    disabled: true,
                } => Some(hook_id),
                _ => None,
            };
            let done = if late.is_some() {
                Ok(("not reached".to_string(), false))
            } else if let Some(hook_id) = disabled {
                if dry_run {
                    Ok((
                        format!("would re-enable #{hook_id} (a test request)"),
                        false,
                    ))
                } else {
                    deadline
                        .gitlab(client.test_hook(p, hook_id, desired.test_trigger()))
                        .await
                        .map(|()| {
                            let sent =
                                format!("test request sent to #{hook_id}: GitLab re-enables it");
                            (sent, true)
                        })
                }
            } else if dry_run || !op.writes() {
                Ok((if op.writes() { "planned" } else { "-" }.to_string(), false))
            } else {
                match &op {
                    Op::Create => deadline
                        .gitlab(client.create_hook(p, desired))
                        .await
                        .map(|h| (format!("created #{}", h.id), true)),
                    Op::Update { hook_id, .. } => deadline
                        .gitlab(client.update_hook(p, *hook_id, desired))
                        .await
                        .map(|_| (format!("updated #{hook_id}"), true)),
                    Op::Delete { hook_id, .. } => deadline
                        .gitlab(client.delete_hook(p, *hook_id))
                        .await
                        .map(|()| (format!("deleted #{hook_id}"), true)),
                    _ => Ok(("-".into(), false)),
                }
            };
            let result = match done {
                Ok((d, wrote)) => {
                    changed += usize::from(wrote);
                    d
                }
                Err(e) => {
                    errors += 1;
                    if let Unanswered::Late(d) = e {
                        late = Some(d);
                    }
                    format!("failed: {e}")
                }
            };
            rows.push(vec![
                p.label.clone(),
                op.action().into(),
                op.reason(),
                result,
            ]);
        }
    }
    let mut summary = if dry_run {
        format!(
            "Plan for `{}` ({} project(s)); dry run, nothing was changed.",
            plain(path),
            projects.len()
        )
    } else {
        format!(
            "Setup of `{}`: {} project(s), {changed} change(s), {errors} error(s).",
            plain(path),
            projects.len()
        )
    };
    if let Some(d) = late {
        summary.push_str(&format!(
            " GitLab did not answer within {}: the rest was not done; run it again later.",
            seconds(d)
        ));
    }
    cliq::answer(
        if late.is_some() {
            "Setup stopped"
        } else if dry_run {
            "Setup plan"
        } else {
            "Setup done"
        },
        &summary,
        Some(&Table {
            headers: vec![
                "Project".into(),
                "Action".into(),
                "Why".into(),
                "Result".into(),
            ],
            rows,
        }),
    )
}
