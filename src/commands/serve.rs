//! `serve`: the daemon. Loads config and templates, opens the durable outbox, starts the router
//! stage (stored events → messages) and one delivery worker per channel, listens, and on
//! SIGTERM/SIGINT stops accepting, finishes in-flight requests, the routing batch and the posts
//! in progress within a bound, and leaves the rest in the store for the next start. With
//! `gitlab.ops_channel`, each new dead letter is alerted there.

use crate::config::{ChannelConfig, ChannelKind, Config, Format, LogFormat};
use crate::deliver::clock::Clock;
use crate::deliver::durable::{DurableOutbox, DurableSettings};
use crate::deliver::engine::SharedWindow;
use crate::deliver::pg::PgOptions;
use crate::deliver::rate::RateLimiter;
use crate::deliver::router;
use crate::deliver::sender::{Attempt, Sender};
use crate::deliver::store::PruneBefore;
use crate::deliver::worker::{self, DeadLetter, DeadLetters, Post, Target};
use crate::deliver::{Auth, Batch, BoxFuture, Delivery, Endpoint};
use crate::extension::{ChatStarter, Extension};
use crate::pipeline::{ChatOptions, Pipeline};
use crate::preview::{self, PreviewState};
use crate::render::terminal::{self, Paint};
use crate::render::{cliq, Platform};
use crate::route::{self, SharedRoutes};
use crate::server::{
    self, AppState, CliqCommands, CliqEndpoint, CliqVerifier, ListenOptions, Verifier,
};
use crate::shutdown;
use crate::systemd;
use anyhow::Context;
use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// One limiter per credential: channels posting with the same key or token share a budget, the
/// smallest `rate_per_minute` among them. Each console channel has a budget of its own.
pub fn targets(channels: &[ChannelConfig]) -> Vec<Target> {
    targets_and_chats(channels, None, None).0
}

/// Who an endpoint posts as, for its rate budget: its key or token, a webhook's own URL, or
/// (without any credential) its URL.
fn credential(endpoint: &Endpoint) -> String {
    match &endpoint.auth {
        Auth::ZapiKey(k) => format!("zapikey:{}", k.expose()),
        Auth::OAuth(t) => format!("oauth:{}", t.expose()),
        // An extension's incoming URL is limited per zapikey like any other Cliq post.
        Auth::Query(keys) => match keys.iter().find(|(k, _)| k == "zapikey") {
            Some((_, k)) => format!("zapikey:{}", k.expose()),
            None => format!("url:{}", endpoint.url),
        },
        // A webhook URL is its own budget (Slack, Discord, Google Chat: per webhook or space).
        Auth::SecretUrl(u) | Auth::Signed { url: u, .. } | Auth::Discord { url: u, .. } => {
            format!("webhook:{}", u.expose())
        }
        // Telegram limits a bot per chat (20 posts a minute in a group): a bot's channels into
        // different chats have budgets of their own, and a 429 pauses only that chat.
        Auth::Telegram { url, chat_id, .. } => format!("telegram:{}:{chat_id}", url.expose()),
        // Synapse limits a user's messages (`rc_message`), in every room alike.
        Auth::Matrix { token } => format!("matrix:{}", token.expose()),
        // Cliq limits a user: the grant (refresh token) the bridge posts as.
        Auth::CliqOAuth(o) => format!("cliq-oauth:{}", o.refresh_token.expose()),
        // Slack allows about one post a second per channel; a bot's channels have budgets of
        // their own.
        Auth::Slack { token, channel } => format!("slack:{}:{channel}", token.expose()),
        // Mattermost limits per user (the token), on each server.
        Auth::Mattermost { token, .. } => {
            format!("mattermost:{}:{}", endpoint.url, token.expose())
        }
        Auth::None => format!("url:{}", endpoint.url),
    }
}

