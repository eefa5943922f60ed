//! `PgEngine`: the store [`Engine`] on PostgreSQL, for several replicas on one database. Each
//! operation is one transaction on a pooled connection (deadpool-postgres, TLS by rustls with
//! ring); the router stage reads on a connection of its own that holds the router lock, so one
//! replica at a time routes; posting slots come from the shared rate window
//! ([`SharedWindow`]). A replica's own commits wake its router and workers; a commit of new
//! messages also notifies every replica's workers ([`MESSAGES_CHANNEL`], one `LISTEN`
//! connection per replica), so a message routed on one replica is posted at once by another;
//! polling covers only a listening connection that is down.

use super::{
    conversations, events, memory, messages, migrate, reminders, rules, window, Migrated, PgError,
    LOCK_SPACE, ROUTER_LOCK,
};
use crate::deliver::engine::{
    Engine, LeaseAnswer, LeaseRequest, RouterReads, SharedWindow, Slot, Wake,
};
use crate::deliver::store::{
    ChannelStats, ChatRule, Conversation, ConversationWrite, EncodedEvent, EventFilter, EventRow,
    Ingested, ListedRow, Outcome, PruneBefore, Pruned, RoutedEvent, RuleChange, StoreError,
    StoredEvent,
};
use crate::deliver::{Batch, BoxFuture, Enqueued, OutboxError};
use crate::secret::Secret;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use std::cell::RefCell;
use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::BuildHasher;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio_postgres_rustls::MakeRustlsConnect;

/// How long an operation waits for a connection, and a connection for the server, before
/// failing (a webhook is then answered 503 and GitLab re-sends it).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The notification channel a commit of new messages announces them on (the payload: the
/// chat channel's name), so every replica's worker of that channel looks at once.
pub const MESSAGES_CHANNEL: &str = "gcb_messages";
/// Most ingest groups being committed at once. One, as the SQLite writer: a second slot would
/// take the first webhook that arrives as a group of one, and every other commit would carry
/// one or two webhooks instead of all that queued.
const INGEST_IN_FLIGHT: usize = 1;
/// Wait before the listening connection is made again after it failed.
const LISTEN_RETRY: Duration = Duration::from_secs(1);

/// Where and how to connect.
#[derive(Debug, Clone)]
pub struct PgOptions {
    /// `postgres://user@host:port/db?sslmode=…`, without the password.
    pub url: String,
    /// The password, from `outbox.password_file`/`_env`.
    pub password: Option<Secret>,
    /// PEM trust roots for TLS; the webpki roots when `None`.
    pub ca_file: Option<PathBuf>,
    /// Most connections in the pool.
    pub pool_size: usize,
    /// This replica's name among the replicas (its host and listen address): a replica
    /// restarting under the same name releases the leases its previous run held.
    pub owner: String,
}

/// The PostgreSQL engine. Cheap to clone.
#[derive(Clone)]
pub struct PgEngine {
    inner: Arc<Inner>,
}

struct Inner {
    pool: Pool,
    config: tokio_postgres::Config,
    tls: MakeRustlsConnect,
    wake: Wake,
    owner: String,
    /// The lease token of each message this replica holds.
    tokens: Mutex<HashMap<i64, i64>>,
    next_token: AtomicU64,
    random: RandomState,
    /// Whether this replica's router holds the router lock.
    routing: Arc<AtomicBool>,
    /// The queue of the ingest groups' task.
    ingest: mpsc::UnboundedSender<IngestJob>,
    /// Dropped with the engine: the listening task then ends.
    _listening: oneshot::Sender<()>,
}

/// A webhook waiting for its ingest group: the delivery, its dedupe window and whom to answer.
struct IngestJob {
    queued: events::Queued,
    window_ms: i64,
    reply: oneshot::Sender<Result<Ingested, OutboxError>>,
}

impl std::fmt::Debug for PgEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgEngine")
            .field("owner", &self.inner.owner)
            .finish_non_exhaustive()
    }
}

