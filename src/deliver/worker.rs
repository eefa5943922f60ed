//! Delivery workers: one task per channel leases its next message from the durable outbox,
//! waits for the credential's rate limit, posts, and records the outcome.
//!
//! A failed post is rescheduled with the retry policy (exponential backoff with jitter, the
//! server's `Retry-After`, a cap); a throttle answer pauses the whole credential; permanent
//! failures, the last attempt and messages older than the maximum age become dead letters (the
//! channel's [`DeadLetters`], if any, is told of each once it is recorded).
//! When more messages are due than the credential may post in a minute, the oldest are combined
//! into one digest (built by the channel's [`Digest`]) rather than waiting their turn for many
//! minutes.
//! A Telegram group that became a supergroup ([`Attempt::Migrated`]) is followed at once: the
//! worker posts the refused message and the rest to the new chat id and keeps the move as a
//! [`MOVED_RULE`] chat rule for the next start. A digest is posted under an id of its own (the
//! first message's and `+N`), so a Matrix txnId never stands for two different bodies.
//! A message with a conversation instruction ([`super::conversation`]) is posted in its object's
//! conversation: the root when the map has none (or it ended, or the chat lost it: once; a
//! reply the chat posted on its own in the channel, its root gone, is the new root), its
//! reference recorded with the outcome; else a reply in the root's thread, on `thread+edit` an
//! edit of the root when its card changed (a root an edit finds gone: the card is a new root,
//! once), and on Matrix a broadcast key's reply shown in the
//! room too; every one of these posts takes a slot of the credential's budget.
//! On shutdown a worker finishes the post in progress (bounded by the post timeout) and stops;
//! everything else stays in the outbox for the next start.

use super::clock::Clock;
use super::conversation::{self, Act, Instruction};
use super::durable::DurableOutbox;
use super::rate::RateLimiter;
use super::sender::{Attempt, Posted, Sender};
use super::store::{ChatRule, ConversationWrite, Leased, Outcome, RuleChange};
use super::{Auth, BoxFuture, Endpoint, RetryPolicy};
use crate::metrics::{self, Attempted};
use std::sync::Arc;
use tokio::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// The kind of the chat rule that keeps where a channel's chat moved (a Telegram group that
/// became a supergroup): `chat` is [`moved_rule_chat`], `spec` `{"chat_id": "…"}`. The worker
/// writes it when it follows a move; `serve` applies it at start ([`moved_chat_id`]).
pub const MOVED_RULE: &str = "moved";

/// The `chat` of a channel's [`MOVED_RULE`].
pub fn moved_rule_chat(channel: &str) -> String {
    format!("channel:{channel}")
}

/// The chat id `channel` moved to, from the chat rules, if it did.
pub fn moved_chat_id(rules: &[ChatRule], channel: &str) -> Option<String> {
    let chat = moved_rule_chat(channel);
    let r = rules
        .iter()
        .find(|r| r.kind == MOVED_RULE && r.chat == chat)?;
    let spec: serde_json::Value = serde_json::from_str(&r.spec).ok()?;
    spec.get("chat_id")?.as_str().map(str::to_string)
}

/// Longest a worker sleeps with nothing due before looking again.
pub const IDLE_POLL: Duration = Duration::from_secs(5);
/// Shortest sleep between two empty looks, so a worker never spins.
pub const MIN_IDLE: Duration = Duration::from_millis(20);

/// Something that can post a message (the HTTP [`Sender`], or a fake in tests).
pub trait Post: Send + Sync + 'static {
    /// Posts `body` to `endpoint`; `id` names the message (the same on every retry).
    fn post<'a>(
        &'a self,
        endpoint: &'a Endpoint,
        id: &'a str,
        body: &'a str,
    ) -> BoxFuture<'a, Attempt>;

    /// Posts `body` as `act` in a conversation. The default posts flat and gives no
    /// reference (the message is then sent as if the channel had no conversations).
    fn converse<'a>(
        &'a self,
        endpoint: &'a Endpoint,
        id: &'a str,
        body: &'a str,
        act: Act<'a>,
    ) -> BoxFuture<'a, Posted> {
        let _ = act;
        Box::pin(async move {
            Posted {
                attempt: self.post(endpoint, id, body).await,
                reference: None,
                root_lost: false,
            }
        })
    }
}

