//! The SQLite [`Engine`]: one writer thread owns the [`Store`] and groups whatever arrived
//! meanwhile into transactions, so throughput does not fall to one fsync per webhook. Every
//! reply is sent after the commit; the router stage and the channels' workers are woken then.
//!
//! The acknowledgement path comes first: the webhooks (and readiness probes) that queued are
//! committed in a transaction of their own, synced as configured, before anything else. The
//! rest (routed batches, leases, outcomes, the operator's changes) follows in turns of at most
//! [`TURN_EVENTS`] routed events, with the webhooks that queued meanwhile committed between two
//! turns. Routed batches, leases and outcomes are committed without waiting for the disk
//! ([`Store::relaxed_transaction`]): a power loss can only take their last
//! [`SYNC_WITHIN`] (the next synced commit writes them to disk with its own, and an idle
//! writer syncs them by itself), after which their events are routed again and a message
//! posted meanwhile may be posted again, as after any crash mid-post. What a user was told is
//! stored (a webhook's 200, a rule, a retry, a replay) is synced before its answer.

use super::checkpoint::{self, Checkpointer};
use super::engine::{Engine, LeaseAnswer, LeaseRequest, RouterReads, Wake, DIGEST_MAX};
use super::store::{
    self, ChannelStats, ChatRule, Conversation, ConversationWrite, EncodedEvent, EventFilter,
    EventRow, Ingested, ListedRow, Outcome, PruneBefore, Pruned, Reader, RoutedEvent, RuleChange,
    Store, StoreError, StoredEvent,
};
use super::{Batch, BoxFuture, Enqueued, OutboxError};
use rusqlite::Connection;
use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// Most webhooks grouped into one transaction.
pub const MAX_GROUP: usize = 1024;
/// Most routed events committed in one turn after the webhooks (a larger batch is committed
/// whole in a turn of its own): the longest an acknowledgement waits for routing work.
pub const TURN_EVENTS: usize = 64;
/// Longest a relaxed commit (routed events, leases, outcomes) stays off the disk.
pub const SYNC_WITHIN: Duration = Duration::from_millis(100);

enum Cmd {
    Ingest(
        EncodedEvent,
        i64,
        i64,
        oneshot::Sender<Result<Ingested, OutboxError>>,
    ),
    Enqueue(
        Batch,
        i64,
        i64,
        oneshot::Sender<Result<Enqueued, OutboxError>>,
    ),
    Routed(
        Vec<RoutedEvent>,
        i64,
        oneshot::Sender<Result<(), OutboxError>>,
    ),
    Lease(
        LeaseRequest,
        oneshot::Sender<Result<LeaseAnswer, OutboxError>>,
    ),
    Record(i64, Outcome, i64, oneshot::Sender<Result<(), OutboxError>>),
    /// An outcome with its conversation's change, answered after the commit.
    RecordConversation(
        Box<(Outcome, ConversationWrite)>,
        i64,
        i64,
        oneshot::Sender<Result<(), OutboxError>>,
    ),
    Prune(PruneBefore),
    /// Readiness: write the probe row, answer after the commit.
    Ping(i64, oneshot::Sender<Result<(), OutboxError>>),
    /// A change to the chat rules; answered with the rows changed, after the commit.
    Rules(RuleChange, oneshot::Sender<Result<usize, OutboxError>>),
    /// Every chat rule (a read).
    ListRules(oneshot::Sender<Result<Vec<ChatRule>, OutboxError>>),
    /// When each channel last had a post (a read).
    LastPosts(oneshot::Sender<Result<Vec<(String, i64)>, OutboxError>>),
    /// When a dedupe key was last received (a read).
    ReceivedAt(String, oneshot::Sender<Result<Option<i64>, OutboxError>>),
    /// Claim a reminder's run with its messages; answered after the commit.
    ReminderRun(
        Box<(String, i64, Batch)>,
        i64,
        i64,
        oneshot::Sender<Result<bool, OutboxError>>,
    ),
    /// A read on the writer's transaction (the closure answers it).
    Read(Box<dyn FnOnce(&Connection) + Send>),
    /// Store a replay, routed, with its messages; answered with its id after the commit.
    Replay(
        Box<(StoredEvent, RoutedEvent)>,
        i64,
        oneshot::Sender<Result<i64, OutboxError>>,
    ),
    /// Make every dead letter due again; answered with how many, after the commit.
    RetryAllDead(i64, oneshot::Sender<Result<usize, OutboxError>>),
    /// Delete dead letters received before a time; answered with how many, after the commit.
    PurgeDead(i64, oneshot::Sender<Result<usize, OutboxError>>),
    /// Make one dead letter due again; answered with its channel, after the commit.
    RetryDead(
        i64,
        i64,
        oneshot::Sender<Result<Option<String>, OutboxError>>,
    ),
}

