//! The router stage: committed events, in arrival order, become messages.
//!
//! The HTTP handler only stores a webhook's raw delivery and answers; this stage, on its own
//! thread with its own read connection, reads the events not routed yet (oldest first), hands
//! each to an [`EventRouter`] (the GitLab meaning lives with the caller: `serve` passes the pipeline that
//! parses, routes and renders), and commits the messages together with each event's `routed`
//! mark through the writer. A crash anywhere leaves an event either routed with all of its
//! messages or not routed at all, to be routed after the restart: nothing is lost, nothing is
//! routed twice. Events are routed one batch at a time in id order, so messages are stored in
//! the order their webhooks arrived and per-object order holds end to end.

use super::durable::DurableOutbox;
use super::engine::RouterReads;
use super::store::{ChatRule, RoutedEvent, StoredEvent};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// Most events routed (and committed) at once: as many as the SQLite writer commits in one
/// turn between two groups of webhooks, so a webhook's acknowledgement never waits for more
/// than one batch's messages to be written.
pub const ROUTE_BATCH: usize = 64;
/// Longest the stage sleeps when nothing rang its bell.
pub const IDLE: Duration = Duration::from_millis(250);
/// Wait after a failed read or commit before trying again.
pub const RETRY: Duration = Duration::from_millis(500);
/// How much lower the stage's CPU priority is than the rest of the process (added to its nice
/// value): during a burst that saturates the CPU, acknowledging GitLab comes first and routing
/// catches up after; on an idle CPU it makes no difference.
pub const NICENESS: i32 = 10;
/// While webhooks keep arriving (slower than [`FLOOD_RATE`]) and the stage is behind (its
/// batches full), it rests this many times as long as its last batch took: routing then takes
/// at most a tenth of its own pace (thousands of events a second, still more than a steady
/// stream needs) and the rest of the CPU and of the writer goes to acknowledgements. Caught
/// up, or with no webhook arriving, it does not rest.
pub const YIELD_FACTOR: u32 = 9;
/// Longest rest between two batches: the least pace of routing under a flood of webhooks is a
/// batch per this (640 events a second, more than any chat takes).
pub const MAX_REST: Duration = Duration::from_millis(100);
/// Webhooks a second that make a flood: while they arrive this fast (no GitLab sends so many
/// but for a mass import or a replay storm) and the stage is behind, it rests the longest,
/// [`MAX_REST`], after each batch, and routes the rest once the flood is over. Below it (a
/// steady stream of a thousand a second while a backlog drains) it rests [`YIELD_FACTOR`]
/// times its batch.
pub const FLOOD_RATE: u64 = 5_000;

/// How long to rest after a batch that took `took` while `arrived` webhooks arrived, when the
/// stage is behind: not at all when none arrived, [`MAX_REST`] in a flood ([`FLOOD_RATE`]),
/// else [`YIELD_FACTOR`] times the batch, at most [`MAX_REST`].
pub fn rest_after(took: Duration, arrived: u64) -> Option<Duration> {
    if arrived == 0 {
        return None;
    }
    let flood = arrived as f64 >= FLOOD_RATE as f64 * took.as_secs_f64();
    Some(if flood {
        MAX_REST
    } else {
        (took * YIELD_FACTOR).min(MAX_REST)
    })
}

/// Turns one stored event into its messages and summary. Never fails: an event that cannot be
/// routed is returned with no deliveries and an outcome that says why, and is marked routed.
pub trait EventRouter: Send + Sync + 'static {
    /// Routes `event`, with the chat rules in force (read from the store for each batch, so a
    /// rule committed by the daemon or by the command line applies from the next batch on);
    /// `memory` holds what earlier events asked to remember ([`RoutedEvent::memory`]).
    fn route(&self, event: &StoredEvent, rules: &[ChatRule], memory: &Memory<'_>) -> RoutedEvent;
}

/// The router's memory as the event being routed sees it: what committed events stored, overlaid
/// with what the earlier events of the batch being routed asked to remember (not committed yet).
/// Keys and values are the routing function's own strings.
pub struct Memory<'a> {
    reader: Option<&'a dyn RouterReads>,
    pending: HashMap<String, String>,
}

impl std::fmt::Debug for Memory<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Memory")
            .field("pending", &self.pending)
            .finish_non_exhaustive()
    }
}

