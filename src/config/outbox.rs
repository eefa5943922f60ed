//! `[outbox]` and `[events]`: the durable store, SQLite at `path` (the default) or the
//! PostgreSQL database `url` names with its password, CA file and pool size; how long received
//! events are kept.

use super::errors::{invalid, ConfigError};
use super::secrets::{secret, Environment, SecretSources};
use crate::secret::Secret;
use serde::Deserialize;
use std::path::PathBuf;
use std::time::Duration;

/// Default outbox file, relative to the config file.
pub const DEFAULT_OUTBOX_PATH: &str = "data/outbox.sqlite";

/// Default dedupe window, in hours.
pub const DEFAULT_DEDUPE_HOURS: u64 = 24;

/// Default `events.retention_days`: how long received deliveries are kept for `events` and replays.
pub const DEFAULT_EVENTS_RETENTION_DAYS: u64 = 7;

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawOutbox {
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
pub(super) struct RawEvents {
    retention_days: Option<u64>,
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

/// Validates `[outbox]` (with `events.retention_days`): SQLite at `path` by default, or the
/// PostgreSQL store `url` names.
pub(super) fn outbox_section(
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::testing::parse;

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
}