/// Like [`targets`], with the Cliq extension's endpoint and `rate_per_minute` when it is
/// configured: every subscribed chat posts with its credential, so they all share one limiter
/// (the one of configured channels with the same credential, if any), returned second. With a
/// `window` shared by replicas (PostgreSQL), every limiter takes its slots from it.
pub fn targets_and_chats(
    channels: &[ChannelConfig],
    chats: Option<(&Endpoint, u32)>,
    window: Option<Arc<dyn SharedWindow>>,
) -> (Vec<Target>, Option<Arc<RateLimiter>>) {
    let credential_of = |c: &ChannelConfig| match c.kind {
        ChannelKind::Console => format!("console:{}", c.name),
        _ => credential(&c.endpoint),
    };
    let mut rates: HashMap<String, u32> = HashMap::new();
    for c in channels {
        let r = rates.entry(credential_of(c)).or_insert(c.rate_per_minute);
        *r = (*r).min(c.rate_per_minute);
    }
    if let Some((endpoint, rate)) = chats {
        let r = rates.entry(credential(endpoint)).or_insert(rate);
        *r = (*r).min(rate);
    }
    let limiters: HashMap<String, Arc<RateLimiter>> = rates
        .into_iter()
        .map(|(k, r)| {
            let limiter = match &window {
                Some(w) => RateLimiter::shared(r, &k, Arc::clone(w)),
                None => RateLimiter::new(r),
            };
            (k, Arc::new(limiter))
        })
        .collect();
    let targets = channels
        .iter()
        .filter_map(|c| {
            limiters.get(&credential_of(c)).map(|l| Target {
                name: c.name.clone(),
                endpoint: c.endpoint.clone(),
                limiter: Arc::clone(l),
                digest: digest_of(c),
                dead_letters: None,
            })
        })
        .collect();
    let chat_limiter = chats.and_then(|(e, _)| limiters.get(&credential(e)).cloned());
    (targets, chat_limiter)
}

/// The delivery workers of chats that subscribed themselves: one per chat, started when its
/// first subscription appears (or at start, for chats with subscriptions or messages waiting),
/// posting to `{api_url}/api/v2/chats/{chat_id}/message` with the extension's credential and
/// sharing its rate budget.
struct ChatWorkers {
    started: std::sync::Mutex<HashSet<String>>,
    api: Endpoint,
    limiter: Arc<RateLimiter>,
    outbox: DurableOutbox,
    poster: Arc<dyn Post>,
    policy: crate::deliver::RetryPolicy,
    clock: Clock,
    tracker: TaskTracker,
    cancel: CancellationToken,
    dead_letters: Option<Arc<dyn DeadLetters>>,
}

impl ChatWorkers {
    /// Starts the worker of `chat` unless it runs already.
    fn ensure(&self, chat: &str) {
        if !route::is_chat_id(chat) {
            tracing::warn!(chat = %chat, "not a Cliq chat id; no worker started");
            return;
        }
        let mut started = self.started.lock().unwrap_or_else(|p| p.into_inner());
        if !started.insert(chat.to_string()) {
            return;
        }
        let target = Target {
            name: route::chat_channel(chat),
            endpoint: Endpoint {
                url: format!("{}/api/v2/chats/{chat}/message", self.api.url),
                auth: self.api.auth.clone(),
            },
            limiter: Arc::clone(&self.limiter),
            digest: Arc::new(cliq::digest),
            dead_letters: self.dead_letters.clone(),
        };
        tracing::info!(chat = %chat, "chat worker started");
        self.tracker.spawn(worker::run_channel(
            target,
            self.outbox.clone(),
            Arc::clone(&self.poster),
            self.policy,
            self.clock,
            self.cancel.clone(),
        ));
    }

    /// Starts the workers of every chat with a subscription or a message waiting.
    async fn ensure_stored(&self) {
        match self.outbox.chat_rules().await {
            Ok(rules) => rules
                .iter()
                .filter(|r| r.kind == route::SUBSCRIPTION)
                .for_each(|r| self.ensure(&r.chat)),
            Err(error) => tracing::warn!(%error, "cannot read the chat rules"),
        }
        match crate::deliver::Outbox::stats(&self.outbox).await {
            Ok(stats) => stats
                .iter()
                .filter(|s| s.pending + s.retrying > 0)
                .filter_map(|s| route::chat_of(&s.channel))
                .for_each(|c| self.ensure(c)),
            Err(error) => tracing::warn!(%error, "cannot read the outbox"),
        }
    }
}

/// How often `serve` looks for chats that got a subscription from elsewhere
/// (`subscriptions import` while it runs).
const CHAT_SCAN: Duration = Duration::from_secs(5);

async fn scan_chats(chats: Arc<ChatWorkers>, cancel: CancellationToken) {
    loop {
        chats.ensure_stored().await;
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = tokio::time::sleep(CHAT_SCAN) => {}
        }
    }
}

