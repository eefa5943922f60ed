//! `[[channels]]`: the fields every channel has (name, kind, format, events, confidentiality,
//! rate) and the dispatch of its URL and credentials to its kind's family: `console` (none),
//! `zoho` (Cliq and Zoho functions: a plain URL and a zapikey, OAuth token or appkey) and
//! `webhook` (Slack, Mattermost, Teams, Google Chat, Discord and generic webhooks: the URL is
//! the credential), `slack` and `mattermost` (their webhook URL, or their API mode: a bot
//! token and a channel id), `telegram` (a bot token, a chat id) and `matrix` (a homeserver, an
//! access token, a room). `kind` lists the kinds. `conversation`, `broadcast` and
//! `conversation_days` say whether messages about one object form a thread (the kinds of
//! [`CONVERSATION_KINDS`]; `threading` says what each does, and why Teams cannot; a Slack or
//! Mattermost webhook URL and a Cliq webhook fall back to flat posts: only their API modes thread).

mod console;
mod kind;
mod matrix;
mod mattermost;
mod slack;
mod telegram;
mod threading;
mod webhook;
mod zoho;

pub use console::CONSOLE_URL;
pub use kind::{ChannelKind, CONSOLE_RATE_PER_MINUTE, DEFAULT_RATE_PER_MINUTE};

use super::errors::{invalid, ConfigError};
use super::secrets::{secret, Environment, SecretSources};
use crate::deliver::conversation::Mode;
use crate::deliver::Endpoint;
use crate::secret::Secret;
use serde::Deserialize;
use std::collections::HashSet;
use std::path::PathBuf;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(in crate::config) struct RawChannel {
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
    token: Option<String>,
    token_file: Option<PathBuf>,
    token_env: Option<String>,
    chat_id: Option<toml::Value>,
    message_thread_id: Option<i64>,
    api_url: Option<String>,
    homeserver: Option<String>,
    access_token: Option<String>,
    access_token_file: Option<PathBuf>,
    access_token_env: Option<String>,
    room: Option<String>,
    client_id: Option<String>,
    client_id_file: Option<PathBuf>,
    client_id_env: Option<String>,
    client_secret: Option<String>,
    client_secret_file: Option<PathBuf>,
    client_secret_env: Option<String>,
    refresh_token: Option<String>,
    refresh_token_file: Option<PathBuf>,
    refresh_token_env: Option<String>,
    accounts_url: Option<String>,
    channel: Option<String>,
    channel_id: Option<String>,
    team: Option<String>,
    events: Option<Vec<String>>,
    #[serde(default)]
    confidential: bool,
    rate_per_minute: Option<u32>,
    conversation: Option<String>,
    broadcast: Option<Vec<String>>,
    conversation_days: Option<u32>,
    forum: Option<bool>,
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
    /// `conversation`, `broadcast`, `conversation_days`: threads per object.
    pub conversation: ConversationConfig,
}

/// A channel's conversations: one thread per object under a root message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConversationConfig {
    /// `conversation`: off (the default), `thread` or `thread+edit`.
    pub mode: Mode,
    /// `broadcast`: event-key globs whose replies are also shown in the channel itself.
    pub broadcast: Vec<String>,
    /// `conversation_days`: days after its object was merged or closed that a thread still
    /// takes replies (then the next event starts a new root).
    pub days: u32,
    /// Why the channel posts flat although a conversation was asked for (its transport cannot
    /// thread: a Slack or Mattermost webhook URL); `mode` is then `Off`. `check` says it.
    pub fallback: Option<String>,
}

/// The event keys broadcast by default: state changes people watch for.
pub const DEFAULT_BROADCAST: [&str; 5] = [
    "merge_request.merge",
    "merge_request.close",
    "issue.close",
    "pipeline.broken",
    "pipeline.fixed",
];

/// Days a conversation lasts after its object ended, by default.
pub const DEFAULT_CONVERSATION_DAYS: u32 = 14;

