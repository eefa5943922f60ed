//! One deployment of the bridge on either store engine, as an operator sets it up: the config
//! of each `serve` replica (one on SQLite; as many as asked on one throw-away PostgreSQL
//! database, each on a loopback port of its own and otherwise the same), and the operator's
//! commands run as the binary with one of those configs.

use super::cli::{self, CliOutput};
use super::daemon::{MAX_BODY_BYTES, TOKEN};
use super::postgres::{Cluster, PASSWORD};
use super::temp::TempDir;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Longest an operator's command may take.
const COMMAND: Duration = Duration::from_secs(60);

/// Which store engine a deployment uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    /// `[outbox] path`: one process on one file.
    Sqlite,
    /// `[outbox] url`: several replicas on one database.
    Postgres,
}

/// The configs of a deployment's replicas, and what they store into; removed on drop.
#[derive(Debug)]
pub struct Deployment {
    /// One config per replica (one only on SQLite).
    pub configs: Vec<PathBuf>,
    // Before `dir`: the server stops before its folder goes.
    _cluster: Option<Cluster>,
    dir: TempDir,
}

impl Deployment {
    /// Writes the configs of `replicas` replicas (SQLite: always one) in a new folder named
    /// after `name`: `[server]` on loopback with the test token, `[outbox]` for `engine` (a new
    /// database of a new cluster for PostgreSQL, the password in a file), then `sections`.
    pub fn new(name: &str, engine: Engine, replicas: usize, sections: &str) -> Deployment {
        let dir = TempDir::new(name);
        let (outbox, cluster, replicas) = match engine {
            Engine::Sqlite => {
                let path = dir.join("outbox.sqlite").display().to_string();
                (format!("[outbox]\npath = {}\n", toml_str(&path)), None, 1)
            }
            Engine::Postgres => {
                let cluster = Cluster::start(name);
                let db = cluster.create_database();
                let password = dir.write("pg-password", PASSWORD);
                let outbox = format!(
                    "[outbox]\nurl = {}\npassword_file = {}\n",
                    toml_str(&cluster.url(&db)),
                    toml_str(&password.display().to_string()),
                );
                (outbox, Some(cluster), replicas)
            }
        };
        let configs = (0..replicas)
            .map(|r| {
                // A port of its own: a replica is known by its host and listen address.
                let listen = match engine {
                    Engine::Sqlite => "127.0.0.1:0".to_string(),
                    Engine::Postgres => format!("127.0.0.1:{}", super::free_port()),
                };
                let text = format!(
                    "[server]\nlisten = {}\nsecret_token = {}\nmax_body_bytes = {MAX_BODY_BYTES}\n\n\
                     {outbox}\n{sections}",
                    toml_str(&listen),
                    toml_str(TOKEN),
                );
                dir.write(format!("replica-{r}.toml"), &text)
            })
            .collect();
        Deployment {
            configs,
            _cluster: cluster,
            dir,
        }
    }

    /// The deployment's folder (for files the commands are given).
    pub fn dir(&self) -> &TempDir {
        &self.dir
    }
}

/// Runs `args` with `--config config` after the subcommand (`["events", "list"]` runs
/// `events --config CONFIG list`), at most a minute.
pub async fn run(config: &Path, args: &[&str]) -> CliOutput {
    let config = config.display().to_string();
    let mut all = vec![args[0], "--config", config.as_str()];
    all.extend_from_slice(&args[1..]);
    cli::run_async(&all, COMMAND).await
}

/// A TOML basic string.
pub fn toml_str(s: &str) -> String {
    serde_json::to_string(s).unwrap()
}
