//! Prism, the pinned OpenAPI mock (`scripts/install-prism.sh`), serving one of the vendors'
//! documents vendored in `specs/` (provenance in each folder's `SOURCE.md`) on a loopback port, so
//! that the requests we send are checked against the vendor's own schema.

use std::fs::File;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const READY_TIMEOUT: Duration = Duration::from_secs(30);
const POLL_EVERY: Duration = Duration::from_millis(100);

/// A vendored document: `specs/RELATIVE` (e.g. `cliq/messagecards.yml`).
pub fn spec(relative: &str) -> PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("specs")
        .join(relative);
    assert!(path.is_file(), "vendored spec missing: {}", path.display());
    path
}

/// Prism's executable: `$PRISM`, or where `scripts/install-prism.sh` puts it. When it is missing
/// the caller fails, unless `GCB_SKIP_PRISM=1`: then this prints why and gives `None`.
pub fn binary() -> Option<PathBuf> {
    let prism = std::env::var_os("PRISM").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join(".tools/prism/node_modules/.bin/prism"),
        PathBuf::from,
    );
    if prism.is_file() {
        return Some(prism);
    }
    let why = format!(
        "Prism not found at {} (run `bash scripts/install-prism.sh`, or set PRISM)",
        prism.display()
    );
    if std::env::var("GCB_SKIP_PRISM").as_deref() == Ok("1") {
        println!("skipped: GCB_SKIP_PRISM=1 and {why}");
        return None;
    }
    panic!("{why}; or set GCB_SKIP_PRISM=1 to skip the tests that need it.");
}

/// A running `prism mock`, killed when dropped. Its output goes to
/// `target/tmp/prism-NAME-PORT.log`, kept only when the test fails.
pub struct Prism {
    child: Child,
    port: u16,
    log: PathBuf,
    /// The document's file stem, for messages.
    pub name: String,
}

impl Prism {
    /// Starts `prism mock SPEC` (with `--errors` when `errors`: answer a request that breaks the
    /// schema with 4xx) on a free loopback port, and waits until it listens.
    pub fn start(prism: &Path, spec: &Path, errors: bool) -> Prism {
        let mut p = Prism::launch(prism, spec, errors);
        p.wait_ready();
        p
    }

    /// Starts it without waiting; [`Prism::wait_ready`] waits.
    pub fn launch(prism: &Path, spec: &Path, errors: bool) -> Prism {
        let port = super::free_port();
        let name = spec.file_stem().unwrap().to_string_lossy().into_owned();
        let log = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("prism-{name}-{port}.log"));
        let out = File::create(&log).unwrap();
        let err = out.try_clone().unwrap();
        let mut cmd = Command::new(prism);
        cmd.args(["mock", "-h", "127.0.0.1", "-p", &port.to_string()]);
        if errors {
            cmd.arg("--errors");
        }
        let child = cmd
            .arg(spec)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", prism.display()));
        Prism {
            child,
            port,
            log,
            name,
        }
    }

    /// Waits until the port accepts connections, failing if Prism exits or takes too long.
    pub fn wait_ready(&mut self) {
        let deadline = Instant::now() + READY_TIMEOUT;
        let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
        while TcpStream::connect_timeout(&addr, POLL_EVERY).is_err() {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!(
                    "prism ({}) exited with {status} before listening:\n{}",
                    self.name,
                    self.log_text()
                );
            }
            assert!(
                Instant::now() < deadline,
                "prism ({}) not listening on port {} after {READY_TIMEOUT:?}:\n{}",
                self.name,
                self.port,
                self.log_text()
            );
            std::thread::sleep(POLL_EVERY);
        }
    }

    /// Its port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:PORT`.
    pub fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The URL of `route` on it.
    pub fn url(&self, route: &str) -> String {
        format!("{}{route}", self.base())
    }

    /// What it logged so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Prism {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // Keep the log only when the test failed, for the failure report.
        if !std::thread::panicking() {
            let _ = std::fs::remove_file(&self.log);
        }
    }
}