impl Default for ConversationConfig {
    fn default() -> Self {
        ConversationConfig {
            mode: Mode::Off,
            broadcast: DEFAULT_BROADCAST.iter().map(|s| s.to_string()).collect(),
            days: DEFAULT_CONVERSATION_DAYS,
            fallback: None,
        }
    }
}

/// The kinds whose channels can thread (and edit) now: Slack, Mattermost and Cliq in their API
/// mode (their webhook URLs post flat, [`ConversationConfig::fallback`]).
pub const CONVERSATION_KINDS: [ChannelKind; 7] = [
    ChannelKind::Matrix,
    ChannelKind::Telegram,
    ChannelKind::Discord,
    ChannelKind::GoogleChat,
    ChannelKind::Cliq,
    ChannelKind::Slack,
    ChannelKind::Mattermost,
];

/// Why a channel of `kind` posting to `endpoint` cannot thread, if it cannot.
fn cannot_thread(kind: ChannelKind, endpoint: &Endpoint) -> Option<&'static str> {
    match (kind, &endpoint.auth) {
        (ChannelKind::Slack, crate::deliver::Auth::SecretUrl(_)) => Some(
            "a slack incoming webhook gives no message id (give token and channel, the bot-token mode, for threads)",
        ),
        (ChannelKind::Mattermost, crate::deliver::Auth::SecretUrl(_)) => Some(
            "a mattermost incoming webhook gives no post id (give the server's url, token and channel_id, the API mode, for threads)",
        ),
        (ChannelKind::Cliq, _) => zoho::cannot_thread(endpoint),
        _ => None,
    }
}

/// Channel `i`'s conversation keys, checked against its kind, format and endpoint.
fn conversation(
    i: usize,
    kind: ChannelKind,
    format: Format,
    endpoint: &Endpoint,
    c: &RawChannel,
) -> Result<ConversationConfig, ConfigError> {
    let key = |k: &str| format!("channels[{i}].{k}");
    let mode = match c.conversation.as_deref().map(str::trim) {
        None => Mode::Off,
        Some(name) => Mode::from_name(name).ok_or_else(|| {
            invalid(
                key("conversation"),
                format!(
                    "{name:?} is not a conversation mode: \"off\", \"thread\" or \"thread+edit\""
                ),
            )
        })?,
    };
    if mode == Mode::Off {
        for (k, set) in [
            ("broadcast", c.broadcast.is_some()),
            ("conversation_days", c.conversation_days.is_some()),
        ] {
            if set {
                return Err(invalid(
                    key(k),
                    "needs conversation = \"thread\" or \"thread+edit\"",
                ));
            }
        }
        return Ok(ConversationConfig::default());
    }
    if let Some(why) = threading::refusal(kind, mode) {
        return Err(invalid(key("conversation"), why));
    }
    if !CONVERSATION_KINDS.contains(&kind) {
        let mut can: Vec<&str> = CONVERSATION_KINDS.iter().map(|k| k.as_str()).collect();
        let last = can.pop().unwrap_or_default();
        return Err(invalid(
            key("conversation"),
            format!(
                "{:?} is not available for {} channels yet: only {} and {last} channels thread",
                mode.as_str(),
                kind.as_str(),
                match can.split_last() {
                    Some((last, rest)) if !rest.is_empty() =>
                        format!("{} and {last}", rest.join(", ")),
                    _ => can.join(""),
                }
            ),
        ));
    }
    if format == Format::Event {
        return Err(invalid(
            key("conversation"),
            "needs format = \"card\" (an event JSON body has no thread)",
        ));
    }
    let broadcast = match &c.broadcast {
        None => ConversationConfig::default().broadcast,
        Some(globs) => {
            for (j, g) in globs.iter().enumerate() {
                if g.trim_start_matches('!').trim().is_empty() {
                    return Err(invalid(
                        format!("channels[{i}].broadcast[{j}]"),
                        "empty pattern",
                    ));
                }
            }
            globs.clone()
        }
    };
    let days = c.conversation_days.unwrap_or(DEFAULT_CONVERSATION_DAYS);
    if days == 0 {
        return Err(invalid(key("conversation_days"), "must be at least 1"));
    }
    if let Some(why) = cannot_thread(kind, endpoint) {
        return Ok(ConversationConfig {
            fallback: Some(format!(
                "conversation = {:?} falls back to flat posts: {why}",
                mode.as_str()
            )),
            ..ConversationConfig::default()
        });
    }
    Ok(ConversationConfig {
        mode,
        broadcast,
        days,
        fallback: None,
    })
}

