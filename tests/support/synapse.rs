//! A throw-away Matrix homeserver (Synapse) for the Matrix tests: a generated config in a
//! temporary folder (SQLite, a client listener on a free loopback port, no federation listener
//! and no trusted key servers, open registration on that loopback port only, stats off, every
//! rate limit raised for load tests), the pinned `matrix-synapse` from `.tools/synapse`
//! (`scripts/install-synapse.sh`), a bot and a second user registered and logged in with fixed
//! device ids, and a room the bot created with the second user in it. Killed and removed on
//! drop, also when the test fails. Helpers send an event as the daemon does (`PUT` with a
//! txnId) and read a room back, paging backwards through `/messages`.

use super::temp::TempDir;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The server name of every test homeserver.
pub const SERVER_NAME: &str = "localhost";
/// The password of every test user.
pub const PASSWORD: &str = "synapse-test-password";
/// The bot's fixed device id (a txnId is remembered per device).
pub const BOT_DEVICE: &str = "GCBBOT";
/// Longest a homeserver may take to answer after it was started.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// Most pages [`Synapse::messages`] reads.
const MAX_PAGES: usize = 200;

/// A user logged in on the homeserver.
#[derive(Debug, Clone)]
pub struct User {
    /// `@name:localhost`.
    pub user_id: String,
    /// Its access token.
    pub access_token: String,
    /// Its device id.
    pub device_id: String,
}

/// A running throw-away homeserver; killed and removed on drop.
#[derive(Debug)]
pub struct Synapse {
    child: Child,
    port: u16,
    http: reqwest::Client,
    /// The bot (device [`BOT_DEVICE`]).
    pub bot: User,
    /// A second user, member of [`Synapse::room`].
    pub other: User,
    /// A room the bot created, `other` joined.
    pub room: String,
    /// How long the homeserver took to answer after it was started.
    pub started_in: Duration,
    // Last: removed after the server was killed.
    dir: TempDir,
}

impl Drop for Synapse {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The venv's Python, or a panic that says how to get it.
fn python() -> PathBuf {
    let py = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".tools/synapse/bin/python");
    assert!(
        py.exists(),
        "no Synapse: {} is missing; run scripts/install-synapse.sh",
        py.display()
    );
    py
}