/// Handle to the writer thread; cheap to clone. The thread ends when every handle is dropped.
#[derive(Clone)]
pub struct SqliteEngine {
    tx: mpsc::Sender<Cmd>,
    path: PathBuf,
}

impl std::fmt::Debug for SqliteEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteEngine").finish_non_exhaustive()
    }
}

fn store_err(e: StoreError) -> OutboxError {
    OutboxError::Store(e.to_string())
}

impl SqliteEngine {
    /// Opens the store at `path` (`full_sync`: `synchronous=FULL`), releases the leases the
    /// previous run left, and starts the writer thread, which wakes `wake` after its commits.
    /// Returns the handle and the thread's join handle.
    pub fn open(
        path: &Path,
        full_sync: bool,
        wake: Wake,
    ) -> Result<(SqliteEngine, std::thread::JoinHandle<()>), OutboxError> {
        let mut store = Store::open(path, full_sync).map_err(store_err)?;
        let released = store.clear_leases().map_err(store_err)?;
        if released > 0 {
            tracing::info!(
                released,
                "picked up messages left in flight by the previous run"
            );
        }
        // Without its own checkpointer the store checkpoints inside commits, as SQLite does.
        let checkpointer = match Checkpointer::spawn(path) {
            Ok(c) => {
                store
                    .manual_checkpoints(checkpoint::LOG_PAGES, c.trigger())
                    .map_err(store_err)?;
                Some(c)
            }
            Err(error) => {
                tracing::warn!(%error, "checkpointing inside commits instead");
                None
            }
        };
        Self::start(store, path, wake, checkpointer)
    }

    /// Opens the store at `path` for an operator's command, beside a daemon that may be
    /// running on it: no lease is released (the daemon's workers hold them) and commits
    /// checkpoint as SQLite does by itself. The command's writes go through a writer thread of
    /// its own, as the daemon's do.
    pub fn attach(
        path: &Path,
        full_sync: bool,
    ) -> Result<(SqliteEngine, std::thread::JoinHandle<()>), OutboxError> {
        let store = Store::open(path, full_sync).map_err(store_err)?;
        Self::start(store, path, Wake::default(), None)
    }

    fn start(
        store: Store,
        path: &Path,
        wake: Wake,
        checkpointer: Option<Checkpointer>,
    ) -> Result<(SqliteEngine, std::thread::JoinHandle<()>), OutboxError> {
        let (tx, rx) = mpsc::channel();
        let finish = checkpointer.as_ref().map(Checkpointer::finish_request);
        let handle = std::thread::Builder::new()
            .name("outbox-writer".into())
            .spawn(move || {
                writer(store, rx, wake, finish.as_deref());
                // After the writer's last commit: the checkpointer copies it and stops.
                drop(checkpointer);
            })
            .map_err(|e| OutboxError::Store(format!("cannot start the writer thread: {e}")))?;
        Ok((
            SqliteEngine {
                tx,
                path: path.to_path_buf(),
            },
            handle,
        ))
    }

    /// Runs the read `f` on the writer's transaction.
    fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> BoxFuture<'_, Result<T, OutboxError>> {
        self.call(|reply| {
            Cmd::Read(Box::new(move |conn| {
                let _ = reply.send(f(conn).map_err(store_err));
            }))
        })
    }

    fn call<T: Send + 'static>(
        &self,
        cmd: impl FnOnce(oneshot::Sender<Result<T, OutboxError>>) -> Cmd,
    ) -> BoxFuture<'_, Result<T, OutboxError>> {
        let (reply, rx) = oneshot::channel();
        let sent = self.tx.send(cmd(reply)).map_err(|_| OutboxError::Closed);
        Box::pin(async move {
            sent?;
            rx.await.map_err(|_| OutboxError::Closed)?
        })
    }
}

