//! The TOML configuration: file format, loading, secrets from file or environment, validation.
//!
//! Raw file types (`Raw*`, serde, unknown keys rejected) are turned into the validated [`Config`]
//! with every secret wrapped in [`Secret`]. Errors name the key (`channels[1].url`). Relative paths
//! are resolved against the config file's folder.

use crate::deliver::{Auth, Endpoint, RetryPolicy};
use crate::gitlab::HookEvent;
use crate::secret::Secret;
use chrono_tz::Tz;
use ipnet::IpNet;
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Environment variable that, when set, replaces `server.secret_token`.
pub const SECRET_TOKEN_ENV: &str = "GITLAB_CHAT_BRIDGE_SECRET_TOKEN";
/// Default listen address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
/// Default body limit: GitLab's own payload maximum, 25 MiB.
pub const DEFAULT_MAX_BODY_BYTES: usize = 25 * 1024 * 1024;
/// Default timestamp format (`25-Nov-2026 05:30 PM`).
pub const DEFAULT_DATE_FORMAT: &str = "%d-%b-%Y %I:%M %p";
/// Default calendar-date format (`25-Nov-2026`).
pub const DEFAULT_DAY_FORMAT: &str = "%d-%b-%Y";
/// Default outbox file, relative to the config file.
pub const DEFAULT_OUTBOX_PATH: &str = "data/outbox.sqlite";
/// Default dedupe window, in hours.
pub const DEFAULT_DEDUPE_HOURS: u64 = 24;
/// Default `events.retention_days`: how long received deliveries are kept for `events` and replays.
pub const DEFAULT_EVENTS_RETENTION_DAYS: u64 = 7;
/// Default per-credential post budget per minute (Cliq locks a user out above ~50).
pub const DEFAULT_RATE_PER_MINUTE: u32 = 45;
/// Default `rate_per_minute` of a console channel: no limit (a terminal has no quota, and a
/// backlog printed at once is still readable), so no digests either unless one is set.
pub const CONSOLE_RATE_PER_MINUTE: u32 = u32::MAX;
/// The endpoint URL a console channel's worker is given (for logs; nothing is fetched).
pub const CONSOLE_URL: &str = "console:stdout";
/// Default `[gitlab] concurrency`: projects `setup` works on at once.
pub const DEFAULT_GITLAB_CONCURRENCY: usize = 4;
/// Default `[gitlab] watch_hooks_minutes`.
pub const DEFAULT_WATCH_HOOKS_MINUTES: f64 = 10.0;
/// Largest `[gitlab] concurrency` accepted (GitLab rate-limits API users).
pub const MAX_GITLAB_CONCURRENCY: usize = 32;
/// Default `server.signature_tolerance_secs`: how far a `webhook-timestamp` may be from now, in
/// seconds (Standard Webhooks' recommendation, 5 minutes).
pub const DEFAULT_SIGNATURE_TOLERANCE_SECS: u64 = 300;
/// Default `server.request_timeout_secs`: the longest a client may take to send a request's
/// headers, and to send its body and get its answer, in seconds.
pub const DEFAULT_REQUEST_TIMEOUT_SECS: u64 = 10;
/// Default `server.max_connections`: open connections at once; more wait in the listen backlog.
pub const DEFAULT_MAX_CONNECTIONS: usize = 1024;

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The TOML is malformed or has an unknown key.
    #[error("{path}: {message}")]
    Syntax {
        /// The file.
        path: PathBuf,
        /// toml's message, with line and key.
        message: String,
    },
    /// A key has an invalid value.
    #[error("{key}: {message}")]
    Invalid {
        /// Dotted key (`channels[0].url`).
        key: String,
        /// What is wrong.
        message: String,
    },
}

fn invalid(key: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.into(),
        message: message.into(),
    }
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    server: RawServer,
    #[serde(default)]
    templates: RawTemplates,
    #[serde(default)]
    outbox: RawOutbox,
    #[serde(default)]
    events: RawEvents,
    #[serde(default)]
    delivery: RawDelivery,
    #[serde(default)]
    channels: Vec<RawChannel>,
    #[serde(default)]
    routes: Vec<RawRoute>,
    gitlab: Option<RawGitlab>,
    #[serde(default)]
    log: RawLog,
    #[serde(default)]
    mentions: BTreeMap<String, RawMention>,
    #[serde(default)]
    preview: RawPreview,
    cliq_extension: Option<RawCliqExtension>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCliqExtension {
    path: Option<String>,
    public_keys: Option<Vec<String>>,
    public_key_files: Option<Vec<PathBuf>>,
    admins: Option<Vec<String>>,
    allowed_projects: Option<Vec<String>>,
    api_url: Option<String>,
    zapikey: Option<String>,
    zapikey_file: Option<PathBuf>,
    zapikey_env: Option<String>,
    oauth_token: Option<String>,
    oauth_token_file: Option<PathBuf>,
    oauth_token_env: Option<String>,
    button_function: Option<String>,
    data_center: Option<String>,
    organization_id: Option<String>,
    #[serde(default)]
    confidential: bool,
    rate_per_minute: Option<u32>,
    answer_within_ms: Option<u64>,
}