impl Post for Sender {
    fn post<'a>(
        &'a self,
        endpoint: &'a Endpoint,
        id: &'a str,
        body: &'a str,
    ) -> BoxFuture<'a, Attempt> {
        Box::pin(Sender::post(self, endpoint, id, body))
    }

    fn converse<'a>(
        &'a self,
        endpoint: &'a Endpoint,
        id: &'a str,
        body: &'a str,
        act: Act<'a>,
    ) -> BoxFuture<'a, Posted> {
        Box::pin(Sender::converse(self, endpoint, id, body, act))
    }
}

/// Combines the bodies of a channel's oldest due messages into one digest body. `deliver` moves
/// opaque bodies; the message format's owner (for Cliq, `render::cliq::digest`) is passed in by
/// `serve`.
pub trait Digest: Send + Sync + 'static {
    /// Combines the leading `bodies` (oldest first, at least two) into one body; returns it and
    /// how many bodies it holds (at least one).
    fn combine(&self, bodies: &[&str]) -> (String, usize);
}

impl<F> Digest for F
where
    F: Fn(&[&str]) -> (String, usize) + Send + Sync + 'static,
{
    fn combine(&self, bodies: &[&str]) -> (String, usize) {
        self(bodies)
    }
}

/// A message that just became a dead letter, as [`DeadLetters`] is told of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    /// Row id (for `outbox retry ID`).
    pub id: i64,
    /// Its channel.
    pub channel: String,
    /// Id for logs (`request/channel`).
    pub delivery_id: String,
    /// The last HTTP status, if any.
    pub status: Option<u16>,
    /// The last error.
    pub error: String,
}

/// Told of each message that becomes a dead letter, after it is recorded. `deliver` knows no
/// chat format: `serve` implements it (an alert card in `gitlab.ops_channel`).
pub trait DeadLetters: Send + Sync + 'static {
    /// `dead` was just recorded as a dead letter.
    fn dead<'a>(&'a self, dead: &'a DeadLetter) -> BoxFuture<'a, ()>;
}

/// A channel as its worker sees it.
#[derive(Clone)]
pub struct Target {
    /// Channel name.
    pub name: String,
    /// Where to post.
    pub endpoint: Endpoint,
    /// The budget of the channel's credential (shared by channels with one credential).
    pub limiter: Arc<RateLimiter>,
    /// How several of this channel's messages become one digest.
    pub digest: Arc<dyn Digest>,
    /// Who is told of this channel's dead letters, if anyone.
    pub dead_letters: Option<Arc<dyn DeadLetters>>,
}

/// Most messages a worker leases at once (each still posted, and recorded, one at a time).
pub const LEASE_BATCH: usize = 32;

/// What a shared store's lease adds to the post timeout.
pub const SHARED_LEASE_MARGIN: Duration = Duration::from_secs(10);
/// A channel whose budget is larger than this many posts a minute never digests (a local
/// endpoint, not a chat with a rate limit): a digest's test counts up to the budget's worth of
/// waiting messages at every lease.
pub const DIGEST_BUDGET_MAX: usize = 10_000;

/// What a worker needs besides its channel, shared by every step.
struct Ctx<'a> {
    target: &'a Target,
    /// Where the channel posts now: the target's endpoint, with a Telegram chat's new id once it
    /// migrated.
    endpoint: std::sync::Mutex<Endpoint>,
    outbox: &'a DurableOutbox,
    poster: &'a dyn Post,
    policy: RetryPolicy,
    clock: Clock,
    /// How long a lease lasts (per message leased).
    lease_ms: i64,
}

