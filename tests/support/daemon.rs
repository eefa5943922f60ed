//! The real binary serving on loopback (`serve`, killed on drop, or stopped with SIGKILL or
//! SIGTERM and restarted on the same outbox), the config it is given, its standard output when
//! asked (console channels print there), and webhooks posted to it with GitLab's headers.

use super::cli;
use super::fake_cliq::{OTHER_ZAPIKEY, SECOND_ZAPIKEY, ZAPIKEY};
use super::samples;
use super::temp::TempDir;
use super::unique;
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

/// GitLab's secret token.
pub const TOKEN: &str = "gl-SECRET-5678";
/// `server.max_body_bytes` in the test config.
pub const MAX_BODY_BYTES: usize = 65_536;
/// Bounded wait for the daemon's `ready` line.
const STARTUP: Duration = Duration::from_secs(10);

/// Fails if a secret appears in the daemon's log.
pub fn assert_no_secrets(log: &[String]) {
    assert!(
        log.iter().any(|l| l.contains("ready")),
        "no log captured: {log:#?}"
    );
    for secret in [ZAPIKEY, OTHER_ZAPIKEY, SECOND_ZAPIKEY, TOKEN] {
        let leaks: Vec<&String> = log.iter().filter(|l| l.contains(secret)).collect();
        assert!(leaks.is_empty(), "{secret} leaked into the log: {leaks:#?}");
    }
}

/// One `[[channels]]` entry.
#[derive(Debug, Clone)]
pub struct ChannelSpec {
    pub name: &'static str,
    pub url: String,
    pub zapikey: &'static str,
    pub events: Option<Vec<&'static str>>,
    pub confidential: bool,
}

impl ChannelSpec {
    /// An unfiltered, non-confidential channel posting with [`ZAPIKEY`].
    pub fn new(name: &'static str, url: String) -> ChannelSpec {
        ChannelSpec {
            name,
            url,
            zapikey: ZAPIKEY,
            events: None,
            confidential: false,
        }
    }
}

/// What goes into a test config besides the listen address, token, body limit and outbox path.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The `[[channels]]`.
    pub channels: Vec<ChannelSpec>,
    /// `rate_per_minute` of every channel.
    pub rate_per_minute: u32,
    /// `[delivery] timeout_secs`.
    pub timeout_secs: u64,
    /// `[delivery] max_attempts`.
    pub max_attempts: u32,
    /// `[delivery] initial_backoff_ms`.
    pub initial_backoff_ms: u64,
    /// `[delivery] max_backoff_secs`.
    pub max_backoff_secs: u64,
    /// More `[server]` lines (`key = value`, one a line).
    pub server: String,
    /// More sections, appended as they are.
    pub rest: String,
}
impl Settings {
    /// `channels` with fast retries: 5 s post timeout, 8 attempts, 50 ms first backoff, at most
    /// 2 s, 600 posts a minute.
    pub fn new(channels: Vec<ChannelSpec>) -> Settings {
        Settings {
            channels,
            rate_per_minute: 600,
            timeout_secs: 5,
            max_attempts: 8,
            initial_backoff_ms: 50,
            max_backoff_secs: 2,
            server: String::new(),
            rest: String::new(),
        }
    }

    /// Writes `config.toml` in `dir` (listening on 127.0.0.1:0, outbox `outbox.sqlite` in `dir`)
    /// and returns its path.
    pub fn write_config(&self, dir: &TempDir) -> PathBuf {
        let mut cfg = format!(
            "[server]\nlisten = \"127.0.0.1:0\"\nsecret_token = {}\nmax_body_bytes = {MAX_BODY_BYTES}\n{}\n\
             [outbox]\npath = {}\nsynchronous = \"normal\"\n\n\
             [delivery]\ntimeout_secs = {}\nmax_attempts = {}\ninitial_backoff_ms = {}\nmax_backoff_secs = {}\n",
            toml_str(TOKEN),
            self.server.lines().map(|l| format!("{l}\n")).collect::<String>(),
            toml_str(&dir.join("outbox.sqlite").display().to_string()),
            self.timeout_secs,
            self.max_attempts,
            self.initial_backoff_ms,
            self.max_backoff_secs,
        );
        for c in &self.channels {
            cfg.push_str(&format!(
                "\n[[channels]]\nname = {}\nurl = {}\nzapikey = {}\nconfidential = {}\nrate_per_minute = {}\n",
                toml_str(c.name),
                toml_str(&c.url),
                toml_str(c.zapikey),
                c.confidential,
                self.rate_per_minute,
            ));
            if let Some(events) = &c.events {
                let list: Vec<String> = events.iter().map(|e| toml_str(e)).collect();
                cfg.push_str(&format!("events = [{}]\n", list.join(", ")));
            }
        }
        cfg.push('\n');
        cfg.push_str(&self.rest);
        dir.write("config.toml", &cfg)
    }
}

fn toml_str(s: &str) -> String {
    serde_json::to_string(s).unwrap()
}