/// Validates `[[channels]]`: unique names, each kind's URL and credentials, event filters and
/// rates.
pub(in crate::config) fn channels_section(
    raw: Vec<RawChannel>,
    env: &dyn Environment,
    resolve: &dyn Fn(PathBuf) -> PathBuf,
) -> Result<Vec<ChannelConfig>, ConfigError> {
    let mut names = HashSet::new();
    let mut channels = Vec::new();
    for (i, mut c) in raw.into_iter().enumerate() {
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
        let (endpoint, format) = channel_endpoint(i, kind, &mut c, env, resolve)?;
        let conversation = conversation(i, kind, format, &endpoint, &c)?;
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
            conversation,
        });
    }

    Ok(channels)
}

/// The endpoint and format of channel `i` of `kind`: `format` checked, then the URL and
/// credentials by the kind's family (a URL that embeds a secret becomes one).
fn channel_endpoint(
    i: usize,
    kind: ChannelKind,
    c: &mut RawChannel,
    env: &dyn Environment,
    resolve: &dyn Fn(PathBuf) -> PathBuf,
) -> Result<(Endpoint, Format), ConfigError> {
    let r = Reader { i, env, resolve };
    let format = match c.format.as_deref().map(str::trim) {
        None if matches!(kind, ChannelKind::ZohoFunction | ChannelKind::Webhook) => Format::Event,
        None | Some("card") => Format::Card,
        Some("event") => Format::Event,
        Some(other) => {
            return Err(invalid(
                r.key("format"),
                format!("{other:?} is not a format: \"card\" or \"event\""),
            ))
        }
    };
    let chat = [ChannelKind::Telegram, ChannelKind::Matrix];
    let api = [ChannelKind::Slack, ChannelKind::Mattermost];
    if !chat.contains(&kind) && !api.contains(&kind) {
        if let Some(k) = chat_keys(c).first() {
            return Err(invalid(
                r.key(k),
                format!("is for a telegram or matrix channel, not {}", kind.as_str()),
            ));
        }
    }
    if c.forum.is_some() && kind != ChannelKind::Discord {
        return Err(invalid(
            r.key("forum"),
            format!(
                "is for a discord channel (a forum channel's webhook), not {}",
                kind.as_str()
            ),
        ));
    }
    if !api.contains(&kind) {
        // A cliq channel's OAuth mode names its channel too (`zoho` checks it).
        let foreign = api_keys(c)
            .into_iter()
            .find(|k| !(kind == ChannelKind::Cliq && *k == "channel"));
        if let Some(k) = foreign {
            let modes = if k == "channel" {
                "a slack channel's bot-token mode or a cliq channel's OAuth mode"
            } else {
                "a slack or mattermost channel's API mode"
            };
            return Err(invalid(
                r.key(k),
                format!("is for {modes}, not {}", kind.as_str()),
            ));
        }
    }
    match kind {
        ChannelKind::Console => console::endpoint(&r, c, format),
        ChannelKind::Telegram => telegram::endpoint(&r, c, format),
        ChannelKind::Matrix => matrix::endpoint(&r, c, format),
        ChannelKind::Cliq | ChannelKind::ZohoFunction => zoho::endpoint(&r, kind, c, format),
        ChannelKind::Slack => slack::endpoint(&r, c, format),
        ChannelKind::Mattermost => mattermost::endpoint(&r, c, format),
        ChannelKind::Teams
        | ChannelKind::GoogleChat
        | ChannelKind::Discord
        | ChannelKind::Webhook => webhook::endpoint(&r, kind, c, format),
    }
}