/// `serve`'s alerts about dead letters: one card in `gitlab.ops_channel` for each message
/// given up (never for the ops channel's own, which could only loop), built by
/// `render::cliq::dead_letter_alert` for the ops channel's chat, with a *Retry* button when the
/// extension's `button_function` is set and the ops channel is a Cliq channel.
struct DeadAlerts {
    ops: String,
    platform: Platform,
    retry_function: Option<String>,
    outbox: DurableOutbox,
}

/// `gitlab.ops_channel`, if set, and its kind (config validation makes sure it names a channel).
fn ops_channel(cfg: &Config) -> Option<(String, ChannelKind)> {
    let name = cfg.gitlab.as_ref()?.ops_channel.clone()?;
    let kind = cfg
        .channels
        .iter()
        .find(|c| c.name == name)
        .map_or(ChannelKind::Cliq, |c| c.kind);
    Some((name, kind))
}

/// The thread (ordering key) of dead-letter alerts in the ops channel.
const DEAD_LETTER_THREAD: &str = "gitlab-chat-bridge/dead-letters";

impl DeadAlerts {
    /// From the configuration: `None` without `gitlab.ops_channel`.
    fn of(cfg: &Config, outbox: &DurableOutbox) -> Option<Arc<dyn DeadLetters>> {
        let (ops, kind) = ops_channel(cfg)?;
        let retry_function = match kind {
            ChannelKind::Cliq => cfg
                .cliq_extension
                .as_ref()
                .and_then(|x| x.button_function.clone()),
            _ => None,
        };
        Some(Arc::new(DeadAlerts {
            ops,
            platform: route::platform_of(kind),
            retry_function,
            outbox: outbox.clone(),
        }))
    }
}

impl DeadLetters for DeadAlerts {
    fn dead<'a>(&'a self, dead: &'a DeadLetter) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            if dead.channel == self.ops {
                // An alert about the ops channel would go to the ops channel: logged only.
                return;
            }
            let card = cliq::dead_letter_alert(
                &dead.channel,
                dead.id,
                dead.status,
                &dead.error,
                self.retry_function.as_deref(),
            );
            let body = self.platform.body(&card, DEAD_LETTER_THREAD).to_json();
            let request_id = format!("dead-letter-{}", dead.id);
            let batch = Batch {
                dedupe_key: None,
                request_id: request_id.clone(),
                deliveries: vec![Delivery {
                    id: format!("{request_id}/{}", self.ops),
                    channel: self.ops.clone(),
                    ordering_key: DEAD_LETTER_THREAD.into(),
                    body,
                }],
            };
            if let Err(error) = self.outbox.enqueue(batch).await {
                tracing::error!(%error, message = dead.id, "cannot queue a dead-letter alert");
            }
        })
    }
}

struct Commands(Extension);

impl CliqCommands for Commands {
    fn invoke<'a>(
        &'a self,
        invocation: &'a serde_json::Value,
    ) -> BoxFuture<'a, (u16, serde_json::Value)> {
        Box::pin(async move {
            let a = self.0.invoke(invocation).await;
            (a.status, a.body)
        })
    }
}

/// Points each Telegram channel whose group became a supergroup (a move a worker kept in the
/// outbox, `worker::MOVED_RULE`) at its new chat id.
async fn follow_moves(outbox: &DurableOutbox, targets: &mut [Target]) {
    let rules = match outbox.chat_rules().await {
        Ok(r) => r,
        Err(error) => {
            tracing::warn!(%error, "cannot read the chat rules; a moved Telegram chat is found again at its first post");
            return;
        }
    };
    for t in targets {
        let Some(to) = worker::moved_chat_id(&rules, &t.name) else {
            continue;
        };
        if let Auth::Telegram { chat_id, .. } = &mut t.endpoint.auth {
            if *chat_id != to {
                tracing::info!(channel = %t.name, configured = %chat_id, to = %to, "the Telegram group moved earlier: posting to its new chat id (set chat_id in the config)");
                *chat_id = to;
            }
        }
    }
}

/// How a channel's backlog is combined: Cliq cards (and the console, which draws them) into
/// one Cliq digest; other kinds and the event JSON are posted one by one (their limits are per
/// second rather than Cliq's lock-out, and a webhook consumer wants each event).
fn digest_of(c: &ChannelConfig) -> Arc<dyn worker::Digest> {
    match (c.kind, c.format) {
        (ChannelKind::Cliq | ChannelKind::Console, Format::Card) => Arc::new(cliq::digest),
        _ => Arc::new(|bodies: &[&str]| {
            (
                bodies.first().map_or_else(String::new, |b| b.to_string()),
                1,
            )
        }),
    }
}

