//! `catch-up`: recover the deliveries GitLab failed to make while the bridge (or its proxy, or
//! the network) was down.
//!
//! GitLab does not retry a failed delivery; it logs it. For each managed hook (a hook of a
//! selected project whose URL is `gitlab.hook_url`), the hook's delivery log
//! (`GET /projects/:id/hooks/:hook_id/events`, newest first, `Link` pages) is read back to the
//! last delivery the bridge received from that project before `--since` (default 24 h ago).
//! Each failed delivery found on the way that the bridge has not received since is recovered: stored straight from the log when the log carries its body and its
//! `Idempotency-Key` (the same key the receiver deduplicates on, so a double recovery is
//! harmless), otherwise re-requested through the resend call, at most
//! [`RESENDS_PER_MINUTE`] a minute per hook (GitLab's limit; a 429 waits `Retry-After`). A
//! project whose log cannot be read (403, …) is reported and the others go on.

use super::progress::ProgressKind;
use super::CommandStore;
use crate::cli::CatchUpArgs;
use crate::deliver::store::{Ingested, RawEvent, KEPT_HEADERS};
use crate::deliver::BoxFuture;
use crate::gitlab::{same_hook_url, Client, GitlabError, HookLogEntry, ProjectRef};
use std::collections::{HashSet, VecDeque};
use std::time::{Duration, Instant};

/// GitLab's limit on the resend call: five a minute per hook and user.
pub const RESENDS_PER_MINUTE: usize = 5;
/// Most log pages read per hook (GitLab keeps 7 days; a guard against a looping server).
pub const MAX_LOG_PAGES: usize = 200;

/// Where recovered deliveries go, and what the bridge already received: the store itself for
/// the `catch-up` command, the running outbox for `serve`.
pub trait Sink {
    /// When the delivery with dedupe key `key` was received (unix ms), if the bridge holds it.
    fn received_at<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<i64>, String>>;
    /// Stores `raw` as a newly received delivery (deduplicated on its key).
    fn store(&mut self, raw: RawEvent) -> BoxFuture<'_, Result<Ingested, String>>;
    /// Reports one line of what was done.
    fn note(&self, line: &str);
}

/// The `catch-up` command's sink: the store the config names (through its engine, as the
/// daemon stores a webhook); lines go to standard output.
struct StoreSink {
    store: CommandStore,
}

impl Sink for StoreSink {
    fn received_at<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<i64>, String>> {
        Box::pin(async move {
            self.store
                .outbox()
                .received_at(key)
                .await
                .map_err(|e| e.to_string())
        })
    }

    fn store(&mut self, raw: RawEvent) -> BoxFuture<'_, Result<Ingested, String>> {
        let now = super::now_ms();
        Box::pin(async move {
            self.store
                .outbox()
                .ingest_at(raw, now)
                .await
                .map_err(|e| e.to_string())
        })
    }

    fn note(&self, line: &str) {
        println!("{line}");
    }
}

/// What to do with one failed delivery found in a hook's log.
#[derive(Debug)]
enum Recovery {
    /// The log holds its body and key: store it as if it had just arrived.
    Ingest(Box<RawEvent>),
    /// Only GitLab can send it again.
    Resend,
}

/// One failed delivery to recover.
#[derive(Debug)]
struct Found {
    /// The log entry's id.
    log_id: u64,
    /// `X-Gitlab-Event`, when logged.
    event: String,
    how: Recovery,
}

/// What was done for one project.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Tally {
    /// Managed hooks whose log was read.
    pub hooks: usize,
    /// Failed deliveries found.
    pub found: usize,
    /// Stored from the log.
    pub ingested: usize,
    /// Re-sent by GitLab on request.
    pub resent: usize,
    /// Received already (by GitLab's own re-send or an earlier recovery).
    pub already: usize,
}

/// Runs `catch-up`. Returns the process exit code.
pub async fn run(args: &CatchUpArgs) -> anyhow::Result<i32> {
    let cfg = super::load_config(&args.config.config)?;
    let (_, client, desired) = super::setup::connect(&cfg)?;
    // Before GitLab is asked anything.
    let mut sink = StoreSink {
        store: CommandStore::open_async(&cfg, false).await?,
    };
    let now = super::now_ms();
    let cutoff = now - args.since.as_millis() as i64;
    let projects: Vec<ProjectRef> = if args.project.is_empty() {
        match client.member_projects().await {
            Ok(list) => list.iter().map(ProjectRef::from_project).collect(),
            Err(e) => {
                println!("error: {e}");
                return Ok(1);
            }
        }
    } else {
        args.project
            .iter()
            .map(|p| p.trim().trim_matches('/'))
            .filter(|p| !p.is_empty())
            .map(|p| ProjectRef {
                id_or_path: p.to_string(),
                label: p.to_string(),
            })
            .collect()
    };
    let bar = ProgressKind::detect().bar(projects.len(), "catching up");
    let mut total = Tally::default();
    let mut failed = Vec::new();
    for project in &projects {
        let out = catch_up_project(
            &client,
            project,
            &desired.url,
            cutoff,
            &mut sink,
            args.dry_run,
        )
        .await;
        match out {
            Ok(t) => {
                total.hooks += t.hooks;
                total.found += t.found;
                total.ingested += t.ingested;
                total.resent += t.resent;
                total.already += t.already;
            }
            Err(e) => {
                println!("{}: error: {e}", project.label);
                failed.push(project.label.clone());
            }
        }
        if let Some(b) = &bar {
            b.inc(1);
        }
    }
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    let verb = if args.dry_run {
        "dry run: would recover"
    } else {
        "catch-up: recovered"
    };
    println!(
        "{verb} {} of {} failed deliveries ({} from the log, {} re-sent by GitLab); {} already \
         received; {} hook(s) on {} project(s), {} project(s) failed{}",
        total.ingested + total.resent,
        total.found,
        total.ingested,
        total.resent,
        total.already,
        total.hooks,
        projects.len(),
        failed.len(),
        if args.dry_run {
            "; nothing was changed"
        } else {
            ""
        }
    );
    Ok(i32::from(!failed.is_empty()))
}