/// What a family reads channel `i`'s credentials with.
struct Reader<'a> {
    i: usize,
    env: &'a dyn Environment,
    resolve: &'a dyn Fn(PathBuf) -> PathBuf,
}

impl Reader<'_> {
    /// `channels[i].k`.
    fn key(&self, k: &str) -> String {
        format!("channels[{}].{k}", self.i)
    }

    /// The channel's `token` from at most one of `token`, `token_file` or `token_env`.
    fn token(&self, c: &mut RawChannel) -> Result<Option<Secret>, ConfigError> {
        self.secret(
            "token",
            c.token.take(),
            c.token_file.take(),
            c.token_env.take(),
        )
    }

    /// The secret `name` of the channel from at most one of its value, file or variable.
    fn secret(
        &self,
        name: &str,
        inline: Option<String>,
        file: Option<PathBuf>,
        env_var: Option<String>,
    ) -> Result<Option<Secret>, ConfigError> {
        secret(
            SecretSources {
                key: &self.key(name),
                inline,
                file: file.map(self.resolve),
                env: env_var,
            },
            self.env,
        )
    }
}

/// What a chat kind with keys of its own (`telegram`, `matrix`) refuses before reading them:
/// another family's credential or another chat kind's keys (any of [`chat_keys`] not in
/// `own`), a `url`, and `format = "event"`. `takes` and `no_url` end the first two messages.
fn refuse_foreign(
    r: &Reader<'_>,
    c: &RawChannel,
    format: Format,
    kind: &str,
    own: &[&str],
    takes: &str,
    no_url: &str,
) -> Result<(), ConfigError> {
    if let Some(k) = given(c)
        .first()
        .copied()
        .or_else(|| chat_keys(c).into_iter().find(|k| !own.contains(k)))
    {
        return Err(invalid(r.key(k), format!("a {kind} channel takes {takes}")));
    }
    if c.url.is_some() || c.url_file.is_some() || c.url_env.is_some() {
        return Err(invalid(
            r.key("url"),
            format!("a {kind} channel has no url: {no_url}"),
        ));
    }
    refuse_event_format(r, format, kind)
}

/// `format = "event"` refused for a chat `kind` that shows cards only.
fn refuse_event_format(r: &Reader<'_>, format: Format, kind: &str) -> Result<(), ConfigError> {
    if format == Format::Event {
        return Err(invalid(
            r.key("format"),
            format!(
                "a {kind} channel shows cards: \"event\" is for cliq incoming URLs, zoho_function and webhook"
            ),
        ));
    }
    Ok(())
}

/// What a chat `kind` with an incoming webhook and an API mode (`slack`, `mattermost`) refuses
/// first: any of [`chat_keys`] or [`api_keys`] not in `own`, the API mode's keys. `takes` ends
/// the message of the second.
fn refuse_other_modes(
    r: &Reader<'_>,
    c: &RawChannel,
    kind: &str,
    own: &[&str],
    takes: &str,
) -> Result<(), ConfigError> {
    if let Some(k) = chat_keys(c).into_iter().find(|k| !own.contains(k)) {
        return Err(invalid(
            r.key(k),
            format!("is for a telegram or matrix channel, not {kind}"),
        ));
    }
    if let Some(k) = api_keys(c).into_iter().find(|k| !own.contains(k)) {
        return Err(invalid(r.key(k), format!("a {kind} channel takes {takes}")));
    }
    Ok(())
}

