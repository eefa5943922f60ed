//! A throw-away PostgreSQL cluster for the tests of the PostgreSQL store: `initdb` into a
//! temporary folder, `pg_ctl start` on a free loopback port (its socket in that folder too),
//! stopped and removed on drop, also when the test fails; a test may also stop it for a while
//! and start it again on the same port and data (a database outage). Debian's binaries are used from
//! `/usr/lib/postgresql/*/bin` (`scripts/install-postgres.sh` installs them). PostgreSQL refuses
//! to run as root, so when the tests run as root the server runs as `nobody` (`runuser`) in a
//! folder `nobody` owns. The superuser `bridge` logs in over TCP with a password (SCRAM), as the
//! daemon will; `psql` here uses the socket, where the cluster trusts its local users.

use super::temp::TempDir;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The superuser of every test cluster.
pub const USER: &str = "bridge";
/// Its password (over TCP; a test cluster on loopback only).
pub const PASSWORD: &str = "bridge-test-password";

/// A running throw-away cluster; stopped and removed on drop.
#[derive(Debug)]
pub struct Cluster {
    bin: PathBuf,
    data: PathBuf,
    port: u16,
    as_nobody: bool,
    // Last: removed after the server stopped.
    dir: TempDir,
}

/// The folder holding Debian's PostgreSQL binaries (the newest version installed).
pub fn bin_dir() -> PathBuf {
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    found.sort();
    found
        .pop()
        .map(|(_, bin)| bin)
        .expect("no PostgreSQL under /usr/lib/postgresql/*/bin: run scripts/install-postgres.sh")
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

fn check(what: &str, out: Output) -> String {
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

impl Cluster {
    /// Creates and starts a cluster in a new temporary folder named after `name`.
    pub fn start(name: &str) -> Cluster {
        let dir = TempDir::new(&format!("pg-{name}"));
        let bin = bin_dir();
        let data = dir.join("data");
        std::fs::create_dir(&data).unwrap();
        let pwfile = dir.write("pwfile", PASSWORD);
        let as_nobody = is_root();
        if as_nobody {
            for path in [&data, &pwfile] {
                check(
                    "chown",
                    Command::new("chown")
                        .arg("nobody:")
                        .arg(path)
                        .output()
                        .unwrap(),
                );
            }
        }
        let mut cluster = Cluster {
            bin,
            data,
            port: 0,
            as_nobody,
            dir,
        };
        let initdb = cluster
            .server_command("initdb")
            .arg("--pgdata")
            .arg(&cluster.data)
            .args(["--username", USER, "--pwfile"])
            .arg(&pwfile)
            .args(["--auth-local=trust", "--auth-host=scram-sha-256"])
            .args(["--encoding=UTF8", "--locale=C", "--no-sync"])
            .output()
            .unwrap();
        check("initdb", initdb);
        // A port found free may be taken before the server binds it: try another.
        let mut last = None;
        for _ in 0..3 {
            cluster.port = super::free_port();
            let out = cluster.pg_ctl_start();
            if out.status.success() {
                return cluster;
            }
            last = Some(out);
        }
        let log = cluster.server_log();
        check("pg_ctl start", last.unwrap());
        panic!("pg_ctl start failed:\n{log}")
    }

    /// `pg_ctl start` on the cluster's port, waiting (bounded) until it takes connections.
    fn pg_ctl_start(&self) -> Output {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off \
             -c full_page_writes=off",
            self.port,
            self.data.display()
        );
        self.server_command("pg_ctl")
            .arg("start")
            .arg("--wait")
            .args(["--timeout", "30"])
            .arg("--pgdata")
            .arg(&self.data)
            .arg("--log")
            .arg(self.data.join("server.log"))
            .args(["-o", &options])
            .output()
            .unwrap()
    }

    /// The server's log so far.
    pub fn server_log(&self) -> String {
        std::fs::read_to_string(self.data.join("server.log")).unwrap_or_default()
    }

    /// Stops the server as an administrator would (`pg_ctl stop --mode fast`: open sessions are
    /// ended, nothing committed is lost) and waits until it is gone; the data stays for
    /// [`Cluster::start_again`]. Fails the test when it does not stop within 30 s.
    pub fn stop(&self) {
        let out = self
            .server_command("pg_ctl")
            .arg("stop")
            .args(["--mode", "fast", "--wait", "--timeout", "30"])
            .arg("--pgdata")
            .arg(&self.data)
            .output()
            .unwrap();
        check("pg_ctl stop", out);
    }

    /// Starts the server again after [`Cluster::stop`], on the same port and data; returns once
    /// it takes connections. Fails the test (with the server's log) when it does not start.
    pub fn start_again(&self) {
        let out = self.pg_ctl_start();
        if !out.status.success() {
            let log = self.server_log();
            check("pg_ctl start (again)", out);
            panic!("pg_ctl start (again) failed:\n{log}");
        }
    }

    /// A command running one of the server's programs, as `nobody` when the tests run as root.
    fn server_command(&self, program: &str) -> Command {
        let path = self.bin.join(program);
        let mut cmd = if self.as_nobody {
            let mut c = Command::new("runuser");
            c.args(["-u", "nobody", "--"]).arg(path);
            c
        } else {
            Command::new(path)
        };
        // nobody may not read the caller's working folder.
        cmd.current_dir(&self.data).env("LC_ALL", "C");
        cmd
    }

    /// The loopback port the server listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The temporary folder holding the cluster.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The URL the daemon connects with (the password goes separately).
    pub fn url(&self, database: &str) -> String {
        format!("postgres://{USER}@127.0.0.1:{}/{database}", self.port)
    }

    /// Runs `sql` in `database` with `psql` over the socket, and returns its unaligned,
    /// tuples-only output; fails the test when psql fails.
    pub fn psql(&self, database: &str, sql: &str) -> String {
        let out = Command::new(self.bin.join("psql"))
            .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1"])
            .arg("-h")
            .arg(&self.data)
            .args([
                "-p",
                &self.port.to_string(),
                "-U",
                USER,
                "-d",
                database,
                "-c",
                sql,
            ])
            .env("LC_ALL", "C")
            .output()
            .unwrap();
        check("psql", out)
    }

    /// Runs `sql` with `psql` over TCP on loopback, logging in with `password`, as the daemon
    /// does; returns psql's output, whether it succeeded or not.
    pub fn psql_tcp(&self, database: &str, password: &str, sql: &str) -> Output {
        Command::new(self.bin.join("psql"))
            .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1"])
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args(["-U", USER, "-d", database, "-c", sql])
            .env("PGPASSWORD", password)
            .env("PGCONNECT_TIMEOUT", "5")
            .env("LC_ALL", "C")
            .output()
            .unwrap()
    }

    /// A client of `database` over TCP, logged in with the password as the daemon will be; its
    /// connection runs on a task of the current runtime.
    pub async fn client(&self, database: &str) -> tokio_postgres::Client {
        let config = format!(
            "host=127.0.0.1 port={} user={USER} password={PASSWORD} dbname={database} \
             connect_timeout=5",
            self.port
        );
        let (client, connection) = tokio_postgres::connect(&config, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(connection);
        client
    }

    /// Creates a new empty database with a unique name and returns the name.
    pub fn create_database(&self) -> String {
        let name = super::unique("t").replace('-', "_");
        self.psql("postgres", &format!("CREATE DATABASE {name}"));
        name
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // Immediate: the data is thrown away, nothing needs a clean shutdown.
        let _ = self
            .server_command("pg_ctl")
            .arg("stop")
            .args(["--mode", "immediate", "--wait", "--timeout", "30"])
            .arg("--pgdata")
            .arg(&self.data)
            .output();
    }
}
