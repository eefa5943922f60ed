//! `serve`'s watch over the bridge's GitLab hooks: every `gitlab.watch_hooks_minutes`, the
//! hooks whose URL is `gitlab.hook_url` on every project where the token's user is Maintainer
//! are listed, and each change of a hook's `alert_status` (`executable`,
//! `temporarily_disabled`, `disabled`) becomes one alert card in `gitlab.ops_channel` (through
//! the outbox like any message, built by `render::cliq::hook_alert`), a log line and a metric.
//! A hook first seen disabled counts as a change; one first seen executable does not.
//!
//! It also catches up (`commands::catchup`): after the first poll, every project with a managed
//! hook, back to the last delivery received before `serve` started; later, a project whose hook
//! is seen failing, back to the last delivery received. Recovered deliveries enter through the
//! outbox like received ones (same dedupe). Runs on its own task: nothing here touches the
//! webhook acknowledgement path.

use super::catchup::{self, Sink};
use crate::deliver::durable::DurableOutbox;
use crate::deliver::store::{Ingested, RawEvent};
use crate::deliver::{Batch, BoxFuture, Delivery};
use crate::gitlab::{same_hook_url, Client, GitlabError, ProjectRef};
use crate::metrics;
use crate::render::{cliq, Platform};
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// One managed hook as seen by a poll.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Seen {
    project: ProjectRef,
    hook_id: u64,
    alert_status: String,
    disabled_until: Option<String>,
}

/// What the watch needs.
#[derive(Debug, Clone)]
pub struct Watch {
    /// The GitLab client.
    pub client: Client,
    /// `gitlab.hook_url`: which hooks are the bridge's.
    pub hook_url: String,
    /// `gitlab.ops_channel`, if any, and the chat its alert cards are built for.
    pub ops_channel: Option<(String, Platform)>,
    /// Time between polls.
    pub every: Duration,
}

/// `serve`'s catch-up sink: what was received is read from the store, recovered deliveries go
/// through the outbox.
struct OutboxSink {
    outbox: DurableOutbox,
}

impl Sink for OutboxSink {
    fn received_at<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<i64>, String>> {
        Box::pin(async move {
            self.outbox
                .received_at(key)
                .await
                .map_err(|e| e.to_string())
        })
    }

    fn store(&mut self, raw: RawEvent) -> BoxFuture<'_, Result<Ingested, String>> {
        Box::pin(async move {
            let now = self.outbox.clock().now_ms();
            self.outbox
                .ingest_at(raw, now)
                .await
                .map_err(|e| e.to_string())
        })
    }

    fn note(&self, line: &str) {
        tracing::info!(%line, "catch-up");
    }
}

/// How often a replica that does not route asks whether it does now.
const LEAD_POLL: Duration = Duration::from_secs(5);

/// Polls until `stop` is cancelled.
pub async fn run(watch: Watch, outbox: DurableOutbox, stop: CancellationToken) {
    let started = outbox.clock().now_ms();
    let mut sink = OutboxSink {
        outbox: outbox.clone(),
    };
    let mut known: HashMap<u64, String> = HashMap::new();
    let mut first = true;
    loop {
        // Replicas on one store: only the one that routes watches (one alert per change).
        if !outbox.leads() {
            known.clear();
            tokio::select! {
                () = stop.cancelled() => break,
                () = tokio::time::sleep(watch.every.min(LEAD_POLL)) => continue,
            }
        }
        let polled = tokio::select! {
            () = stop.cancelled() => break,
            r = poll(&watch.client, &watch.hook_url) => r,
        };
        match polled {
            Ok(hooks) => {
                let failing = hooks
                    .iter()
                    .filter(|h| h.alert_status != "executable")
                    .count();
                metrics::hooks_failing(failing);
                // Projects to catch up, with how far back (unix ms).
                let mut catch_up: BTreeMap<String, (ProjectRef, i64)> = BTreeMap::new();
                for h in hooks {
                    let before = known
                        .insert(h.hook_id, h.alert_status.clone())
                        .unwrap_or_else(|| "executable".to_string());
                    if before != h.alert_status {
                        alert(&watch, &outbox, &h, &before).await;
                    }
                    let cutoff = if first {
                        Some(started)
                    } else if before == "executable" && h.alert_status != "executable" {
                        Some(outbox.clock().now_ms())
                    } else {
                        None
                    };
                    if let Some(c) = cutoff {
                        catch_up.insert(h.project.id_or_path.clone(), (h.project.clone(), c));
                    }
                }
                first = false;
                for (project, cutoff) in catch_up.into_values() {
                    let done = tokio::select! {
                        () = stop.cancelled() => return,
                        r = catchup::catch_up_project(&watch.client, &project, &watch.hook_url, cutoff, &mut sink, false) => r,
                    };
                    match done {
                        Ok(t) if t.found > 0 => {
                            tracing::info!(project = %project.label, found = t.found, stored = t.ingested, resent = t.resent, already = t.already, "caught up")
                        }
                        Ok(_) => {}
                        Err(error) => {
                            tracing::warn!(%error, project = %project.label, "cannot catch up")
                        }
                    }
                }
            }
            Err(error) => tracing::warn!(%error, "cannot check the bridge's GitLab hooks"),
        }
        tokio::select! {
            () = stop.cancelled() => break,
            () = tokio::time::sleep(watch.every) => {}
        }
    }
}

/// Every managed hook of the Maintainer projects, with its state.
async fn poll(client: &Client, hook_url: &str) -> Result<Vec<Seen>, GitlabError> {
    let mut out = Vec::new();
    for p in client.member_projects().await? {
        let project = ProjectRef::from_project(&p);
        let hooks = match client.hooks(&project).await {
            Ok(h) => h,
            Err(error) => {
                tracing::debug!(%error, project = %project.label, "cannot list hooks");
                continue;
            }
        };
        for h in hooks.iter().filter(|h| same_hook_url(&h.url, hook_url)) {
            out.push(Seen {
                project: project.clone(),
                hook_id: h.id,
                alert_status: h
                    .alert_status
                    .clone()
                    .unwrap_or_else(|| "executable".to_string()),
                disabled_until: h
                    .rest
                    .get("disabled_until")
                    .and_then(serde_json::Value::as_str)
                    .map(str::to_string),
            });
        }
    }
    Ok(out)
}

/// Logs, counts and (with an ops channel) posts one state change.
async fn alert(watch: &Watch, outbox: &DurableOutbox, h: &Seen, before: &str) {
    metrics::hook_alert(&h.alert_status);
    tracing::warn!(project = %h.project.label, hook = h.hook_id, from = before, to = %h.alert_status, "a GitLab hook of the bridge changed state");
    let Some((ops, platform)) = &watch.ops_channel else {
        return;
    };
    let card = cliq::hook_alert(
        &h.project.label,
        h.hook_id,
        &h.alert_status,
        h.disabled_until.as_deref(),
    );
    let thread = format!("gitlab-hook/{}", h.hook_id);
    let body = platform.body(&card, &thread).to_json();
    let request_id = format!("hook-{}-{}", h.hook_id, h.alert_status);
    let batch = Batch {
        dedupe_key: None,
        request_id: request_id.clone(),
        deliveries: vec![Delivery {
            id: format!("{request_id}/{ops}"),
            channel: ops.clone(),
            ordering_key: thread,
            body,
        }],
    };
    if let Err(error) = outbox.enqueue(batch).await {
        tracing::error!(%error, hook = h.hook_id, "cannot queue a hook alert");
    }
}