#[derive(Debug)]
pub struct HookAnswer {
    /// HTTP status.
    pub status: u16,
    /// JSON body (`null` if not JSON).
    pub body: Value,
}

/// Posts webhooks to one daemon as GitLab does; cheap to clone into concurrent tasks.
#[derive(Debug, Clone)]
pub struct Hooks {
    base: String,
    client: reqwest::Client,
}

impl Hooks {
    /// Posts a webhook with GitLab's headers. `token`: `None` sends the right one;
    /// `idempotency_key`: `None` makes a unique one. Fails on a transport error.
    pub async fn post(
        &self,
        event: &str,
        body: Vec<u8>,
        token: Option<&str>,
        idempotency_key: Option<&str>,
    ) -> HookAnswer {
        self.send(event, body, Some(token.unwrap_or(TOKEN)), idempotency_key)
            .await
            .unwrap()
    }

    /// Like [`Hooks::post`] with the right token, but a transport error (connection refused or
    /// reset: the daemon is dead) is returned, not a failure.
    pub async fn try_post(
        &self,
        event: &str,
        body: Vec<u8>,
        idempotency_key: &str,
    ) -> Result<HookAnswer, String> {
        self.send(event, body, Some(TOKEN), Some(idempotency_key))
            .await
    }

    /// Posts with GitLab's headers; `token: None` sends no `X-Gitlab-Token`.
    pub async fn send(
        &self,
        event: &str,
        body: Vec<u8>,
        token: Option<&str>,
        idempotency_key: Option<&str>,
    ) -> Result<HookAnswer, String> {
        let key = idempotency_key
            .map(str::to_string)
            .unwrap_or_else(|| unique("idem"));
        let mut req = self
            .client
            .post(format!("{}/hooks/gitlab", self.base))
            .header("Content-Type", "application/json")
            .header("User-Agent", "GitLab/17.0.0")
            .header("X-Gitlab-Event", event)
            .header("X-Gitlab-Instance", "https://gitlab.example.com")
            .header("X-Gitlab-Webhook-UUID", unique("uuid"))
            .header("X-Gitlab-Event-UUID", unique("event-uuid"))
            .header("Idempotency-Key", key)
            .body(body);
        if let Some(t) = token {
            req = req.header("X-Gitlab-Token", t);
        }
        let r = req.send().await.map_err(|e| e.to_string())?;
        let status = r.status().as_u16();
        let bytes = r.bytes().await.map_err(|e| e.to_string())?;
        Ok(HookAnswer {
            status,
            body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        })
    }
}

/// The real binary, serving on a loopback port; killed (SIGKILL) on drop.
pub struct Daemon {
    child: Option<Child>,
    reader: Option<std::thread::JoinHandle<()>>,
    log: Arc<Mutex<Vec<String>>>,
    /// Standard output's lines, when captured ([`Daemon::spawn_with_stdout`]).
    out: Arc<Mutex<Vec<String>>>,
    out_reader: Option<std::thread::JoinHandle<()>>,
    hooks: Hooks,
    /// The folder of a daemon made by [`Daemon::start`]; removed after the process is gone.
    workdir: Option<TempDir>,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill_now();
    }
}

fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // CSI: ESC [ params final-byte
            for d in chars.by_ref() {
                if d.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn listen_addr(line: &str) -> Option<SocketAddr> {
    if !line.contains("ready") {
        return None;
    }
    // `[log] format = "json"` writes `"listen":"ADDR"`.
    if let Some(i) = line.find("\"listen\":\"") {
        let rest = &line[i + "\"listen\":\"".len()..];
        return rest.split('"').next()?.parse().ok();
    }
    let rest = &line[line.find("listen=")? + "listen=".len()..];
    rest.split_whitespace().next()?.parse().ok()
}

/// The binary under test, with no proxy and no configuration from the environment.
impl Daemon {
    /// Writes a config for `channels` (see [`Settings::new`]) in a new folder and starts `serve`;
    /// waits (bounded) for `ready`. The folder goes with the daemon.
    pub async fn start(name: &str, channels: &[ChannelSpec]) -> Daemon {
        let dir = TempDir::new(name);
        let config = Settings::new(channels.to_vec()).write_config(&dir);
        let mut daemon = Daemon::spawn(&config).await;
        daemon.workdir = Some(dir);
        daemon
    }

    /// Starts `serve --config config` (debug logging); waits (bounded) for `ready`.
    pub async fn spawn(config: &Path) -> Daemon {
        Daemon::spawn_with_env(config, &[]).await
    }

    /// Like [`Daemon::spawn`], with extra environment variables (e.g. systemd's `NOTIFY_SOCKET`).
    pub async fn spawn_with_env(config: &Path, env: &[(&str, &str)]) -> Daemon {
        Daemon::spawn_inner(config, env, false).await
    }

    /// Like [`Daemon::spawn`], with standard output (not a terminal) collected for
    /// [`Daemon::stdout`].
    pub async fn spawn_with_stdout(config: &Path) -> Daemon {
        Daemon::spawn_inner(config, &[], true).await
    }

    async fn spawn_inner(config: &Path, env: &[(&str, &str)], capture_stdout: bool) -> Daemon {
        let mut cmd = cli::bin();
        cmd.envs(env.iter().copied());
        cmd.arg("serve")
            .arg("--config")
            .arg(config)
            .env("RUST_LOG", "debug")
            .stdout(if capture_stdout {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        let stderr = child.stderr.take().unwrap();
        let out = Arc::new(Mutex::new(Vec::new()));
        let out_reader = child.stdout.take().map(|stdout| {
            let out = Arc::clone(&out);
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    out.lock().unwrap().push(line);
                }
            })
        });
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel::<SocketAddr>();
        let reader = {
            let log = Arc::clone(&log);
            std::thread::spawn(move || {
                let mut tx = Some(tx);
                for line in BufReader::new(stderr).lines() {
                    let Ok(line) = line else { break };
                    let line = strip_ansi(&line);
                    if let Some(addr) = listen_addr(&line) {
                        if let Some(tx) = tx.take() {
                            let _ = tx.send(addr);
                        }
                    }
                    log.lock().unwrap().push(line);
                }
            })
        };
        let mut daemon = Daemon {
            child: Some(child),
            reader: Some(reader),
            log,
            out,
            out_reader,
            hooks: Hooks {
                base: String::new(),
                client: reqwest::Client::builder()
                    .no_proxy()
                    .timeout(Duration::from_secs(10))
                    .build()
                    .unwrap(),
            },
            workdir: None,
        };
        let addr = tokio::task::spawn_blocking(move || rx.recv_timeout(STARTUP))
            .await
            .unwrap();
        match addr {
            Ok(a) => {
                assert!(a.ip().is_loopback(), "listening on {a}");
                daemon.hooks.base = format!("http://{a}");
            }
            Err(_) => {
                daemon.kill_now();
                panic!(
                    "the daemon did not log `ready` within {STARTUP:?}; its log: {:#?}",
                    daemon.log()
                );
            }
        }
        daemon
    }

    /// SIGKILL (std's `Child::kill` on Unix), then reap it and collect the rest of its log.
    fn kill_now(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
        if let Some(r) = self.out_reader.take() {
            let _ = r.join();
        }
    }

    /// The daemon's base URL, `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> &str {
        &self.hooks.base
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(Child::id).unwrap_or_default()
    }

    /// The log lines so far.
    pub fn log(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    /// Standard output's lines so far (empty unless started with [`Daemon::spawn_with_stdout`]).
    pub fn stdout(&self) -> Vec<String> {
        self.out.lock().unwrap().clone()
    }

    /// A handle to post webhooks to this daemon from other tasks.
    pub fn hooks(&self) -> Hooks {
        self.hooks.clone()
    }

    /// Kills the daemon (SIGKILL: no clean-up at all) and returns its whole log.
    pub fn stop(mut self) -> Vec<String> {
        self.kill_now();
        self.log()
    }

    /// Sends SIGTERM (with `kill -TERM`) and waits up to `within` for the process to exit.
    /// Returns its exit status (`None`: still running after `within`, then killed) and its log.
    pub async fn terminate(mut self, within: Duration) -> (Option<ExitStatus>, Vec<String>) {
        let pid = self.pid();
        let sent = Command::new("kill")
            .arg("-TERM")
            .arg(pid.to_string())
            .stdin(Stdio::null())
            .status()
            .unwrap();
        assert!(sent.success(), "kill -TERM {pid}: {sent}");
        let deadline = Instant::now() + within;
        let mut status = None;
        while let Some(child) = self.child.as_mut() {
            if let Some(s) = child.try_wait().unwrap() {
                status = Some(s);
                self.child = None;
                break;
            }
            if Instant::now() >= deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.kill_now();
        (status, self.log())
    }

    /// `GET path`; the status.
    pub async fn get(&self, path: &str) -> u16 {
        let r = self
            .hooks
            .client
            .get(format!("{}{path}", self.hooks.base))
            .send()
            .await
            .unwrap();
        r.status().as_u16()
    }

    /// Posts a sample with its INDEX.tsv header and the right token.
    pub async fn post_sample(&self, file: &str) -> HookAnswer {
        self.post(&samples::header(file), samples::bytes(file), None, None)
            .await
    }

    /// Posts a webhook with GitLab's headers. `token`: `None` sends the right one (use
    /// [`Daemon::post_without_token`] to send none); `idempotency_key`: `None` makes a
    /// unique one.
    pub async fn post(
        &self,
        event: &str,
        body: Vec<u8>,
        token: Option<&str>,
        idempotency_key: Option<&str>,
    ) -> HookAnswer {
        self.hooks.post(event, body, token, idempotency_key).await
    }

    /// Posts a webhook with GitLab's headers but no `X-Gitlab-Token`.
    pub async fn post_without_token(&self, event: &str, body: Vec<u8>) -> HookAnswer {
        self.hooks.send(event, body, None, None).await.unwrap()
    }
}