impl Engine for SqliteEngine {
    fn ingest(
        &self,
        ev: EncodedEvent,
        now: i64,
        dedupe_since: i64,
    ) -> BoxFuture<'_, Result<Ingested, OutboxError>> {
        self.call(|reply| Cmd::Ingest(ev, now, dedupe_since, reply))
    }

    fn enqueue(
        &self,
        batch: Batch,
        now: i64,
        dedupe_since: i64,
    ) -> BoxFuture<'_, Result<Enqueued, OutboxError>> {
        self.call(|reply| Cmd::Enqueue(batch, now, dedupe_since, reply))
    }

    fn routed(&self, events: Vec<RoutedEvent>, now: i64) -> BoxFuture<'_, Result<(), OutboxError>> {
        self.call(|reply| Cmd::Routed(events, now, reply))
    }

    fn lease(&self, req: LeaseRequest) -> BoxFuture<'_, Result<LeaseAnswer, OutboxError>> {
        self.call(|reply| Cmd::Lease(req, reply))
    }

    fn record(
        &self,
        id: i64,
        outcome: Outcome,
        now: i64,
    ) -> BoxFuture<'_, Result<(), OutboxError>> {
        self.call(|reply| Cmd::Record(id, outcome, now, reply))
    }

    fn record_conversation(
        &self,
        id: i64,
        outcome: Outcome,
        conversation: ConversationWrite,
        now: i64,
    ) -> BoxFuture<'_, Result<(), OutboxError>> {
        self.call(|reply| {
            Cmd::RecordConversation(Box::new((outcome, conversation)), id, now, reply)
        })
    }

    fn conversation(
        &self,
        channel: String,
        key: String,
    ) -> BoxFuture<'_, Result<Option<Conversation>, OutboxError>> {
        self.read(move |conn| store::conversations::conversation(conn, &channel, &key))
    }

    fn prune(&self, before: PruneBefore) {
        let _ = self.tx.send(Cmd::Prune(before));
    }

    fn ping(&self, now: i64) -> BoxFuture<'_, Result<(), OutboxError>> {
        self.call(|reply| Cmd::Ping(now, reply))
    }

    fn stats(&self) -> BoxFuture<'_, Result<Vec<ChannelStats>, OutboxError>> {
        // On a read connection of its own: counting a backlog of 500 000 messages takes a few
        // hundred milliseconds, which no webhook's acknowledgement should wait for.
        let path = self.path.clone();
        Box::pin(async move {
            tokio::task::spawn_blocking(move || Reader::open(&path)?.stats())
                .await
                .map_err(|e| OutboxError::Store(e.to_string()))?
                .map_err(store_err)
        })
    }

    fn change_rules(&self, change: RuleChange) -> BoxFuture<'_, Result<usize, OutboxError>> {
        self.call(|reply| Cmd::Rules(change, reply))
    }

    fn chat_rules(&self) -> BoxFuture<'_, Result<Vec<ChatRule>, OutboxError>> {
        self.call(Cmd::ListRules)
    }

    fn last_posts(&self) -> BoxFuture<'_, Result<Vec<(String, i64)>, OutboxError>> {
        self.call(Cmd::LastPosts)
    }

    fn received_at(&self, key: String) -> BoxFuture<'_, Result<Option<i64>, OutboxError>> {
        self.call(|reply| Cmd::ReceivedAt(key, reply))
    }

    fn retry_dead(&self, id: i64, now: i64) -> BoxFuture<'_, Result<Option<String>, OutboxError>> {
        self.call(|reply| Cmd::RetryDead(id, now, reply))
    }

    fn reminder_run(
        &self,
        name: String,
        at: i64,
        batch: Batch,
        now: i64,
        dedupe_since: i64,
    ) -> BoxFuture<'_, Result<bool, OutboxError>> {
        self.call(|reply| Cmd::ReminderRun(Box::new((name, at, batch)), now, dedupe_since, reply))
    }

    fn reminder_runs(&self) -> BoxFuture<'_, Result<Vec<(String, i64)>, OutboxError>> {
        self.read(store::reminder_runs)
    }

    fn list(
        &self,
        dead_only: bool,
        limit: usize,
    ) -> BoxFuture<'_, Result<Vec<ListedRow>, OutboxError>> {
        self.read(move |c| store::list(c, dead_only, limit))
    }

    fn retry_all_dead(&self, now: i64) -> BoxFuture<'_, Result<u64, OutboxError>> {
        let n = self.call(|reply| Cmd::RetryAllDead(now, reply));
        Box::pin(async move { Ok(n.await? as u64) })
    }

    fn purge_dead(&self, before: i64) -> BoxFuture<'_, Result<u64, OutboxError>> {
        let n = self.call(|reply| Cmd::PurgeDead(before, reply));
        Box::pin(async move { Ok(n.await? as u64) })
    }

    fn unrouted_count(&self) -> BoxFuture<'_, Result<u64, OutboxError>> {
        self.read(store::unrouted_count)
    }

    fn list_events(
        &self,
        filter: EventFilter,
    ) -> BoxFuture<'_, Result<Vec<EventRow>, OutboxError>> {
        self.read(move |c| store::list_events(c, &filter))
    }

    fn event(&self, id: i64) -> BoxFuture<'_, Result<Option<StoredEvent>, OutboxError>> {
        self.read(move |c| store::event(c, id))
    }

    fn event_row(&self, id: i64) -> BoxFuture<'_, Result<Option<EventRow>, OutboxError>> {
        self.read(move |c| store::event_row(c, id))
    }

    fn event_messages(&self, id: i64) -> BoxFuture<'_, Result<Vec<ListedRow>, OutboxError>> {
        self.read(move |c| store::event_messages(c, id))
    }

    fn event_ids_since(&self, since: i64) -> BoxFuture<'_, Result<Vec<i64>, OutboxError>> {
        self.read(move |c| store::event_ids_since(c, since))
    }

    fn replay(
        &self,
        of: StoredEvent,
        routed: RoutedEvent,
        now: i64,
    ) -> BoxFuture<'_, Result<i64, OutboxError>> {
        self.call(|reply| Cmd::Replay(Box::new((of, routed)), now, reply))
    }

    fn router_reads(&self) -> Result<Box<dyn RouterReads>, OutboxError> {
        Ok(Box::new(Reader::open(&self.path).map_err(store_err)?))
    }
}
/// A reply to send once the transaction is committed.
enum Reply {
    Ingest(
        oneshot::Sender<Result<Ingested, OutboxError>>,
        Result<Ingested, OutboxError>,
    ),
    Enqueue(
        oneshot::Sender<Result<Enqueued, OutboxError>>,
        Result<Enqueued, OutboxError>,
    ),
    Lease(
        oneshot::Sender<Result<LeaseAnswer, OutboxError>>,
        Result<LeaseAnswer, OutboxError>,
    ),
    Record(
        oneshot::Sender<Result<(), OutboxError>>,
        Result<(), OutboxError>,
    ),
    Count(
        oneshot::Sender<Result<usize, OutboxError>>,
        Result<usize, OutboxError>,
    ),
    Retried(
        oneshot::Sender<Result<Option<String>, OutboxError>>,
        Result<Option<String>, OutboxError>,
    ),
    Id(
        oneshot::Sender<Result<i64, OutboxError>>,
        Result<i64, OutboxError>,
    ),
    Claimed(
        oneshot::Sender<Result<bool, OutboxError>>,
        Result<bool, OutboxError>,
    ),
}