/// A `[mentions]` entry: `alice = "id"`, or a `[mentions.<kind>]` table of them.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum RawMention {
    Id(String),
    Kind(BTreeMap<String, String>),
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawPreview {
    #[serde(default)]
    enabled: bool,
    listen: Option<String>,
    fixtures: Option<PathBuf>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawLog {
    format: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRoute {
    name: Option<String>,
    channels: Vec<String>,
    events: Option<Vec<String>>,
    projects: Option<Vec<String>>,
    refs: Option<Vec<String>>,
    labels_any: Option<Vec<String>>,
    labels_all: Option<Vec<String>>,
    exclude_users: Option<Vec<String>>,
    #[serde(default)]
    confidential: bool,
    #[serde(default)]
    only_status_changes: bool,
    templates: Option<PathBuf>,
    timezone: Option<String>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawServer {
    listen: Option<String>,
    secret_token: Option<String>,
    secret_token_file: Option<PathBuf>,
    max_body_bytes: Option<usize>,
    signing_token: Option<String>,
    signing_token_file: Option<PathBuf>,
    secret_tokens: Option<Vec<String>>,
    secret_token_files: Option<Vec<PathBuf>>,
    signing_tokens: Option<Vec<String>>,
    signing_token_files: Option<Vec<PathBuf>>,
    signature_tolerance_secs: Option<u64>,
    allow_networks: Option<Vec<String>>,
    request_timeout_secs: Option<u64>,
    max_connections: Option<usize>,
    tls_cert_file: Option<PathBuf>,
    tls_key_file: Option<PathBuf>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawTemplates {
    dir: Option<PathBuf>,
    timezone: Option<String>,
    date_format: Option<String>,
    day_format: Option<String>,
    watch_interval_ms: Option<u64>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawOutbox {
    path: Option<PathBuf>,
    dedupe_window_hours: Option<u64>,
    synchronous: Option<String>,
    url: Option<String>,
    password_file: Option<PathBuf>,
    password_env: Option<String>,
    ca_file: Option<PathBuf>,
    pool_size: Option<usize>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawEvents {
    retention_days: Option<u64>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawDelivery {
    timeout_secs: Option<u64>,
    max_attempts: Option<u32>,
    initial_backoff_ms: Option<u64>,
    max_backoff_secs: Option<u64>,
    max_age_hours: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawChannel {
    name: String,
    kind: Option<String>,
    url: Option<String>,
    zapikey: Option<String>,
    zapikey_file: Option<PathBuf>,
    zapikey_env: Option<String>,
    oauth_token: Option<String>,
    oauth_token_file: Option<PathBuf>,
    oauth_token_env: Option<String>,
    appkey: Option<String>,
    appkey_file: Option<PathBuf>,
    appkey_env: Option<String>,
    url_file: Option<PathBuf>,
    url_env: Option<String>,
    format: Option<String>,
    signing_secret: Option<String>,
    signing_secret_file: Option<PathBuf>,
    signing_secret_env: Option<String>,
    events: Option<Vec<String>>,
    #[serde(default)]
    confidential: bool,
    rate_per_minute: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGitlab {
    url: String,
    token: Option<String>,
    token_file: Option<PathBuf>,
    token_env: Option<String>,
    hook_url: Option<String>,
    events: Option<Vec<String>>,
    push_events_branch_filter: Option<String>,
    enable_ssl_verification: Option<bool>,
    concurrency: Option<usize>,
    watch_hooks_minutes: Option<f64>,
    ops_channel: Option<String>,
}

/// The `[server]` section, validated.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// `address:port` to listen on.
    pub listen: String,
    /// The current shared secret GitLab sends in `X-Gitlab-Token` (the one `setup` registers):
    /// `GITLAB_CHAT_BRIDGE_SECRET_TOKEN`, else `secret_token(_file)`, else the first of the lists.
    pub secret_token: Secret,
    /// Every accepted `X-Gitlab-Token`, current first, then `secret_tokens` and
    /// `secret_token_files` (several at once while a token is rotated); no duplicates.
    pub secret_tokens: Vec<Secret>,
    /// Largest accepted body, in bytes.
    pub max_body_bytes: usize,
    /// The current Standard-Webhooks signing token (`whsec_…`, the one `setup` registers).
    pub signing_token: Option<Secret>,
    /// Every accepted signing token, current first. When not empty, every webhook must carry a
    /// valid `webhook-signature` made with one of them.
    pub signing_tokens: Vec<Secret>,
    /// How far `webhook-timestamp` may be from now (either way). Default 300 s.
    pub signature_tolerance: Duration,
    /// Networks webhooks may come from (the TCP peer's address); empty: any.
    pub allow_networks: Vec<IpNet>,
    /// Longest a client may take to send its headers, and to send its body and be answered.
    /// Default 10 s.
    pub request_timeout: Duration,
    /// Most connections open at once. Default 1024.
    pub max_connections: usize,
    /// Serve HTTPS with this certificate and key, when set.
    pub tls: Option<TlsFiles>,
}

/// PEM files of the TLS certificate chain and its private key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// `server.tls_cert_file`: the certificate chain, leaf first.
    pub cert: PathBuf,
    /// `server.tls_key_file`: the private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// Human-readable lines (the default).
    #[default]
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

/// The `[log]` section, validated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LogConfig {
    /// `log.format`: `"text"` (default) or `"json"`.
    pub format: LogFormat,
}

/// The `[preview]` section, validated: the template preview page of `serve`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PreviewConfig {
    /// `preview.enabled`: serve `GET /preview` (default off: 404).
    pub enabled: bool,
    /// `preview.listen`: a separate `address:port` for the page; `None` serves it beside the
    /// webhooks on `server.listen`, which must then be a loopback address.
    pub listen: Option<String>,
    /// `preview.fixtures`: a folder of JSON payloads the page lists beside the bundled samples.
    pub fixtures: Option<PathBuf>,
}

/// The `[templates]` section, validated.
#[derive(Debug, Clone)]
pub struct TemplatesConfig {
    /// Folder of user templates (`*.hbs`), if any.
    pub dir: Option<PathBuf>,
    /// Zone dates are shown in.
    pub timezone: Tz,
    /// strftime format for timestamps.
    pub date_format: String,
    /// strftime format for calendar dates.
    pub day_format: String,
    /// How often `serve` looks for edited template files; zero turns the watch off (SIGHUP still
    /// reloads). Default 1 s.
    pub watch_interval: Duration,
}

/// One `[[routes]]` entry, validated: which events go to which channels, worded how. The
/// default has no filter (every event) and no channel.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RouteConfig {
    /// Name for logs (`routes[N]` when not given).
    pub name: String,
    /// Channel names (each defined in `[[channels]]`).
    pub channels: Vec<String>,
    /// Event-key globs; `!glob` excludes. Empty: every event.
    pub events: Vec<String>,
    /// Project path globs (`group/*`). Empty: every project.
    pub projects: Vec<String>,
    /// Branch or tag globs; `default` is the project's default branch, `protected` a protected
    /// ref. Applies to events that have a ref (push, tag push, pipeline, job, merge request target).
    pub refs: Vec<String>,
    /// The event must carry at least one of these labels (issues, merge requests, their comments).
    pub labels_any: Vec<String>,
    /// The event must carry all of these labels.
    pub labels_all: Vec<String>,
    /// Username globs whose actions are not posted (bots, service accounts).
    pub exclude_users: Vec<String>,
    /// Whether confidential issues and comments may take this route.
    pub confidential: bool,
    /// Pipelines take this route only when their ref's finished status changed
    /// (`pipeline.fixed`, `pipeline.broken`); other events are not affected.
    pub only_status_changes: bool,
    /// Template folder of this route (overrides `[templates] dir`).
    pub templates: Option<PathBuf>,
    /// Zone of this route's dates (overrides `[templates] timezone`).
    pub timezone: Option<Tz>,
}

/// What a channel posts to (`channels[].kind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub enum ChannelKind {
    /// A Zoho Cliq channel, chat, bot incoming or extension incoming URL (the default).
    #[default]
    Cliq,
    /// A Zoho CRM / Creator / Cliq REST API function URL called with a `zapikey`.
    ZohoFunction,
    /// A Slack incoming webhook (Block Kit).
    Slack,
    /// A Mattermost incoming webhook (`text` + `attachments`).
    Mattermost,
    /// A Microsoft Teams Workflows (Power Automate) webhook (an Adaptive Card).
    Teams,
    /// A Google Chat space webhook (`cardsV2`, a thread per object).
    GoogleChat,
    /// A Discord webhook (`embeds`).
    Discord,
    /// A generic JSON POST, signed per Standard Webhooks when `signing_secret` is set.
    Webhook,
    /// The daemon's standard output: each message drawn as text (`render::terminal`), for trying
    /// the bridge without a Cliq account. It takes no url or credential.
    Console,
}

impl ChannelKind {
    /// Every kind, in the order the docs list them.
    pub const ALL: [ChannelKind; 9] = [
        ChannelKind::Cliq,
        ChannelKind::ZohoFunction,
        ChannelKind::Slack,
        ChannelKind::Mattermost,
        ChannelKind::Teams,
        ChannelKind::GoogleChat,
        ChannelKind::Discord,
        ChannelKind::Webhook,
        ChannelKind::Console,
    ];

    /// The name used in the config (`kind = "google_chat"`) and in template folders.
    pub fn as_str(self) -> &'static str {
        match self {
            ChannelKind::Cliq => "cliq",
            ChannelKind::ZohoFunction => "zoho_function",
            ChannelKind::Slack => "slack",
            ChannelKind::Mattermost => "mattermost",
            ChannelKind::Teams => "teams",
            ChannelKind::GoogleChat => "google_chat",
            ChannelKind::Discord => "discord",
            ChannelKind::Webhook => "webhook",
            ChannelKind::Console => "console",
        }
    }

    /// The kind of this name.
    pub fn from_name(name: &str) -> Option<ChannelKind> {
        ChannelKind::ALL.into_iter().find(|k| k.as_str() == name)
    }

    /// Default `rate_per_minute`: a little under each vendor's documented limit (see README).
    pub fn default_rate_per_minute(self) -> u32 {
        match self {
            ChannelKind::Cliq | ChannelKind::ZohoFunction => DEFAULT_RATE_PER_MINUTE,
            ChannelKind::Slack => 60,
            ChannelKind::Mattermost => 60,
            ChannelKind::Teams => 30,
            ChannelKind::GoogleChat => 60,
            ChannelKind::Discord => 30,
            ChannelKind::Webhook => 600,
            ChannelKind::Console => CONSOLE_RATE_PER_MINUTE,
        }
    }

    /// Whether the whole webhook URL is the credential (it is then a [`Secret`], never logged).
    pub fn secret_url(self) -> bool {
        matches!(
            self,
            ChannelKind::Slack
                | ChannelKind::Mattermost
                | ChannelKind::Teams
                | ChannelKind::GoogleChat
                | ChannelKind::Discord
                | ChannelKind::Webhook
        )
    }
}

/// What a channel's bodies are (`channels[].format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    /// The event rendered through the kind's templates (the default, except for
    /// `zoho_function` and `webhook`).
    #[default]
    Card,
    /// The documented, versioned event JSON (`render::event_json`).
    Event,
}

/// One `[[channels]]` entry, validated.
#[derive(Debug, Clone)]
pub struct ChannelConfig {
    /// Unique name, used in logs and the outbox.
    pub name: String,
    /// `kind`: Cliq (default), another chat, a generic webhook or the console.
    pub kind: ChannelKind,
    /// `format`: a rendered card or the event JSON.
    pub format: Format,
    /// Where and how to post.
    pub endpoint: Endpoint,
    /// Event-key globs; `!glob` excludes. Empty means every event.
    pub events: Vec<String>,
    /// Whether confidential issues and notes may be posted here.
    pub confidential: bool,
    /// Posts per minute allowed for this channel's credential.
    pub rate_per_minute: u32,
}

/// The `[outbox]` section, validated.
#[derive(Debug, Clone)]
pub struct OutboxConfig {
    /// SQLite file of the durable outbox.
    pub path: PathBuf,
    /// A delivery re-sent within this window (same `Idempotency-Key`) is not posted again.
    pub dedupe_window: Duration,
    /// Commit with `synchronous=FULL` (survives power loss) instead of `NORMAL`.
    pub full_sync: bool,
    /// `events.retention_days`: received deliveries (and the sent messages of them) are kept
    /// this long for `events list/show/replay`, then pruned. Default 7 days; at least 1.
    pub events_retention: Duration,
    /// `outbox.url` and friends: the PostgreSQL store, when configured (else SQLite at `path`).
    pub postgres: Option<PostgresConfig>,
}

/// Default `outbox.pool_size`: connections to PostgreSQL each replica keeps at most.
pub const DEFAULT_PG_POOL_SIZE: usize = 16;
/// Largest `outbox.pool_size`.
pub const MAX_PG_POOL_SIZE: usize = 256;
/// The query parameters `outbox.url` may carry (those the PostgreSQL client understands, less
/// the password, which is a secret and never goes in the URL).
const PG_URL_OPTIONS: [&str; 13] = [
    "sslmode",
    "sslnegotiation",
    "application_name",
    "options",
    "connect_timeout",
    "tcp_user_timeout",
    "keepalives",
    "keepalives_idle",
    "keepalives_interval",
    "keepalives_retries",
    "target_session_attrs",
    "channel_binding",
    "load_balance_hosts",
];

/// The PostgreSQL store of `[outbox]` (`outbox.url`, `password_file`/`password_env`, `ca_file`,
/// `pool_size`), validated: a `postgres://` or `postgresql://` URL with a host and a user and no
/// password in it, so the URL may be logged and shown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostgresConfig {
    /// `outbox.url`: `postgres://user@host:port/db?sslmode=...`, without a password.
    pub url: String,
    /// `outbox.password_file` or `outbox.password_env`, if given.
    pub password: Option<Secret>,
    /// `outbox.ca_file`: PEM trust roots for TLS instead of the built-in web roots.
    pub ca_file: Option<PathBuf>,
    /// `outbox.pool_size`: connections kept at most (1..=256, default 16).
    pub pool_size: usize,
}

impl PostgresConfig {
    /// `host:port/database` of the URL, for messages (no user, no options).
    pub fn target(&self) -> String {
        match url::Url::parse(&self.url) {
            Ok(u) => {
                let host = u.host_str().unwrap_or("?");
                let port = u.port().map(|p| format!(":{p}")).unwrap_or_default();
                let db = u.path().trim_start_matches('/');
                let db = if db.is_empty() { u.username() } else { db };
                format!("{host}{port}/{db}")
            }
            Err(_) => self.url.clone(),
        }
    }
}

/// The `[gitlab]` section, validated.
#[derive(Debug, Clone)]
pub struct GitlabConfig {
    /// Base URL of the GitLab instance.
    pub url: String,
    /// API token (sent as `PRIVATE-TOKEN`), if given.
    pub token: Option<Secret>,
    /// The URL GitLab should call (this bridge's `/hooks/gitlab`).
    pub hook_url: Option<String>,
    /// Hook events `setup` subscribes to (default [`HookEvent::DEFAULT`]).
    pub events: BTreeSet<HookEvent>,
    /// Branch filter for push events; `None` means every branch.
    pub push_events_branch_filter: Option<String>,
    /// Whether GitLab verifies the bridge's TLS certificate (default true).
    pub enable_ssl_verification: bool,
    /// Projects `setup` works on at once (default [`DEFAULT_GITLAB_CONCURRENCY`]).
    pub concurrency: usize,
    /// How often `serve` checks the managed hooks' health (`watch_hooks_minutes`, default
    /// [`DEFAULT_WATCH_HOOKS_MINUTES`]; fractions allowed); `None` when 0 (off).
    pub watch_hooks: Option<Duration>,
    /// The channel hook-health alerts go to (`ops_channel`); without one they are only logged
    /// and counted.
    pub ops_channel: Option<String>,
}

/// Default `[cliq_extension] path`: where Cliq posts the extension's invocations.
pub const DEFAULT_CLIQ_PATH: &str = "/hooks/cliq";
/// Default `[cliq_extension] answer_within_ms`.
pub const DEFAULT_CLIQ_ANSWER_WITHIN_MS: u64 = 4_000;
/// Default `[cliq_extension] api_url`: the Cliq host chats are posted to.
pub const DEFAULT_CLIQ_API_URL: &str = "https://cliq.zoho.com";

/// The `[cliq_extension]` section, validated: the bridge as the backend of a webhook-based
/// Cliq extension (`/gitlab` command, card buttons, chats subscribing themselves).
#[derive(Debug, Clone)]
pub struct CliqExtensionConfig {
    /// Path of the callback URL (default [`DEFAULT_CLIQ_PATH`]).
    pub path: String,
    /// The extension's public keys (base64 X.509 SubjectPublicKeyInfo, as the Connectors tab
    /// shows them), the active one first; an invocation signed by any of them is accepted.
    pub public_keys: Vec<String>,
    /// Cliq user ids or e-mails (lower case) allowed to run `/gitlab setup`.
    pub admins: Vec<String>,
    /// Project or group path globs a chat may subscribe to.
    pub allowed_projects: Vec<String>,
    /// Subscribed chats are posted to `{api_url}/api/v2/chats/{chat_id}/message`, and how.
    pub api: Endpoint,
    /// The extension's function card buttons invoke; `None`: no buttons.
    pub button_function: Option<String>,
    /// Invocations from another data centre (`params.environment.data_center`) are refused.
    pub data_center: Option<String>,
    /// Invocations from another organisation (`params.access.organization.id`) are refused.
    pub organization_id: Option<String>,
    /// Whether subscribed chats may receive confidential issues and comments.
    pub confidential: bool,
    /// Posts per minute allowed for the extension's credential, shared by every chat.
    pub rate_per_minute: u32,
    /// How long an answer may take before it is sent through the invocation's `response_url`
    /// instead (Cliq waits 5 s for the HTTP answer); default [`DEFAULT_CLIQ_ANSWER_WITHIN_MS`].
    pub answer_within: Duration,
}

/// The whole configuration, validated.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file it came from.
    pub path: PathBuf,
    /// `[server]`.
    pub server: ServerConfig,
    /// `[templates]`.
    pub templates: TemplatesConfig,
    /// `[outbox]`: the durable store.
    pub outbox: OutboxConfig,
    /// `[delivery]`: timeouts and retries.
    pub retry: RetryPolicy,
    /// `[[channels]]`.
    pub channels: Vec<ChannelConfig>,
    /// `[[routes]]`; empty means every channel takes what its own `events` filter lets through.
    pub routes: Vec<RouteConfig>,
    /// `[gitlab]`, if present.
    pub gitlab: Option<GitlabConfig>,
    /// `[log]`.
    pub log: LogConfig,
    /// `[mentions]`: GitLab username or e-mail → Cliq user id, for `{@id}` mentions. Keys are
    /// stored without a leading `@`; ids are non-empty and hold no braces, quotes or blanks.
    pub mentions: BTreeMap<String, String>,
    /// `[mentions.<kind>]` (`slack`, `mattermost`, `teams`, `google_chat`, `discord`): GitLab
    /// username or e-mail → that platform's user id, validated like `[mentions]`.
    pub kind_mentions: BTreeMap<String, BTreeMap<String, String>>,
    /// `[preview]`: the template preview page.
    pub preview: PreviewConfig,
    /// `[cliq_extension]`, if present: `POST /hooks/cliq` and chats' own subscriptions.
    pub cliq_extension: Option<CliqExtensionConfig>,
}

/// Where a secret may come from.
struct SecretSources<'a> {
    key: &'a str,
    inline: Option<String>,
    file: Option<PathBuf>,
    env: Option<String>,
}

/// Reads a file and the environment through these functions, so tests need neither.
pub trait Environment {
    /// The value of an environment variable.
    fn var(&self, name: &str) -> Option<String>;
    /// The text of a file.
    fn read(&self, path: &Path) -> std::io::Result<String>;
}

/// The process environment and file system.
pub struct RealEnvironment;

impl Environment for RealEnvironment {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }
    fn read(&self, path: &Path) -> std::io::Result<String> {
        std::fs::read_to_string(path)
    }
}