impl<'a> Memory<'a> {
    /// The memory of the store `reader` reads.
    pub fn of(reader: &'a dyn RouterReads) -> Memory<'a> {
        Memory {
            reader: Some(reader),
            pending: HashMap::new(),
        }
    }

    /// A memory that remembers nothing (routing outside the router stage: `render`, replays).
    pub fn empty() -> Memory<'static> {
        Memory {
            reader: None,
            pending: HashMap::new(),
        }
    }

    /// The value last remembered under `key`. A store that cannot be read counts as no memory
    /// (logged): routing goes on.
    pub fn get(&self, key: &str) -> Option<String> {
        if let Some(v) = self.pending.get(key) {
            return Some(v.clone());
        }
        match self.reader?.memory(key) {
            Ok(v) => v,
            Err(error) => {
                tracing::warn!(%error, key, "cannot read the router's memory");
                None
            }
        }
    }

    /// Takes `routed`'s writes into account for the events after it.
    fn remember(&mut self, routed: &RoutedEvent) {
        for (k, v) in &routed.memory {
            self.pending.insert(k.clone(), v.clone());
        }
    }
}

/// Starts the router stage on its own thread, reading through the outbox's
/// [`RouterReads`] and committing through `outbox` on the tokio runtime it is called from (an
/// error outside one). It stops when `stop` is cancelled (ring the outbox's router bell to make
/// it notice at once).
pub fn spawn(
    outbox: DurableOutbox,
    route: Arc<dyn EventRouter>,
    stop: CancellationToken,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    let runtime = tokio::runtime::Handle::try_current().map_err(std::io::Error::other)?;
    let reader = outbox
        .router_reads()
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    std::thread::Builder::new()
        .name("router".into())
        .spawn(move || run(reader, &runtime, outbox, route.as_ref(), &stop))
}

fn run(
    reader: Box<dyn RouterReads>,
    runtime: &tokio::runtime::Handle,
    outbox: DurableOutbox,
    route: &dyn EventRouter,
    stop: &CancellationToken,
) {
    lower_priority();
    let bell = outbox.router_bell();
    // Events up to `done` are routed and committed; a failed commit starts over from there.
    let mut done = 0;
    // While the store stays unreachable: one error line, tries further and further apart (up
    // to a few seconds), and one line when it is back.
    let mut outage: Option<backon::ExponentialBackoff> = None;
    while !stop.is_cancelled() {
        let events = match reader.new_events(done, ROUTE_BATCH) {
            Ok(e) => {
                if outage.take().is_some() {
                    tracing::info!("reading new events again");
                }
                e
            }
            Err(error) => {
                if outage.is_none() {
                    tracing::error!(%error, "cannot read new events; trying again");
                }
                let wait = outage
                    .get_or_insert_with(super::store_backoff)
                    .next()
                    .unwrap_or(super::STORE_BACKOFF_MAX);
                bell.wait(wait);
                continue;
            }
        };
        let Some(last) = events.last().map(|e| e.id) else {
            bell.wait(IDLE);
            continue;
        };
        let started = Instant::now();
        let received = outbox.webhooks_received();
        let behind = events.len() >= ROUTE_BATCH;
        let rules = match reader.chat_rules() {
            Ok(r) => r,
            Err(error) => {
                tracing::error!(%error, "cannot read the chat rules");
                bell.wait(RETRY);
                continue;
            }
        };
        // A failed commit drops this overlay with the batch: the retry starts from the store.
        let mut memory = Memory::of(reader.as_ref());
        let mut routed: Vec<RoutedEvent> = Vec::with_capacity(events.len());
        for e in &events {
            let r = route.route(e, &rules, &memory);
            memory.remember(&r);
            routed.push(r);
        }
        match runtime.block_on(outbox.routed(routed)) {
            Ok(()) => done = last,
            Err(error) => {
                tracing::error!(%error, "cannot commit routed events; routing them again");
                bell.wait(RETRY);
                continue;
            }
        }
        let arrived = outbox.webhooks_received().wrapping_sub(received);
        if let Some(rest) = behind
            .then(|| rest_after(started.elapsed(), arrived))
            .flatten()
        {
            // Over at once when the stage is stopped. The timer is made inside `block_on`,
            // where the runtime's clock is.
            runtime.block_on(async {
                let _ = tokio::time::timeout(rest, stop.cancelled()).await;
            });
        }
    }
    tracing::debug!("router stopped");
}

