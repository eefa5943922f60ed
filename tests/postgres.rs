//! The PostgreSQL test harness (`support::postgres`): a throw-away cluster serves on loopback,
//! logs the daemon's user in over TCP with its password and refuses a wrong one, and leaves
//! nothing behind (no server on its port, no folder). The PostgreSQL store's behaviour tests
//! build on it.

use crate::support::postgres::{Cluster, PASSWORD};
use crate::support::turn;
use std::net::TcpStream;

#[test]
fn a_throwaway_cluster_serves_on_loopback_and_is_removed() {
    let _turn = turn::shared();
    let cluster = Cluster::start("harness");
    let db = cluster.create_database();
    cluster.psql(
        &db,
        "CREATE TABLE t (n INT); INSERT INTO t VALUES (40), (2)",
    );
    assert_eq!(cluster.psql(&db, "SELECT sum(n) FROM t").trim(), "42");
    assert!(cluster.url(&db).starts_with("postgres://bridge@127.0.0.1:"));

    let ok = cluster.psql_tcp(&db, PASSWORD, "SELECT count(*) FROM t");
    assert!(ok.status.success(), "{ok:?}");
    assert_eq!(String::from_utf8_lossy(&ok.stdout).trim(), "2");
    let refused = cluster.psql_tcp(&db, "not-the-password", "SELECT 1");
    assert!(!refused.status.success(), "{refused:?}");
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("password authentication failed"),
        "{refused:?}"
    );

    let (dir, port) = (cluster.dir().to_path_buf(), cluster.port());
    drop(cluster);
    assert!(!dir.exists(), "{} is left behind", dir.display());
    assert!(
        TcpStream::connect(("127.0.0.1", port)).is_err(),
        "a server still listens on port {port}"
    );
}