impl Config {
    /// Loads and validates the file at `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        Config::load_with(path, &RealEnvironment)
    }

    /// Loads and validates with an explicit environment.
    pub fn load_with(path: &Path, env: &dyn Environment) -> Result<Config, ConfigError> {
        let text = env.read(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Config::parse(&text, path, env)
    }

    /// Parses and validates `text` as if read from `path`.
    pub fn parse(text: &str, path: &Path, env: &dyn Environment) -> Result<Config, ConfigError> {
        let mut raw: RawConfig = toml::from_str(text).map_err(|e| ConfigError::Syntax {
            path: path.to_path_buf(),
            message: e.to_string().trim_end().replace('\n', " "),
        })?;
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let resolve = |p: PathBuf| if p.is_absolute() { p } else { base.join(p) };

        let server = server_section(raw.server, env, &resolve)?;
        let log = log_section(raw.log)?;

        let t = raw.templates;
        let tz_name = t.timezone.unwrap_or_else(|| "UTC".to_string());
        let timezone: Tz = tz_name.parse().map_err(|_| {
            invalid(
                "templates.timezone",
                format!("unknown IANA time zone {tz_name:?}"),
            )
        })?;
        let date_format = t
            .date_format
            .unwrap_or_else(|| DEFAULT_DATE_FORMAT.to_string());
        check_strftime("templates.date_format", &date_format)?;
        let day_format = t
            .day_format
            .unwrap_or_else(|| DEFAULT_DAY_FORMAT.to_string());
        check_strftime("templates.day_format", &day_format)?;

        let d = raw.delivery;
        let defaults = RetryPolicy::default();
        let retry = RetryPolicy {
            timeout: d.timeout_secs.map_or(defaults.timeout, Duration::from_secs),
            max_attempts: d.max_attempts.unwrap_or(defaults.max_attempts),
            initial_backoff: d
                .initial_backoff_ms
                .map_or(defaults.initial_backoff, Duration::from_millis),
            max_backoff: d
                .max_backoff_secs
                .map_or(defaults.max_backoff, Duration::from_secs),
            max_age: d
                .max_age_hours
                .map_or(defaults.max_age, |h| Duration::from_secs(h * 3600)),
        };
        if retry.max_attempts == 0 {
            return Err(invalid("delivery.max_attempts", "must be at least 1"));
        }
        if retry.timeout.is_zero() {
            return Err(invalid("delivery.timeout_secs", "must be at least 1"));
        }

        let mut names = HashSet::new();
        let mut channels = Vec::new();
        for (i, mut c) in raw.channels.into_iter().enumerate() {
            let key = |k: &str| format!("channels[{i}].{k}");
            if c.name.trim().is_empty() {
                return Err(invalid(key("name"), "must not be empty"));
            }
            if !names.insert(c.name.clone()) {
                return Err(invalid(key("name"), format!("{:?} is used twice", c.name)));
            }
            let kind = match c.kind.as_deref().map(str::trim) {
                None => ChannelKind::Cliq,
                Some(name) => ChannelKind::from_name(name).ok_or_else(|| {
                    let names: Vec<&str> = ChannelKind::ALL.iter().map(|k| k.as_str()).collect();
                    invalid(
                        key("kind"),
                        format!(
                            "{name:?} is not a channel kind: one of {}",
                            names.join(", ")
                        ),
                    )
                })?,
            };
            let (endpoint, format) = channel_endpoint(i, kind, &mut c, env, &resolve)?;
            let events = c.events.unwrap_or_default();
            for (j, e) in events.iter().enumerate() {
                if e.trim_start_matches('!').trim().is_empty() {
                    return Err(invalid(
                        format!("channels[{i}].events[{j}]"),
                        "empty pattern",
                    ));
                }
            }
            let rate_per_minute = c.rate_per_minute.unwrap_or(kind.default_rate_per_minute());
            if rate_per_minute == 0 {
                return Err(invalid(key("rate_per_minute"), "must be at least 1"));
            }
            channels.push(ChannelConfig {
                name: c.name,
                kind,
                format,
                endpoint,
                events,
                confidential: c.confidential,
                rate_per_minute,
            });
        }

        let mut plain_mentions = BTreeMap::new();
        let mut kind_mentions = BTreeMap::new();
        for (name, m) in std::mem::take(&mut raw.mentions) {
            match m {
                RawMention::Id(id) => {
                    plain_mentions.insert(name, id);
                }
                RawMention::Kind(table) => {
                    if !MENTION_KINDS.contains(&name.as_str()) {
                        return Err(invalid(
                            format!("mentions.{name}"),
                            format!(
                                "a table here names a kind: one of {}",
                                MENTION_KINDS.join(", ")
                            ),
                        ));
                    }
                    let checked = mentions_section(table, &format!("mentions.{name}"))?;
                    kind_mentions.insert(name, checked);
                }
            }
        }
        let gitlab = match raw.gitlab {
            None => None,
            Some(g) => Some(gitlab_section(g, env, &resolve)?),
        };
        if let Some(ops) = gitlab.as_ref().and_then(|g| g.ops_channel.as_ref()) {
            if !channels.iter().any(|c| &c.name == ops) {
                return Err(invalid(
                    "gitlab.ops_channel",
                    format!("no [[channels]] named {ops:?}"),
                ));
            }
        }
        let preview = preview_section(raw.preview, &server.listen, &resolve)?;
        let cliq_extension = match raw.cliq_extension {
            None => None,
            Some(x) => Some(cliq_extension_section(x, gitlab.as_ref(), env, &resolve)?),
        };

        let outbox = outbox_section(raw.outbox, raw.events, env, &resolve)?;

        Ok(Config {
            path: path.to_path_buf(),
            server,
            templates: TemplatesConfig {
                dir: t.dir.map(&resolve),
                timezone,
                date_format,
                day_format,
                watch_interval: Duration::from_millis(t.watch_interval_ms.unwrap_or(1000)),
            },
            outbox,
            retry,
            routes: routes_section(raw.routes, &channels, &resolve)?,
            channels,
            gitlab,
            log,
            mentions: mentions_section(plain_mentions, "mentions")?,
            kind_mentions,
            preview,
            cliq_extension,
        })
    }
}

/// Validates `[outbox]` (with `events.retention_days`): SQLite at `path` by default, or the
/// PostgreSQL store `url` names.
fn outbox_section(
    o: RawOutbox,
    events: RawEvents,
    env: &dyn Environment,
    resolve: &dyn Fn(PathBuf) -> PathBuf,
) -> Result<OutboxConfig, ConfigError> {
    let postgres = match o.url {
        Some(url) => {
            if o.path.is_some() {
                return Err(invalid(
                    "outbox.url",
                    "give outbox.url (PostgreSQL) or outbox.path (SQLite), not both",
                ));
            }
            if o.synchronous.is_some() {
                return Err(invalid(
                    "outbox.synchronous",
                    "applies to the SQLite store (outbox.path) only, not with outbox.url: \
                     PostgreSQL commits as its server's synchronous_commit says",
                ));
            }
            if o.password_file.is_some() && o.password_env.is_some() {
                return Err(invalid(
                    "outbox.password_file",
                    "give outbox.password_file or outbox.password_env, not both",
                ));
            }
            let url = check_postgres_url(url.trim()).map_err(|m| invalid("outbox.url", m))?;
            let password = secret(
                SecretSources {
                    key: "outbox.password",
                    inline: None,
                    file: o.password_file.map(resolve),
                    env: o.password_env,
                },
                env,
            )?;
            let pool_size = o.pool_size.unwrap_or(DEFAULT_PG_POOL_SIZE);
            if !(1..=MAX_PG_POOL_SIZE).contains(&pool_size) {
                return Err(invalid(
                    "outbox.pool_size",
                    format!("{pool_size} is not between 1 and {MAX_PG_POOL_SIZE}"),
                ));
            }
            if o.ca_file.is_some() && pg_url_option(&url, "sslmode").as_deref() == Some("disable") {
                return Err(invalid(
                    "outbox.ca_file",
                    "outbox.url has sslmode=disable: no TLS, so no certificate to check",
                ));
            }
            Some(PostgresConfig {
                url,
                password,
                ca_file: o.ca_file.map(resolve),
                pool_size,
            })
        }
        None => {
            let only_with_url = [
                ("outbox.password_file", o.password_file.is_some()),
                ("outbox.password_env", o.password_env.is_some()),
                ("outbox.ca_file", o.ca_file.is_some()),
                ("outbox.pool_size", o.pool_size.is_some()),
            ];
            if let Some((key, _)) = only_with_url.iter().find(|(_, given)| *given) {
                return Err(invalid(
                    *key,
                    "applies to the PostgreSQL store only: set outbox.url too, or remove it",
                ));
            }
            None
        }
    };
    Ok(OutboxConfig {
        path: resolve(o.path.unwrap_or_else(|| PathBuf::from(DEFAULT_OUTBOX_PATH))),
        dedupe_window: Duration::from_secs(
            o.dedupe_window_hours.unwrap_or(DEFAULT_DEDUPE_HOURS) * 3600,
        ),
        full_sync: match o.synchronous.as_deref() {
            None | Some("full") => true,
            Some("normal") => false,
            Some(other) => {
                return Err(invalid(
                    "outbox.synchronous",
                    format!("{other:?} is not \"full\" or \"normal\""),
                ))
            }
        },
        events_retention: match events.retention_days {
            None => Duration::from_secs(DEFAULT_EVENTS_RETENTION_DAYS * 86_400),
            Some(0) => {
                return Err(invalid(
                    "events.retention_days",
                    "must be at least 1: the router stage reads events from the store",
                ))
            }
            Some(d) => Duration::from_secs(d.min(3650) * 86_400),
        },
        postgres,
    })
}

/// Checks `outbox.url` and returns it as given: `postgres://` or `postgresql://`, a host and a
/// user, no password (neither `user:password@` nor `?password=`), only options the PostgreSQL
/// client knows, and an `sslmode` it honours. Messages never repeat the URL, which may hold a
/// password by mistake.
fn check_postgres_url(raw: &str) -> Result<String, String> {
    let example = "postgres://USER@HOST:5432/DATABASE?sslmode=require";
    let url = url::Url::parse(raw).map_err(|e| format!("not a URL ({e}); expected {example}"))?;
    if !matches!(url.scheme(), "postgres" | "postgresql") {
        return Err(format!(
            "must start with postgres:// or postgresql:// (not {}://): {example}",
            url.scheme()
        ));
    }
    let in_secret = "put it in outbox.password_file or outbox.password_env";
    if url.password().is_some() {
        return Err(format!(
            "holds a password (user:password@): remove it from the URL and {in_secret}"
        ));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(format!("needs a host: {example}"));
    }
    if url.username().is_empty() {
        return Err(format!("needs a user name (USER@HOST): {example}"));
    }
    for (name, value) in url.query_pairs() {
        match name.as_ref() {
            "password" => {
                return Err(format!(
                    "holds a password (?password=): remove it from the URL and {in_secret}"
                ))
            }
            "sslmode" if !matches!(value.as_ref(), "disable" | "prefer" | "require") => {
                return Err(format!(
                    "sslmode={value} is not one of disable, prefer, require (with TLS, the \
                     server's certificate and name are always verified)"
                ))
            }
            n if !PG_URL_OPTIONS.contains(&n) => {
                return Err(format!(
                    "unknown option ?{n}=: the URL takes {}",
                    PG_URL_OPTIONS.join(", ")
                ))
            }
            _ => {}
        }
    }
    Ok(raw.to_string())
}

/// The value of query option `name` of a checked PostgreSQL URL.
fn pg_url_option(url: &str, name: &str) -> Option<String> {
    url::Url::parse(url)
        .ok()?
        .query_pairs()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.into_owned())
}

/// Whether `address` (`ip:port`) is a loopback address.
pub fn is_loopback(address: &str) -> bool {
    address
        .parse::<std::net::SocketAddr>()
        .is_ok_and(|a| a.ip().is_loopback())
}

/// Validates `[preview]`. The page needs no token to view, so it is never served on a public
/// address by accident: enabled without its own `listen`, it requires a loopback `server.listen`.
fn preview_section(
    raw: RawPreview,
    server_listen: &str,
    resolve: &dyn Fn(PathBuf) -> PathBuf,
) -> Result<PreviewConfig, ConfigError> {
    if let Some(listen) = &raw.listen {
        if listen.parse::<std::net::SocketAddr>().is_err() {
            return Err(invalid(
                "preview.listen",
                format!("{listen:?} is not an address:port"),
            ));
        }
    }
    if raw.enabled && raw.listen.is_none() && !is_loopback(server_listen) {
        return Err(invalid(
            "preview.enabled",
            format!(
                "the preview page needs no token, so it is not served on server.listen = \
                 {server_listen:?}, which is not a loopback address; set preview.listen \
                 (e.g. \"127.0.0.1:8081\") or preview.enabled = false"
            ),
        ));
    }
    Ok(PreviewConfig {
        enabled: raw.enabled,
        listen: raw.listen,
        fixtures: raw.fixtures.map(resolve),
    })
}

