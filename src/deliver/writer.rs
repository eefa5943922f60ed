//! The SQLite [`Engine`]: one writer thread owns the [`Store`] and groups whatever arrived
//! meanwhile (received deliveries, routed events, leases, outcomes) into one transaction, so
//! throughput does not fall to one fsync per webhook. Every reply is sent after the commit; the
//! router stage and the channels' workers are woken then.

use super::checkpoint::{self, Checkpointer};
use super::engine::{Engine, LeaseAnswer, LeaseRequest, RouterReads, Wake, DIGEST_MAX};
use super::store::{
    self, ChannelStats, ChatRule, Conversation, ConversationWrite, EncodedEvent, EventFilter,
    EventRow, Ingested, ListedRow, Outcome, Reader, RoutedEvent, RuleChange, Store, StoreError,
    StoredEvent,
};
use super::{Batch, BoxFuture, Enqueued, OutboxError};
use rusqlite::Connection;
use std::path::{Path, PathBuf};
use tokio::sync::{mpsc, oneshot};

/// Most operations grouped into one transaction.
pub const MAX_GROUP: usize = 1024;

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
    Prune {
        dedupe_before: i64,
        events_before: i64,
    },
    /// Readiness: write the probe row, answer after the commit.
    Ping(i64, oneshot::Sender<Result<(), OutboxError>>),
    /// Counts per channel, for the metrics.
    Stats(oneshot::Sender<Result<Vec<ChannelStats>, OutboxError>>),
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
    tx: mpsc::UnboundedSender<Cmd>,
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
        let (tx, rx) = mpsc::unbounded_channel();
        let handle = std::thread::Builder::new()
            .name("outbox-writer".into())
            .spawn(move || {
                writer(store, rx, wake);
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

    fn prune(&self, dedupe_before: i64, events_before: i64) {
        let _ = self.tx.send(Cmd::Prune {
            dedupe_before,
            events_before,
        });
    }

    fn ping(&self, now: i64) -> BoxFuture<'_, Result<(), OutboxError>> {
        self.call(|reply| Cmd::Ping(now, reply))
    }

    fn stats(&self) -> BoxFuture<'_, Result<Vec<ChannelStats>, OutboxError>> {
        self.call(Cmd::Stats)
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

fn writer(mut store: Store, mut rx: mpsc::UnboundedReceiver<Cmd>, wake: Wake) {
    let mut group = Vec::with_capacity(MAX_GROUP);
    let mut rest = Vec::with_capacity(MAX_GROUP);
    while let Some(first) = rx.blocking_recv() {
        group.push(first);
        while group.len() < MAX_GROUP {
            match rx.try_recv() {
                Ok(c) => group.push(c),
                Err(_) => break,
            }
        }
        // Webhooks are committed and answered first, in a transaction of their own: their
        // acknowledgement never waits for a routed batch's messages, leases or outcomes queued
        // beside them (those follow in the next transaction, an fsync later).
        if group.iter().any(acknowledges) && !group.iter().all(acknowledges) {
            let (acks, others): (Vec<Cmd>, Vec<Cmd>) = group.drain(..).partition(acknowledges);
            group.extend(acks);
            rest.extend(others);
        }
        commit(&mut store, &mut group, &wake);
        if !rest.is_empty() {
            commit(&mut store, &mut rest, &wake);
        }
    }
    tracing::debug!("outbox writer stopped");
}

/// Runs `group` (emptied) in one transaction and sends the replies after its commit, then
/// wakes the router stage (new events) and the channels that got messages.
fn commit(store: &mut Store, group: &mut Vec<Cmd>, wake: &Wake) {
    let mut replies = Vec::with_capacity(group.len());
    let mut woken: Vec<String> = Vec::new();
    let mut new_events = false;
    let result = (|| -> Result<(), StoreError> {
        let mut tx = store.transaction()?;
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
                Cmd::Prune {
                    dedupe_before,
                    events_before,
                } => {
                    if let Err(error) = store::prune_dedupe(&tx, dedupe_before) {
                        tracing::warn!(%error, "cannot prune old dedupe keys");
                    }
                    match store::prune_events(&tx, events_before) {
                        Ok(0) => {}
                        Ok(n) => {
                            tracing::info!(events = n, "pruned events past their retention")
                        }
                        Err(error) => tracing::warn!(%error, "cannot prune old events"),
                    }
                }
                Cmd::Ping(now, reply) => {
                    let r = store::touch(&tx, now).map_err(store_err);
                    replies.push(Reply::Record(reply, r));
                }
                Cmd::Stats(reply) => {
                    // A read: answered at once, it need not wait for the commit.
                    let _ = reply.send(store::stats(&tx).map_err(store_err));
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