/// The client configuration for `opts` (URL, password, timeouts, keepalives).
fn client_config(opts: &PgOptions) -> Result<tokio_postgres::Config, PgError> {
    let mut config: tokio_postgres::Config = opts
        .url
        .parse()
        .map_err(|e| PgError::Config(format!("outbox.url: {e}")))?;
    if let Some(p) = &opts.password {
        config.password(p.expose());
    }
    config
        .connect_timeout(CONNECT_TIMEOUT)
        .keepalives(true)
        .keepalives_idle(Duration::from_secs(30))
        .application_name("gitlab-chat-bridge")
        // The migrations' `IF NOT EXISTS` notices are not worth a log line each start.
        .options("-c client_min_messages=warning");
    Ok(config)
}

/// TLS by rustls with ring, trusting `ca_file`'s certificates or else the webpki roots. Used
/// only when the URL's `sslmode` asks for TLS (`prefer`, the default, or `require`).
fn tls(ca_file: Option<&PathBuf>) -> Result<MakeRustlsConnect, PgError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::CertificateDer;
    let mut roots = rustls::RootCertStore::empty();
    match ca_file {
        Some(path) => {
            let certs = CertificateDer::pem_file_iter(path)
                .and_then(|c| c.collect::<Result<Vec<_>, _>>())
                .map_err(|e| PgError::Config(format!("outbox.ca_file {}: {e}", path.display())))?;
            let (added, _) = roots.add_parsable_certificates(certs);
            if added == 0 {
                return Err(PgError::Config(format!(
                    "outbox.ca_file {}: no certificate in it",
                    path.display()
                )));
            }
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| PgError::Config(format!("TLS: {e}")))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(MakeRustlsConnect::new(config))
}

/// Runs `$body` (an expression using the transaction `$tx`) in one transaction, committed
/// when it succeeds.
macro_rules! in_tx {
    ($engine:expr, |$tx:ident| $body:expr) => {{
        let mut conn = $engine.conn().await?;
        let $tx = conn.transaction().await.map_err(PgError::from)?;
        let value = $body.await?;
        $tx.commit().await.map_err(PgError::from)?;
        value
    }};
}

impl PgEngine {
    /// Records the outcome of message `id` and, with it, its conversation's root reference, if
    /// this replica still holds the message's lease; a lost lease records neither.
    async fn record_held(
        &self,
        id: i64,
        outcome: Outcome,
        conversation: Option<ConversationWrite>,
        now: i64,
    ) -> Result<(), OutboxError> {
        let Some(token) = self.tokens().remove(&id) else {
            tracing::warn!(
                message = id,
                "an outcome for a message this replica does not hold; ignored"
            );
            return Ok(());
        };
        let applied = in_tx!(self, |tx| async {
            let applied = messages::record(&tx, id, token, &outcome, now).await?;
            if let (true, Some(c)) = (applied, &conversation) {
                conversations::write(&tx, c, now).await?;
            }
            Ok::<bool, PgError>(applied)
        });
        if !applied {
            tracing::warn!(
                message = id,
                "the message's lease had expired and another replica took it over; \
                 its outcome here is not recorded (it may be posted twice)"
            );
        }
        Ok(())
    }

    /// Connects, brings the schema up to date (waiting while another replica migrates) and
    /// releases the leases a previous run under this replica's name left. The engine wakes
    /// `wake` after its own commits.
    pub async fn connect(opts: &PgOptions, wake: Wake) -> Result<(PgEngine, Migrated), PgError> {
        let config = client_config(opts)?;
        let tls = tls(opts.ca_file.as_ref())?;
        let manager = Manager::from_config(
            config.clone(),
            tls.clone(),
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(opts.pool_size.max(2))
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(CONNECT_TIMEOUT))
            .create_timeout(Some(CONNECT_TIMEOUT))
            .recycle_timeout(Some(CONNECT_TIMEOUT))
            .build()
            .map_err(|e| PgError::Config(format!("connection pool: {e}")))?;
        let mut client = pool.get().await?;
        let migrated = migrate(&mut client).await?;
        let (ingest, queue) = mpsc::unbounded_channel();
        tokio::spawn(ingest_groups(pool.clone(), wake.clone(), queue));
        let (listening, engine_gone) = oneshot::channel();
        tokio::spawn(listen(
            config.clone(),
            tls.clone(),
            wake.clone(),
            engine_gone,
        ));
        let engine = PgEngine {
            inner: Arc::new(Inner {
                pool,
                config,
                tls,
                wake,
                owner: opts.owner.clone(),
                tokens: Mutex::new(HashMap::new()),
                next_token: AtomicU64::new(1),
                random: RandomState::new(),
                routing: Arc::new(AtomicBool::new(false)),
                ingest,
                _listening: listening,
            }),
        };
        let tx = client.transaction().await?;
        let released = messages::release_owned(&tx, &engine.inner.owner).await?;
        tx.commit().await?;
        if released > 0 {
            tracing::info!(
                released,
                owner = %engine.inner.owner,
                "released the leases of this replica's previous run"
            );
        }
        Ok((engine, migrated))
    }

