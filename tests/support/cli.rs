//! The binary under test run as a command: a clean environment (no proxy, no configuration,
//! token or systemd variables from the caller, logging at `warn`), its output collected, and
//! every run bounded in time.

use std::ffi::{OsStr, OsString};
use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How long [`run`] lets a command take.
const TIMEOUT: Duration = Duration::from_secs(120);

/// The binary under test, with no proxy and no configuration from the environment.
pub fn bin() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_gitlab-chat-bridge"));
    cmd.env("NO_COLOR", "1")
        .env("RUST_LOG", "warn")
        .env_remove("GITLAB_CHAT_BRIDGE_SECRET_TOKEN")
        .env_remove("GITLAB_CHAT_BRIDGE_CONFIG")
        .env_remove("NOTIFY_SOCKET")
        .env_remove("WATCHDOG_USEC")
        .env_remove("WATCHDOG_PID")
        .stdin(Stdio::null());
    for proxy in [
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
        "http_proxy",
        "https_proxy",
        "all_proxy",
    ] {
        cmd.env_remove(proxy);
    }
    cmd
}

/// What a finished command printed and how it exited.
#[derive(Debug)]
pub struct CliOutput {
    /// The exit code (`None` if killed by a signal).
    pub code: Option<i32>,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

/// Runs the binary with `args` (e.g. `["check", "--config", F]`) and waits for it, at most 2
/// minutes.
pub fn run<S: AsRef<OsStr>>(args: impl IntoIterator<Item = S>) -> CliOutput {
    run_within(args, TIMEOUT)
}

/// Like [`run`] from async code, at most `timeout`.
pub async fn run_async(args: &[&str], timeout: Duration) -> CliOutput {
    let args: Vec<OsString> = args.iter().map(OsString::from).collect();
    tokio::task::spawn_blocking(move || run_within(args, timeout))
        .await
        .unwrap()
}

/// Runs the binary with `args`; fails if it takes longer than `timeout` (it is then killed).
fn run_within<S: AsRef<OsStr>>(args: impl IntoIterator<Item = S>, timeout: Duration) -> CliOutput {
    let args: Vec<OsString> = args.into_iter().map(|a| a.as_ref().to_owned()).collect();
    let mut child = bin()
        .args(&args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let drain = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut s = String::new();
            let _ = r.read_to_string(&mut s);
            s
        })
    };
    let out = drain(Box::new(child.stdout.take().unwrap()));
    let err = drain(Box::new(child.stderr.take().unwrap()));
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            let shown: Vec<_> = args.iter().map(|a| a.to_string_lossy()).collect();
            panic!("`{}` took longer than {timeout:?}", shown.join(" "));
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    CliOutput {
        code: status.code(),
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
    }
}
