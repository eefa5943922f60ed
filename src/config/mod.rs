//! The TOML configuration: file format, loading, secrets from file or environment, validation.
//!
//! Raw file types (`Raw*`, serde, unknown keys rejected) are turned into the validated [`Config`]
//! with every secret wrapped in [`Secret`](crate::secret::Secret). Errors name the key
//! (`channels[1].url`). Relative paths are resolved against the config file's folder.
//!
//! [`Config::load`] is the one entry point; this file assembles the sections, each of which has
//! a file with its raw type, its validation and its tests: `server`, `log`, `templates` (with
//! `[preview]`), `delivery`, `channels/` (the common fields in `mod.rs`, the kinds in `kind`,
//! each family's URL and credential rules in `console`, `zoho`, `webhook`, `telegram` and `matrix`), `mentions`,
//! `gitlab`, `cliq_extension`, `outbox` (with `[events]`), `routes` and `reminders`; `secrets` reads a
//! secret's value, file or variable, and `errors` holds [`ConfigError`].

mod channels;
mod cliq_extension;
mod delivery;
mod errors;
mod gitlab;
mod log;
mod mentions;
mod outbox;
mod reminders;
mod routes;
mod secrets;
mod server;
mod templates;
#[cfg(test)]
mod testing;

pub use channels::{
    ChannelConfig, ChannelKind, ConversationConfig, Format, CONSOLE_RATE_PER_MINUTE, CONSOLE_URL,
    CONVERSATION_KINDS, DEFAULT_BROADCAST, DEFAULT_CONVERSATION_DAYS, DEFAULT_RATE_PER_MINUTE,
};
pub use cliq_extension::{
    CliqExtensionConfig, DEFAULT_CLIQ_ANSWER_WITHIN_MS, DEFAULT_CLIQ_API_URL, DEFAULT_CLIQ_PATH,
};
pub use errors::ConfigError;
pub use gitlab::{
    GitlabConfig, DEFAULT_GITLAB_CONCURRENCY, DEFAULT_WATCH_HOOKS_MINUTES, MAX_GITLAB_CONCURRENCY,
};
pub use log::{LogConfig, LogFormat};
pub use mentions::MENTION_KINDS;
pub use outbox::{
    OutboxConfig, PostgresConfig, DEFAULT_DEDUPE_HOURS, DEFAULT_EVENTS_RETENTION_DAYS,
    DEFAULT_OUTBOX_PATH, DEFAULT_PG_POOL_SIZE, MAX_PG_POOL_SIZE,
};
pub use reminders::{
    ReminderConfig, DEFAULT_CATCH_UP, DEFAULT_MAX_PER_REVIEWER, DEFAULT_MIN_AGE,
    DEFAULT_TIME_BUDGET, MAX_MAX_PER_REVIEWER,
};
pub use routes::RouteConfig;
pub use secrets::{Environment, RealEnvironment};
pub use server::{
    ServerConfig, TlsFiles, DEFAULT_LISTEN, DEFAULT_MAX_BODY_BYTES, DEFAULT_MAX_CONNECTIONS,
    DEFAULT_REQUEST_TIMEOUT_SECS, DEFAULT_SIGNATURE_TOLERANCE_SECS, SECRET_TOKEN_ENV,
};
pub use templates::{
    is_loopback, PreviewConfig, TemplatesConfig, DEFAULT_DATE_FORMAT, DEFAULT_DAY_FORMAT,
};

use crate::deliver::RetryPolicy;
use errors::invalid;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    server: server::RawServer,
    #[serde(default)]
    templates: templates::RawTemplates,
    #[serde(default)]
    outbox: outbox::RawOutbox,
    #[serde(default)]
    events: outbox::RawEvents,
    #[serde(default)]
    delivery: delivery::RawDelivery,
    #[serde(default)]
    channels: Vec<channels::RawChannel>,
    #[serde(default)]
    routes: Vec<routes::RawRoute>,
    gitlab: Option<gitlab::RawGitlab>,
    #[serde(default)]
    log: log::RawLog,
    #[serde(default)]
    mentions: BTreeMap<String, mentions::RawMention>,
    #[serde(default)]
    preview: templates::RawPreview,
    cliq_extension: Option<cliq_extension::RawCliqExtension>,
    #[serde(default)]
    reminders: Vec<reminders::RawReminder>,
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
    /// `[[reminders]]`: review reminders.
    pub reminders: Vec<ReminderConfig>,
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
        let raw: RawConfig = toml::from_str(text).map_err(|e| errors::syntax(path, text, &e))?;
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let resolve = |p: PathBuf| if p.is_absolute() { p } else { base.join(p) };

        let server = server::server_section(raw.server, env, &resolve)?;
        let log = log::log_section(raw.log)?;
        let templates = templates::templates_section(raw.templates, &resolve)?;
        let retry = delivery::delivery_section(raw.delivery)?;
        let channels = channels::channels_section(raw.channels, env, &resolve)?;
        let (plain_mentions, kind_mentions) = mentions::kind_tables(raw.mentions)?;
        let gitlab = match raw.gitlab {
            None => None,
            Some(g) => Some(gitlab::gitlab_section(g, env, &resolve)?),
        };
        if let Some(ops) = gitlab.as_ref().and_then(|g| g.ops_channel.as_ref()) {
            if !channels.iter().any(|c| &c.name == ops) {
                return Err(invalid(
                    "gitlab.ops_channel",
                    format!("no [[channels]] named {ops:?}"),
                ));
            }
        }
        let preview = templates::preview_section(raw.preview, &server.listen, &resolve)?;
        let cliq_extension = match raw.cliq_extension {
            None => None,
            Some(x) => Some(cliq_extension::cliq_extension_section(
                x,
                gitlab.as_ref(),
                env,
                &resolve,
            )?),
        };

        let outbox = outbox::outbox_section(raw.outbox, raw.events, env, &resolve)?;
        let routes = routes::routes_section(raw.routes, &channels, &resolve)?;
        let mentions = mentions::mentions_section(plain_mentions, "mentions")?;
        let reminders = reminders::reminders_section(
            raw.reminders,
            &channels,
            gitlab.as_ref(),
            templates.timezone,
        )?;

        Ok(Config {
            path: path.to_path_buf(),
            server,
            templates,
            outbox,
            retry,
            routes,
            channels,
            gitlab,
            log,
            mentions,
            kind_mentions,
            preview,
            cliq_extension,
            reminders,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::testing::{parse, FakeEnv};
    use super::*;
    use crate::deliver::Auth;

    /// The Debian package's config loads as the unit hands it over: secrets from the unit's
    /// credentials, every path absolute (the file is read from the credentials folder).
    #[test]
    fn the_packaged_config_matches_the_unit() {
        let unit = include_str!("../../systemd/gitlab-chat-bridge.service");
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
        let text = include_str!("../../debian/config.toml");
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
    fn unknown_keys_are_named() {
        let e = parse("[server]\nsecret_token='x'\nlisten_port=1\n", &[]).err();
        let msg = e.map(|e| e.to_string()).unwrap_or_default();
        assert!(msg.contains("listen_port"), "{msg}");
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