/// Whether the channel is in its kind's API mode: it gives a `token` (or `token_file` /
/// `token_env`). Without one, the first of the API mode's other `keys` (name, given) is
/// refused as `why`.
fn api_mode(
    r: &Reader<'_>,
    c: &RawChannel,
    keys: &[(&str, bool)],
    why: &str,
) -> Result<bool, ConfigError> {
    if c.token.is_some() || c.token_file.is_some() || c.token_env.is_some() {
        return Ok(true);
    }
    match keys.iter().find(|(_, given)| *given) {
        Some((k, _)) => Err(invalid(r.key(k), why)),
        None => Ok(false),
    }
}

/// The channel's `api_url` (see [`base_url`]), `default` when it gives none.
fn api_url(r: &Reader<'_>, c: &mut RawChannel, default: &str) -> Result<String, ConfigError> {
    match c.api_url.take() {
        Some(u) => base_url(&u).map_err(|m| invalid(r.key("api_url"), m)),
        None => Ok(default.to_string()),
    }
}

/// The Telegram and Matrix keys a channel gives.
fn chat_keys(c: &RawChannel) -> Vec<&'static str> {
    [
        ("token", c.token.is_some()),
        ("token_file", c.token_file.is_some()),
        ("token_env", c.token_env.is_some()),
        ("chat_id", c.chat_id.is_some()),
        ("message_thread_id", c.message_thread_id.is_some()),
        ("api_url", c.api_url.is_some()),
        ("homeserver", c.homeserver.is_some()),
        ("access_token", c.access_token.is_some()),
        ("access_token_file", c.access_token_file.is_some()),
        ("access_token_env", c.access_token_env.is_some()),
        ("room", c.room.is_some()),
    ]
    .into_iter()
    .filter(|(_, set)| *set)
    .map(|(k, _)| k)
    .collect()
}

/// The keys of Slack's and Mattermost's API modes (besides `token` and `api_url`) a channel
/// gives.
fn api_keys(c: &RawChannel) -> Vec<&'static str> {
    [
        ("channel", c.channel.is_some()),
        ("channel_id", c.channel_id.is_some()),
        ("team", c.team.is_some()),
    ]
    .into_iter()
    .filter(|(_, set)| *set)
    .map(|(k, _)| k)
    .collect()
}

/// Whether `host` (of a URL) is a loopback name or address: plain http is allowed there only.
fn loopback_host(host: &str) -> bool {
    host == "localhost"
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// An API base URL (`api_url`, `homeserver`): https, or http on loopback; no query, fragment or
/// credentials. Returns it without a trailing `/`.
fn base_url(raw: &str) -> Result<String, String> {
    let url = url::Url::parse(raw.trim()).map_err(|e| format!("not a URL: {e}"))?;
    let host = url.host_str().unwrap_or_default();
    if host.is_empty() {
        return Err("has no host".into());
    }
    match url.scheme() {
        "https" => {}
        "http" if loopback_host(host) => {}
        _ => return Err("must be an https URL (plain http only on a loopback host)".into()),
    }
    if url.query().is_some() || url.fragment().is_some() || !url.username().is_empty() {
        return Err("must be a base URL, without query, fragment or user".into());
    }
    Ok(raw.trim().trim_end_matches('/').to_string())
}

/// The credential keys a channel gives (and a Cliq OAuth channel's `accounts_url` and
/// `channel`), in the order messages name them.
fn given(c: &RawChannel) -> Vec<&'static str> {
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
        ("client_id", c.client_id.is_some()),
        ("client_id_file", c.client_id_file.is_some()),
        ("client_id_env", c.client_id_env.is_some()),
        ("client_secret", c.client_secret.is_some()),
        ("client_secret_file", c.client_secret_file.is_some()),
        ("client_secret_env", c.client_secret_env.is_some()),
        ("refresh_token", c.refresh_token.is_some()),
        ("refresh_token_file", c.refresh_token_file.is_some()),
        ("refresh_token_env", c.refresh_token_env.is_some()),
        ("accounts_url", c.accounts_url.is_some()),
        ("channel", c.channel.is_some()),
    ]
    .into_iter()
    .filter(|(_, set)| *set)
    .map(|(k, _)| k)
    .collect()
}