/// Catches up every managed hook of `project`: reads each log back to the last delivery `sink`
/// received before `cutoff` (unix ms) and recovers the failed deliveries after it.
pub async fn catch_up_project<S: Sink + ?Sized>(
    client: &Client,
    project: &ProjectRef,
    hook_url: &str,
    cutoff: i64,
    sink: &mut S,
    dry_run: bool,
) -> Result<Tally, GitlabError> {
    let mut tally = Tally::default();
    let hooks = client.hooks(project).await?;
    for hook in hooks.iter().filter(|h| same_hook_url(&h.url, hook_url)) {
        tally.hooks += 1;
        let (found, already) = scan(client, project, hook.id, cutoff, &*sink).await?;
        tally.found += found.len() + already;
        tally.already += already;
        let mut resends = Window::new(RESENDS_PER_MINUTE, Duration::from_secs(60));
        for f in found {
            let at = format!(
                "{} hook #{}: delivery #{} ({})",
                project.label, hook.id, f.log_id, f.event
            );
            match f.how {
                Recovery::Ingest(_) if dry_run => {
                    tally.ingested += 1;
                    sink.note(&format!("{at}: would store it from the log"));
                }
                Recovery::Resend if dry_run => {
                    tally.resent += 1;
                    sink.note(&format!("{at}: would ask GitLab to re-send it"));
                }
                Recovery::Ingest(raw) => {
                    let stored =
                        sink.store(*raw)
                            .await
                            .map_err(|message| GitlabError::Unexpected {
                                what: format!(
                                    "storing delivery #{} of hook #{}",
                                    f.log_id, hook.id
                                ),
                                message,
                            })?;
                    match stored {
                        Ingested::Accepted(id) => {
                            tally.ingested += 1;
                            sink.note(&format!("{at}: stored from the log as event {id}"));
                        }
                        Ingested::Duplicate => {
                            tally.already += 1;
                            sink.note(&format!("{at}: already received"));
                        }
                    }
                }
                Recovery::Resend => {
                    resends.wait().await;
                    client.resend_hook_event(project, hook.id, f.log_id).await?;
                    tally.resent += 1;
                    sink.note(&format!("{at}: GitLab re-sent it"));
                }
            }
        }
    }
    Ok(tally)
}

/// Reads hook `hook_id`'s log newest first, back to the last successful delivery the bridge
/// received before `cutoff` (unix ms). Returns the failed deliveries to recover, oldest first, and
/// how many failed ones the bridge holds already. (Log entries carry no time: the bridge's own
/// record of the deliveries it received is the clock.)
async fn scan<S: Sink + ?Sized>(
    client: &Client,
    project: &ProjectRef,
    hook_id: u64,
    cutoff: i64,
    sink: &S,
) -> Result<(Vec<Found>, usize), GitlabError> {
    let held = async |key: Option<&str>| -> Result<Option<i64>, GitlabError> {
        let Some(key) = key else { return Ok(None) };
        sink.received_at(key)
            .await
            .map_err(|message| GitlabError::Unexpected {
                what: "reading the outbox".into(),
                message,
            })
    };
    let mut found = Vec::new();
    let mut already = 0;
    let mut keys = HashSet::new();
    let mut page = None;
    'pages: for _ in 0..MAX_LOG_PAGES {
        let (entries, next) = client.hook_events_page(project, hook_id, page).await?;
        for e in &entries {
            let key = e.dedupe_key();
            let at = held(key).await?;
            if e.succeeded() {
                if at.is_some_and(|t| t < cutoff) {
                    break 'pages;
                }
                continue;
            }
            // One delivery may fail several times (a failed resend): recover it once.
            if key.is_some_and(|k| !keys.insert(k.to_string())) {
                continue;
            }
            if at.is_some() {
                already += 1;
                continue;
            }
            found.push(Found {
                log_id: e.id,
                event: e.header("x-gitlab-event").unwrap_or("?").to_string(),
                how: recovery(e),
            });
        }
        match next {
            Some(n) => page = Some(n),
            None => break,
        }
    }
    found.reverse();
    Ok((found, already))
}

/// Stored from the log when it holds the body and a dedupe key, else re-sent.
fn recovery(e: &HookLogEntry) -> Recovery {
    let (Some(key), Some(body)) = (e.dedupe_key(), e.body()) else {
        return Recovery::Resend;
    };
    let headers = KEPT_HEADERS
        .iter()
        .filter_map(|name| e.header(name).map(|v| (name.to_string(), v.to_string())))
        .collect();
    Recovery::Ingest(Box::new(RawEvent {
        request_id: e.header("x-gitlab-webhook-uuid").unwrap_or(key).to_string(),
        dedupe_key: Some(key.to_string()),
        headers,
        body,
    }))
}

/// At most `max` calls in any `per`.
struct Window {
    max: usize,
    per: Duration,
    calls: VecDeque<Instant>,
}

impl Window {
    fn new(max: usize, per: Duration) -> Window {
        Window {
            max,
            per,
            calls: VecDeque::new(),
        }
    }

    /// Waits until one more call fits, and counts it.
    async fn wait(&mut self) {
        if self.calls.len() >= self.max {
            if let Some(first) = self.calls.pop_front() {
                let until = first + self.per;
                tokio::time::sleep_until(until.into()).await;
            }
        }
        self.calls.push_back(Instant::now());
    }
}