    /// A lease token no other lease of any replica has (random per process, counted within it).
    fn token(&self) -> i64 {
        let n = self.inner.next_token.fetch_add(1, Ordering::Relaxed);
        self.inner.random.hash_one(n) as i64
    }

    fn tokens(&self) -> std::sync::MutexGuard<'_, HashMap<i64, i64>> {
        self.inner.tokens.lock().unwrap_or_else(|p| p.into_inner())
    }

    async fn conn(&self) -> Result<deadpool_postgres::Object, PgError> {
        Ok(self.inner.pool.get().await?)
    }
}

impl Engine for PgEngine {
    fn ingest(
        &self,
        ev: EncodedEvent,
        now: i64,
        dedupe_since: i64,
    ) -> BoxFuture<'_, Result<Ingested, OutboxError>> {
        let (reply, answer) = oneshot::channel();
        let job = IngestJob {
            queued: events::Queued { ev, now },
            window_ms: now - dedupe_since,
            reply,
        };
        let sent = self.inner.ingest.send(job).map_err(|_| OutboxError::Closed);
        Box::pin(async move {
            sent?;
            answer.await.map_err(|_| OutboxError::Closed)?
        })
    }

    fn enqueue(
        &self,
        batch: Batch,
        now: i64,
        dedupe_since: i64,
    ) -> BoxFuture<'_, Result<Enqueued, OutboxError>> {
        Box::pin(async move {
            let r = in_tx!(self, |tx| async {
                let r = messages::enqueue(&tx, &batch, now, dedupe_since).await?;
                if r == Enqueued::Accepted {
                    let channels: Vec<String> =
                        batch.deliveries.iter().map(|d| d.channel.clone()).collect();
                    announce(&tx, &channels).await?;
                }
                Ok::<_, PgError>(r)
            });
            if r == Enqueued::Accepted {
                self.inner
                    .wake
                    .channels(batch.deliveries.iter().map(|d| d.channel.clone()).collect());
            }
            Ok(r)
        })
    }

    fn routed(&self, events: Vec<RoutedEvent>, now: i64) -> BoxFuture<'_, Result<(), OutboxError>> {
        Box::pin(async move {
            let woken = in_tx!(self, |tx| events::routed(
                &tx,
                &events,
                now,
                MESSAGES_CHANNEL
            ));
            self.inner.wake.channels(woken);
            Ok(())
        })
    }

    fn lease(&self, req: LeaseRequest) -> BoxFuture<'_, Result<LeaseAnswer, OutboxError>> {
        Box::pin(async move {
            let token = self.token();
            let owner = self.inner.owner.clone();
            let mut client = self.conn().await?;
            let answer = messages::lease(&mut client, &req, token, &owner).await?;
            let mut tokens = self.tokens();
            for m in &answer.messages {
                tokens.insert(m.id, token);
            }
            Ok(answer)
        })
    }

    fn record(
        &self,
        id: i64,
        outcome: Outcome,
        now: i64,
    ) -> BoxFuture<'_, Result<(), OutboxError>> {
        Box::pin(self.record_held(id, outcome, None, now))
    }

    fn record_conversation(
        &self,
        id: i64,
        outcome: Outcome,
        conversation: ConversationWrite,
        now: i64,
    ) -> BoxFuture<'_, Result<(), OutboxError>> {
        Box::pin(self.record_held(id, outcome, Some(conversation), now))
    }

    fn conversation(
        &self,
        channel: String,
        key: String,
    ) -> BoxFuture<'_, Result<Option<Conversation>, OutboxError>> {
        Box::pin(async move {
            let c = self.conn().await?;
            Ok(conversations::conversation(&c, &channel, &key).await?)
        })
    }

    fn prune(&self, before: PruneBefore) {
        let me = self.clone();
        tokio::spawn(async move {
            let pruned: Result<Pruned, OutboxError> =
                async { Ok(in_tx!(me, |tx| events::prune(&tx, before))) }.await;
            match pruned {
                Ok(p) => p.log(),
                Err(error) => {
                    tracing::warn!(%error, "cannot prune old events, dedupe keys and quiet objects")
                }
            }
        });
    }

    fn ping(&self, now: i64) -> BoxFuture<'_, Result<(), OutboxError>> {
        Box::pin(async move {
            in_tx!(self, |tx| events::touch(&tx, now));
            Ok(())
        })
    }

    fn stats(&self) -> BoxFuture<'_, Result<Vec<ChannelStats>, OutboxError>> {
        Box::pin(async move {
            let c = self.conn().await?;
            Ok(messages::stats(&c).await?)
        })
    }

    fn change_rules(&self, change: RuleChange) -> BoxFuture<'_, Result<usize, OutboxError>> {
        Box::pin(async move { Ok(in_tx!(self, |tx| rules::change_rules(&tx, &change))) })
    }

    fn chat_rules(&self) -> BoxFuture<'_, Result<Vec<ChatRule>, OutboxError>> {
        Box::pin(async move {
            let c = self.conn().await?;
            Ok(rules::chat_rules(&c).await?)
        })
    }

    fn reminder_run(
        &self,
        name: String,
        at: i64,
        batch: Batch,
        now: i64,
        dedupe_since: i64,
    ) -> BoxFuture<'_, Result<bool, OutboxError>> {
        Box::pin(async move {
            let claimed = in_tx!(self, |tx| reminders::reminder_run(
                &tx,
                &name,
                at,
                &batch,
                now,
                dedupe_since
            ));
            if claimed {
                self.inner
                    .wake
                    .channels(batch.deliveries.iter().map(|d| d.channel.clone()).collect());
            }
            Ok(claimed)
        })
    }

    fn reminder_runs(&self) -> BoxFuture<'_, Result<Vec<(String, i64)>, OutboxError>> {
        Box::pin(async move {
            let c = self.conn().await?;
            Ok(reminders::reminder_runs(&c).await?)
        })
    }

    fn last_posts(&self) -> BoxFuture<'_, Result<Vec<(String, i64)>, OutboxError>> {
        Box::pin(async move {
            let c = self.conn().await?;
            Ok(messages::last_posts(&c).await?)
        })
    }

    fn received_at(&self, key: String) -> BoxFuture<'_, Result<Option<i64>, OutboxError>> {
        Box::pin(async move {
            let c = self.conn().await?;
            Ok(events::received_at(&c, &key).await?)
        })
    }

    fn retry_dead(&self, id: i64, now: i64) -> BoxFuture<'_, Result<Option<String>, OutboxError>> {
        Box::pin(async move {
            let channel = in_tx!(self, |tx| async {
                let channel = messages::retry_dead(&tx, id, now).await?;
                if let Some(c) = &channel {
                    announce(&tx, std::slice::from_ref(c)).await?;
                }
                Ok::<_, PgError>(channel)
            });
            if let Some(c) = &channel {
                self.inner.wake.channels(vec![c.clone()]);
            }
            Ok(channel)
        })
    }

    fn list(
        &self,
        dead_only: bool,
        limit: usize,
    ) -> BoxFuture<'_, Result<Vec<ListedRow>, OutboxError>> {
        Box::pin(async move {
            let c = self.conn().await?;
            Ok(messages::list(&c, dead_only, limit).await?)
        })
    }

    fn retry_all_dead(&self, now: i64) -> BoxFuture<'_, Result<u64, OutboxError>> {
        Box::pin(async move { Ok(in_tx!(self, |tx| messages::retry_all_dead(&tx, now))) })
    }

    fn purge_dead(&self, before: i64) -> BoxFuture<'_, Result<u64, OutboxError>> {
        Box::pin(async move { Ok(in_tx!(self, |tx| messages::purge_dead(&tx, before))) })
    }

    fn unrouted_count(&self) -> BoxFuture<'_, Result<u64, OutboxError>> {
        Box::pin(async move {
            let c = self.conn().await?;
            Ok(events::unrouted_count(&c).await?)
        })
    }

    fn list_events(
        &self,
        filter: EventFilter,
    ) -> BoxFuture<'_, Result<Vec<EventRow>, OutboxError>> {
        Box::pin(async move {
            let c = self.conn().await?;
            Ok(events::list_events(&c, &filter).await?)
        })
    }

    fn event(&self, id: i64) -> BoxFuture<'_, Result<Option<StoredEvent>, OutboxError>> {
        Box::pin(async move {
            let c = self.conn().await?;
            Ok(events::event(&c, id).await?)
        })
    }

    fn event_row(&self, id: i64) -> BoxFuture<'_, Result<Option<EventRow>, OutboxError>> {
        Box::pin(async move {
            let c = self.conn().await?;
            Ok(events::event_row(&c, id).await?)
        })
    }

    fn event_messages(&self, id: i64) -> BoxFuture<'_, Result<Vec<ListedRow>, OutboxError>> {
        Box::pin(async move {
            let c = self.conn().await?;
            Ok(events::event_messages(&c, id).await?)
        })
    }

    fn event_ids_since(&self, since: i64) -> BoxFuture<'_, Result<Vec<i64>, OutboxError>> {
        Box::pin(async move {
            let c = self.conn().await?;
            Ok(events::event_ids_since(&c, since).await?)
        })
    }

    fn replay(
        &self,
        of: StoredEvent,
        routed: RoutedEvent,
        now: i64,
    ) -> BoxFuture<'_, Result<i64, OutboxError>> {
        Box::pin(async move {
            let id = in_tx!(self, |tx| events::replay(
                &tx,
                &of,
                &routed,
                now,
                MESSAGES_CHANNEL
            ));
            self.inner.wake.channels(
                routed
                    .deliveries
                    .iter()
                    .map(|d| d.channel.clone())
                    .collect(),
            );
            Ok(id)
        })
    }

    fn router_reads(&self) -> Result<Box<dyn RouterReads>, OutboxError> {
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|e| OutboxError::Store(format!("no runtime for the router's reads: {e}")))?;
        Ok(Box::new(PgRouterReads {
            runtime,
            config: self.inner.config.clone(),
            tls: self.inner.tls.clone(),
            conn: RefCell::new(None),
            routing: Arc::clone(&self.inner.routing),
        }))
    }

    fn leads(&self) -> bool {
        self.inner.routing.load(Ordering::Relaxed)
    }

    fn shared_window(&self) -> Option<Arc<dyn SharedWindow>> {
        Some(Arc::new(self.clone()))
    }
}