impl Reply {
    fn fail(self, e: &OutboxError) {
        let err = || OutboxError::Store(e.to_string());
        match self {
            Reply::Ingest(tx, _) => drop(tx.send(Err(err()))),
            Reply::Enqueue(tx, _) => drop(tx.send(Err(err()))),
            Reply::Lease(tx, _) => drop(tx.send(Err(err()))),
            Reply::Record(tx, _) => drop(tx.send(Err(err()))),
            Reply::Count(tx, _) => drop(tx.send(Err(err()))),
            Reply::Retried(tx, _) => drop(tx.send(Err(err()))),
            Reply::Id(tx, _) => drop(tx.send(Err(err()))),
            Reply::Claimed(tx, _) => drop(tx.send(Err(err()))),
        }
    }

    fn send(self) {
        match self {
            Reply::Ingest(tx, r) => drop(tx.send(r)),
            Reply::Enqueue(tx, r) => drop(tx.send(r)),
            Reply::Lease(tx, r) => drop(tx.send(r)),
            Reply::Record(tx, r) => drop(tx.send(r)),
            Reply::Count(tx, r) => drop(tx.send(r)),
            Reply::Retried(tx, r) => drop(tx.send(r)),
            Reply::Id(tx, r) => drop(tx.send(r)),
            Reply::Claimed(tx, r) => drop(tx.send(r)),
        }
    }
}

/// Whether `cmd` is on the acknowledgement path (a webhook's raw delivery, the readiness
/// probe): committed in a transaction of its own, ahead of whatever else queued with it.
fn acknowledges(cmd: &Cmd) -> bool {
    matches!(cmd, Cmd::Ingest(..) | Cmd::Ping(..))
}

