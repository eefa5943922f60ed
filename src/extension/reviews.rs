//! `/gitlab reviews PATH`: the review reminder's card, now, for a project or group the chat may
//! follow: the open merge requests of PATH that wait for review (not drafts, with a reviewer,
//! still needing approvals, opened at least [`crate::config::DEFAULT_MIN_AGE`] ago), grouped by
//! reviewer with mentions, rendered by the chats' `reminder.hbs` like a scheduled reminder's.

use super::answers::{gitlab_failed, usage, Deadline, Pending};
use super::invocation::{check_path, Caller};
use super::Context;
use crate::gitlab::merge_requests::{fetch_open, sources, FetchLimits};
use crate::gitlab::reviews::{select, worth_asking, Rules};
use crate::gitlab::Visible;
use crate::render::cliq::{self, plain};
use crate::render::{reminder, Rendered};
use crate::route;
use std::sync::Arc;
use std::time::Duration;

/// The answer while GitLab is read.
pub(super) const PENDING: Pending<'static> = Pending {
    title: "Reading merge requests",
    text: "GitLab is taking a while to answer: the merge requests waiting for review will follow here.",
};

/// Longest a `/gitlab reviews` may spend reading GitLab (its card follows through the
/// invocation's response URL when it takes longer than `answer_within_ms`).
const BUDGET: Duration = Duration::from_secs(20);

/// `/gitlab reviews <path>`.
pub(super) async fn reviews(
    ctx: Arc<Context>,
    caller: Caller,
    args: Vec<String>,
    deadline: Deadline,
) -> cliq::Message {
    let [raw] = &args[..] else {
        return usage("reviews group/project (or a group)");
    };
    let path = match check_path(raw) {
        Ok(p) => p,
        Err(m) => return m,
    };
    if let Err(m) = ctx.allowed(&path) {
        return m;
    }
    let glob = match deadline.gitlab(ctx.gitlab.visible(&path)).await {
        Ok(Some(Visible::Project(p))) => p,
        Ok(Some(Visible::Group(g))) => format!("{g}/*"),
        Ok(None) => {
            return cliq::answer(
                "Not visible",
                &format!(
                    "The bridge's GitLab token cannot see a project or group `{}`.",
                    plain(&path)
                ),
                None,
            )
        }
        Err(e) => return gitlab_failed(&path, &e),
    };
    let globs = vec![glob];
    let allowed = |p: &str| ctx.allowed(p).is_ok();
    let in_scope = |p: &str| globs.iter().any(|g| route::glob(g, p)) && allowed(p);
    let rules = |now| Rules {
        now,
        min_age: crate::config::DEFAULT_MIN_AGE,
        in_scope: &in_scope,
        max_per_reviewer: crate::config::DEFAULT_MAX_PER_REVIEWER,
        gitlab_url: &ctx.gitlab_url,
        unassigned_after: None,
    };
    let asked = rules(chrono::Utc::now());
    let limits = FetchLimits {
        concurrency: 4,
        budget: BUDGET,
        pipelines: false,
    };
    let fetched = fetch_open(
        &ctx.gitlab,
        &sources(&globs),
        |mr| worth_asking(mr, &asked),
        limits,
    )
    .await;
    let found = select(&fetched, &rules(chrono::Utc::now()));
    tracing::info!(user = %caller.user_id, path = %path, merge_requests = found.count, "/gitlab reviews");
    if found.is_empty() {
        let note = if found.incomplete {
            " (the list may be incomplete: GitLab did not answer everything)"
        } else {
            ""
        };
        return cliq::answer(
            "No reviews waiting",
            &format!(
                "No merge request of `{}` waits for review{note}.",
                plain(&path)
            ),
            None,
        );
    }
    let Some(renderer) = ctx.routes.get().chats.clone() else {
        return cliq::answer(
            "No templates",
            "The bridge has no templates for chats.",
            None,
        );
    };
    let value = serde_json::to_value(&found).unwrap_or_default();
    match renderer.render_reminder(&reminder::context(&path, value)) {
        Ok(Rendered::Message(m, _)) => m,
        Ok(Rendered::Skipped(_) | Rendered::NoTemplate) => cliq::answer(
            "No card",
            "The reminder template posts nothing for this list.",
            None,
        ),
        Err(e) => {
            tracing::error!(error = %e, "/gitlab reviews: the reminder template failed");
            cliq::answer("Template error", &plain(&e.to_string()), None)
        }
    }
}