/// Raises this thread's nice value by [`NICENESS`] (Linux nice values are per thread; raising
/// one needs no privilege). A refusal (a seccomp filter, say) only costs throughput under load.
fn lower_priority() {
    let me = rustix::thread::gettid();
    let now = rustix::process::getpriority_process(Some(me)).unwrap_or(0);
    let wanted = (now + NICENESS).min(19);
    if let Err(error) = rustix::process::setpriority_process(Some(me), wanted) {
        tracing::debug!(%error, "cannot lower the router stage's CPU priority");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deliver::clock::Clock;
    use crate::deliver::durable::DurableSettings;
    use crate::deliver::store::RawEvent;

    /// Routes every event to nothing, with an outcome that names it.
    struct Nowhere;

    impl EventRouter for Nowhere {
        fn route(&self, event: &StoredEvent, _: &[ChatRule], _: &Memory<'_>) -> RoutedEvent {
            RoutedEvent {
                event_id: event.id,
                request_id: event.raw.request_id.clone(),
                outcome: "ignored".into(),
                ..RoutedEvent::default()
            }
        }
    }

    fn webhook(key: &str) -> RawEvent {
        RawEvent {
            request_id: key.into(),
            dedupe_key: Some(key.into()),
            headers: vec![],
            body: b"{}".to_vec(),
        }
    }

    /// The rest after a batch: none when no webhook arrived, a tenth of the pace under a steady
    /// stream, the longest in a flood, never longer than that.
    #[test]
    fn the_rest_follows_the_pace_of_arrivals() {
        let batch = Duration::from_millis(4);
        assert_eq!(rest_after(batch, 0), None, "no webhook: no rest");
        // A thousand a second: 4 in the 4 ms batch.
        assert_eq!(rest_after(batch, 4), Some(batch * YIELD_FACTOR));
        // Thirty thousand a second: 120 in it.
        assert_eq!(rest_after(batch, 120), Some(MAX_REST), "a flood");
        assert_eq!(
            rest_after(Duration::from_millis(40), 4),
            Some(MAX_REST),
            "a slow batch rests at most the longest"
        );
        assert_eq!(
            rest_after(Duration::from_secs(2), 9_000),
            Some(MAX_REST),
            "4 500 a second over a long batch is no flood, and rests at most the longest"
        );
    }

    /// Resting while webhooks arrive slows routing down, it does not stop it: a backlog of ten
    /// full batches is routed while webhooks keep arriving all along.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_backlog_is_routed_while_webhooks_keep_arriving(
    ) -> Result<(), Box<dyn std::error::Error>> {
        const BACKLOG: usize = ROUTE_BATCH * 10;
        let dir = std::env::temp_dir().join(format!("gcb-router-rest-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let settings = DurableSettings {
            dedupe_window_ms: 60_000,
            full_sync: false,
        };
        let (outbox, writer) =
            DurableOutbox::open(&dir.join("o.sqlite"), settings, &[], Clock::new())?;
        for i in 0..BACKLOG {
            outbox.ingest_at(webhook(&format!("old-{i}")), 1).await?;
        }
        let stop = CancellationToken::new();
        let stage = spawn(outbox.clone(), Arc::new(Nowhere), stop.clone())?;
        // Webhooks all along (one a millisecond), until the backlog is routed or 20 000 of them.
        let mut arriving = 0;
        let mut unrouted = outbox.unrouted_count().await?;
        while arriving < 20_000 {
            outbox
                .ingest_at(webhook(&format!("new-{arriving}")), 2)
                .await?;
            arriving += 1;
            tokio::time::sleep(Duration::from_millis(1)).await;
            if arriving % 50 == 0 {
                // Of the backlog: what arrives meanwhile is routed after it, in id order.
                unrouted = outbox.unrouted_count().await?.saturating_sub(arriving);
                if unrouted == 0 {
                    break;
                }
            }
        }
        stop.cancel();
        outbox.router_bell().ring();
        tokio::task::spawn_blocking(move || stage.join())
            .await?
            .map_err(|_| "the router stage panicked")?;
        drop(outbox);
        let _ = writer.join();
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(
            unrouted, 0,
            "{unrouted} of {BACKLOG} backlog events still unrouted after {arriving} webhooks"
        );
        Ok(())
    }
}