/// The poster of a `console` channel: draws each message as text (`render::terminal`) on
/// standard output, in colour only on a terminal without `NO_COLOR`.
struct Console {
    channel: String,
    paint: Paint,
}

impl Console {
    fn for_stdout(channel: &str) -> Console {
        use std::io::IsTerminal;
        Console {
            channel: channel.to_string(),
            paint: Paint::detect(
                std::io::stdout().is_terminal(),
                std::env::var_os("NO_COLOR").as_deref(),
            ),
        }
    }
}

impl Post for Console {
    fn post<'a>(
        &'a self,
        _endpoint: &'a Endpoint,
        _id: &'a str,
        body: &'a str,
    ) -> BoxFuture<'a, Attempt> {
        let text = terminal::draw(&self.channel, body, self.paint);
        Box::pin(async move {
            // A blocked pipe must not stall a runtime thread; the lock keeps messages whole.
            let written = tokio::task::spawn_blocking(move || {
                use std::io::Write;
                let mut out = std::io::stdout().lock();
                out.write_all(text.as_bytes())?;
                out.flush()
            })
            .await
            .map_err(|e| format!("the console writer failed: {e}"))
            .and_then(|r| r.map_err(|e| format!("cannot write to standard output: {e}")));
            match written {
                // No HTTP here: 200 stands for "written".
                Ok(()) => Attempt::Delivered(200),
                Err(reason) => Attempt::Retry {
                    status: None,
                    retry_after: None,
                    throttled: false,
                    reason,
                },
            }
        })
    }
}

/// The `[log] format` of the config at `path`, read before logging starts; text when the file
/// cannot be loaded (`run` then reports why).
pub fn log_format(path: &Path) -> LogFormat {
    Config::load(path).map(|c| c.log.format).unwrap_or_default()
}