/// Runs one channel's worker until `cancel` fires.
pub async fn run_channel(
    target: Target,
    outbox: DurableOutbox,
    poster: Arc<dyn Post>,
    policy: RetryPolicy,
    clock: Clock,
    cancel: CancellationToken,
) {
    let wake = outbox.waker(&target.name);
    // Replicas sharing a store lease one message at a time, for as long as one post can take
    // (renewed while it waits for a slot): a replica that dies holds little, and not for long.
    let shared = target.limiter.is_shared();
    let (lease_ms, max) = if shared {
        ((policy.timeout + SHARED_LEASE_MARGIN).as_millis() as i64, 1)
    } else {
        (
            (policy.timeout * 2 + Duration::from_secs(30)).as_millis() as i64,
            LEASE_BATCH,
        )
    };
    let ctx = Ctx {
        target: &target,
        endpoint: std::sync::Mutex::new(target.endpoint.clone()),
        outbox: &outbox,
        poster: poster.as_ref(),
        policy,
        clock,
        lease_ms,
    };
    let mut outage: Option<backon::ExponentialBackoff> = None;
    'work: while !cancel.is_cancelled() {
        let now = clock.now_ms();
        let per_minute = target.limiter.per_minute() as usize;
        let digest_over = if per_minute > DIGEST_BUDGET_MAX {
            0
        } else {
            per_minute
        };
        let answer = match outbox
            .lease(&target.name, now, lease_ms, digest_over, max)
            .await
        {
            Ok(a) => {
                if outage.take().is_some() {
                    tracing::info!(channel = %target.name, "reading the outbox again");
                }
                a
            }
            Err(error) => {
                // While the store stays unreachable: one line, tries further and further apart
                // (up to a few seconds), and one line when it is back.
                if outage.is_none() {
                    tracing::error!(channel = %target.name, %error, "cannot read the outbox");
                }
                let wait = outage
                    .get_or_insert_with(super::store_backoff)
                    .next()
                    .unwrap_or(super::STORE_BACKOFF_MAX);
                tokio::select! {
                    _ = cancel.cancelled() => break,
                    _ = tokio::time::sleep(wait) => continue,
                }
            }
        };
        if answer.messages.is_empty() {
            let idle_until = Instant::now() + IDLE_POLL;
            let until = answer
                .next_due
                .map_or(idle_until, |t| clock.instant_at(t).min(idle_until))
                .max(Instant::now() + MIN_IDLE);
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = wake.notified() => {}
                _ = tokio::time::sleep_until(until) => {}
            }
            continue;
        }
        let mut leased = answer.messages;
        if answer.digest {
            // Over the budget: the oldest ones combined into one digest.
            // A digest is one flat post: conversation instructions are left aside.
            let plain: Vec<String> = leased
                .iter()
                .map(|m| conversation::unwrap(&m.body).0)
                .collect();
            let bodies: Vec<&str> = plain.iter().map(String::as_str).collect();
            let (body, used) = target.digest.combine(&bodies);
            let used = used.clamp(1, leased.len());
            for rest in leased.split_off(used) {
                let _ = outbox.record(rest.id, Outcome::Release).await;
            }
            if !ctx.post_and_record(&leased, &body, None, &cancel).await {
                break;
            }
            continue;
        }
        // One by one, each recorded before the next is posted: a crash re-sends one at most.
        let mut rest = leased.into_iter();
        while let Some(m) = rest.next() {
            let (body, instruction) = conversation::unwrap(&m.body);
            if !ctx
                .post_and_record(
                    std::slice::from_ref(&m),
                    &body,
                    instruction.as_ref(),
                    &cancel,
                )
                .await
            {
                for r in rest {
                    let _ = outbox.record(r.id, Outcome::Release).await;
                }
                break 'work;
            }
        }
    }
    tracing::debug!(channel = %target.name, "worker stopped");
}