/// Validates `[cliq_extension]`. It needs `[gitlab]` with a token: a chat may only subscribe
/// to what that token can see.
fn cliq_extension_section(
    x: RawCliqExtension,
    gitlab: Option<&GitlabConfig>,
    env: &dyn Environment,
    resolve: &dyn Fn(PathBuf) -> PathBuf,
) -> Result<CliqExtensionConfig, ConfigError> {
    let key = |k: &str| format!("cliq_extension.{k}");
    if gitlab.is_none_or(|g| g.token.is_none()) {
        return Err(invalid(
            "cliq_extension",
            "needs [gitlab] with url and token: chats may only subscribe to what that token can see",
        ));
    }
    let path = x.path.unwrap_or_else(|| DEFAULT_CLIQ_PATH.to_string());
    if !path.starts_with('/') || path.contains(char::is_whitespace) || path == "/hooks/gitlab" {
        return Err(invalid(
            key("path"),
            format!("{path:?} is not a path of its own (e.g. \"{DEFAULT_CLIQ_PATH}\")"),
        ));
    }
    let mut public_keys = Vec::new();
    for (i, k) in x.public_keys.into_iter().flatten().enumerate() {
        public_keys.push((format!("{}[{i}]", key("public_keys")), k));
    }
    for (i, p) in x.public_key_files.into_iter().flatten().enumerate() {
        let path = resolve(p);
        let text = env.read(&path).map_err(|e| {
            invalid(
                format!("{}[{i}]", key("public_key_files")),
                format!("cannot read {}: {e}", path.display()),
            )
        })?;
        public_keys.push((format!("{}[{i}]", key("public_key_files")), text));
    }
    let mut keys = Vec::new();
    for (k, text) in public_keys {
        // The Connectors tab shows bare base64; a PEM file's armour lines are dropped too.
        let b64: String = text
            .lines()
            .filter(|l| !l.trim_start().starts_with("-----"))
            .flat_map(|l| l.chars().filter(|c| !c.is_whitespace()))
            .collect();
        if b64.is_empty()
            || !b64
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '/' | '='))
        {
            return Err(invalid(
                k,
                "not a base64 public key (copy it from the extension's Connectors tab)",
            ));
        }
        if !keys.contains(&b64) {
            keys.push(b64);
        }
    }
    if keys.is_empty() {
        return Err(invalid(
            key("public_keys"),
            "required (or public_key_files): the extension's public key from its Connectors tab",
        ));
    }
    let admins = x
        .admins
        .unwrap_or_default()
        .iter()
        .map(|a| a.trim().to_lowercase())
        .filter(|a| !a.is_empty())
        .collect();
    let allowed_projects: Vec<String> = x
        .allowed_projects
        .unwrap_or_default()
        .iter()
        .map(|p| p.trim().trim_matches('/').to_string())
        .filter(|p| !p.is_empty())
        .collect();
    if allowed_projects.is_empty() {
        return Err(invalid(
            key("allowed_projects"),
            "required: the project or group paths chats may subscribe to (globs; [\"*\"] for all)",
        ));
    }
    let api_url = x
        .api_url
        .unwrap_or_else(|| DEFAULT_CLIQ_API_URL.to_string())
        .trim()
        .trim_end_matches('/')
        .to_string();
    match url::Url::parse(&api_url) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some() => {}
        _ => {
            return Err(invalid(
                key("api_url"),
                format!("{api_url:?} is not an http(s) URL such as \"{DEFAULT_CLIQ_API_URL}\""),
            ))
        }
    }
    let zapikey = secret(
        SecretSources {
            key: &key("zapikey"),
            inline: x.zapikey,
            file: x.zapikey_file.map(resolve),
            env: x.zapikey_env,
        },
        env,
    )?;
    let oauth = secret(
        SecretSources {
            key: &key("oauth_token"),
            inline: x.oauth_token,
            file: x.oauth_token_file.map(resolve),
            env: x.oauth_token_env,
        },
        env,
    )?;
    let auth = match (zapikey, oauth) {
        (Some(k), None) => Auth::ZapiKey(k),
        (None, Some(t)) => Auth::OAuth(t),
        (None, None) => {
            return Err(invalid(
                key("zapikey"),
                "required (or oauth_token): the credential chats are posted to with",
            ))
        }
        (Some(_), Some(_)) => {
            return Err(invalid(
                key("zapikey"),
                "give a zapikey or an oauth_token, not both",
            ))
        }
    };
    let button_function = x
        .button_function
        .map(|f| f.trim().to_string())
        .filter(|f| !f.is_empty());
    let rate_per_minute = x.rate_per_minute.unwrap_or(DEFAULT_RATE_PER_MINUTE);
    if rate_per_minute == 0 {
        return Err(invalid(key("rate_per_minute"), "must be at least 1"));
    }
    let answer_within = x.answer_within_ms.unwrap_or(DEFAULT_CLIQ_ANSWER_WITHIN_MS);
    if !(1..=4_500).contains(&answer_within) {
        return Err(invalid(
            key("answer_within_ms"),
            "must be between 1 and 4500: Cliq waits 5 s for an answer",
        ));
    }
    let answer_within = Duration::from_millis(answer_within);
    Ok(CliqExtensionConfig {
        path,
        public_keys: keys,
        admins,
        allowed_projects,
        api: Endpoint { url: api_url, auth },
        button_function,
        data_center: x
            .data_center
            .map(|d| d.trim().to_string())
            .filter(|d| !d.is_empty()),
        organization_id: x
            .organization_id
            .map(|d| d.trim().to_string())
            .filter(|d| !d.is_empty()),
        confidential: x.confidential,
        rate_per_minute,
        answer_within,
    })
}

/// The kinds that may have a `[mentions.<kind>]` table.
pub const MENTION_KINDS: [&str; 5] = ["slack", "mattermost", "teams", "google_chat", "discord"];

/// Validates `[mentions]` (or a `[mentions.<kind>]` table, `section`): usernames or e-mails
/// mapped to user ids that are safe inside `{@…}`.
fn mentions_section(
    raw: BTreeMap<String, String>,
    section: &str,
) -> Result<BTreeMap<String, String>, ConfigError> {
    let mut out = BTreeMap::new();
    let mut seen: BTreeMap<String, String> = BTreeMap::new();
    for (name, id) in raw {
        let key = format!("{section}.{name:?}");
        let user = name.trim().trim_start_matches('@').trim().to_string();
        if user.is_empty() {
            return Err(invalid(key, "the GitLab username or e-mail is empty"));
        }
        let id = id.trim().to_string();
        if id.is_empty() {
            return Err(invalid(key, "the Cliq user id is empty"));
        }
        if id
            .chars()
            .any(|c| matches!(c, '{' | '}' | '"' | '\\') || c.is_whitespace() || c.is_control())
        {
            return Err(invalid(
                key,
                format!("{id:?} is not a Cliq user id (no braces, quotes or blanks)"),
            ));
        }
        if matches!(
            id.to_ascii_lowercase().as_str(),
            "all" | "available" | "participants" | "channel" | "here" | "everyone"
        ) {
            return Err(invalid(
                key,
                format!("{id:?} is a group mention, not a user id"),
            ));
        }
        if let Some(other) = seen.insert(user.to_lowercase(), name.clone()) {
            return Err(invalid(
                key,
                format!("{user:?} is mapped twice (also as {other:?}); names are case-insensitive"),
            ));
        }
        out.insert(user, id);
    }
    Ok(out)
}

/// Validates `[log]`.
fn log_section(raw: RawLog) -> Result<LogConfig, ConfigError> {
    let format = match raw.format.as_deref() {
        None | Some("text") => LogFormat::Text,
        Some("json") => LogFormat::Json,
        Some(other) => {
            return Err(invalid(
                "log.format",
                format!("{other:?} is not \"text\" or \"json\""),
            ))
        }
    };
    Ok(LogConfig { format })
}

/// Reads a list of inline secrets and secret files (`KEY = [...]`, `KEY_files`-style keys).
fn secret_list(
    key: &str,
    inline: Option<Vec<String>>,
    files_key: &str,
    files: Option<Vec<PathBuf>>,
    env: &dyn Environment,
    resolve: &dyn Fn(PathBuf) -> PathBuf,
) -> Result<Vec<Secret>, ConfigError> {
    let mut out = Vec::new();
    for (i, v) in inline.into_iter().flatten().enumerate() {
        out.push((format!("{key}[{i}]"), Secret::new(v.trim())));
    }
    for (i, p) in files.into_iter().flatten().enumerate() {
        let path = resolve(p);
        let v = env.read(&path).map_err(|e| {
            invalid(
                format!("{files_key}[{i}]"),
                format!("cannot read {}: {e}", path.display()),
            )
        })?;
        out.push((format!("{files_key}[{i}]"), Secret::new(v.trim())));
    }
    out.into_iter()
        .map(|(k, v)| {
            if v.expose().is_empty() {
                Err(invalid(k, "must not be empty"))
            } else {
                Ok(v)
            }
        })
        .collect()
}

/// `current` first, then `others`, without duplicates.
fn with_rotation(current: Option<Secret>, others: Vec<Secret>) -> Vec<Secret> {
    let mut all: Vec<Secret> = Vec::with_capacity(others.len() + 1);
    for s in current.into_iter().chain(others) {
        if !all.contains(&s) {
            all.push(s);
        }
    }
    all
}

/// A network in CIDR notation (`10.0.0.0/8`, `2001:db8::/32`) or a single address.
fn parse_network(raw: &str) -> Option<IpNet> {
    let raw = raw.trim();
    raw.parse::<IpNet>()
        .ok()
        .or_else(|| raw.parse::<std::net::IpAddr>().ok().map(IpNet::from))
        .map(|n| n.trunc())
}

/// Validates `[server]`.
fn server_section(
    s: RawServer,
    env: &dyn Environment,
    resolve: &dyn Fn(PathBuf) -> PathBuf,
) -> Result<ServerConfig, ConfigError> {
    let single = match env.var(SECRET_TOKEN_ENV).filter(|v| !v.is_empty()) {
        Some(v) => Some(Secret::new(v.trim())),
        None => secret(
            SecretSources {
                key: "server.secret_token",
                inline: s.secret_token,
                file: s.secret_token_file.map(resolve),
                env: None,
            },
            env,
        )?,
    };
    if single.as_ref().is_some_and(|t| t.expose().is_empty()) {
        return Err(invalid("server.secret_token", "must not be empty"));
    }
    let others = secret_list(
        "server.secret_tokens",
        s.secret_tokens,
        "server.secret_token_files",
        s.secret_token_files,
        env,
        resolve,
    )?;
    let secret_tokens = with_rotation(single, others);
    let secret_token = secret_tokens.first().cloned().ok_or_else(|| {
        invalid(
            "server.secret_token",
            format!(
                "required (or server.secret_token_file, server.secret_tokens, or {SECRET_TOKEN_ENV})"
            ),
        )
    })?;
    let signing_single = secret(
        SecretSources {
            key: "server.signing_token",
            inline: s.signing_token,
            file: s.signing_token_file.map(resolve),
            env: None,
        },
        env,
    )?;
    if signing_single
        .as_ref()
        .is_some_and(|t| t.expose().is_empty())
    {
        return Err(invalid("server.signing_token", "must not be empty"));
    }
    let signing_others = secret_list(
        "server.signing_tokens",
        s.signing_tokens,
        "server.signing_token_files",
        s.signing_token_files,
        env,
        resolve,
    )?;
    let signing_tokens = with_rotation(signing_single, signing_others);
    let signing_token = signing_tokens.first().cloned();

    let listen = s.listen.unwrap_or_else(|| DEFAULT_LISTEN.to_string());
    if listen.parse::<std::net::SocketAddr>().is_err() {
        return Err(invalid(
            "server.listen",
            format!("{listen:?} is not an address:port"),
        ));
    }
    let max_body_bytes = s.max_body_bytes.unwrap_or(DEFAULT_MAX_BODY_BYTES);
    if max_body_bytes == 0 {
        return Err(invalid("server.max_body_bytes", "must be greater than 0"));
    }
    let tolerance = s
        .signature_tolerance_secs
        .unwrap_or(DEFAULT_SIGNATURE_TOLERANCE_SECS);
    if tolerance == 0 {
        return Err(invalid(
            "server.signature_tolerance_secs",
            "must be at least 1",
        ));
    }
    let mut allow_networks = Vec::new();
    for (i, n) in s.allow_networks.into_iter().flatten().enumerate() {
        let net = parse_network(&n).ok_or_else(|| {
            invalid(
                format!("server.allow_networks[{i}]"),
                format!("{n:?} is not a network (10.0.0.0/8, 2001:db8::/32) or an address"),
            )
        })?;
        allow_networks.push(net);
    }
    let request_timeout = s
        .request_timeout_secs
        .unwrap_or(DEFAULT_REQUEST_TIMEOUT_SECS);
    if request_timeout == 0 {
        return Err(invalid("server.request_timeout_secs", "must be at least 1"));
    }
    let max_connections = s.max_connections.unwrap_or(DEFAULT_MAX_CONNECTIONS);
    if max_connections == 0 {
        return Err(invalid("server.max_connections", "must be at least 1"));
    }
    let tls = match (s.tls_cert_file, s.tls_key_file) {
        (None, None) => None,
        (Some(cert), Some(key)) => Some(TlsFiles {
            cert: resolve(cert),
            key: resolve(key),
        }),
        (Some(_), None) => {
            return Err(invalid(
                "server.tls_key_file",
                "required with server.tls_cert_file",
            ))
        }
        (None, Some(_)) => {
            return Err(invalid(
                "server.tls_cert_file",
                "required with server.tls_key_file",
            ))
        }
    };
    Ok(ServerConfig {
        listen,
        secret_token,
        secret_tokens,
        max_body_bytes,
        signing_token,
        signing_tokens,
        signature_tolerance: Duration::from_secs(tolerance),
        allow_networks,
        request_timeout: Duration::from_secs(request_timeout),
        max_connections,
        tls,
    })
}