/// Runs the daemon until a stop signal.
pub async fn run(config: &Path) -> anyhow::Result<i32> {
    let cfg: Config = super::load_config(config)?;
    let table = super::routes_or_fail(&cfg)?;
    let verifier = Verifier::new(&cfg.server)?;
    let listen = ListenOptions::from_config(&cfg.server)?;
    let metrics = crate::metrics::install()?;
    let cancel = CancellationToken::new();
    shutdown::cancel_on_signal(cancel.clone());
    let tracker = TaskTracker::new();
    let clock = Clock::new();
    let names: Vec<String> = cfg.channels.iter().map(|c| c.name.clone()).collect();
    let (outbox, writer) = open_outbox(&cfg, &names, clock).await?;
    let routes = SharedRoutes::new(table);
    let stage_stop = CancellationToken::new();
    let mut pipeline = Pipeline::new(routes.clone());
    if let Some(check) = force_check(&cfg) {
        pipeline = pipeline.with_force_check(check);
    }
    if let Some(x) = &cfg.cliq_extension {
        pipeline = pipeline.with_chats(ChatOptions {
            confidential: x.confidential,
            mute_button: x.button_function.clone(),
        });
    }
    let stage = router::spawn(outbox.clone(), Arc::new(pipeline), stage_stop.clone())
        .context("cannot start the router stage")?;
    let sender = Arc::new(Sender::new(cfg.retry.timeout)?);
    let workers = cancel.child_token();
    // Matrix room aliases are resolved once, at start but beside it (a homeserver that hangs
    // must not hold back listening), so a wrong one shows before any post; a homeserver away
    // now is asked again at the channel's first post.
    let aliases: Vec<(String, Endpoint)> = cfg
        .channels
        .iter()
        .filter(|c| c.kind == ChannelKind::Matrix)
        .map(|c| (c.name.clone(), c.endpoint.clone()))
        .collect();
    if !aliases.is_empty() {
        let (sender, stop) = (sender.clone(), workers.clone());
        tracker.spawn(async move {
            for (channel, endpoint) in aliases {
                tokio::select! {
                    () = stop.cancelled() => return,
                    r = sender.prepare(&endpoint) => if let Err(reason) = r {
                        tracing::error!(%channel, %reason, "cannot resolve the Matrix room alias");
                    },
                }
            }
        });
    }
    let poster: Arc<dyn Post> = sender;
    let extension_api = cfg
        .cliq_extension
        .as_ref()
        .map(|x| (&x.api, x.rate_per_minute));
    let (mut channel_targets, chat_limiter) =
        targets_and_chats(&cfg.channels, extension_api, outbox.shared_window());
    let dead_letters = DeadAlerts::of(&cfg, &outbox);
    for t in &mut channel_targets {
        t.dead_letters = dead_letters.clone();
    }
    follow_moves(&outbox, &mut channel_targets).await;
    let mut cliq_endpoint = None;
    if let (Some(x), Some(limiter)) = (&cfg.cliq_extension, chat_limiter) {
        let chats = Arc::new(ChatWorkers {
            started: Default::default(),
            api: x.api.clone(),
            limiter,
            outbox: outbox.clone(),
            poster: Arc::clone(&poster),
            policy: cfg.retry,
            clock,
            tracker: tracker.clone(),
            cancel: workers.clone(),
            dead_letters: dead_letters.clone(),
        });
        let starter_chats = Arc::clone(&chats);
        let starter: ChatStarter = Arc::new(move |chat: &str| starter_chats.ensure(chat));
        let extension = Extension::new(&cfg, outbox.clone(), starter, routes.clone())?
            .context("the Cliq extension is configured but could not be built")?;
        cliq_endpoint = Some(CliqEndpoint {
            path: x.path.clone(),
            verifier: CliqVerifier::new(&x.public_keys)?,
            commands: Arc::new(Commands(extension)),
        });
        tracker.spawn(scan_chats(chats, workers.clone()));
        tracing::info!(path = %x.path, "Cliq extension callback");
    }
    for t in channel_targets {
        let kind = cfg
            .channels
            .iter()
            .find(|c| c.name == t.name)
            .map(|c| c.kind);
        let poster: Arc<dyn Post> = match kind {
            Some(ChannelKind::Console) => Arc::new(Console::for_stdout(&t.name)),
            Some(_) | None => Arc::clone(&poster),
        };
        tracker.spawn(worker::run_channel(
            t,
            outbox.clone(),
            poster,
            cfg.retry,
            clock,
            workers.clone(),
        ));
    }
    tracker.spawn(prune(
        outbox.clone(),
        cfg.outbox.dedupe_window,
        cfg.outbox.events_retention,
        clock,
        workers.clone(),
    ));
    let listener = tokio::net::TcpListener::bind(&cfg.server.listen)
        .await
        .with_context(|| format!("cannot listen on {}", cfg.server.listen))?;
    let local = listener.local_addr()?;
    let preview = cfg
        .preview
        .enabled
        .then(|| preview::router(preview_state(&cfg, &outbox)));
    let mut pages = None;
    match (preview, &cfg.preview.listen) {
        (Some(app), Some(addr)) => {
            let own = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("cannot listen on preview.listen = {addr}"))?;
            tracing::info!(listen = %own.local_addr()?, path = preview::PAGE_PATH, "template preview");
            let (opts, stop) = (listen.clone(), cancel.clone());
            tracker.spawn(async move {
                if let Err(error) = server::run_pages(own, app, opts, stop).await {
                    tracing::error!(%error, "the template preview stopped");
                }
            });
        }
        (Some(app), None) => {
            tracing::info!(listen = %local, path = preview::PAGE_PATH, "template preview");
            pages = Some(app);
        }
        (None, _) => {}
    }
    if cfg.channels.is_empty() {
        tracing::warn!("no [[channels]] configured: events are acknowledged and dropped");
    }
    for c in &cfg.channels {
        if c.kind == ChannelKind::Cliq && c.endpoint.url.contains("CHANGE-ME") {
            tracing::warn!(channel = %c.name, "this channel still has the example's placeholder url: its posts fail (and are retried) until it has a real one");
        }
        if let Some(why) = &c.conversation.fallback {
            tracing::warn!(channel = %c.name, "{why}");
        }
    }
    tracker.spawn(metrics_upkeep(metrics.clone(), workers.clone()));
    let state = Arc::new(AppState {
        verifier,
        listen,
        metrics: Some(metrics),
        max_body_bytes: cfg.server.max_body_bytes,
        routes,
        outbox: Arc::new(outbox.clone()),
        counter: Default::default(),
        pages,
        cliq: cliq_endpoint,
    });
    tracker.spawn(watch_templates(
        cfg.clone(),
        Arc::clone(&state),
        workers.clone(),
    ));
    if let Some(watch) = hook_watch(&cfg) {
        tracker.spawn(super::watch::run(watch, outbox.clone(), workers.clone()));
    }
    tracker.spawn(super::reminders::schedule(
        cfg.clone(),
        state.routes.clone(),
        outbox.clone(),
        workers.clone(),
    ));
    tracing::info!(listen = %local, channels = cfg.channels.len(), path = server::HOOK_PATH, tls = cfg.server.tls.is_some(), "ready");
    let notified = CancellationToken::new();
    let notifier = tokio::spawn(notify_systemd(
        outbox.clone(),
        cancel.clone(),
        notified.clone(),
    ));
    server::run(listener, state, cancel.clone()).await?;
    cancel.cancel();
    if !shutdown::drain(&tracker, shutdown::DRAIN_TIMEOUT).await {
        tracing::warn!("delivery workers did not stop in time; unsent messages stay in the outbox");
    }
    notified.cancel();
    let _ = notifier.await;
    // The router stage finishes the batch it is routing (committed whole or not at all).
    stage_stop.cancel();
    outbox.router_bell().ring();
    let _ = tokio::task::spawn_blocking(move || stage.join()).await;
    // The writer thread ends once the last handle is gone, after its final commit.
    drop(outbox);
    if let Some(writer) = writer {
        let joined = tokio::task::spawn_blocking(move || writer.join());
        if tokio::time::timeout(WRITER_STOP_TIMEOUT, joined)
            .await
            .is_err()
        {
            tracing::warn!("the outbox writer did not stop in time");
        }
    }
    tracing::info!("stopped");
    Ok(0)
}