impl Ctx<'_> {
    /// Where the channel posts now.
    fn endpoint(&self) -> Endpoint {
        match self.endpoint.lock() {
            Ok(e) => e.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// A Telegram chat became a supergroup with the id `to`: the channel posts there from now
    /// on, starting with the message that was refused. Returns the old id when it changed.
    fn moved(&self, to: &str) -> Option<String> {
        let mut e = match self.endpoint.lock() {
            Ok(e) => e,
            Err(poisoned) => poisoned.into_inner(),
        };
        match &mut e.auth {
            Auth::Telegram { chat_id, .. } if chat_id != to => {
                tracing::warn!(channel = %self.target.name, from = %chat_id, to = %to, "the Telegram group became a supergroup; posting to its new chat id from now on (kept in the outbox; set chat_id in the config)");
                Some(std::mem::replace(chat_id, to.to_string()))
            }
            _ => None,
        }
    }

    /// Keeps the move in the store, so a restart posts to the new chat at once.
    async fn keep_move(&self, from: &str, to: &str, now: i64) {
        let rule = ChatRule {
            chat: moved_rule_chat(&self.target.name),
            kind: MOVED_RULE.to_string(),
            subject: "chat_id".to_string(),
            spec: serde_json::json!({ "chat_id": to, "from": from }).to_string(),
            until: None,
            created_by: "bridge".to_string(),
            created_at: now,
        };
        if let Err(error) = self.outbox.change_rules(RuleChange::Put(rule)).await {
            // The channel still posts to the new chat; a restart learns the move again.
            tracing::warn!(channel = %self.target.name, %error, "cannot keep the chat's move in the outbox");
        }
    }

    /// Waits for the credential's rate limit (a wait longer than [`MIN_IDLE`] is counted),
    /// keeping the lease of `batch` meanwhile when the window is shared; `false` when that
    /// lease was lost (nothing is to be posted or recorded then).
    async fn acquire_measured(&self, batch: &[Leased]) -> bool {
        let started = Instant::now();
        let ids: Vec<i64> = batch.iter().map(|m| m.id).collect();
        let (outbox, clock, lease_ms) = (self.outbox, self.clock, self.lease_ms);
        let kept = self
            .target
            .limiter
            .acquire_keeping(|| {
                let (outbox, ids) = (outbox.clone(), ids.clone());
                async move {
                    match outbox.renew(ids, clock.now_ms(), lease_ms).await {
                        Ok(kept) => kept,
                        Err(error) => {
                            // Unsure whether the lease holds: give the message up rather than
                            // post it after another replica may have taken it (order first).
                            tracing::warn!(%error, "cannot renew a lease; leaving the message to whoever leases it next");
                            false
                        }
                    }
                }
            })
            .await;
        let waited = started.elapsed();
        if waited >= MIN_IDLE {
            metrics::rate_limit_wait(&self.target.name, waited);
        }
        kept
    }

    /// Waits for the rate limit, posts `body` (standing for `batch`, oldest first; in its
    /// object's conversation when `instruction` says so) and records the outcome for each of
    /// them. Returns false, having released them, when cancelled first.
    async fn post_and_record(
        &self,
        batch: &[Leased],
        body: &str,
        instruction: Option<&Instruction>,
        cancel: &CancellationToken,
    ) -> bool {
        let (target, outbox, policy) = (self.target, self.outbox, self.policy);
        tokio::select! {
            _ = cancel.cancelled() => {
                for m in batch {
                    let _ = outbox.record(m.id, Outcome::Release).await;
                }
                return false;
            }
            kept = self.acquire_measured(batch) => if !kept {
                tracing::warn!(channel = %target.name, "the lease was lost while waiting for a posting slot; the message is left to whoever leases it next");
                // Releases it if it is still ours after all (guarded by the lease token).
                for m in batch {
                    let _ = outbox.record(m.id, Outcome::Release).await;
                }
                return true;
            }
        }
        let used = batch.len();
        let Some(first) = batch.first() else {
            return true;
        };
        // Not cancelled: the post in progress finishes (within the post timeout) and is recorded.
        let endpoint = self.endpoint();
        // A digest is another message than its first one alone: another id (a Matrix txnId).
        let id = if used > 1 {
            format!("{}+{used}", first.delivery_id)
        } else {
            first.delivery_id.clone()
        };
        let (attempt, mut change) = match instruction {
            None => (self.poster.post(&endpoint, &id, body).await, None),
            Some(i) => self.converse(&endpoint, &id, body, i, batch).await,
        };
        let attempts = first.attempts + 1;
        let now = self.clock.now_ms();
        let max_age_ms = policy.max_age.as_millis() as i64;
        let d = &first.delivery_id;
        let key = first.idempotency_key.as_deref().unwrap_or("-");
        let ch = &target.name;
        let outcome = match attempt {
            Attempt::Delivered(status) => {
                tracing::info!(delivery = %d, idempotency_key = %key, channel = %ch, status, attempts, digest = used, "delivered");
                Outcome::Sent
            }
            Attempt::Migrated { to, reason } => {
                if attempts >= policy.max_attempts {
                    tracing::error!(delivery = %d, idempotency_key = %key, channel = %ch, %reason, attempts, "giving up; kept as a dead letter");
                    Outcome::Dead {
                        status: Some(400),
                        error: format!("gave up after {attempts} attempts: {reason}"),
                    }
                } else {
                    if let Some(from) = self.moved(&to) {
                        self.keep_move(&from, &to, now).await;
                    }
                    Outcome::Retry {
                        next_at: now,
                        status: Some(400),
                        error: reason,
                    }
                }
            }
            Attempt::Permanent { status, reason } => {
                tracing::error!(delivery = %d, idempotency_key = %key, channel = %ch, status, %reason, digest = used, "rejected by the chat endpoint; kept as a dead letter");
                Outcome::Dead {
                    status: Some(status),
                    error: reason,
                }
            }
            Attempt::Retry {
                status,
                retry_after,
                throttled,
                reason,
            } => {
                let too_old = max_age_ms > 0 && now - first.created_at > max_age_ms;
                if attempts >= policy.max_attempts || too_old {
                    tracing::error!(delivery = %d, idempotency_key = %key, channel = %ch, ?status, %reason, attempts, "giving up; kept as a dead letter");
                    Outcome::Dead {
                        status,
                        error: format!("gave up after {attempts} attempts: {reason}"),
                    }
                } else {
                    let wait = policy.delay(attempts, retry_after);
                    if throttled {
                        target.limiter.pause(wait);
                    }
                    tracing::warn!(delivery = %d, idempotency_key = %key, channel = %ch, ?status, %reason, attempts, wait_ms = wait.as_millis() as u64, throttled, "post failed; will retry");
                    Outcome::Retry {
                        next_at: now + wait.as_millis() as i64,
                        status,
                        error: reason,
                    }
                }
            }
        };
        if let Some(attempted) = attempted(&outcome) {
            for m in batch {
                let age = Duration::from_millis(now.saturating_sub(m.created_at).max(0) as u64);
                metrics::delivery(ch, attempted, m.attempts + 1, age);
            }
        }
        for m in batch {
            let recorded = match (change.take(), &outcome) {
                (Some(w), Outcome::Sent) => {
                    outbox.record_conversation(m.id, outcome.clone(), w).await
                }
                _ => outbox.record(m.id, outcome.clone()).await,
            };
            if let Err(error) = recorded {
                // The lease expires and the message is tried again: at least once, never lost.
                tracing::error!(delivery = %m.delivery_id, idempotency_key = m.idempotency_key.as_deref().unwrap_or("-"), channel = %ch, %error, "cannot record the outcome");
                continue;
            }
            if let (Outcome::Dead { status, error }, Some(tell)) = (&outcome, &target.dead_letters)
            {
                let dead = DeadLetter {
                    id: m.id,
                    channel: ch.clone(),
                    delivery_id: m.delivery_id.clone(),
                    status: *status,
                    error: error.clone(),
                };
                tell.dead(&dead).await;
            }
        }
        true
    }
}

impl Ctx<'_> {
    /// Posts `body` in its object's conversation: the root when there is none (or it ended
    /// `days` ago, or its root is gone from the chat: once), else a reply in the root's
    /// thread and, on `thread+edit`, the root edited when its card changed (an edit takes a
    /// posting slot of its own). Returns the attempt of the message's post and the change to
    /// record with it.
    async fn converse(
        &self,
        endpoint: &Endpoint,
        id: &str,
        body: &str,
        i: &Instruction,
        batch: &[Leased],
    ) -> (Attempt, Option<ConversationWrite>) {
        let ch = &self.target.name;
        let now = self.clock.now_ms();
        let current = match self.outbox.conversation(ch, &i.key).await {
            Ok(c) => c.filter(|c| !i.expired(c.closed_at, now)),
            Err(error) => {
                let reason = format!("cannot read the conversation: {error}");
                return (unposted(reason), None);
            }
        };
        let Some(current) = current else {
            return self.start(endpoint, id, body, i, batch).await;
        };
        let reply = Act::Reply {
            root: &current.root,
            broadcast: i.broadcast,
        };
        let posted = self.poster.converse(endpoint, id, body, reply).await;
        if posted.root_lost {
            // The chat posted the reply on its own in the channel (Slack, its root gone): that
            // post is the new root, unless the root is to show another card (then one follows).
            if let (Attempt::Delivered(_), Some(orphan)) = (&posted.attempt, &posted.reference) {
                let orphan_root = ConversationWrite {
                    channel: ch.clone(),
                    key: i.key.clone(),
                    root: Some(orphan.clone()),
                    body_hash: i.root.as_deref().map(conversation::body_hash),
                    closed: i.ends,
                };
                match i.root.as_deref().filter(|card| *card != body) {
                    None => {
                        tracing::warn!(channel = %ch, object = %i.key, "the thread's root is gone from the chat; the reply, posted in the channel, is the new root");
                        return (posted.attempt, Some(orphan_root));
                    }
                    Some(card) => {
                        // The message is in the channel already: the card alone starts the new
                        // root (as `card`, so `start` posts no first reply: the message again).
                        // Until it is posted, the message's post stands for the root.
                        let new = self.new_root(endpoint, id, card, i, batch).await;
                        return (posted.attempt, Some(new.unwrap_or(orphan_root)));
                    }
                }
            }
            tracing::warn!(channel = %ch, object = %i.key, "the thread's root is gone from the chat; starting a new root");
            if !self.acquire_measured(batch).await {
                return (unposted("the lease was lost".into()), None);
            }
            return self.start(endpoint, id, body, i, batch).await;
        }
        if matches!(posted.attempt, Attempt::Delivered(_)) {
            self.show_in_channel(endpoint, id, body, &current.root, i, batch)
                .await;
        }
        let mut change = ConversationWrite {
            channel: ch.clone(),
            key: i.key.clone(),
            root: None,
            body_hash: None,
            closed: i.ends,
        };
        if let (true, Some(card), Attempt::Delivered(_)) = (i.edit, &i.root, &posted.attempt) {
            let hash = conversation::body_hash(card);
            if current.body_hash.as_deref() != Some(hash.as_str())
                && self.acquire_measured(batch).await
            {
                let edit = Act::Edit {
                    root: &current.root,
                };
                let edited = self.poster.converse(endpoint, id, card, edit).await;
                match edited.attempt {
                    Attempt::Delivered(_) => change.body_hash = Some(hash),
                    // Where a reply cannot find it (a Discord text channel's replies are posts
                    // of their own), only the edit finds the root gone: the card becomes the new
                    // root, once (a txnId of its own: the reply's is taken).
                    _ if edited.root_lost => {
                        if let Some(new) = self.new_root(endpoint, id, card, i, batch).await {
                            change = new;
                        }
                    }
                    // The reply is posted; the next event's edit shows the latest card.
                    other => {
                        tracing::warn!(channel = %ch, object = %i.key, attempt = ?other, "cannot edit the thread's root")
                    }
                }
            }
        }
        (posted.attempt, Some(change))
    }

    /// Posts `card` as the new root of `i.key`, whose root the chat no longer has, once: a
    /// posting slot of its own, and an id of its own (`{id}/root`: the message's is taken). The
    /// change to record, or `None` when it could not be posted (logged; the next event tries).
    async fn new_root(
        &self,
        endpoint: &Endpoint,
        id: &str,
        card: &str,
        i: &Instruction,
        batch: &[Leased],
    ) -> Option<ConversationWrite> {
        let ch = &self.target.name;
        tracing::warn!(channel = %ch, object = %i.key, "the thread's root is gone from the chat; starting a new root");
        if !self.acquire_measured(batch).await {
            return None;
        }
        match self
            .start(endpoint, &format!("{id}/root"), card, i, batch)
            .await
        {
            (Attempt::Delivered(_), Some(new)) => Some(new),
            (other, _) => {
                tracing::warn!(channel = %ch, object = %i.key, attempt = ?other, "cannot post the new root");
                None
            }
        }
    }

    /// Shows a delivered reply (`body`, under `root`) of a broadcast key in the channel too,
    /// where a thread's replies are out of the channel's timeline and the reply cannot say so
    /// itself (Matrix, Mattermost): a post of its own, in the budget; a failure is logged.
    async fn show_in_channel(
        &self,
        endpoint: &Endpoint,
        id: &str,
        body: &str,
        root: &str,
        i: &Instruction,
        batch: &[Leased],
    ) {
        if !i.broadcast || !super::sender::separate_broadcast(&endpoint.auth) {
            return;
        }
        if self.acquire_measured(batch).await {
            let shown = Act::Broadcast { root };
            let b = self.poster.converse(endpoint, id, body, shown).await;
            if !matches!(b.attempt, Attempt::Delivered(_)) {
                tracing::warn!(channel = %self.target.name, object = %i.key, attempt = ?b.attempt, "cannot show the reply in the channel");
            }
        }
    }

    /// Starts a new conversation about `i.key`: posts its root (on `thread+edit` the root card,
    /// else `body`), whose reference is recorded with the message (a chat that gives none: a
    /// flat post, nothing recorded). A root card that is not `body` is followed by `body` as the
    /// thread's first reply (a post of its own, in the budget; flat where the chat gave no
    /// reference; a broadcast key's shown in the channel too), so the event that started the
    /// conversation is not lost; a reply that fails is logged, not tried again (the root, and so
    /// the message, was delivered).
    async fn start(
        &self,
        endpoint: &Endpoint,
        id: &str,
        body: &str,
        i: &Instruction,
        batch: &[Leased],
    ) -> (Attempt, Option<ConversationWrite>) {
        let root_body = i.root.as_deref().unwrap_or(body);
        let posted = self
            .poster
            .converse(endpoint, id, root_body, Act::Root)
            .await;
        let delivered = matches!(posted.attempt, Attempt::Delivered(_));
        if delivered && root_body != body {
            if self.acquire_measured(batch).await {
                // A chat that gave no reference took the root card as a flat post: the message
                // follows flat too, so it is not lost.
                let act = match &posted.reference {
                    Some(root) => Act::Reply {
                        root,
                        broadcast: i.broadcast,
                    },
                    None => Act::Root,
                };
                // A message of its own: an id of its own (Matrix's txnId is made from it).
                let reply_id = format!("{id}/reply");
                let r = self.poster.converse(endpoint, &reply_id, body, act).await;
                match (&r.attempt, &posted.reference) {
                    (Attempt::Delivered(_), Some(root)) => {
                        self.show_in_channel(endpoint, &reply_id, body, root, i, batch)
                            .await
                    }
                    (Attempt::Delivered(_), None) => {}
                    _ => {
                        tracing::warn!(channel = %self.target.name, object = %i.key, attempt = ?r.attempt, "cannot post the first reply under a new root")
                    }
                }
            } else {
                tracing::warn!(channel = %self.target.name, object = %i.key, "the lease was lost after a new root; its first reply is not posted");
            }
        }
        let change = posted.reference.map(|root| ConversationWrite {
            channel: self.target.name.clone(),
            key: i.key.clone(),
            root: Some(root),
            body_hash: i.root.as_deref().map(conversation::body_hash),
            closed: i.ends,
        });
        (posted.attempt, change)
    }
}

/// An attempt that could not be made (tried again later).
fn unposted(reason: String) -> Attempt {
    Attempt::Retry {
        status: None,
        retry_after: None,
        throttled: false,
        reason,
    }
}

/// The metrics' name for an attempt's outcome.
fn attempted(outcome: &Outcome) -> Option<Attempted> {
    match outcome {
        Outcome::Sent => Some(Attempted::Delivered),
        Outcome::Retry { .. } => Some(Attempted::Retry),
        Outcome::Dead { .. } => Some(Attempted::Dead),
        Outcome::Release => None,
    }
}