/// Validates `[[routes]]` against the channels.
fn routes_section(
    raw: Vec<RawRoute>,
    channels: &[ChannelConfig],
    resolve: &dyn Fn(PathBuf) -> PathBuf,
) -> Result<Vec<RouteConfig>, ConfigError> {
    let mut out = Vec::with_capacity(raw.len());
    for (i, r) in raw.into_iter().enumerate() {
        let key = |k: &str| format!("routes[{i}].{k}");
        if r.channels.is_empty() {
            return Err(invalid(key("channels"), "name at least one channel"));
        }
        for c in &r.channels {
            if !channels.iter().any(|ch| &ch.name == c) {
                return Err(invalid(
                    key("channels"),
                    format!("no [[channels]] named {c:?}"),
                ));
            }
        }
        let lists = [
            ("events", &r.events),
            ("projects", &r.projects),
            ("refs", &r.refs),
            ("labels_any", &r.labels_any),
            ("labels_all", &r.labels_all),
            ("exclude_users", &r.exclude_users),
        ];
        for (k, list) in lists {
            if list
                .iter()
                .flatten()
                .any(|p| p.trim_start_matches('!').trim().is_empty())
            {
                return Err(invalid(key(k), "empty pattern"));
            }
        }
        let timezone = match &r.timezone {
            None => None,
            Some(name) => Some(name.parse::<Tz>().map_err(|_| {
                invalid(key("timezone"), format!("unknown IANA time zone {name:?}"))
            })?),
        };
        out.push(RouteConfig {
            name: r.name.unwrap_or_else(|| format!("routes[{i}]")),
            channels: r.channels,
            events: r.events.unwrap_or_default(),
            projects: r.projects.unwrap_or_default(),
            refs: r.refs.unwrap_or_default(),
            labels_any: r.labels_any.unwrap_or_default(),
            labels_all: r.labels_all.unwrap_or_default(),
            exclude_users: r.exclude_users.unwrap_or_default(),
            confidential: r.confidential,
            only_status_changes: r.only_status_changes,
            templates: r.templates.map(resolve),
            timezone,
        });
    }
    Ok(out)
}

/// Validates `[gitlab]`.
fn gitlab_section(
    g: RawGitlab,
    env: &dyn Environment,
    resolve: &dyn Fn(PathBuf) -> PathBuf,
) -> Result<GitlabConfig, ConfigError> {
    let url = g.url.trim().trim_end_matches('/').to_string();
    check_http_url(&url).map_err(|m| invalid("gitlab.url", m))?;
    if let Some(h) = &g.hook_url {
        check_http_url(h.trim()).map_err(|m| invalid("gitlab.hook_url", m))?;
    }
    let events = match g.events {
        None => HookEvent::DEFAULT.into_iter().collect(),
        Some(names) => {
            if names.is_empty() {
                return Err(invalid("gitlab.events", "must name at least one event"));
            }
            let mut events = BTreeSet::new();
            for (i, name) in names.iter().enumerate() {
                let e = HookEvent::from_name(name.trim()).ok_or_else(|| {
                    let known: Vec<&str> = HookEvent::ALL.iter().map(|e| e.name()).collect();
                    invalid(
                        format!("gitlab.events[{i}]"),
                        format!("unknown event {name:?}; known: {}", known.join(", ")),
                    )
                })?;
                events.insert(e);
            }
            events
        }
    };
    let concurrency = g.concurrency.unwrap_or(DEFAULT_GITLAB_CONCURRENCY);
    if !(1..=MAX_GITLAB_CONCURRENCY).contains(&concurrency) {
        return Err(invalid(
            "gitlab.concurrency",
            format!("must be between 1 and {MAX_GITLAB_CONCURRENCY}"),
        ));
    }
    let minutes = g.watch_hooks_minutes.unwrap_or(DEFAULT_WATCH_HOOKS_MINUTES);
    if !minutes.is_finite() || !(0.0..=24.0 * 60.0).contains(&minutes) {
        return Err(invalid(
            "gitlab.watch_hooks_minutes",
            "must be between 0 (off) and 1440",
        ));
    }
    let watch_hooks = (minutes > 0.0).then(|| Duration::from_secs_f64(minutes * 60.0));
    Ok(GitlabConfig {
        watch_hooks,
        ops_channel: g
            .ops_channel
            .map(|c| c.trim().to_string())
            .filter(|c| !c.is_empty()),
        url,
        token: secret(
            SecretSources {
                key: "gitlab.token",
                inline: g.token,
                file: g.token_file.map(resolve),
                env: g.token_env,
            },
            env,
        )?,
        hook_url: g.hook_url.map(|h| h.trim().to_string()),
        events,
        push_events_branch_filter: g
            .push_events_branch_filter
            .map(|f| f.trim().to_string())
            .filter(|f| !f.is_empty()),
        enable_ssl_verification: g.enable_ssl_verification.unwrap_or(true),
        concurrency,
    })
}

