//! The PostgreSQL store, for several replicas on one database (docs/postgres.md), arranged by
//! concern exactly as the SQLite store ([`super::store`]) so that one operation's two dialects
//! sit at the same path: [`schema`] (the schema and the migrations every replica runs at
//! start), [`events`] (ingest, dedupe, stored events, routed marks, listing), [`messages`]
//! (messages, leases, outcomes, dead letters, stats, purge), [`rules`] (chat rules),
//! [`memory`](mod@memory) (the router's memory), [`conversations`] (a chat's root message per
//! object, for threads), plus what only replicas share: [`window`] (the rate
//! window) and [`engine`] (`PgEngine`, each operation one transaction on a pooled
//! connection). A new concern gets a file of the same name in both engines. Here: the advisory
//! lock keys and the errors.
//!
//! The schema mirrors SQLite's (version 7) with every integer a `BIGINT` and bodies in
//! `BYTEA`, plus what replicas share: leases with a token and an owner, and the posts and
//! pauses of each credential's rate window. Versions are PostgreSQL's own (a one-row
//! `schema_version` table), not SQLite's.

pub mod conversations;
pub mod engine;
pub mod events;
pub mod memory;
pub mod messages;
pub mod reminders;
pub mod rules;
pub mod schema;
pub mod window;

pub use engine::{PgEngine, PgOptions};
pub use schema::{migrate, Migrated, SCHEMA_VERSION};

/// First key of every advisory lock the bridge takes (`gcb` in ASCII), so that they do not meet
/// another application's locks on a shared database.
pub const LOCK_SPACE: i32 = 0x0067_6362;
/// Second key of the migration lock.
pub const MIGRATION_LOCK: i32 = 1;
/// Second key of the router lock: the replica holding it routes events.
pub const ROUTER_LOCK: i32 = 2;

/// Why the store could not be prepared.
#[derive(Debug, thiserror::Error)]
pub enum PgError {
    /// The database refused a statement or could not be reached.
    #[error("database: {0}")]
    Db(String),
    /// The configuration cannot be used (the URL, the trust roots).
    #[error("{0}")]
    Config(String),
    /// The database was migrated by a newer release.
    #[error(
        "the database's schema is version {found}, newer than this release's {known}: \
         run the newer release"
    )]
    TooNew {
        /// The database's version.
        found: i64,
        /// This binary's.
        known: i64,
    },
}

impl From<tokio_postgres::Error> for PgError {
    fn from(e: tokio_postgres::Error) -> Self {
        // The server's own message says what went wrong; otherwise the error's Display alone
        // says only "error connecting to server": its sources say why (connection refused).
        PgError::Db(match e.as_db_error() {
            Some(db) => format!("{} ({})", db.message(), db.code().code()),
            None => {
                let mut text = e.to_string();
                let mut source = std::error::Error::source(&e);
                while let Some(s) = source {
                    text = format!("{text}: {s}");
                    source = s.source();
                }
                text
            }
        })
    }
}

impl From<deadpool_postgres::PoolError> for PgError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        match e {
            deadpool_postgres::PoolError::Backend(e) => PgError::from(e),
            other => PgError::Db(format!("unreachable: {other}")),
        }
    }
}

impl From<PgError> for super::OutboxError {
    fn from(e: PgError) -> Self {
        super::OutboxError::Store(e.to_string())
    }
}