impl SharedWindow for PgEngine {
    fn take_slot<'a>(
        &'a self,
        credential: &'a str,
        per_minute: u32,
    ) -> BoxFuture<'a, Result<Slot, OutboxError>> {
        Box::pin(async move {
            let client = self.conn().await?;
            Ok(window::take_slot(&client, credential, per_minute).await?)
        })
    }

    fn pause<'a>(
        &'a self,
        credential: &'a str,
        d: Duration,
    ) -> BoxFuture<'a, Result<(), OutboxError>> {
        Box::pin(async move {
            in_tx!(self, |tx| window::pause(&tx, credential, d));
            Ok(())
        })
    }

    fn renew(
        &self,
        ids: Vec<i64>,
        now: i64,
        lease_ms: i64,
    ) -> BoxFuture<'_, Result<bool, OutboxError>> {
        Box::pin(async move {
            let token = ids.first().and_then(|id| self.tokens().get(id).copied());
            let Some(token) = token else {
                return Ok(false);
            };
            let until = now.saturating_add(lease_ms);
            Ok(in_tx!(self, |tx| messages::renew(&tx, &ids, token, until)))
        })
    }
}

/// Announces new messages of `channels` to every replica's workers ([`listen`]); sent when the
/// transaction commits, not at all if it does not.
async fn announce(
    tx: &deadpool_postgres::Transaction<'_>,
    channels: &[String],
) -> Result<(), PgError> {
    if channels.is_empty() {
        return Ok(());
    }
    let mut names = channels.to_vec();
    names.sort();
    names.dedup();
    let stmt = tx
        .prepare_cached("SELECT pg_notify($1, c) FROM unnest($2::text[]) AS c")
        .await?;
    tx.execute(&stmt, &[&MESSAGES_CHANNEL, &names]).await?;
    Ok(())
}