/// Longest the router stage waits for GitLab's answer about a push.
pub const FORCE_CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// Asks GitLab's compare API, from the router stage's thread, on this process's runtime.
struct GitlabForceCheck {
    client: crate::gitlab::Client,
    runtime: tokio::runtime::Handle,
}

impl crate::pipeline::ForceCheck for GitlabForceCheck {
    fn dropped_commits(&self, project: &str, before: &str, after: &str) -> Option<u64> {
        let p = crate::gitlab::ProjectRef {
            id_or_path: project.to_string(),
            label: project.to_string(),
        };
        // Commits of `before` not reachable from `after`: none for a fast-forward.
        let ask = self.client.compare_commit_count(&p, after, before);
        // The timer is made inside the runtime (this thread is not one of its threads).
        let answer = self
            .runtime
            .block_on(async { tokio::time::timeout(FORCE_CHECK_TIMEOUT, ask).await });
        match answer {
            Ok(Ok(n)) => Some(n as u64),
            Ok(Err(error)) => {
                tracing::debug!(%error, project, "cannot tell whether a push was forced");
                None
            }
            Err(_) => {
                tracing::debug!(project, "GitLab's compare answer came too late");
                None
            }
        }
    }
}

/// The force-push check, when `[gitlab]` has a token.
fn force_check(cfg: &Config) -> Option<Arc<dyn crate::pipeline::ForceCheck>> {
    let gitlab = cfg.gitlab.as_ref()?;
    let token = gitlab.token.clone()?;
    let retry = crate::gitlab::RetryPolicy {
        max_attempts: 1,
        timeout: FORCE_CHECK_TIMEOUT,
        ..crate::gitlab::RetryPolicy::default()
    };
    let client = crate::gitlab::Client::new(&gitlab.url, token, retry).ok()?;
    Some(Arc::new(GitlabForceCheck {
        client,
        runtime: tokio::runtime::Handle::current(),
    }))
}

/// The hook-health watch `[gitlab]` asks for: `None` without `[gitlab]`, with
/// `watch_hooks_minutes = 0`, or without the token or `hook_url` it needs (then logged).
fn hook_watch(cfg: &Config) -> Option<super::watch::Watch> {
    let gitlab = cfg.gitlab.as_ref()?;
    let every = gitlab.watch_hooks?;
    let (Some(token), Some(hook_url)) = (gitlab.token.clone(), gitlab.hook_url.clone()) else {
        tracing::warn!("[gitlab] without token or hook_url: the bridge's hooks are not watched");
        return None;
    };
    let client =
        match crate::gitlab::Client::new(&gitlab.url, token, crate::gitlab::RetryPolicy::default())
        {
            Ok(c) => c,
            Err(error) => {
                tracing::warn!(%error, "the bridge's hooks are not watched");
                return None;
            }
        };
    Some(super::watch::Watch {
        client,
        hook_url,
        ops_channel: ops_channel(cfg).map(|(name, kind)| (name, route::platform_of(kind))),
        every,
    })
}