/// Accepts an absolute http(s) URL with a host.
fn check_http_url(raw: &str) -> Result<(), String> {
    let url = url::Url::parse(raw).map_err(|e| format!("{raw:?} is not a URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(format!("{raw:?} must be an http(s) URL"));
    }
    Ok(())
}

/// Reads at most one of a secret's sources; more than one is an error naming the key.
fn secret(src: SecretSources<'_>, env: &dyn Environment) -> Result<Option<Secret>, ConfigError> {
    let given = [src.inline.is_some(), src.file.is_some(), src.env.is_some()];
    if given.iter().filter(|g| **g).count() > 1 {
        return Err(invalid(
            src.key,
            "give only one of the value, _file or _env for this secret",
        ));
    }
    if let Some(v) = src.inline {
        return Ok(Some(Secret::new(v.trim())));
    }
    if let Some(path) = src.file {
        let v = env.read(&path).map_err(|e| {
            invalid(
                format!("{}_file", src.key),
                format!("cannot read {}: {e}", path.display()),
            )
        })?;
        return Ok(Some(Secret::new(v.trim())));
    }
    if let Some(var) = src.env {
        let v = env
            .var(&var)
            .filter(|v| !v.trim().is_empty())
            .ok_or_else(|| invalid(format!("{}_env", src.key), format!("${var} is not set")))?;
        return Ok(Some(Secret::new(v.trim())));
    }
    Ok(None)
}

/// The endpoint and format of channel `i` of `kind`: its URL checked for the kind's shape, its
/// credentials read (a URL that embeds a secret becomes one), `format` and `signing_secret`
/// checked against what the kind takes.
fn channel_endpoint(
    i: usize,
    kind: ChannelKind,
    c: &mut RawChannel,
    env: &dyn Environment,
    resolve: &dyn Fn(PathBuf) -> PathBuf,
) -> Result<(Endpoint, Format), ConfigError> {
    let key = |k: &str| format!("channels[{i}].{k}");
    let given = |c: &RawChannel| {
        [
            ("zapikey", c.zapikey.is_some()),
            ("zapikey_file", c.zapikey_file.is_some()),
            ("zapikey_env", c.zapikey_env.is_some()),
            ("oauth_token", c.oauth_token.is_some()),
            ("oauth_token_file", c.oauth_token_file.is_some()),
            ("oauth_token_env", c.oauth_token_env.is_some()),
            ("appkey", c.appkey.is_some()),
            ("appkey_file", c.appkey_file.is_some()),
            ("appkey_env", c.appkey_env.is_some()),
            ("signing_secret", c.signing_secret.is_some()),
            ("signing_secret_file", c.signing_secret_file.is_some()),
            ("signing_secret_env", c.signing_secret_env.is_some()),
        ]
        .into_iter()
        .filter(|(_, set)| *set)
        .map(|(k, _)| k)
        .collect::<Vec<&str>>()
    };
    let format = match c.format.as_deref().map(str::trim) {
        None if matches!(kind, ChannelKind::ZohoFunction | ChannelKind::Webhook) => Format::Event,
        None | Some("card") => Format::Card,
        Some("event") => Format::Event,
        Some(other) => {
            return Err(invalid(
                key("format"),
                format!("{other:?} is not a format: \"card\" or \"event\""),
            ))
        }
    };
    let sources =
        |name: &str, inline: Option<String>, file: Option<PathBuf>, env_var: Option<String>| {
            (key(name), inline, file.map(resolve), env_var)
        };
    let read =
        |(k, inline, file, env_var): (String, Option<String>, Option<PathBuf>, Option<String>)| {
            secret(
                SecretSources {
                    key: &k,
                    inline,
                    file,
                    env: env_var,
                },
                env,
            )
        };
    if kind == ChannelKind::Console {
        let mut set = given(c);
        if c.url.is_some() || c.url_file.is_some() || c.url_env.is_some() {
            set.insert(0, "url");
        }
        if let Some(k) = set.first() {
            return Err(invalid(
                key(k),
                "a console channel prints to standard output: it takes no url or credential",
            ));
        }
        if format == Format::Event {
            return Err(invalid(key("format"), "a console channel draws cards only"));
        }
        let endpoint = Endpoint {
            url: CONSOLE_URL.to_string(),
            auth: Auth::None,
        };
        return Ok((endpoint, format));
    }
    if matches!(kind, ChannelKind::Cliq | ChannelKind::ZohoFunction) {
        if c.url_file.is_some() || c.url_env.is_some() {
            return Err(invalid(
                key("url"),
                "a Zoho URL is not a secret: give `url` and the zapikey (or oauth_token) apart",
            ));
        }
        let Some(raw_url) = c.url.as_deref() else {
            let what = if kind == ChannelKind::Cliq {
                "Cliq"
            } else {
                "zoho_function"
            };
            return Err(invalid(
                key("url"),
                format!("required for a {what} channel"),
            ));
        };
        let (url, key_in_url, appkey_in_url) =
            split_zoho_keys(raw_url).map_err(|m| invalid(key("url"), m))?;
        let path = url::Url::parse(&url)
            .map(|u| u.path().to_string())
            .unwrap_or_default();
        let extension = path.contains("/applications/") && path.ends_with("/incoming");
        let incoming = path.ends_with("/incoming");
        if kind == ChannelKind::Cliq && format == Format::Event && !incoming {
            return Err(invalid(
                key("format"),
                "\"event\" is for a bot or extension incoming URL (/api/v2/bots/NAME/incoming, \
                 /api/v2/applications/ID/incoming): a channel or chat shows only cards",
            ));
        }
        if kind == ChannelKind::ZohoFunction && !path.contains("/functions/") {
            return Err(invalid(
                key("url"),
                "a zoho_function URL names a function (…/functions/NAME/actions/execute)",
            ));
        }
        let zapikey = read(sources(
            "zapikey",
            c.zapikey.take().or(key_in_url),
            c.zapikey_file.take(),
            c.zapikey_env.take(),
        ))?;
        let oauth = read(sources(
            "oauth_token",
            c.oauth_token.take(),
            c.oauth_token_file.take(),
            c.oauth_token_env.take(),
        ))?;
        let appkey = read(sources(
            "appkey",
            c.appkey.take().or(appkey_in_url),
            c.appkey_file.take(),
            c.appkey_env.take(),
        ))?;
        if let Some(k) = given(c)
            .into_iter()
            .find(|k| k.starts_with("signing_secret"))
        {
            return Err(invalid(key(k), "only a webhook channel is signed"));
        }
        if appkey.is_some() && !extension {
            return Err(invalid(
                key("appkey"),
                "only an extension incoming URL (/api/v2/applications/ID/incoming) takes an appkey",
            ));
        }
        if extension && appkey.is_none() {
            return Err(invalid(
                key("appkey"),
                "an extension incoming URL needs its appkey (in the url or as appkey/_file/_env)",
            ));
        }
        let auth =
            match (zapikey, oauth, appkey) {
                (Some(k), None, None) => Auth::ZapiKey(k),
                (None, Some(t), None) => Auth::OAuth(t),
                (None, None, None) => Auth::None,
                (k, None, Some(a)) => {
                    let mut keys = vec![("appkey".to_string(), a)];
                    keys.extend(k.map(|k| ("zapikey".to_string(), k)));
                    Auth::Query(keys)
                }
                (None, Some(_), Some(_)) => return Err(invalid(
                    key("oauth_token"),
                    "an extension incoming URL takes a zapikey with its appkey, not an oauth_token",
                )),
                (Some(_), Some(_), _) => {
                    return Err(invalid(
                        key("zapikey"),
                        "give a zapikey or an oauth_token, not both",
                    ))
                }
            };
        return Ok((Endpoint { url, auth }, format));
    }
    // The other kinds: the URL is the credential (Slack, Discord, Teams, Google Chat and
    // Mattermost put a token in it; a generic webhook may).
    if let Some(k) = given(c)
        .into_iter()
        .find(|k| !k.starts_with("signing_secret"))
    {
        return Err(invalid(
            key(k),
            format!(
                "a {} channel's credential is its url (or url_file / url_env)",
                kind.as_str()
            ),
        ));
    }
    if format == Format::Event && kind != ChannelKind::Webhook {
        return Err(invalid(
            key("format"),
            format!("a {} channel shows cards: \"event\" is for cliq incoming URLs, zoho_function and webhook", kind.as_str()),
        ));
    }
    let Some(url) = read(sources(
        "url",
        c.url.take(),
        c.url_file.take(),
        c.url_env.take(),
    ))?
    else {
        return Err(invalid(
            key("url"),
            format!("required for a {} channel", kind.as_str()),
        ));
    };
    let redacted = check_webhook_url(kind, url.expose()).map_err(|m| invalid(key("url"), m))?;
    let url = if kind == ChannelKind::GoogleChat {
        Secret::new(thread_replies(url.expose()))
    } else {
        url
    };
    let signing = read(sources(
        "signing_secret",
        c.signing_secret.take(),
        c.signing_secret_file.take(),
        c.signing_secret_env.take(),
    ))?;
    let auth = match signing {
        None => Auth::SecretUrl(url),
        Some(_) if kind != ChannelKind::Webhook => {
            return Err(invalid(
                key("signing_secret"),
                "only a webhook channel is signed",
            ))
        }
        Some(s) => {
            if crate::signing::SigningKey::parse(s.expose()).is_none() {
                return Err(invalid(
                    key("signing_secret"),
                    "must be \"whsec_\" followed by base64 (Standard Webhooks)",
                ));
            }
            Auth::Signed { url, key: s }
        }
    };
    Ok((
        Endpoint {
            url: redacted,
            auth,
        },
        format,
    ))
}

/// Checks a webhook URL against its kind's documented shape and returns the form that may be
/// logged (scheme, host and the path's first segment). Plain http is accepted on loopback
/// hosts only (a local relay, or a test).
fn check_webhook_url(kind: ChannelKind, raw: &str) -> Result<String, String> {
    // The message never quotes the URL: it is a secret.
    let url = url::Url::parse(raw.trim()).map_err(|e| format!("not a URL: {e}"))?;
    let host = url.host_str().unwrap_or_default().to_string();
    let loopback = host == "localhost"
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    match url.scheme() {
        "https" => {}
        "http" if loopback => {}
        _ => return Err("must be an https URL".into()),
    }
    if host.is_empty() {
        return Err("has no host".into());
    }
    let path = url.path();
    let query = |k: &str| url.query_pairs().any(|(q, v)| q == k && !v.is_empty());
    let shape = match kind {
        ChannelKind::Slack => path.starts_with("/services/") && path.split('/').count() >= 5,
        ChannelKind::Discord => {
            path.starts_with("/api/webhooks/") && path.trim_end_matches('/').split('/').count() >= 5
        }
        ChannelKind::GoogleChat => {
            path.starts_with("/v1/spaces/") && query("key") && query("token")
        }
        ChannelKind::Mattermost => path.starts_with("/hooks/") && path.len() > "/hooks/".len(),
        _ => true,
    };
    if !shape {
        let expected = match kind {
            ChannelKind::Slack => "https://hooks.slack.com/services/T…/B…/…",
            ChannelKind::Discord => "https://discord.com/api/webhooks/ID/TOKEN",
            ChannelKind::GoogleChat => {
                "https://chat.googleapis.com/v1/spaces/SPACE/messages?key=…&token=…"
            }
            _ => "https://MATTERMOST/hooks/KEY",
        };
        return Err(format!(
            "is not a {} webhook URL (expected {expected})",
            kind.as_str()
        ));
    }
    let first = path.split('/').find(|s| !s.is_empty()).unwrap_or_default();
    let port = url.port().map(|p| format!(":{p}")).unwrap_or_default();
    Ok(format!("{}://{host}{port}/{first}/****", url.scheme()))
}

/// A Google Chat webhook URL that replies in the `thread.threadKey` the body names (or starts
/// that thread): `messageReplyOption=REPLY_MESSAGE_FALLBACK_TO_NEW_THREAD` unless it has one.
fn thread_replies(raw: &str) -> String {
    match url::Url::parse(raw.trim()) {
        Ok(mut u) if !u.query_pairs().any(|(k, _)| k == "messageReplyOption") => {
            u.query_pairs_mut()
                .append_pair("messageReplyOption", "REPLY_MESSAGE_FALLBACK_TO_NEW_THREAD");
            u.to_string()
        }
        _ => raw.trim().to_string(),
    }
}

/// Validates a Zoho URL and moves the `zapikey` and `appkey` found in its query out of it.
fn split_zoho_keys(raw: &str) -> Result<(String, Option<String>, Option<String>), String> {
    let (rest, zapikey) = split_zapikey(raw)?;
    let mut url = url::Url::parse(&rest).map_err(|e| format!("not a URL: {e}"))?;
    let appkey = take_query(&mut url, "appkey");
    Ok((url.to_string(), zapikey, appkey))
}

/// Validates a channel URL and moves a `zapikey` found in its query out of it.
fn split_zapikey(raw: &str) -> Result<(String, Option<String>), String> {
    let mut url = url::Url::parse(raw.trim()).map_err(|e| format!("not a URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err("must be an http(s) URL".into());
    }
    let key = take_query(&mut url, "zapikey");
    Ok((url.to_string(), key))
}

/// Removes the query parameter `name` from `url` (every occurrence) and returns its last value.
fn take_query(url: &mut url::Url, name: &str) -> Option<String> {
    let mut value = None;
    let kept: Vec<(String, String)> = url
        .query_pairs()
        .filter_map(|(k, v)| {
            if k == name {
                value = Some(v.into_owned());
                None
            } else {
                Some((k.into_owned(), v.into_owned()))
            }
        })
        .collect();
    if kept.is_empty() {
        url.set_query(None);
    } else {
        url.query_pairs_mut().clear().extend_pairs(kept);
    }
    value
}

/// Rejects strftime formats chrono cannot render, at load time rather than per message.
fn check_strftime(key: &str, fmt: &str) -> Result<(), ConfigError> {
    use chrono::format::{Item, StrftimeItems};
    if StrftimeItems::new(fmt).any(|i| matches!(i, Item::Error)) {
        return Err(invalid(
            key,
            format!("{fmt:?} is not a valid strftime format"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    struct FakeEnv(HashMap<String, String>);

    impl Environment for FakeEnv {
        fn var(&self, name: &str) -> Option<String> {
            self.0.get(name).cloned()
        }
        fn read(&self, path: &Path) -> std::io::Result<String> {
            self.0
                .get(&path.display().to_string())
                .cloned()
                .ok_or_else(|| std::io::Error::from(std::io::ErrorKind::NotFound))
        }
    }

    fn parse(text: &str, env: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let env = FakeEnv(
            env.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        );
        Config::parse(text, Path::new("/etc/gcb/config.toml"), &env)
    }

    #[test]
    fn the_cliq_extension_needs_keys_projects_a_credential_and_gitlab() {
        let gitlab =
            "[server]\nsecret_token='x'\n[gitlab]\nurl='https://gitlab.example.com'\ntoken='t'\n";
        let ext = "[cliq_extension]\npublic_keys=['TUlJQg==']\nallowed_projects=['acme/*']\nzapikey='z'\n";
        let cfg = match parse(&format!("{gitlab}{ext}admins=[' Bob@Example.com ']\n"), &[]) {
            Ok(c) => c,
            Err(e) => panic!("{e}"),
        };
        let x = cfg.cliq_extension.as_ref().map(|x| {
            (
                x.path.clone(),
                x.api.url.clone(),
                x.admins.clone(),
                x.answer_within,
            )
        });
        assert_eq!(
            x,
            Some((
                DEFAULT_CLIQ_PATH.to_string(),
                DEFAULT_CLIQ_API_URL.to_string(),
                vec!["bob@example.com".to_string()],
                Duration::from_millis(DEFAULT_CLIQ_ANSWER_WITHIN_MS)
            ))
        );
        let pem = "-----BEGIN PUBLIC KEY-----\nTUlJ\nQg==\n-----END PUBLIC KEY-----\n";
        let from_file = parse(
            &format!("{gitlab}[cliq_extension]\npublic_key_files=['k.pem']\nallowed_projects=['*']\nzapikey='z'\n"),
            &[("/etc/gcb/k.pem", pem)],
        );
        assert_eq!(
            from_file
                .ok()
                .and_then(|c| c.cliq_extension)
                .map(|x| x.public_keys),
            Some(vec!["TUlJQg==".to_string()])
        );
        for (text, key) in [
            (
                format!("[server]\nsecret_token='x'\n{ext}"),
                "cliq_extension:",
            ),
            (
                format!("{gitlab}{ext}").replace("public_keys=['TUlJQg==']", ""),
                "cliq_extension.public_keys",
            ),
            (
                format!("{gitlab}{ext}")
                    .replace("public_keys=['TUlJQg==']", "public_keys=['not base64!']"),
                "cliq_extension.public_keys[0]",
            ),
            (
                format!("{gitlab}{ext}").replace("allowed_projects=['acme/*']", ""),
                "cliq_extension.allowed_projects",
            ),
            (
                format!("{gitlab}{ext}").replace("zapikey='z'", ""),
                "cliq_extension.zapikey",
            ),
            (
                format!("{gitlab}{ext}path='/hooks/gitlab'\n"),
                "cliq_extension.path",
            ),
            (
                format!("{gitlab}{ext}api_url='ftp://x'\n"),
                "cliq_extension.api_url",
            ),
            (
                format!("{gitlab}{ext}answer_within_ms=6000\n"),
                "cliq_extension.answer_within_ms",
            ),
        ] {
            let e = parse(&text, &[]).err();
            assert!(
                e.as_ref().is_some_and(|e| e.to_string().starts_with(key)),
                "{key}: {e:?}"
            );
        }
    }

    #[test]
    fn every_kind_checks_its_url_credentials_and_format() {
        let base = "[server]\nsecret_token='x'\n[[channels]]\nname='c'\n";
        let ok = |extra: &str| match parse(
            &format!("{base}{extra}\n"),
            &[("SLACK", "https://hooks.slack.com/services/T1/B2/SECRETX")],
        ) {
            Ok(c) => c.channels[0].clone(),
            Err(e) => panic!("{extra}: {e}"),
        };
        let err = |extra: &str| match parse(&format!("{base}{extra}\n"), &[]) {
            Ok(_) => panic!("{extra}: accepted"),
            Err(e) => e.to_string(),
        };
        // A webhook URL is a secret: the logged form keeps only scheme, host and first segment.
        let slack = ok("kind='slack'\nurl_env='SLACK'");
        assert_eq!(slack.endpoint.url, "https://hooks.slack.com/services/****");
        assert!(
            matches!(&slack.endpoint.auth, Auth::SecretUrl(u) if u.expose().ends_with("SECRETX"))
        );
        assert!(!format!("{slack:?}").contains("SECRETX"));
        assert_eq!((slack.format, slack.rate_per_minute), (Format::Card, 60));
        assert!(err("kind='slack'\nurl='https://hooks.slack.com/x'")
            .starts_with("channels[0].url: is not a slack webhook URL"));
        assert!(err("kind='slack'\nurl='http://hooks.slack.com/services/T/B/K'").contains("https"));
        assert!(
            err("kind='slack'\nurl='https://hooks.slack.com/services/T/B/K'\nzapikey='k'")
                .starts_with("channels[0].zapikey")
        );
        assert!(
            err("kind='discord'\nurl='https://discord.com/api/webhooks/1/t'\nformat='event'")
                .starts_with("channels[0].format")
        );
        assert!(err(
            "kind='google_chat'\nurl='https://chat.googleapis.com/v1/spaces/S/messages?key=k'"
        )
        .starts_with("channels[0].url"));
        let chat = ok("kind='google_chat'\nurl='https://chat.googleapis.com/v1/spaces/S/messages?key=k&token=t'");
        assert!(
            matches!(&chat.endpoint.auth, Auth::SecretUrl(u) if u.expose().contains("messageReplyOption=REPLY_MESSAGE_FALLBACK_TO_NEW_THREAD"))
        );
        // Signed webhooks, and the event JSON by default.
        let hook = ok("kind='webhook'\nurl='https://example.com/in'\nsigning_secret='whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw'");
        assert!(matches!(hook.endpoint.auth, Auth::Signed { .. }));
        assert_eq!(hook.format, Format::Event);
        assert!(
            err("kind='webhook'\nurl='https://example.com/in'\nsigning_secret='nope!'")
                .starts_with("channels[0].signing_secret")
        );
        assert!(err("kind='slack'\nurl='https://hooks.slack.com/services/T/B/K'\nsigning_secret='whsec_AAAA'").starts_with("channels[0].signing_secret"));
        // Zoho: an extension's appkey is a secret taken out of the URL; functions take the event.
        let ext = ok("url='https://cliq.zoho.com/api/v2/applications/9/incoming?appkey=AK&zapikey=ZK'\nformat='event'");
        assert_eq!(
            ext.endpoint.url,
            "https://cliq.zoho.com/api/v2/applications/9/incoming"
        );
        assert!(
            matches!(&ext.endpoint.auth, Auth::Query(k) if k.len() == 2 && k[0].0 == "appkey" && k[1].1.expose() == "ZK")
        );
        assert!(
            err("url='https://cliq.zoho.com/api/v2/applications/9/incoming'")
                .starts_with("channels[0].appkey")
        );
        assert!(
            err("url='https://cliq.zoho.com/api/v2/channelsbyname/a/message'\nformat='event'")
                .starts_with("channels[0].format")
        );
        assert!(
            err("url='https://cliq.zoho.com/api/v2/channelsbyname/a/message'\nappkey='A'")
                .starts_with("channels[0].appkey")
        );
        let bot =
            ok("url='https://cliq.zoho.com/api/v2/bots/b/incoming'\nzapikey='k'\nformat='event'");
        assert_eq!(bot.format, Format::Event);
        let function = ok("kind='zoho_function'\nurl='https://www.zohoapis.com/crm/v7/functions/f/actions/execute?auth_type=apikey&zapikey=ZK'");
        assert_eq!(function.format, Format::Event);
        assert_eq!(
            function.endpoint.url,
            "https://www.zohoapis.com/crm/v7/functions/f/actions/execute?auth_type=apikey"
        );
        assert!(
            err("kind='zoho_function'\nurl='https://www.zohoapis.com/crm/v7/x'")
                .starts_with("channels[0].url")
        );
    }

    #[test]
    fn mentions_per_kind() {
        let base =
            "[server]\nsecret_token='x'\n[mentions]\nalice='111'\n[mentions.slack]\nalice='U1'\n";
        let cfg = match parse(base, &[]) {
            Ok(c) => c,
            Err(e) => panic!("{e}"),
        };
        assert_eq!(cfg.mentions.get("alice").map(String::as_str), Some("111"));
        assert_eq!(
            cfg.kind_mentions["slack"].get("alice").map(String::as_str),
            Some("U1")
        );
        let bad = parse(
            "[server]\nsecret_token='x'\n[mentions.skype]\nalice='U1'\n",
            &[],
        );
        assert!(bad
            .err()
            .is_some_and(|e| e.to_string().starts_with("mentions.skype")));
        let group = parse(
            "[server]\nsecret_token='x'\n[mentions.discord]\nalice='all'\n",
            &[],
        );
        assert!(group
            .err()
            .is_some_and(|e| e.to_string().starts_with("mentions.discord")));
    }

    #[test]
    fn console_channels_take_no_url_or_credential() {
        let base = "[server]\nsecret_token='x'\n[[channels]]\nname='c'\n";
        let cfg = match parse(&format!("{base}kind='console'\n"), &[]) {
            Ok(c) => c,
            Err(e) => panic!("{e}"),
        };
        let c = &cfg.channels[0];
        assert_eq!(c.kind, ChannelKind::Console);
        assert_eq!(c.endpoint.url, CONSOLE_URL);
        assert_eq!(c.endpoint.auth, Auth::None);
        assert_eq!(c.rate_per_minute, CONSOLE_RATE_PER_MINUTE);
        let slow = parse(&format!("{base}kind='console'\nrate_per_minute=10\n"), &[]);
        assert_eq!(slow.map(|c| c.channels[0].rate_per_minute).ok(), Some(10));
        for (extra, key) in [
            ("url='https://cliq.zoho.com/x'", "channels[0].url"),
            ("zapikey='k'", "channels[0].zapikey"),
            ("oauth_token_env='T'", "channels[0].oauth_token_env"),
        ] {
            let e = parse(&format!("{base}kind='console'\n{extra}\n"), &[]).err();
            assert!(
                e.as_ref().is_some_and(|e| e.to_string().starts_with(key)),
                "{extra}: {e:?}"
            );
        }
        let e = parse(&format!("{base}kind='skype'\n"), &[]).err();
        assert!(
            e.as_ref()
                .is_some_and(|e| e.to_string().starts_with("channels[0].kind")),
            "{e:?}"
        );
        let e = parse(base, &[]).err();
        assert!(
            e.as_ref()
                .is_some_and(|e| e.to_string() == "channels[0].url: required for a Cliq channel"),
            "{e:?}"
        );
        let cliq = parse(
            &format!("{base}kind='cliq'\nurl='https://cliq.zoho.com/x'\n"),
            &[],
        );
        assert_eq!(
            cliq.map(|c| (c.channels[0].kind, c.channels[0].rate_per_minute))
                .ok(),
            Some((ChannelKind::Cliq, DEFAULT_RATE_PER_MINUTE))
        );
    }

    /// The Debian package's config loads as the unit hands it over: secrets from the unit's
    /// credentials, every path absolute (the file is read from the credentials folder).
    #[test]
    fn the_packaged_config_matches_the_unit() {
        let unit = include_str!("../systemd/gitlab-chat-bridge.service");
        let creds = "/run/credentials/gitlab-chat-bridge.service";
        let mut env = Vec::new();
        for line in unit.lines() {
            if let Some((name, _)) = line
                .strip_prefix("LoadCredential=")
                .and_then(|c| c.split_once(':'))
            {
                env.push((format!("{creds}/{name}"), "a-secret".to_string()));
            }
        }
        assert!(unit.contains("--config %d/config.toml"), "{unit}");
        assert!(env.iter().any(|(p, _)| p.ends_with("/config.toml")));
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let text = include_str!("../debian/config.toml");
        let cfg = match Config::parse(
            text,
            Path::new(&format!("{creds}/config.toml")),
            &FakeEnv(
                env.iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            ),
        ) {
            Ok(c) => c,
            Err(e) => panic!("{e}"),
        };
        assert!(cfg.outbox.path.starts_with("/var/lib/gitlab-chat-bridge/"));
        assert!(unit.contains("StateDirectory=gitlab-chat-bridge\n"));
        assert!(matches!(cfg.channels[0].endpoint.auth, Auth::ZapiKey(_)));
        assert!(!cfg.server.secret_tokens.is_empty());
    }

    #[test]
    fn mentions_are_validated() {
        let base = "[server]\nsecret_token='x'\n[mentions]\n";
        let ok = parse(
            &format!("{base}alice = '12345678'\n'@Bob' = ' bob@example.com '\n'carol@example.com' = '999'\n"),
            &[],
        );
        let m = match ok {
            Ok(c) => c.mentions,
            Err(e) => panic!("{e}"),
        };
        assert_eq!(m.get("alice").map(String::as_str), Some("12345678"));
        assert_eq!(m.get("Bob").map(String::as_str), Some("bob@example.com"));
        assert_eq!(m.get("carol@example.com").map(String::as_str), Some("999"));
        let none = parse("[server]\nsecret_token='x'\n", &[]);
        assert!(none.map(|c| c.mentions.is_empty()).unwrap_or(false));
        for (bad, why) in [
            ("alice = ''", "empty"),
            ("alice = '{@all}'", "braces"),
            ("alice = '12 34'", "braces"),
            ("alice = 'all'", "group mention"),
            ("'' = '1'", "empty"),
            ("alice = '1'\nAlice = '2'", "mapped twice"),
        ] {
            let msg = parse(&format!("{base}{bad}\n"), &[])
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(msg.starts_with("mentions."), "{bad}: {msg}");
            assert!(msg.contains(why), "{bad}: {msg}");
        }
    }

    #[test]
    fn preview_is_off_by_default_and_never_public_by_accident() {
        let off = parse("[server]\nsecret_token='x'\nlisten='0.0.0.0:8080'\n", &[]);
        assert_eq!(off.map(|c| c.preview).ok(), Some(PreviewConfig::default()));
        let local = parse(
            "[server]\nsecret_token='x'\nlisten='127.0.0.1:8080'\n[preview]\nenabled=true\nfixtures='fx'\n",
            &[],
        );
        let p = local.map(|c| c.preview).map_err(|e| e.to_string());
        assert!(
            p.as_ref().is_ok_and(|p| p.enabled && p.listen.is_none()),
            "{p:?}"
        );
        assert!(p.is_ok_and(|p| p.fixtures.is_some_and(|f| f.ends_with("fx"))));
        for public in ["0.0.0.0:8080", "192.0.2.7:8080", "[::]:8080"] {
            let msg = parse(
                &format!(
                    "[server]\nsecret_token='x'\nlisten='{public}'\n[preview]\nenabled=true\n"
                ),
                &[],
            )
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
            assert!(msg.starts_with("preview.enabled: "), "{public}: {msg}");
            for key in ["server.listen", "preview.listen", public] {
                assert!(msg.contains(key), "{public}: {msg}");
            }
            assert!(!msg.contains('\n'), "{msg}");
        }
        let own = parse(
            "[server]\nsecret_token='x'\nlisten='0.0.0.0:8080'\n[preview]\nenabled=true\nlisten='127.0.0.1:8081'\n",
            &[],
        );
        assert_eq!(
            own.ok().and_then(|c| c.preview.listen),
            Some("127.0.0.1:8081".to_string())
        );
        let bad = parse(
            "[server]\nsecret_token='x'\n[preview]\nenabled=true\nlisten='localhost'\n",
            &[],
        );
        let msg = bad.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(msg.starts_with("preview.listen: "), "{msg}");
    }

    /// The outbox of a config that must load.
    fn outbox_of(text: &str, env: &[(&str, &str)]) -> OutboxConfig {
        match parse(text, env) {
            Ok(cfg) => cfg.outbox,
            Err(e) => panic!("{e}: {text}"),
        }
    }

    #[test]
    fn outbox_url_selects_postgresql_with_its_password_ca_and_pool() {
        let base = "[server]\nsecret_token='x'\n[outbox]\n";
        let sqlite = outbox_of(base, &[]);
        assert_eq!(sqlite.postgres, None);
        assert!(sqlite.path.ends_with(DEFAULT_OUTBOX_PATH));

        let pg = outbox_of(
            &format!("{base}url='postgres://bridge@db.internal:5432/bridge?sslmode=require'\npassword_file='pg-pass'\nca_file='db-ca.pem'\npool_size=4\n"),
            &[("/etc/gcb/pg-pass", "s3cret\n")],
        )
        .postgres;
        let want = PostgresConfig {
            url: "postgres://bridge@db.internal:5432/bridge?sslmode=require".into(),
            password: Some(Secret::new("s3cret")),
            ca_file: Some(PathBuf::from("/etc/gcb/db-ca.pem")),
            pool_size: 4,
        };
        assert_eq!(pg.as_ref(), Some(&want));
        assert_eq!(want.target(), "db.internal:5432/bridge");
        assert!(!format!("{pg:?}").contains("s3cret"));

        let from_env = outbox_of(
            &format!("{base}url='postgresql://bridge@127.0.0.1/'\npassword_env='PGPASS'\n"),
            &[("PGPASS", "e")],
        )
        .postgres;
        let want = PostgresConfig {
            url: "postgresql://bridge@127.0.0.1/".into(),
            password: Some(Secret::new("e")),
            ca_file: None,
            pool_size: DEFAULT_PG_POOL_SIZE,
        };
        assert_eq!(from_env.as_ref(), Some(&want));
        assert_eq!(want.target(), "127.0.0.1/bridge");
        let no_password = outbox_of(&format!("{base}url='postgres://u@h/d'\n"), &[]).postgres;
        assert_eq!(no_password.and_then(|p| p.password), None);
    }

    #[test]
    fn outbox_url_mistakes_name_their_keys_and_never_show_a_password() {
        let err = |outbox: &str| {
            let text = format!("[server]\nsecret_token='x'\n[outbox]\n{outbox}\n");
            match parse(&text, &[("/etc/gcb/p", "pw")]) {
                Ok(_) => panic!("accepted: {outbox}"),
                Err(e) => e.to_string(),
            }
        };
        let cases = [
            ("url='postgres://u@h/d'\npath='x.sqlite'", "outbox.url: give outbox.url (PostgreSQL) or outbox.path (SQLite), not both"),
            ("url='postgres://u@h/d'\nsynchronous='full'", "outbox.synchronous: applies to the SQLite store"),
            ("url='mysql://u@h/d'", "outbox.url: must start with postgres:// or postgresql://"),
            ("url='not a url'", "outbox.url: not a URL"),
            ("url='postgres:///d'", "outbox.url: needs a host"),
            ("url='postgres://h/d'", "outbox.url: needs a user name"),
            ("url='postgres://u:hunter2@h/d'", "outbox.url: holds a password (user:password@): remove it from the URL and put it in outbox.password_file or outbox.password_env"),
            ("url='postgres://u@h/d?password=hunter2'", "outbox.url: holds a password (?password=): remove it from the URL and put it in outbox.password_file or outbox.password_env"),
            ("url='postgres://u@h/d?sslmode=verify-full'", "outbox.url: sslmode=verify-full is not one of disable, prefer, require"),
            ("url='postgres://u@h/d?sslrootcert=x'", "outbox.url: unknown option ?sslrootcert="),
            ("url='postgres://u@h/d'\npassword_file='p'\npassword_env='P'", "outbox.password_file: give outbox.password_file or outbox.password_env, not both"),
            ("url='postgres://u@h/d'\npassword_env='UNSET'", "outbox.password_env: $UNSET is not set"),
            ("url='postgres://u@h/d'\npassword_file='missing'", "outbox.password_file: cannot read /etc/gcb/missing"),
            ("url='postgres://u@h/d'\npool_size=0", "outbox.pool_size: 0 is not between 1 and 256"),
            ("url='postgres://u@h/d'\npool_size=257", "outbox.pool_size: 257 is not between 1 and 256"),
            ("url='postgres://u@h/d?sslmode=disable'\nca_file='ca.pem'", "outbox.ca_file: outbox.url has sslmode=disable"),
            ("password_file='p'", "outbox.password_file: applies to the PostgreSQL store only"),
            ("password_env='P'", "outbox.password_env: applies to the PostgreSQL store only"),
            ("ca_file='ca.pem'", "outbox.ca_file: applies to the PostgreSQL store only"),
            ("pool_size=4", "outbox.pool_size: applies to the PostgreSQL store only"),
        ];
        for (outbox, want) in cases {
            let msg = err(outbox);
            assert!(msg.starts_with(want), "{outbox:?}: {msg}");
            assert!(!msg.contains("hunter2"), "{outbox:?}: {msg}");
        }
    }

    #[test]
    fn unknown_keys_are_named() {
        let e = parse("[server]\nsecret_token='x'\nlisten_port=1\n", &[]).err();
        let msg = e.map(|e| e.to_string()).unwrap_or_default();
        assert!(msg.contains("listen_port"), "{msg}");
    }

    #[test]
    fn secrets_come_from_file_env_or_url_and_stay_hidden() {
        let cfg = parse(
            "[server]\nsecret_token_file='tok'\n[[channels]]\nname='a'\nurl='https://cliq.zoho.eu/api/v2/channelsbyname/a/message?zapikey=K1'\n[[channels]]\nname='b'\nurl='https://cliq.zoho.in/x'\nzapikey_env='ZK'\n",
            &[("/etc/gcb/tok", "s3cret\n"), ("ZK", "K2")],
        );
        let cfg = match cfg {
            Ok(c) => c,
            Err(e) => panic!("{e}"),
        };
        assert_eq!(cfg.server.secret_token.expose(), "s3cret");
        assert_eq!(
            cfg.channels[0].endpoint.url,
            "https://cliq.zoho.eu/api/v2/channelsbyname/a/message"
        );
        assert_eq!(
            cfg.channels[0].endpoint.auth,
            Auth::ZapiKey(Secret::new("K1"))
        );
        assert_eq!(
            cfg.channels[1].endpoint.auth,
            Auth::ZapiKey(Secret::new("K2"))
        );
        let dbg = format!("{cfg:?}");
        for s in ["s3cret", "K1", "K2"] {
            assert!(!dbg.contains(s), "{s} leaked in Debug");
        }
    }

    #[test]
    fn gitlab_section_has_defaults_and_names_bad_keys() {
        let base = "[server]\nsecret_token='x'\n[gitlab]\nurl='https://gitlab.example.com/'\ntoken_env='GT'\nhook_url='https://b.example.com/hooks/gitlab'\n";
        let cfg = parse(base, &[("GT", "glpat-1")]);
        let g = match cfg.map(|c| c.gitlab) {
            Ok(Some(g)) => g,
            other => panic!("{other:?}"),
        };
        assert_eq!(g.url, "https://gitlab.example.com");
        assert_eq!(g.events, HookEvent::DEFAULT.into_iter().collect());
        assert!(g.enable_ssl_verification);
        assert_eq!(g.concurrency, DEFAULT_GITLAB_CONCURRENCY);
        assert_eq!(g.push_events_branch_filter, None);
        assert_eq!(g.watch_hooks, Some(Duration::from_secs(600)));
        assert_eq!(g.ops_channel, None);
        assert!(!format!("{g:?}").contains("glpat-1"));
        let err = |extra: &str| {
            parse(&format!("{base}{extra}"), &[("GT", "t")])
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default()
        };
        assert!(err("events=['push','pushes']\n")
            .starts_with("gitlab.events[1]: unknown event \"pushes\""));
        assert!(err("events=[]\n").starts_with("gitlab.events:"));
        assert!(err("concurrency=0\n").starts_with("gitlab.concurrency:"));
        assert!(err("watch_hooks_minutes=-1\n").starts_with("gitlab.watch_hooks_minutes:"));
        assert!(err("ops_channel='ops'\n").starts_with("gitlab.ops_channel: no [[channels]]"));
        let off = parse(&format!("{base}watch_hooks_minutes=0\n"), &[("GT", "t")]);
        assert!(matches!(off.map(|c| c.gitlab), Ok(Some(g)) if g.watch_hooks.is_none()));
        let ok = parse(
            &format!("{base}events=['job','push']\nenable_ssl_verification=false\npush_events_branch_filter='main'\nconcurrency=8\n"),
            &[("GT", "t")],
        );
        let g = match ok.map(|c| c.gitlab) {
            Ok(Some(g)) => g,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            g.events,
            [HookEvent::Push, HookEvent::Job].into_iter().collect()
        );
        assert!(!g.enable_ssl_verification);
        assert_eq!(g.push_events_branch_filter.as_deref(), Some("main"));
        assert_eq!(g.concurrency, 8);
        let bad_url = parse(
            "[server]\nsecret_token='x'\n[gitlab]\nurl='gitlab.example.com'\n",
            &[],
        );
        assert!(bad_url
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default()
            .starts_with("gitlab.url"));
        let bad_hook = parse(
            "[server]\nsecret_token='x'\n[gitlab]\nurl='https://g.test'\nhook_url='/hooks'\n",
            &[],
        );
        assert!(bad_hook
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default()
            .starts_with("gitlab.hook_url"));
    }

    #[test]
    fn env_token_wins_and_errors_name_keys() {
        let cfg = parse(
            "[server]\nsecret_token='file'\n",
            &[(SECRET_TOKEN_ENV, "env")],
        );
        assert_eq!(
            cfg.map(|c| c.server.secret_token.expose().to_string())
                .ok()
                .as_deref(),
            Some("env")
        );
        let missing = parse("", &[])
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(missing.starts_with("server.secret_token"), "{missing}");
        let tz = parse(
            "[server]\nsecret_token='x'\n[templates]\ntimezone='Mars/Base'\n",
            &[],
        );
        assert!(tz
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default()
            .starts_with("templates.timezone"));
        let url = parse(
            "[server]\nsecret_token='x'\n[[channels]]\nname='a'\nurl='ftp://x'\n",
            &[],
        );
        assert!(url
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default()
            .starts_with("channels[0].url"));
        let env = parse("[server]\nsecret_token='x'\n[[channels]]\nname='a'\nurl='https://x.test/'\nzapikey_env='NOPE'\n", &[]);
        assert!(env
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default()
            .contains("$NOPE is not set"));
    }
}

#[cfg(test)]
mod server_section_tests {
    use super::*;

    struct Files;

    impl Environment for Files {
        fn var(&self, name: &str) -> Option<String> {
            (name == SECRET_TOKEN_ENV).then(|| "from-env".to_string())
        }
        fn read(&self, path: &Path) -> std::io::Result<String> {
            match path.to_str() {
                Some("/etc/gcb/old-token") => Ok("old\n".into()),
                Some("/etc/gcb/next-key") => Ok("whsec_bmV4dA==\n".into()),
                _ => Err(std::io::ErrorKind::NotFound.into()),
            }
        }
    }

    fn parse(text: &str) -> Result<ServerConfig, String> {
        Config::parse(
            text,
            Path::new("/etc/gcb/config.toml"),
            &RealEnvironmentless,
        )
        .map(|c| c.server)
        .map_err(|e| e.to_string())
    }

    /// No environment, no files.
    struct RealEnvironmentless;

    impl Environment for RealEnvironmentless {
        fn var(&self, _: &str) -> Option<String> {
            None
        }
        fn read(&self, _: &Path) -> std::io::Result<String> {
            Err(std::io::ErrorKind::NotFound.into())
        }
    }

    #[test]
    fn defaults() {
        let s = parse("[server]\nsecret_token = 't'\n").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(s.secret_tokens, vec![Secret::new("t")]);
        assert!(s.signing_tokens.is_empty() && s.signing_token.is_none());
        assert_eq!(s.signature_tolerance, Duration::from_secs(300));
        assert_eq!(s.request_timeout, Duration::from_secs(10));
        assert_eq!(s.max_connections, 1024);
        assert!(s.allow_networks.is_empty() && s.tls.is_none());
    }

    #[test]
    fn rotation_lists_join_the_single_keys() {
        let text = "[server]\nsecret_token = 'new'\nsecret_tokens = ['older', 'new']\nsecret_token_files = ['old-token']\n\
                    signing_tokens = ['whsec_a2V5']\nsigning_token_files = ['next-key']\n\
                    allow_networks = ['10.1.2.3/8', '2001:db8::/32', '192.0.2.1']\n\
                    tls_cert_file = 'c.pem'\ntls_key_file = '/k.pem'\n";
        let cfg = Config::parse(text, Path::new("/etc/gcb/config.toml"), &Files);
        let s = match cfg {
            Ok(c) => c.server,
            Err(e) => panic!("{e}"),
        };
        // The environment variable wins over secret_token; the lists stay accepted.
        assert_eq!(s.secret_token.expose(), "from-env");
        let tokens: Vec<&str> = s.secret_tokens.iter().map(Secret::expose).collect();
        assert_eq!(tokens, ["from-env", "older", "new", "old"]);
        assert_eq!(
            s.signing_token.as_ref().map(Secret::expose),
            Some("whsec_a2V5")
        );
        assert_eq!(s.signing_tokens.len(), 2);
        let nets: Vec<String> = s.allow_networks.iter().map(ToString::to_string).collect();
        assert_eq!(nets, ["10.0.0.0/8", "2001:db8::/32", "192.0.2.1/32"]);
        assert_eq!(
            s.tls,
            Some(TlsFiles {
                cert: PathBuf::from("/etc/gcb/c.pem"),
                key: PathBuf::from("/k.pem"),
            })
        );
        let dbg = format!("{s:?}");
        for secret in ["older", "whsec_a2V5", "bmV4dA"] {
            assert!(!dbg.contains(secret), "{secret} in {dbg}");
        }
    }

    #[test]
    fn bad_values_name_their_key() {
        let err = |extra: &str| {
            parse(&format!("[server]\nsecret_token = 't'\n{extra}\n"))
                .err()
                .unwrap_or_default()
        };
        assert!(err("allow_networks = ['10.0.0.0/33']").starts_with("server.allow_networks[0]"));
        assert!(err("allow_networks = ['intranet']").starts_with("server.allow_networks[0]"));
        assert!(err("request_timeout_secs = 0").starts_with("server.request_timeout_secs"));
        assert!(err("max_connections = 0").starts_with("server.max_connections"));
        assert!(err("signature_tolerance_secs = 0").starts_with("server.signature_tolerance_secs"));
        assert!(err("tls_cert_file = 'c.pem'").starts_with("server.tls_key_file"));
        assert!(err("secret_tokens = ['']").starts_with("server.secret_tokens[0]"));
        assert!(err("signing_token_files = ['nope']").starts_with("server.signing_token_files[0]"));
        assert!(err("[log]\nformat = 'xml'").starts_with("log.format"));
        let only_list = parse("[server]\nsecret_tokens = ['a', 'b']\n");
        assert_eq!(
            only_list.map(|s| s.secret_token.expose().to_string()),
            Ok("a".to_string())
        );
        assert!(parse("[server]\n").is_err_and(|e| e.starts_with("server.secret_token")));
        let json = Config::parse(
            "[server]\nsecret_token = 't'\n[log]\nformat = 'json'\n",
            Path::new("/c.toml"),
            &RealEnvironmentless,
        );
        assert_eq!(json.map(|c| c.log.format).ok(), Some(LogFormat::Json));
    }
}