/// Writes the queued webhooks in groups until every engine handle is gone: each group is what
/// queued while earlier groups were committed (distinct dedupe keys, one dedupe window, at most
/// [`events::MAX_INGEST_GROUP`]), one statement and one commit, answered after the commit; at
/// most [`INGEST_IN_FLIGHT`] groups at once. A failed group fails each of its webhooks (they are
/// refused, and GitLab sends them again).
async fn ingest_groups(pool: Pool, wake: Wake, mut queue: mpsc::UnboundedReceiver<IngestJob>) {
    let slots = Arc::new(tokio::sync::Semaphore::new(INGEST_IN_FLIGHT));
    // Jobs whose key repeats one of the group being formed: first in line for the next group.
    let mut held: std::collections::VecDeque<IngestJob> = std::collections::VecDeque::new();
    loop {
        let Ok(slot) = Arc::clone(&slots).acquire_owned().await else {
            break;
        };
        let first = match held.pop_front() {
            Some(j) => j,
            None => match queue.recv().await {
                Some(j) => j,
                None => break,
            },
        };
        let window = first.window_ms;
        let mut keys = std::collections::HashSet::new();
        keys.extend(first.queued.ev.dedupe_key.clone());
        let mut group = vec![first];
        let mut later = std::collections::VecDeque::new();
        let mut take = |j: IngestJob, group: &mut Vec<IngestJob>| {
            let fits = group.len() < events::MAX_INGEST_GROUP
                && j.window_ms == window
                && j.queued
                    .ev
                    .dedupe_key
                    .as_ref()
                    .is_none_or(|k| !keys.contains(k));
            if fits {
                keys.extend(j.queued.ev.dedupe_key.clone());
                group.push(j);
            } else {
                later.push_back(j);
            }
        };
        while let Some(j) = held.pop_front() {
            take(j, &mut group);
        }
        while group.len() < events::MAX_INGEST_GROUP {
            match queue.try_recv() {
                Ok(j) => take(j, &mut group),
                Err(_) => break,
            }
        }
        held = later;
        let (pool, wake) = (pool.clone(), wake.clone());
        tokio::spawn(async move {
            let (jobs, replies): (Vec<_>, Vec<_>) =
                group.into_iter().map(|j| (j.queued, j.reply)).unzip();
            let written = async {
                let client = pool.get().await?;
                events::ingest_group(&client, &jobs, window).await
            }
            .await;
            drop(slot);
            match written {
                Ok(answers) => {
                    let accepted = answers.iter().any(|a| matches!(a, Ingested::Accepted(_)));
                    for (reply, answer) in replies.into_iter().zip(answers) {
                        let _ = reply.send(Ok(answer));
                    }
                    if accepted {
                        wake.router();
                    }
                }
                Err(error) => {
                    tracing::error!(%error, webhooks = replies.len(), "cannot store webhooks; they were refused");
                    for reply in replies {
                        let _ = reply.send(Err(OutboxError::Store(error.to_string())));
                    }
                }
            }
        });
    }
}