/// The preview page's view of the configuration: templates compiled from disk as `serve`
/// reloads them, the fixtures folder and the outbox's stored events.
fn preview_state(cfg: &Config, outbox: &DurableOutbox) -> Arc<PreviewState> {
    let address = cfg.preview.listen.as_ref().unwrap_or(&cfg.server.listen);
    let loopback = crate::config::is_loopback(address);
    let dirs = super::template_dirs(cfg);
    let for_load = cfg.clone();
    let load = move || match super::build_routes(&for_load, false) {
        Ok(Ok(table)) => Ok(table),
        Ok(Err(errors)) => Err(errors.iter().map(ToString::to_string).collect()),
        Err(error) => Err(vec![format!("{error:#}")]),
    };
    Arc::new(PreviewState::new(
        Box::new(load),
        Box::new(move || super::template_fingerprint(&dirs)),
        cfg.preview.fixtures.clone(),
        Some(outbox.clone()),
        loopback,
    ))
}

/// Opens the store the config names: PostgreSQL with `outbox.url` (migrated first; this
/// replica named by its host and listen address), else SQLite at `outbox.path` (with its
/// writer thread, returned second).
async fn open_outbox(
    cfg: &Config,
    names: &[String],
    clock: Clock,
) -> anyhow::Result<(DurableOutbox, Option<std::thread::JoinHandle<()>>)> {
    let dedupe_window_ms = cfg.outbox.dedupe_window.as_millis() as i64;
    if let Some(pg) = &cfg.outbox.postgres {
        let opts = PgOptions {
            url: pg.url.clone(),
            password: pg.password.clone(),
            ca_file: pg.ca_file.clone(),
            pool_size: pg.pool_size,
            owner: format!("{}:{}", hostname(), cfg.server.listen),
        };
        let (outbox, migrated) =
            DurableOutbox::open_postgres(&opts, dedupe_window_ms, names, clock)
                .await
                .with_context(|| format!("cannot open the PostgreSQL store {}", pg.target()))?;
        tracing::info!(store = %pg.target(), schema = migrated.to, replica = %opts.owner, "PostgreSQL store");
        return Ok((outbox, None));
    }
    let (outbox, writer) = DurableOutbox::open(
        &cfg.outbox.path,
        DurableSettings {
            dedupe_window_ms,
            full_sync: cfg.outbox.full_sync,
        },
        names,
        clock,
    )
    .with_context(|| format!("cannot open the outbox {}", cfg.outbox.path.display()))?;
    Ok((outbox, Some(writer)))
}

/// This machine's host name (for a replica's name), `localhost` when unknown.
fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_string())
}

/// Tells systemd `READY=1` (the listener is bound and the outbox open), then, when the unit has
/// `WatchdogSec=`, `WATCHDOG=1` at half that interval as long as the outbox still commits (a
/// stuck writer thread gets the daemon restarted), and `STOPPING=1` once `stop` fires; after
/// that it keeps the watchdog fed (in-flight work is finishing) until `done` fires.
async fn notify_systemd(outbox: DurableOutbox, stop: CancellationToken, done: CancellationToken) {
    systemd::ready();
    let every = systemd::watchdog_interval();
    if let Some(every) = every {
        loop {
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = tokio::time::sleep(every) => {}
            }
            match tokio::time::timeout(every, crate::deliver::Outbox::ping(&outbox)).await {
                Ok(Ok(())) => systemd::watchdog(),
                // A database shared by replicas being away is not this process being stuck:
                // webhooks get 503 and it reconnects; a restart would not help.
                Ok(Err(_)) if outbox.shared_window().is_some() => systemd::watchdog(),
                Ok(Err(error)) => {
                    tracing::warn!(%error, "outbox cannot commit; not pinging the systemd watchdog")
                }
                Err(_) => tracing::warn!("outbox did not answer; not pinging the systemd watchdog"),
            }
        }
    } else {
        stop.cancelled().await;
    }
    systemd::stopping();
    // `outbox` is dropped here, so the writer thread may stop once `serve` lets go of it too.
    drop(outbox);
    loop {
        tokio::select! {
            _ = done.cancelled() => break,
            _ = tokio::time::sleep(every.unwrap_or(IDLE_NOTIFY)) => {}
        }
        if every.is_some() {
            systemd::watchdog();
        }
    }
}

/// How long the systemd notifier sleeps between looks at `done` when there is no watchdog.
const IDLE_NOTIFY: Duration = Duration::from_secs(3600);