/// Whether `cmd` may be committed without waiting for the disk: the pipeline's own work, which
/// a power loss only makes redo (route an event again, post a message again). What is answered
/// to a user as stored (a webhook, a rule, a replay, a retry) is synced first.
fn relaxed(cmd: &Cmd) -> bool {
    matches!(
        cmd,
        Cmd::Routed(..)
            | Cmd::Lease(..)
            | Cmd::Record(..)
            | Cmd::RecordConversation(..)
            | Cmd::Prune { .. }
            | Cmd::ListRules(..)
            | Cmd::LastPosts(..)
            | Cmd::ReceivedAt(..)
            | Cmd::Read(..)
    )
}

/// The weight of `cmd` in a turn: a routed batch counts its events.
fn weight(cmd: &Cmd) -> usize {
    match cmd {
        Cmd::Routed(events, ..) => events.len().max(1),
        _ => 1,
    }
}

/// The writer thread's loop; `finish` is the checkpointer's request to finish a checkpoint.
fn writer(mut store: Store, rx: mpsc::Receiver<Cmd>, wake: Wake, finish: Option<&AtomicBool>) {
    let mut acks = Vec::with_capacity(MAX_GROUP);
    let mut work: VecDeque<Cmd> = VecDeque::new();
    let mut turn = Vec::new();
    // When the oldest relaxed commit not yet on disk was made.
    let mut unsynced: Option<Instant> = None;
    loop {
        if acks.is_empty() && work.is_empty() {
            let next = match unsynced {
                None => rx.recv().ok(),
                Some(since) => match rx.recv_timeout(SYNC_WITHIN.saturating_sub(since.elapsed())) {
                    Ok(cmd) => Some(cmd),
                    Err(mpsc::RecvTimeoutError::Timeout) => {
                        sync(&mut store);
                        unsynced = None;
                        continue;
                    }
                    Err(mpsc::RecvTimeoutError::Disconnected) => None,
                },
            };
            let Some(cmd) = next else { break };
            sort(cmd, &mut acks, &mut work);
        }
        while acks.len() < MAX_GROUP {
            match rx.try_recv() {
                Ok(cmd) => sort(cmd, &mut acks, &mut work),
                Err(_) => break,
            }
        }
        // Webhooks first, in a transaction of their own: their acknowledgement never waits
        // for more than one turn of routed batches, leases or outcomes.
        if !acks.is_empty() {
            commit(&mut store, &mut acks, &wake, false);
            // A synced commit writes the log before it, relaxed commits included.
            if store.full_sync() {
                unsynced = None;
            }
        }
        let mut weighed = 0;
        while weighed < TURN_EVENTS {
            let Some(cmd) = work.front() else { break };
            weighed += weight(cmd);
            if !turn.is_empty() && weighed > TURN_EVENTS {
                break;
            }
            turn.extend(work.pop_front());
        }
        if !turn.is_empty() {
            let overdue = unsynced.is_some_and(|since| since.elapsed() >= SYNC_WITHIN);
            let relax = store.full_sync() && !overdue && turn.iter().all(relaxed);
            commit(&mut store, &mut turn, &wake, relax);
            if relax {
                unsynced.get_or_insert_with(Instant::now);
            } else if store.full_sync() {
                unsynced = None;
            }
        }
        if finish.is_some_and(|f| f.swap(false, Ordering::AcqRel)) {
            if let Err(error) = store.finish_checkpoint() {
                tracing::warn!(%error, "cannot checkpoint the outbox log");
            }
        }
    }
    if unsynced.is_some() {
        sync(&mut store);
    }
    tracing::debug!("outbox writer stopped");
}

/// Puts `cmd` with the webhooks or with the rest of the work, in arrival order.
fn sort(cmd: Cmd, acks: &mut Vec<Cmd>, work: &mut VecDeque<Cmd>) {
    if acknowledges(&cmd) {
        acks.push(cmd);
    } else {
        work.push_back(cmd);
    }
}

/// Writes the relaxed commits to disk: a synced commit of the readiness probe's row (SQLite
/// syncs the whole log up to it).
fn sync(store: &mut Store) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    let synced = store.transaction().and_then(|tx| {
        store::touch(&tx, now)?;
        Ok(tx.commit()?)
    });
    if let Err(error) = synced {
        tracing::warn!(%error, "cannot sync the outbox log");
    }
}