/// `s` percent-encoded for a URL path segment.
pub fn path_segment(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn config(dir: &TempDir, port: u16) -> String {
    let d = dir.path().display();
    let limit = "{per_second: 100000, burst_count: 1000000}";
    format!(
        r#"server_name: "{SERVER_NAME}"
pid_file: {d}/homeserver.pid
listeners:
  - port: {port}
    bind_addresses: ['127.0.0.1']
    type: http
    tls: false
    x_forwarded: false
    resources:
      - names: [client]
        compress: false
database:
  name: sqlite3
  args:
    database: {d}/homeserver.db
log_config: {d}/log.yaml
media_store_path: {d}/media_store
report_stats: false
macaroon_secret_key: "macaroon-test-secret"
form_secret: "form-test-secret"
signing_key_path: {d}/signing.key
trusted_key_servers: []
suppress_key_server_warning: true
federation_domain_whitelist: []
enable_registration: true
enable_registration_without_verification: true
presence:
  enabled: false
url_preview_enabled: false
rc_message: {limit}
rc_registration: {limit}
rc_login:
  address: {limit}
  account: {limit}
  failed_attempts: {limit}
rc_joins:
  local: {limit}
  remote: {limit}
rc_invites:
  per_room: {limit}
  per_user: {limit}
  per_issuer: {limit}
rc_room_creation: {limit}
"#
    )
}

fn log_config(dir: &TempDir) -> String {
    format!(
        r#"version: 1
formatters:
  precise:
    format: '%(asctime)s - %(name)s - %(levelname)s - %(request)s - %(message)s'
handlers:
  file:
    class: logging.FileHandler
    formatter: precise
    filename: {}/homeserver.log
root:
  level: WARNING
  handlers: [file]
disable_existing_loggers: false
"#,
        dir.path().display()
    )
}

impl Synapse {
    /// Starts a homeserver in a new temporary folder named after `name`, with its users and room.
    pub async fn start(name: &str) -> Synapse {
        let py = python();
        let dir = TempDir::new(&format!("synapse-{name}"));
        let seed = gitlab_chat_bridge::signing::sha256(&[super::unique("seed").as_bytes()]);
        use base64::Engine as _;
        let seed = base64::engine::general_purpose::STANDARD_NO_PAD.encode(seed);
        dir.write("signing.key", &format!("ed25519 a_test {seed}\n"));
        dir.write("log.yaml", &log_config(&dir));
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap();
        // A port found free may be taken before the server binds it: try another.
        for _ in 0..3 {
            let port = super::free_port();
            dir.write("hs.yaml", &config(&dir, port));
            let started = Instant::now();
            let mut child = Command::new(&py)
                .args(["-m", "synapse.app.homeserver", "-c"])
                .arg(dir.join("hs.yaml"))
                .current_dir(dir.path())
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(dir.join("stderr.log")).unwrap())
                .spawn()
                .unwrap();
            let versions = format!("http://127.0.0.1:{port}/_matrix/client/versions");
            let mut up = false;
            while started.elapsed() < START_TIMEOUT {
                if child.try_wait().ok().flatten().is_some() {
                    break;
                }
                if let Ok(r) = http.get(&versions).send().await {
                    if r.status().is_success() {
                        up = true;
                        break;
                    }
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            if !up {
                let _ = child.kill();
                let _ = child.wait();
                let err = std::fs::read_to_string(dir.join("stderr.log")).unwrap_or_default();
                if err.contains("Address already in use") {
                    continue;
                }
                let log = std::fs::read_to_string(dir.join("homeserver.log")).unwrap_or_default();
                panic!("Synapse did not start within {START_TIMEOUT:?}:\n{err}\n{log}");
            }
            let started_in = started.elapsed();
            let mut s = Synapse {
                child,
                port,
                http,
                bot: User {
                    user_id: String::new(),
                    access_token: String::new(),
                    device_id: String::new(),
                },
                other: User {
                    user_id: String::new(),
                    access_token: String::new(),
                    device_id: String::new(),
                },
                room: String::new(),
                started_in,
                dir,
            };
            s.bot = s.register("bot", BOT_DEVICE).await;
            s.other = s.register("alice", "GCBALICE").await;
            let bot = s.bot.clone();
            let other = s.other.user_id.clone();
            s.room = s.create_room(&bot, None, &[&other]).await;
            let alice = s.other.clone();
            s.join(&alice, &s.room.clone()).await;
            return s;
        }
        panic!("Synapse: no free loopback port after 3 tries")
    }

    /// `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn api(&self, path: &str) -> String {
        format!("{}/_matrix/client/v3{path}", self.base_url())
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut req = self.http.request(method, self.api(path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await.unwrap();
        let status = r.status().as_u16();
        let v = r.json::<Value>().await.unwrap_or(Value::Null);
        (status, v)
    }

    async fn ok(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Value {
        let (status, v) = self.call(method, path, token, body).await;
        assert!((200..300).contains(&status), "{path}: HTTP {status}: {v}");
        v
    }

    /// Registers `name` and logs it in on device `device`.
    pub async fn register(&self, name: &str, device: &str) -> User {
        self.ok(
            reqwest::Method::POST,
            "/register",
            None,
            Some(json!({"username": name, "password": PASSWORD, "auth": {"type": "m.login.dummy"}, "inhibit_login": true})),
        )
        .await;
        let v = self
            .ok(
                reqwest::Method::POST,
                "/login",
                None,
                Some(json!({"type": "m.login.password", "identifier": {"type": "m.id.user", "user": name}, "password": PASSWORD, "device_id": device})),
            )
            .await;
        User {
            user_id: v["user_id"].as_str().unwrap().to_string(),
            access_token: v["access_token"].as_str().unwrap().to_string(),
            device_id: v["device_id"].as_str().unwrap().to_string(),
        }
    }

    /// A room `user` creates (with an alias `#alias:localhost` when given), inviting `invite`.
    pub async fn create_room(&self, user: &User, alias: Option<&str>, invite: &[&str]) -> String {
        let mut body = json!({"preset": "private_chat", "name": "gitlab", "invite": invite});
        if let Some(a) = alias {
            body["room_alias_name"] = json!(a);
        }
        let v = self
            .ok(
                reqwest::Method::POST,
                "/createRoom",
                Some(&user.access_token),
                Some(body),
            )
            .await;
        v["room_id"].as_str().unwrap().to_string()
    }

    /// `user` joins `room`.
    pub async fn join(&self, user: &User, room: &str) {
        self.ok(
            reqwest::Method::POST,
            &format!("/rooms/{}/join", path_segment(room)),
            Some(&user.access_token),
            Some(json!({})),
        )
        .await;
    }

    /// `…/rooms/{room}/send/m.room.message`: where a channel's posts go (the txnId follows).
    pub fn send_url(&self, room: &str) -> String {
        self.api(&format!(
            "/rooms/{}/send/m.room.message",
            path_segment(room)
        ))
    }

    /// Redacts (deletes) event `event_id` of `room` as `user`.
    pub async fn redact(&self, user: &User, room: &str, event_id: &str) {
        self.ok(
            reqwest::Method::PUT,
            &format!(
                "/rooms/{}/redact/{}/{}",
                path_segment(room),
                path_segment(event_id),
                path_segment(&format!("redact-{event_id}"))
            ),
            Some(&user.access_token),
            Some(json!({"reason": "deleted in the chat"})),
        )
        .await;
    }

    /// `PUT`s `content` into `room` as `user` with `txn`: the status and the answer.
    pub async fn send(&self, user: &User, room: &str, txn: &str, content: &Value) -> (u16, Value) {
        self.call(
            reqwest::Method::PUT,
            &format!(
                "/rooms/{}/send/m.room.message/{}",
                path_segment(room),
                path_segment(txn)
            ),
            Some(&user.access_token),
            Some(content.clone()),
        )
        .await
    }

    /// Every `m.room.message` event of `room` as `user` reads it, oldest first (paging
    /// backwards from the newest, at most [`MAX_PAGES`] pages of 100).
    pub async fn messages(&self, user: &User, room: &str) -> Vec<Value> {
        let mut out = Vec::new();
        let mut from: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let mut path = format!("/rooms/{}/messages?dir=b&limit=100", path_segment(room));
            if let Some(f) = &from {
                path.push_str(&format!("&from={}", path_segment(f)));
            }
            let v = self
                .ok(reqwest::Method::GET, &path, Some(&user.access_token), None)
                .await;
            let chunk = v["chunk"].as_array().cloned().unwrap_or_default();
            out.extend(chunk.into_iter().filter(|e| e["type"] == "m.room.message"));
            match v["end"].as_str() {
                Some(end) if v["chunk"].as_array().is_some_and(|c| !c.is_empty()) => {
                    from = Some(end.to_string())
                }
                _ => {
                    out.reverse();
                    return out;
                }
            }
        }
        panic!("{room}: more than {MAX_PAGES} pages of messages")
    }

    /// The homeserver's log (warnings and errors).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("homeserver.log")).unwrap_or_default()
    }
}