/// How long `serve` waits for the outbox writer's last commit at shutdown.
const WRITER_STOP_TIMEOUT: Duration = Duration::from_secs(5);
/// How often old dedupe keys, events past their retention and quiet objects are forgotten.
const PRUNE_EVERY: Duration = Duration::from_secs(600);
/// How long an object (a merge request, an issue, a pipeline's ref) may stay quiet before its
/// thread and its remembered state are forgotten: the next event about it starts afresh.
const QUIET_OBJECTS: Duration = Duration::from_secs(90 * 86_400);

/// Folds the histogram samples every [`crate::metrics::UPKEEP_EVERY`], so memory does not grow with
/// the webhooks received while nothing scrapes `/metrics`.
async fn metrics_upkeep(metrics: crate::metrics::Metrics, cancel: CancellationToken) {
    loop {
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = tokio::time::sleep(crate::metrics::UPKEEP_EVERY) => metrics.upkeep(),
        }
    }
}

async fn prune(
    outbox: DurableOutbox,
    window: Duration,
    retention: Duration,
    clock: Clock,
    cancel: CancellationToken,
) {
    loop {
        let now = clock.now_ms();
        outbox.prune(PruneBefore {
            dedupe: now - window.as_millis() as i64,
            events: now - retention.as_millis() as i64,
            quiet: now - QUIET_OBJECTS.as_millis() as i64,
        });
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = tokio::time::sleep(PRUNE_EVERY) => {}
        }
    }
}

/// Reloads the templates on SIGHUP and when a template file changes (polled every
/// `templates.watch_interval`). A broken edit keeps the previous templates and logs each error with
/// its file and line. Configuration changes other than templates need a restart.
async fn watch_templates(cfg: Config, state: Arc<AppState>, cancel: CancellationToken) {
    let dirs = super::template_dirs(&cfg);
    let mut last = super::template_fingerprint(&dirs);
    #[cfg(unix)]
    let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
    let interval = cfg.templates.watch_interval;
    let watching = !interval.is_zero() && !dirs.is_empty();
    loop {
        #[cfg(unix)]
        let hangup = async {
            match hup.as_mut() {
                Some(h) => h.recv().await,
                None => std::future::pending().await,
            }
        };
        #[cfg(not(unix))]
        let hangup = std::future::pending::<Option<()>>();
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = hangup => {
                last = super::template_fingerprint(&dirs);
                reload(&cfg, &state, "SIGHUP");
            }
            _ = tokio::time::sleep(interval), if watching => {
                let now = super::template_fingerprint(&dirs);
                if now != last {
                    last = now;
                    reload(&cfg, &state, "a template file changed");
                }
            }
        }
    }
}

fn reload(cfg: &Config, state: &AppState, why: &str) {
    match super::build_routes(cfg, false) {
        Ok(Ok(table)) => {
            state.routes.replace(table);
            tracing::info!(reason = why, "templates reloaded");
        }
        Ok(Err(errors)) => {
            for error in &errors {
                tracing::error!(reason = why, %error, "template reload failed; keeping the previous templates");
            }
        }
        Err(error) => {
            tracing::error!(reason = why, error = %format!("{error:#}"), "template reload failed; keeping the previous templates");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deliver::Outbox;

    #[tokio::test]
    async fn dead_letters_are_alerted_but_never_about_the_ops_channel() {
        let dir = std::env::temp_dir().join(format!("gcb-dead-alerts-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let settings = DurableSettings {
            dedupe_window_ms: 1000,
            full_sync: false,
        };
        let opened = DurableOutbox::open(&dir.join("o.sqlite"), settings, &[], Clock::new());
        let Ok((outbox, _writer)) = opened else {
            panic!("cannot open the outbox in {}", dir.display())
        };
        let alerts = DeadAlerts {
            ops: "ops".into(),
            platform: Platform::Slack,
            retry_function: None,
            outbox: outbox.clone(),
        };
        let dead = |channel: &str| DeadLetter {
            id: 7,
            channel: channel.into(),
            delivery_id: "r/x".into(),
            status: Some(400),
            error: "{@all} *bold*".into(),
        };
        alerts.dead(&dead("ops")).await;
        let stats = outbox.stats().await.unwrap_or_default();
        assert!(
            stats.is_empty(),
            "no alert about the ops channel: {stats:?}"
        );
        alerts.dead(&dead("team")).await;
        let stats = outbox.stats().await.unwrap_or_default();
        assert_eq!(
            stats
                .iter()
                .map(|s| (s.channel.as_str(), s.pending))
                .collect::<Vec<_>>(),
            [("ops", 1)]
        );
        drop(outbox);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