/// Listens on [`MESSAGES_CHANNEL`] on a connection of its own while the engine lives (`gone`
/// resolves when it is dropped) and wakes this replica's worker of each channel named, so a
/// message routed on another replica is posted at once rather than at the next poll. Made again
/// after a failure; the workers' polling covers the gap.
async fn listen(
    config: tokio_postgres::Config,
    tls: MakeRustlsConnect,
    wake: Wake,
    mut gone: oneshot::Receiver<()>,
) {
    let mut warned = false;
    loop {
        let connected = tokio::select! {
            c = config.connect(tls.clone()) => c,
            _ = &mut gone => return,
        };
        match connected {
            Ok((client, mut connection)) => {
                let statement = format!("LISTEN {MESSAGES_CHANNEL}");
                let listening = client.batch_execute(&statement);
                let mut listening = std::pin::pin!(listening);
                // The connection must be driven for the LISTEN to be answered.
                let ok = loop {
                    tokio::select! {
                        r = &mut listening => break r.is_ok(),
                        m = std::future::poll_fn(|cx| connection.poll_message(cx)) => {
                            if !matches!(m, Some(Ok(_))) {
                                break false;
                            }
                        }
                        _ = &mut gone => return,
                    }
                };
                if ok {
                    warned = false;
                    loop {
                        tokio::select! {
                            m = std::future::poll_fn(|cx| connection.poll_message(cx)) => match m {
                                Some(Ok(tokio_postgres::AsyncMessage::Notification(n))) => {
                                    wake.channels(vec![n.payload().to_string()]);
                                }
                                Some(Ok(_)) => {}
                                Some(Err(_)) | None => break,
                            },
                            _ = &mut gone => return,
                        }
                    }
                }
            }
            Err(error) => {
                if !std::mem::replace(&mut warned, true) {
                    tracing::warn!(
                        error = %PgError::from(error),
                        "cannot listen for other replicas' messages; polling"
                    );
                }
            }
        }
        tokio::select! {
            () = tokio::time::sleep(LISTEN_RETRY) => {}
            _ = &mut gone => return,
        }
    }
}