/// Runs `group` (emptied) in one transaction (`relax`: not waiting for the disk) and sends the
/// replies after its commit, then wakes the router stage (new events) and the channels that
/// got messages.
fn commit(store: &mut Store, group: &mut Vec<Cmd>, wake: &Wake, relax: bool) {
    let mut replies = Vec::with_capacity(group.len());
    let mut woken: Vec<String> = Vec::new();
    let mut new_events = false;
    let result = (|| -> Result<(), StoreError> {
        let mut tx = if relax {
            store.relaxed_transaction()?
        } else {
            store.transaction()?
        };
        for cmd in group.drain(..) {
            match cmd {
                Cmd::Ingest(ev, now, since, reply) => {
                    // A failure fails the whole group, so no dedupe key is committed without
                    // its event (GitLab's re-send must not be taken for a duplicate). Cheaper
                    // than a savepoint per webhook, and as rare as a full disk.
                    let r = store::insert_encoded(&tx, &ev, now, since)?;
                    new_events |= matches!(r, Ingested::Accepted(_));
                    replies.push(Reply::Ingest(reply, Ok(r)));
                }
                Cmd::Routed(events, now, reply) => {
                    // No savepoint: a failure here fails the whole group (every webhook in
                    // it is refused and re-sent by GitLab, every event stays `new`), which
                    // leaves no event routed with half of its messages.
                    for ev in &events {
                        if store::mark_routed(&tx, ev, now)? {
                            woken.extend(ev.deliveries.iter().map(|d| d.channel.clone()));
                        }
                    }
                    replies.push(Reply::Record(reply, Ok(())));
                }
                Cmd::Enqueue(batch, now, since, reply) => {
                    // A savepoint per webhook: a failed insert leaves none of its rows (nor
                    // its dedupe key) behind, so GitLab's re-send is not taken for a duplicate.
                    let mut sp = tx.savepoint()?;
                    let r = store::insert_batch(&sp, &batch, now, since).map_err(store_err);
                    if r.is_ok() {
                        sp.commit()?;
                    } else {
                        sp.rollback()?;
                    }
                    if matches!(r, Ok(Enqueued::Accepted)) {
                        woken.extend(batch.deliveries.iter().map(|d| d.channel.clone()));
                    }
                    replies.push(Reply::Enqueue(reply, r));
                }
                Cmd::Lease(
                    LeaseRequest {
                        channel,
                        now,
                        lease_ms,
                        digest_over,
                        max,
                    },
                    reply,
                ) => {
                    let r = (|| {
                        let mut messages = Vec::new();
                        if digest_over > 0
                            && store::due_count(&tx, &channel, now, digest_over as u64 + 1)?
                                > digest_over as u64
                        {
                            messages =
                                store::lease_prefix(&tx, &channel, now, lease_ms, DIGEST_MAX)?;
                        }
                        let digest = !messages.is_empty();
                        if !digest {
                            messages =
                                store::lease_batch(&tx, &channel, now, lease_ms, max.max(1))?;
                        }
                        // Only asked for when there is nothing to do now.
                        let next_due = if messages.is_empty() {
                            store::next_due(&tx, &channel)?
                        } else {
                            None
                        };
                        Ok(LeaseAnswer {
                            messages,
                            digest,
                            next_due,
                        })
                    })();
                    replies.push(Reply::Lease(reply, r.map_err(store_err)));
                }
                Cmd::Record(id, outcome, now, reply) => {
                    let r = store::record(&tx, id, &outcome, now).map_err(store_err);
                    replies.push(Reply::Record(reply, r));
                }
                Cmd::RecordConversation(change, id, now, reply) => {
                    let (outcome, write) = *change;
                    let r = store::record(&tx, id, &outcome, now)
                        .and_then(|()| store::conversations::write(&tx, &write, now))
                        .map_err(store_err);
                    replies.push(Reply::Record(reply, r));
                }
                Cmd::Prune(before) => {
                    if let Err(error) = store::prune_dedupe(&tx, before.dedupe) {
                        tracing::warn!(%error, "cannot prune old dedupe keys");
                    }
                    let mut pruned = Pruned::default();
                    match store::prune_events(&tx, before.events) {
                        Ok(n) => pruned.events = n as u64,
                        Err(error) => tracing::warn!(%error, "cannot prune old events"),
                    }
                    let quiet = store::forget_quiet(&tx, before.quiet).and_then(|m| {
                        Ok((m, store::conversations::forget_quiet(&tx, before.quiet)?))
                    });
                    match quiet {
                        Ok((memories, conversations)) => {
                            pruned.memories = memories as u64;
                            pruned.conversations = conversations as u64;
                        }
                        Err(error) => tracing::warn!(%error, "cannot forget quiet objects"),
                    }
                    pruned.log();
                }
                Cmd::Ping(now, reply) => {
                    let r = store::touch(&tx, now).map_err(store_err);
                    replies.push(Reply::Record(reply, r));
                }
                Cmd::Rules(change, reply) => {
                    // A savepoint: a failed import leaves no half of itself behind, and
                    // does not fail the webhooks committed in the same group.
                    let mut sp = tx.savepoint()?;
                    let r = store::change_rules(&sp, &change).map_err(store_err);
                    if r.is_ok() {
                        sp.commit()?;
                    } else {
                        sp.rollback()?;
                    }
                    replies.push(Reply::Count(reply, r));
                }
                Cmd::ListRules(reply) => {
                    let _ = reply.send(store::chat_rules(&tx).map_err(store_err));
                }
                Cmd::LastPosts(reply) => {
                    let _ = reply.send(store::last_posts(&tx).map_err(store_err));
                }
                Cmd::ReceivedAt(key, reply) => {
                    let _ = reply.send(store::received_at(&tx, &key).map_err(store_err));
                }
                Cmd::ReminderRun(run, now, since, reply) => {
                    let (name, at, batch) = *run;
                    // A savepoint: a failed insert leaves neither the claim nor a message.
                    let mut sp = tx.savepoint()?;
                    let r =
                        store::reminder_run(&sp, &name, at, &batch, now, since).map_err(store_err);
                    if r.is_ok() {
                        sp.commit()?;
                    } else {
                        sp.rollback()?;
                    }
                    if matches!(r, Ok(true)) {
                        woken.extend(batch.deliveries.iter().map(|d| d.channel.clone()));
                    }
                    replies.push(Reply::Claimed(reply, r));
                }
                Cmd::Read(read) => read(&tx),
                Cmd::Replay(replay, now, reply) => {
                    let (of, routed) = *replay;
                    let mut sp = tx.savepoint()?;
                    let r = store::insert_replay(&sp, &of, &routed.request_id, &routed, now)
                        .map_err(store_err);
                    if r.is_ok() {
                        sp.commit()?;
                        woken.extend(routed.deliveries.iter().map(|d| d.channel.clone()));
                    } else {
                        sp.rollback()?;
                    }
                    replies.push(Reply::Id(reply, r));
                }
                Cmd::RetryAllDead(now, reply) => {
                    let mut sp = tx.savepoint()?;
                    let r = store::retry_dead(&sp, None, now).map_err(store_err);
                    if r.is_ok() {
                        sp.commit()?;
                    } else {
                        sp.rollback()?;
                    }
                    replies.push(Reply::Count(reply, r));
                }
                Cmd::PurgeDead(before, reply) => {
                    let r = store::purge_dead(&tx, before).map_err(store_err);
                    replies.push(Reply::Count(reply, r));
                }
                Cmd::RetryDead(id, now, reply) => {
                    let mut sp = tx.savepoint()?;
                    let r = store::retry_dead_one(&sp, id, now).map_err(store_err);
                    if r.is_ok() {
                        sp.commit()?;
                    } else {
                        sp.rollback()?;
                    }
                    if let Ok(Some(channel)) = &r {
                        woken.push(channel.clone());
                    }
                    replies.push(Reply::Retried(reply, r));
                }
            }
        }
        tx.commit()?;
        Ok(())
    })();
    match result {
        Ok(()) => {
            replies.into_iter().for_each(Reply::send);
            if new_events {
                wake.router();
            }
            wake.channels(woken);
        }
        Err(e) => {
            let e = store_err(e);
            tracing::error!(error = %e, "outbox commit failed; the webhooks in it were refused");
            replies.into_iter().for_each(|r| r.fail(&e));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deliver::store::RawEvent;
    use crate::deliver::test_support::incompressible;
    use crate::deliver::Delivery;

    /// Events stored before the engine starts, not routed yet.
    const BACKLOG: usize = 12_800;

    /// Under a steady stream of webhooks (no pause for a checkpoint to catch up by itself), the
    /// log still starts over again and again: its file ends a fraction of what went through it.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_log_starts_over_under_a_steady_stream_of_webhooks(
    ) -> Result<(), Box<dyn std::error::Error>> {
        const FINISH_OVER: i64 = 256;
        let dir = std::env::temp_dir().join(format!("gcb-writer-log-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let path = dir.join("o.sqlite");
        let mut store = Store::open(&path, false)?;
        let c = Checkpointer::spawn_finishing_over(&path, FINISH_OVER)?;
        store.manual_checkpoints(FINISH_OVER / 2, c.trigger())?;
        let (engine, writer) = SqliteEngine::start(store, &path, Wake::default(), Some(c))?;
        let log = dir.join("o.sqlite-wal");
        // Bodies that do not compress (two pages each), 64 webhooks in flight at a time.
        let mut seed: u64 = 11;
        let mut sent = 0;
        while sent < 8_000 {
            let round: Vec<_> = (0..64)
                .map(|i| {
                    let ev = RawEvent {
                        request_id: format!("r{sent}-{i}"),
                        dedupe_key: Some(format!("k{sent}-{i}")),
                        headers: vec![],
                        body: incompressible(6_000, &mut seed),
                    };
                    engine.ingest(ev.encode(), 1, 0)
                })
                .collect();
            for r in round {
                assert!(matches!(r.await?, Ingested::Accepted(_)));
            }
            sent += 64;
        }
        // What the bodies alone took (a log that never starts over holds about four times it).
        let written = sent as u64 * 6_000;
        let log_size = std::fs::metadata(&log)?.len();
        assert!(
            log_size < written / 2,
            "the log never started over: {log_size} bytes after {written} written"
        );
        drop(engine);
        let _ = writer.join();
        let _ = std::fs::remove_dir_all(&dir);
        Ok(())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_webhook_is_acknowledged_ahead_of_a_routing_backlog(
    ) -> Result<(), Box<dyn std::error::Error>> {
        let dir = std::env::temp_dir().join(format!("gcb-writer-turns-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let path = dir.join("o.sqlite");
        {
            let mut s = Store::open(&path, true)?;
            let tx = s.transaction()?;
            for i in 0..BACKLOG {
                let raw = RawEvent {
                    request_id: format!("r{i}"),
                    dedupe_key: Some(format!("k{i}")),
                    headers: vec![],
                    body: b"{}".to_vec(),
                };
                store::insert_event(&tx, &raw, 1, 0)?;
            }
            tx.commit()?;
        }
        let (engine, writer) = SqliteEngine::open(&path, true, Wake::default())?;
        // The router stage's batches, all queued at once, then one webhook behind them.
        let ids: Vec<i64> = (1..=BACKLOG as i64).collect();
        let routing: Vec<_> = ids
            .chunks(TURN_EVENTS)
            .map(|chunk| {
                let events = chunk
                    .iter()
                    .map(|&id| RoutedEvent {
                        event_id: id,
                        request_id: format!("r{id}"),
                        outcome: "queued 1".into(),
                        deliveries: vec![Delivery {
                            id: format!("r{id}/team"),
                            channel: "team".into(),
                            ordering_key: format!("issue-{}", id % 50),
                            body: "{\"text\":\"hello\"}".into(),
                        }],
                        ..RoutedEvent::default()
                    })
                    .collect();
                engine.routed(events, 2)
            })
            .collect();
        // The writer has taken the backlog up by now (a writer that commits whatever it took
        // in one go answers the webhook only after all of it).
        tokio::time::sleep(Duration::from_millis(20)).await;
        let webhook = RawEvent {
            request_id: "late".into(),
            dedupe_key: Some("late".into()),
            headers: vec![],
            body: b"{}".to_vec(),
        };
        let ingested = engine.ingest(webhook.encode(), 3, 0).await?;
        // The late webhook is one of them.
        let unrouted_at_ack = store::unrouted_count(Store::open(&path, true)?.conn())? - 1;
        assert!(
            matches!(ingested, Ingested::Accepted(id) if id == BACKLOG as i64 + 1),
            "{ingested:?}"
        );
        // Answered after at most a turn or two of routing, not after the whole backlog.
        assert!(
            unrouted_at_ack > BACKLOG as u64 / 2,
            "the webhook waited for the routing backlog: {unrouted_at_ack} events left unrouted"
        );
        for r in routing {
            r.await?;
        }
        assert_eq!(engine.unrouted_count().await?, 1, "only the late webhook");
        drop(engine);
        let _ = writer.join();
        let _ = std::fs::remove_dir_all(&dir);
        Ok(())
    }
}