/// The router stage's connection: it holds the router lock while it lives (PostgreSQL releases
/// a session lock when its connection ends, so a replica that dies hands routing over).
struct RouterConn {
    client: tokio_postgres::Client,
    locked: bool,
}

/// The router stage's reads on PostgreSQL, driven from its thread with the runtime's
/// `block_on`. Reconnects after a failure; reads no new events while another replica routes.
struct PgRouterReads {
    runtime: tokio::runtime::Handle,
    config: tokio_postgres::Config,
    tls: MakeRustlsConnect,
    conn: RefCell<Option<RouterConn>>,
    routing: Arc<AtomicBool>,
}

fn store_err(e: PgError) -> StoreError {
    StoreError::from_message(e.to_string())
}

impl PgRouterReads {
    /// Runs `f` on the connection (made first when there is none); a failure drops the
    /// connection (and with it the router lock), so the next call starts afresh.
    fn with_conn<T>(
        &self,
        f: impl AsyncFnOnce(&mut RouterConn) -> Result<T, PgError>,
    ) -> Result<T, StoreError> {
        let mut slot = self.conn.borrow_mut();
        let result = self.runtime.block_on(async {
            if slot.as_ref().is_none_or(|c| c.client.is_closed()) {
                self.routing.store(false, Ordering::Relaxed);
                let (client, connection) = self.config.connect(self.tls.clone()).await?;
                self.runtime.spawn(async move {
                    if let Err(error) = connection.await {
                        tracing::debug!(%error, "the router's database connection ended");
                    }
                });
                // The new events are the first of the `events_new` index in id order. While a
                // burst is still being routed, the table's statistics say few are new, and the
                // planner then reads every new event (and its body) by a bitmap scan and sorts
                // them for the first batch: 74 ms a batch behind 15 000 waiting, against 1.2 ms
                // for the index scan, so routing slowed as its backlog grew.
                client.batch_execute("SET enable_bitmapscan = off").await?;
                *slot = Some(RouterConn {
                    client,
                    locked: false,
                });
            }
            match slot.as_mut() {
                Some(c) => f(c).await,
                None => Err(PgError::Db("no connection".into())),
            }
        });
        if result.is_err() {
            if slot.as_ref().is_some_and(|c| c.locked) {
                tracing::warn!("this replica lost the router lock with its database connection");
            }
            self.routing.store(false, Ordering::Relaxed);
            *slot = None;
        }
        result.map_err(store_err)
    }
}

impl RouterReads for PgRouterReads {
    fn new_events(&self, _after: i64, limit: usize) -> Result<Vec<StoredEvent>, StoreError> {
        self.with_conn(async |c: &mut RouterConn| {
            if !c.locked {
                let got: bool = c
                    .client
                    .query_one(
                        "SELECT pg_try_advisory_lock($1, $2)",
                        &[&LOCK_SPACE, &ROUTER_LOCK],
                    )
                    .await?
                    .try_get(0)?;
                if !got {
                    return Ok(Vec::new());
                }
                c.locked = true;
                self.routing.store(true, Ordering::Relaxed);
                tracing::info!("this replica routes the stored events (it holds the router lock)");
            }
            events::new_events(&c.client, limit).await
        })
    }

    fn chat_rules(&self) -> Result<Vec<ChatRule>, StoreError> {
        self.with_conn(async |c: &mut RouterConn| rules::chat_rules(&c.client).await)
    }

    fn memory(&self, key: &str) -> Result<Option<String>, StoreError> {
        self.with_conn(async |c: &mut RouterConn| memory::memory(&c.client, key).await)
    }
}
