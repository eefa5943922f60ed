//! Receive-path benchmark: the real `serve` binary (token check, bounded read, JSON object check,
//! dedupe, durable commit of the raw delivery, answer) against two references, all driven by
//! `wrk` on this machine in one run, so the results are ratios: a bare hyper server that reads
//! the body and answers 200, and the durable reference, the floor cost of any acknowledgement
//! that survives a power cut (hyper reads the body, one writer thread appends every queued body
//! to a file and calls fdatasync once per group, and the requests are answered after the sync). Twice: with the channel at Cliq's default budget (its worker mostly idle), and with two
//! channels whose workers deliver at full speed to a local sink that answers at once (the
//! delivery rate reached is reported beside it). Each of the two is [`LOAD_ROUNDS`] rounds of
//! the durable reference then a fresh bridge, and the median round is reported with every
//! round's ratios (the machine is shared and a single pair swings by ±5 %). The first run is
//! repeated with the store on
//! PostgreSQL (`outbox.url`, one replica) on a throw-away local cluster with PostgreSQL's default
//! durability (`fsync` and `synchronous_commit` on), made the way `tests/support/postgres.rs`
//! makes one; skipped, with the reason printed, when Debian's PostgreSQL binaries are missing
//! (`scripts/install-postgres.sh`). On that cluster also: the cross-replica latency, two replicas
//! (engines, in this process) on one database, where replica A receives and routes and only
//! replica B's worker can post: the time from A's acknowledgement of a webhook to its post
//! reaching a fake chat, over [`CROSS_MESSAGES`] webhooks at a steady pace.
//! `GCB_BENCH_ONLY=postgres` runs only the SQLite and PostgreSQL bridges, alternately
//! ([`PG_ROUNDS`] rounds, each ratio from its own round), and the cross-replica latency.
//!
//! Also measured: start-to-ready time (with 100 000 stored events), resident memory idle and
//! under load, and acknowledgement latency (p50/p99) at a fixed 1 000 requests/s from an
//! in-process paced client.
//!
//! Further cases: acknowledgement latency at 1 000 requests/s while the router stage drains
//! 20 000 stored events (`drain`), and resident memory while 500 000 messages that cannot be
//! delivered pile up (`backlog`); the bridge's CPU per webhook, by thread, during each load run.
//! `GCB_BENCH_CASES` picks cases (comma-separated: `load`, `paced`, `postgres`, `busy`, `drain`,
//! `ready`, `backlog`; all when unset; `soak`, resident memory and acknowledgement latency over
//! ten minutes at a steady 1 000 requests/s, only when named), `GCB_BENCH_BRIDGE` another build of the binary (to
//! compare two releases on one machine), `GCB_BENCH_SYNC=normal` `synchronous = "normal"`.
//!
//! `cargo bench --bench receive` (needs `wrk`: `apt-get install wrk`; without it the throughput
//! part uses an in-process closed-loop client instead). Only loopback addresses are used and every
//! load phase is bounded in time.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Length of each throughput run.
const LOAD_SECS: u64 = 8;
/// Connections the load generator keeps open.
const CONNECTIONS: usize = 32;
/// Requests per second of the latency run, and its length.
const PACED_RATE: u64 = 1_000;
const PACED_SECS: u64 = 8;
const TOKEN: &str = "bench-secret";

fn main() {
    let cases = Cases::from_env();
    let dir = std::env::temp_dir().join(format!("gcb-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("samples/issue__open.json");
    let body = std::fs::read(&fixture).expect("fixture");
    if std::env::var("GCB_BENCH_ONLY").is_ok_and(|v| v == "postgres") {
        postgres_only(&dir, &body);
        let _ = std::fs::remove_dir_all(&dir);
        return;
    }

    // The bridge: one channel that takes every event, posting to a closed loopback port (so its
    // worker stays idle-ish at the default 45 posts/min while the receive path is measured).
    // GCB_BENCH_SYNC=normal measures with synchronous=NORMAL (survives a crash, not power loss).
    let sync = std::env::var("GCB_BENCH_SYNC").unwrap_or_else(|_| "full".into());
    let config = default_config(&dir, &sync);

    // The baseline: bare hyper on its own runtime in this process.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let bare_addr = rt.block_on(bare_server());
    // The floor of a power-cut-proof acknowledgement: hyper, one writer thread appending every
    // queued body to a file and calling fdatasync once per group, answering after the sync.
    let durable_addr = rt.block_on(durable_server(&dir.join("durable-reference.log")));

    let body_file = dir.join("body.json");
    std::fs::write(&body_file, &body).expect("body");
    let script = dir.join("post.lua");
    std::fs::write(&script, lua_script(&body_file)).expect("lua");
    let have_wrk = Command::new("wrk").arg("--version").output().is_ok();
    if !have_wrk {
        eprintln!("wrk not found: using the in-process closed-loop client");
    }
    let reference_log = dir.join("durable-reference.log");
    // One load run against `addr`: wrk when installed, else the in-process client.
    let load = |addr: &str| {
        settle(Some(&reference_log));
        if have_wrk {
            wrk(addr, &script, LOAD_SECS)
        } else {
            rt.block_on(closed_loop(addr, &body))
        }
    };

    let mut ready = None;
    let mut rss_idle = None;
    let mut first = None;
    let mut paced_run = None;
    if cases.has("load") || cases.has("paced") {
        let started = Instant::now();
        let (mut bridge, port) = spawn_bridge(&config);
        let bridge_addr = format!("127.0.0.1:{port}");
        wait_healthz(&bridge_addr);
        ready = Some(started.elapsed());
        std::thread::sleep(Duration::from_millis(500));
        rss_idle = Some(rss_kib(bridge.id()));
        let mut bridge_addr = bridge_addr;
        let mut round_dir = dir.clone();
        if cases.has("load") {
            let bare = load(&bare_addr);
            let mut rounds = Vec::new();
            for i in 0..LOAD_ROUNDS {
                if i > 0 {
                    // A fresh bridge: the last one's router is still routing its round.
                    let _ = bridge.kill();
                    let _ = bridge.wait();
                    remove_store(&round_dir);
                    round_dir = dir.join(format!("round-{i}"));
                    let (next, port) = spawn_bridge(&default_config(&round_dir, &sync));
                    bridge = next;
                    bridge_addr = format!("127.0.0.1:{port}");
                    wait_healthz(&bridge_addr);
                }
                let reference = load(&durable_addr);
                rounds.push(Round::measure(
                    &bridge,
                    || load(&bridge_addr),
                    reference,
                    || 0,
                ));
            }
            first = Some((bare, rounds));
        }
        if cases.has("paced") {
            paced_run = Some(rt.block_on(paced(&bridge_addr, &body)));
        }
        let _ = bridge.kill();
        let _ = bridge.wait();
    }

    // The first run again with the store on PostgreSQL, beside a fresh bare run.
    let on_pg = if !cases.has("postgres") {
        None
    } else {
        match PgCluster::start(&dir.join("pg")) {
            Err(reason) => {
                eprintln!("PostgreSQL run skipped: {reason}");
                None
            }
            Ok(cluster) => {
                let pg_config = pg_config(&dir.join("pg-bridge"), &cluster, "postgres");
                let (mut pg_bridge, pg_port) = spawn_bridge(&pg_config);
                let pg_addr = format!("127.0.0.1:{pg_port}");
                wait_ready(&pg_addr);
                let (bare, reference, pg) = (load(&bare_addr), load(&durable_addr), load(&pg_addr));
                let stored = cluster.count_events("postgres");
                let _ = pg_bridge.kill();
                let _ = pg_bridge.wait();
                let cross = rt.block_on(cross_replica(&cluster));
                Some((bare, reference, pg, stored, cross))
            }
        }
    };

    // The same, while two channels' workers deliver at full speed to a local sink.
    let mut busy_run = None;
    if cases.has("busy") {
        let (sink_addr, posts) = rt.block_on(sink_server());
        let bare = load(&bare_addr);
        let mut rounds = Vec::new();
        for i in 0..LOAD_ROUNDS {
            let busy_dir = dir.join(format!("busy-{i}"));
            std::fs::create_dir_all(&busy_dir).expect("busy dir");
            let busy_config = busy_dir.join("config.toml");
            std::fs::write(&busy_config, sink_config(&sink_addr, &sync)).expect("config");
            let (mut busy, busy_port) = spawn_bridge(&busy_config);
            let busy_addr = format!("127.0.0.1:{busy_port}");
            wait_healthz(&busy_addr);
            let reference = load(&durable_addr);
            let before = posts.load(Ordering::Relaxed);
            rounds.push(Round::measure(
                &busy,
                || load(&busy_addr),
                reference,
                || posts.load(Ordering::Relaxed) - before,
            ));
            let _ = busy.kill();
            let _ = busy.wait();
            remove_store(&busy_dir);
        }
        busy_run = Some((bare, rounds));
    }

    // Acknowledgement latency while the router stage drains a backlog.
    let drain_run = cases
        .has("drain")
        .then(|| drain(&dir.join("drain"), &sync, &rt, &body, &durable_addr));

    // Start to ready over a store that keeps 100 000 events.
    let stored_ready = cases
        .has("ready")
        .then(|| ready_with_stored_events(&dir.join("full"), &sync));

    // Memory over ten minutes at a steady 1 000 requests/s (only when named: it takes that long).
    let soak_run = cases
        .named("soak")
        .then(|| soak(&dir.join("soak"), &sync, &rt, &body));

    // Memory while a backlog of messages that cannot be delivered grows.
    let backlog_run = cases
        .has("backlog")
        .then(|| backlog(&dir.join("backlog"), &sync, &script, have_wrk, &rt, &body));

    println!();
    println!(
        "receive path (wrk {CONNECTIONS} connections, {LOAD_SECS} s each, same machine, one run)"
    );
    if let Some((bare, rounds)) = &first {
        print_rounds(bare, rounds);
    }
    match &on_pg {
        None => println!("  on PostgreSQL: skipped (see the reason above)"),
        Some((bare_pg, reference_pg, pg, stored, cross)) => {
            println!(
                "the same with the store on PostgreSQL (one replica, local cluster, fsync on)"
            );
            print_load("bare hyper (read body, 200)", bare_pg);
            print_load("durable reference (fdatasync)", reference_pg);
            println!(
                "  gitlab-chat-bridge (postgres): {:>9.0} req/s  p50 {:>7}  p99 {:>7}   ({} events stored)",
                pg.rps,
                fmt(pg.p50),
                fmt(pg.p99),
                stored.map_or("?".to_string(), |n| n.to_string())
            );
            if let Some(bridge_load) = first.as_ref().map(|(_, r)| &median(r).bridge) {
                println!(
                    "  ratio postgres / bare:         {:>9.2}   / reference: {:.2}   / sqlite: {:.2}",
                    pg.rps / bare_pg.rps.max(1.0),
                    pg.rps / reference_pg.rps.max(1.0),
                    pg.rps / bridge_load.rps.max(1.0)
                );
            }
            print_cross(cross);
        }
    }
    if let Some((bare_busy, rounds)) = &busy_run {
        println!("while 2 channels deliver at full speed to a local sink (same run)");
        print_rounds(bare_busy, rounds);
        println!(
            "  delivered meanwhile:           {:>9.0} posts/s to the sink",
            median(rounds).delivered as f64 / LOAD_SECS as f64
        );
    }
    if let Some(paced) = &paced_run {
        println!(
            "ack latency at {PACED_RATE} req/s for {PACED_SECS} s, right after the load run ({} requests, {} errors)",
            paced.sent, paced.errors
        );
        println!(
            "  p50 {}  p99 {}  max {}   (target p99 < 5 ms)",
            fmt(paced.p50),
            fmt(paced.p99),
            fmt(paced.max)
        );
    }
    if let Some(d) = &drain_run {
        println!(
            "ack latency at {PACED_RATE} req/s for {PACED_SECS} s while the router drains {DRAIN_EVENTS} events ({} requests, {} errors; drained {})",
            d.paced.sent,
            d.paced.errors,
            d.drained
                .map_or("not within the run".to_string(), |t| format!(
                    "in {:.1} s",
                    t.as_secs_f64()
                ))
        );
        println!(
            "  p50 {}  p99 {}  max {}   (target p99 < 5 ms)",
            fmt(d.paced.p50),
            fmt(d.paced.p99),
            fmt(d.paced.max)
        );
        println!(
            "  durable reference at the same rate just before: p50 {}  p99 {}  max {}",
            fmt(d.reference.p50),
            fmt(d.reference.p99),
            fmt(d.reference.max)
        );
    }
    if let Some(ready) = ready {
        println!(
            "start to ready: {:.1} ms (target < 100 ms)",
            ready.as_secs_f64() * 1000.0
        );
    }
    if let Some(stored_ready) = stored_ready {
        println!(
            "start to ready with {STORED_EVENTS} stored events: {:.1} ms (target < 100 ms)",
            stored_ready.as_secs_f64() * 1000.0
        );
    }
    let mib = |kib: u64| format!("{:.1} MiB", kib as f64 / 1024.0);
    println!(
        "RSS idle: {} (target < 30)   under load (max): {}, delivering: {} (target < 80)",
        rss_idle.map_or("-".into(), mib),
        first.as_ref().map_or("-".into(), |(_, r)| mib(peak_rss(r))),
        busy_run
            .as_ref()
            .map_or("-".into(), |(_, r)| mib(peak_rss(r))),
    );
    if let Some(soak) = &soak_run {
        soak.print();
    }
    if let Some(samples) = &backlog_run {
        println!("RSS while messages that cannot be delivered pile up (target < 80 MiB, flat)");
        for s in samples {
            println!(
                "  {:>9} received  {:>9} waiting  {:>9} not routed  RSS {}",
                s.received,
                s.waiting,
                s.unrouted,
                mib(s.rss_kib)
            );
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// The bench's parts to run: `GCB_BENCH_CASES`, comma-separated, out of `load` (the bridge
/// and both references at saturation), `paced` (1 000 req/s after it), `postgres`, `busy`
/// (while two channels deliver), `drain` (1 000 req/s while the router drains a backlog),
/// `ready` (start with 100 000 stored events) and `backlog` (memory while 500 000 messages
/// pile up); all of them when unset.
struct Cases(Option<Vec<String>>);

impl Cases {
    fn from_env() -> Cases {
        Cases(
            std::env::var("GCB_BENCH_CASES")
                .ok()
                .map(|v| v.split(',').map(|c| c.trim().to_string()).collect()),
        )
    }

    fn has(&self, case: &str) -> bool {
        self.0.as_ref().is_none_or(|c| c.iter().any(|x| x == case))
    }

    /// Only when named (a case too long for every run).
    fn named(&self, case: &str) -> bool {
        self.0.as_ref().is_some_and(|c| c.iter().any(|x| x == case))
    }
}

/// The first run's config: one channel posting to a closed loopback port at the default budget.
fn idle_config(sync: &str) -> String {
    format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nsecret_token = \"{TOKEN}\"\n\
         [outbox]\npath = \"outbox.sqlite\"\nsynchronous = \"{sync}\"\n\
         [delivery]\nmax_attempts = 1\n\
         [[channels]]\nname = \"bench\"\nurl = \"http://127.0.0.1:9/api/v2/channelsbyname/bench/message\"\nzapikey = \"k\"\n"
    )
}

/// One line of a load run's figures.
fn print_load(what: &str, load: &Load) {
    println!(
        "  {:<30} {:>9.0} req/s  p50 {:>7}  p99 {:>7}",
        format!("{what}:"),
        load.rps,
        fmt(load.p50),
        fmt(load.p99)
    );
}

/// Rounds of the `load` and `busy` cases: in each, the durable reference, then the bridge
/// (a fresh one: the last round's router would still be routing its webhooks), so each ratio
/// comes from two runs side by side; the median round is reported, with every round's ratios.
const LOAD_ROUNDS: usize = 3;

/// One round: the durable reference's run, then the bridge's, with the bridge's peak RSS, its
/// CPU by thread and the posts its workers delivered meanwhile.
struct Round {
    reference: Load,
    bridge: Load,
    rss_kib: u64,
    cpu: ThreadCpu,
    delivered: u64,
}

impl Round {
    /// Runs `load` against `bridge` (already ready), sampling its memory and CPU; `delivered`
    /// says how many posts reached the sink since the round began, read when the run ends.
    fn measure(
        bridge: &Child,
        load: impl FnOnce() -> Load,
        reference: Load,
        delivered: impl FnOnce() -> u64,
    ) -> Round {
        let sampling = RssSampler::start(bridge.id());
        let cpu = ThreadCpu::sample(bridge.id());
        let run = load();
        Round {
            delivered: delivered(),
            cpu: cpu.since(bridge.id()),
            rss_kib: sampling.stop(),
            reference,
            bridge: run,
        }
    }

    fn ratio(&self) -> f64 {
        self.bridge.rps / self.reference.rps.max(1.0)
    }

    fn p99_ratio(&self) -> f64 {
        self.bridge.p99.as_secs_f64() / self.reference.p99.as_secs_f64().max(1e-6)
    }
}

/// The round of the median throughput ratio.
fn median(rounds: &[Round]) -> &Round {
    let mut order: Vec<&Round> = rounds.iter().collect();
    order.sort_by(|a, b| a.ratio().total_cmp(&b.ratio()));
    order[order.len() / 2]
}

/// Before a measured run: the durable reference's log, if there is one, emptied (it would grow
/// by gigabytes over the bench) and every dirty page written back, so that no run pays for the
/// writeback of the one before it.
fn settle(reference_log: Option<&Path>) {
    if let Some(Ok(log)) =
        reference_log.map(|path| std::fs::OpenOptions::new().write(true).open(path))
    {
        // The reference writes in append mode: its next write lands at the new end.
        let _ = log.set_len(0);
    }
    let _ = Command::new("sync").status();
}

/// Removes the SQLite store of a stopped bridge whose config is in `dir`, so its unwritten
/// pages are dropped rather than written back during the next run.
fn remove_store(dir: &Path) {
    for name in ["outbox.sqlite", "outbox.sqlite-wal", "outbox.sqlite-shm"] {
        let _ = std::fs::remove_file(dir.join(name));
    }
}

/// The highest RSS of any round's bridge.
fn peak_rss(rounds: &[Round]) -> u64 {
    rounds.iter().map(|r| r.rss_kib).max().unwrap_or(0)
}

/// The bare run, the median round against both references (its throughput ratios, its p99 over
/// the durable reference's, its CPU by thread), then every round's two ratios.
fn print_rounds(bare: &Load, rounds: &[Round]) {
    let m = median(rounds);
    print_load("bare hyper (read body, 200)", bare);
    print_load("durable reference (fdatasync)", &m.reference);
    print_load("gitlab-chat-bridge (durable)", &m.bridge);
    let mut p99s: Vec<f64> = rounds.iter().map(Round::p99_ratio).collect();
    p99s.sort_by(f64::total_cmp);
    println!(
        "  ratio bridge / bare: {:.2}   bridge / durable reference: {:.2} (target ≥ 0.8)   p99 bridge / reference: {:.1}× (median of the rounds' p99 ratios; target ≤ 3)",
        m.bridge.rps / bare.rps.max(1.0),
        m.ratio(),
        p99s[p99s.len() / 2]
    );
    let each: Vec<String> = rounds
        .iter()
        .map(|r| format!("{:.2} (p99 {:.1}×)", r.ratio(), r.p99_ratio()))
        .collect();
    println!(
        "  each round, bridge / durable reference: {}",
        each.join(", ")
    );
    m.cpu.print(m.bridge.rps * LOAD_SECS as f64);
}

/// The first run's config in `dir`: one channel that takes every event, posting to a closed
/// loopback port (so its worker stays idle-ish at the default 45 posts/min while the receive
/// path is measured), the store a SQLite file with `synchronous = sync`.
fn default_config(dir: &Path, sync: &str) -> PathBuf {
    std::fs::create_dir_all(dir).expect("config dir");
    let config = dir.join("config.toml");
    std::fs::write(&config, idle_config(sync)).expect("config");
    config
}

/// The same config in `dir` with the store on `database` of `cluster`.
fn pg_config(dir: &Path, cluster: &PgCluster, database: &str) -> PathBuf {
    std::fs::create_dir_all(dir).expect("pg dir");
    std::fs::write(dir.join("pg-password"), PG_PASSWORD).expect("password");
    let config = dir.join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = \"127.0.0.1:0\"\nsecret_token = \"{TOKEN}\"\n\
             [outbox]\nurl = \"{}\"\npassword_file = \"pg-password\"\n\
             [delivery]\nmax_attempts = 1\n\
             [[channels]]\nname = \"bench\"\nurl = \"http://127.0.0.1:9/api/v2/channelsbyname/bench/message\"\nzapikey = \"k\"\n",
            cluster.url(database)
        ),
    )
    .expect("config");
    config
}

/// Rounds of `GCB_BENCH_ONLY=postgres`: each a fresh SQLite bridge, then a fresh PostgreSQL
/// bridge on a fresh database, under the same load.
const PG_ROUNDS: usize = 3;

/// `GCB_BENCH_ONLY=postgres`: the SQLite bridge against the PostgreSQL one, round by round (each
/// bridge stopped before the other runs, so neither's router drains a backlog during the other's
/// load), then the cross-replica latency.
fn postgres_only(dir: &Path, body: &[u8]) {
    let sync = std::env::var("GCB_BENCH_SYNC").unwrap_or_else(|_| "full".into());
    let cluster = match PgCluster::start(&dir.join("pg")) {
        Ok(c) => c,
        Err(reason) => {
            eprintln!("PostgreSQL run skipped: {reason}");
            return;
        }
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let body_file = dir.join("body.json");
    std::fs::write(&body_file, body).expect("body");
    let script = dir.join("post.lua");
    std::fs::write(&script, lua_script(&body_file)).expect("lua");
    let have_wrk = Command::new("wrk").arg("--version").output().is_ok();
    let load = |addr: &str| {
        settle(None);
        if have_wrk {
            wrk(addr, &script, LOAD_SECS)
        } else {
            rt.block_on(closed_loop(addr, body))
        }
    };
    let mut rounds = Vec::new();
    for round in 0..PG_ROUNDS {
        let (mut sqlite, port) =
            spawn_bridge(&default_config(&dir.join(format!("sqlite-{round}")), &sync));
        let addr = format!("127.0.0.1:{port}");
        wait_healthz(&addr);
        let on_sqlite = load(&addr);
        let _ = sqlite.kill();
        let _ = sqlite.wait();
        remove_store(&dir.join(format!("sqlite-{round}")));
        let database = format!("round{round}");
        cluster.create_database(&database);
        let (mut pg, port) = spawn_bridge(&pg_config(
            &dir.join(format!("pg-{round}")),
            &cluster,
            &database,
        ));
        let addr = format!("127.0.0.1:{port}");
        wait_ready(&addr);
        let on_pg = load(&addr);
        let _ = pg.kill();
        let _ = pg.wait();
        let stored = cluster.count_events(&database);
        rounds.push((on_sqlite, on_pg, stored));
    }
    let cross = rt.block_on(cross_replica(&cluster));
    println!();
    println!(
        "PostgreSQL (one replica, local cluster, fsync and synchronous_commit on) against SQLite \
         (synchronous = {sync}), {PG_ROUNDS} rounds of {LOAD_SECS} s each"
    );
    for (round, (on_sqlite, on_pg, stored)) in rounds.iter().enumerate() {
        println!("round {}", round + 1);
        print_load("gitlab-chat-bridge (sqlite)", on_sqlite);
        print_load("gitlab-chat-bridge (postgres)", on_pg);
        println!(
            "  ratio postgres / sqlite:       {:>9.2}   ({} events stored)",
            on_pg.rps / on_sqlite.rps.max(1.0),
            stored.map_or("?".to_string(), |n| n.to_string())
        );
    }
    print_cross(&cross);
}

/// Webhooks of the cross-replica run.
const CROSS_MESSAGES: usize = 200;
/// One is received this often (a steady trickle: the figure is a latency, not a throughput).
const CROSS_EVERY: Duration = Duration::from_millis(20);
/// The longest the cross-replica run waits for the last post.
const CROSS_WAIT: Duration = Duration::from_secs(60);

/// What the cross-replica run measured: from replica A's acknowledgement to the post's arrival
/// at the fake chat, posted by replica B.
struct Cross {
    delivered: usize,
    p50: Duration,
    p99: Duration,
    max: Duration,
}

/// Routes every event to the channel `x` as one message whose body is its request id.
struct ToX;

impl gitlab_chat_bridge::deliver::router::EventRouter for ToX {
    fn route(
        &self,
        event: &gitlab_chat_bridge::deliver::store::StoredEvent,
        _: &[gitlab_chat_bridge::deliver::store::ChatRule],
        _: &gitlab_chat_bridge::deliver::router::Memory<'_>,
    ) -> gitlab_chat_bridge::deliver::store::RoutedEvent {
        let request = &event.raw.request_id;
        gitlab_chat_bridge::deliver::store::RoutedEvent {
            event_id: event.id,
            request_id: request.clone(),
            kind: "push".into(),
            key: "push".into(),
            outcome: "queued 1".into(),
            deliveries: vec![gitlab_chat_bridge::deliver::Delivery {
                id: format!("{request}/x"),
                channel: "x".into(),
                ordering_key: request.clone(),
                body: request.clone(),
            }],
            ..Default::default()
        }
    }
}

/// A fake chat: the arrival time of each body.
struct Arrivals(std::sync::Mutex<std::collections::HashMap<String, Instant>>);

impl gitlab_chat_bridge::deliver::worker::Post for Arrivals {
    fn post<'a>(
        &'a self,
        _: &'a gitlab_chat_bridge::deliver::Endpoint,
        _: &'a str,
        body: &'a str,
    ) -> gitlab_chat_bridge::deliver::BoxFuture<'a, gitlab_chat_bridge::deliver::sender::Attempt>
    {
        let at = Instant::now();
        self.0.lock().unwrap().entry(body.to_string()).or_insert(at);
        Box::pin(async { gitlab_chat_bridge::deliver::sender::Attempt::Delivered(204) })
    }
}

/// Two replicas on a fresh database of `cluster`, as `serve` runs them: A receives every
/// webhook and routes (it holds the router lock); only B has a worker of the channel, with the
/// shared rate window, so each message is posted by the replica that did not route it, woken
/// by the commit's notification (or by its idle poll, 5 s, without one).
async fn cross_replica(cluster: &PgCluster) -> Cross {
    use gitlab_chat_bridge::deliver::clock::Clock;
    use gitlab_chat_bridge::deliver::durable::DurableOutbox;
    use gitlab_chat_bridge::deliver::pg::PgOptions;
    use gitlab_chat_bridge::deliver::rate::RateLimiter;
    use gitlab_chat_bridge::deliver::store::RawEvent;
    use gitlab_chat_bridge::deliver::worker::{run_channel, Target};
    use gitlab_chat_bridge::deliver::{router, Auth, Endpoint, RetryPolicy};
    let database = "crossreplica";
    cluster.create_database(database);
    let clock = Clock::new();
    let names = vec!["x".to_string()];
    let replica = |owner: &str| {
        let opts = PgOptions {
            url: cluster.url(database),
            password: Some(gitlab_chat_bridge::secret::Secret::new(PG_PASSWORD)),
            ca_file: None,
            pool_size: 4,
            owner: owner.to_string(),
        };
        let names = names.clone();
        async move {
            DurableOutbox::open_postgres(&opts, 60_000, &names, clock)
                .await
                .expect("replica")
                .0
        }
    };
    let (a, b) = (replica("a").await, replica("b").await);
    let stop = tokio_util::sync::CancellationToken::new();
    let routing = router::spawn(a.clone(), Arc::new(ToX), stop.clone()).expect("router");
    let chat = Arc::new(Arrivals(Default::default()));
    let window = b.shared_window().expect("a shared window");
    let target = Target {
        name: "x".into(),
        endpoint: Endpoint {
            url: "http://127.0.0.1:9/unused".into(),
            auth: Auth::None,
        },
        limiter: Arc::new(RateLimiter::shared(100_000, "cross-replica", window)),
        digest: Arc::new(|bodies: &[&str]| (bodies[0].to_string(), 1)),
        dead_letters: None,
    };
    let worker = tokio::spawn(run_channel(
        target,
        b.clone(),
        chat.clone(),
        RetryPolicy::default(),
        clock,
        stop.clone(),
    ));
    // B's worker finds nothing and goes idle before the first webhook.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut acks = Vec::with_capacity(CROSS_MESSAGES);
    let mut pace = tokio::time::interval(CROSS_EVERY);
    for i in 0..CROSS_MESSAGES {
        pace.tick().await;
        let key = format!("cross-{i}");
        let raw = RawEvent {
            request_id: key.clone(),
            dedupe_key: Some(key.clone()),
            headers: vec![("x-gitlab-event".into(), "Push Hook".into())],
            body: b"{}".to_vec(),
        };
        a.ingest_at(raw, clock.now_ms()).await.expect("ingest");
        acks.push((key, Instant::now()));
    }
    let deadline = Instant::now() + CROSS_WAIT;
    while chat.0.lock().unwrap().len() < CROSS_MESSAGES && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    stop.cancel();
    a.router_bell().ring();
    let _ = worker.await;
    let _ = tokio::task::spawn_blocking(move || routing.join()).await;
    let arrived = chat.0.lock().unwrap();
    let mut waits: Vec<Duration> = acks
        .iter()
        .filter_map(|(key, ack)| {
            arrived
                .get(key)
                .map(|at| at.saturating_duration_since(*ack))
        })
        .collect();
    waits.sort();
    Cross {
        delivered: waits.len(),
        p50: percentile(&waits, 0.50),
        p99: percentile(&waits, 0.99),
        max: waits.last().copied().unwrap_or_default(),
    }
}

fn print_cross(cross: &Cross) {
    println!(
        "cross-replica: acknowledged by A (which routes), posted by B's worker, {} webhooks \
         one every {} ms",
        CROSS_MESSAGES,
        CROSS_EVERY.as_millis()
    );
    println!(
        "  delivered {}/{}   p50 {}  p99 {}  max {}   (target p99 < 250 ms)",
        cross.delivered,
        CROSS_MESSAGES,
        fmt(cross.p50),
        fmt(cross.p99),
        fmt(cross.max)
    );
}

/// The password of the benchmark cluster's superuser.
const PG_PASSWORD: &str = "bench-password";
/// Its superuser.
const PG_USER: &str = "bridge";

/// A throw-away PostgreSQL cluster on a loopback port, as `tests/support/postgres.rs` makes one
/// (as `nobody` when run as root), but with PostgreSQL's default durability; stopped on drop.
struct PgCluster {
    bin: PathBuf,
    data: PathBuf,
    port: u16,
    as_nobody: bool,
}

impl PgCluster {
    /// Creates and starts a cluster in `dir`, or says why it cannot.
    fn start(dir: &Path) -> Result<PgCluster, String> {
        let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
            .map_err(|e| format!("no PostgreSQL under /usr/lib/postgresql ({e}): run scripts/install-postgres.sh"))?
            .flatten()
            .filter_map(|e| {
                let version = e.file_name().to_str()?.parse::<u32>().ok()?;
                let bin = e.path().join("bin");
                bin.join("initdb").exists().then_some((version, bin))
            })
            .collect();
        found.sort();
        let (_, bin) = found
            .pop()
            .ok_or("no initdb under /usr/lib/postgresql/*/bin: run scripts/install-postgres.sh")?;
        let data = dir.join("data");
        std::fs::create_dir_all(&data).map_err(|e| e.to_string())?;
        let pwfile = dir.join("pwfile");
        std::fs::write(&pwfile, PG_PASSWORD).map_err(|e| e.to_string())?;
        let as_nobody = Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
        if as_nobody {
            for path in [&data, &pwfile] {
                let ok = Command::new("chown")
                    .arg("nobody:")
                    .arg(path)
                    .status()
                    .is_ok_and(|s| s.success());
                if !ok {
                    return Err(format!("cannot chown {} to nobody", path.display()));
                }
            }
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| e.to_string())?
            .port();
        let mut cluster = PgCluster {
            bin,
            data,
            port,
            as_nobody,
        };
        let initdb = cluster
            .command("initdb")
            .arg("--pgdata")
            .arg(&cluster.data)
            .args(["--username", PG_USER, "--pwfile"])
            .arg(&pwfile)
            .args(["--auth-local=trust", "--auth-host=scram-sha-256"])
            .args(["--encoding=UTF8", "--locale=C", "--no-sync"])
            .output()
            .map_err(|e| e.to_string())?;
        if !initdb.status.success() {
            return Err(format!(
                "initdb: {}",
                String::from_utf8_lossy(&initdb.stderr)
            ));
        }
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c max_connections=100",
            cluster.port,
            cluster.data.display()
        );
        let start = cluster
            .command("pg_ctl")
            .args(["start", "--wait", "--timeout", "30", "--pgdata"])
            .arg(&cluster.data)
            .arg("--log")
            .arg(cluster.data.join("server.log"))
            .args(["-o", &options])
            .output()
            .map_err(|e| e.to_string())?;
        if !start.status.success() {
            cluster.port = 0;
            return Err(format!(
                "pg_ctl start: {}",
                String::from_utf8_lossy(&start.stderr)
            ));
        }
        Ok(cluster)
    }

    fn command(&self, program: &str) -> Command {
        let path = self.bin.join(program);
        let mut cmd = if self.as_nobody {
            let mut c = Command::new("runuser");
            c.args(["-u", "nobody", "--"]).arg(path);
            c
        } else {
            Command::new(path)
        };
        cmd.current_dir(&self.data).env("LC_ALL", "C");
        cmd
    }

    fn url(&self, database: &str) -> String {
        format!(
            "postgres://{PG_USER}@127.0.0.1:{}/{database}?sslmode=disable",
            self.port
        )
    }

    /// Events the bridge stored in `database`, if psql answers.
    fn count_events(&self, database: &str) -> Option<u64> {
        self.psql(database, "SELECT count(*) FROM events")?
            .trim()
            .parse()
            .ok()
    }

    /// Creates the database `name`; panics when psql refuses.
    fn create_database(&self, name: &str) {
        let made = self.psql("postgres", &format!("CREATE DATABASE {name}"));
        assert!(made.is_some(), "cannot create the database {name}");
    }

    /// Runs `sql` with psql over the socket in `database`; its output, if it succeeded.
    fn psql(&self, database: &str, sql: &str) -> Option<String> {
        let out = Command::new(self.bin.join("psql"))
            .args(["-X", "-q", "-A", "-t", "-h"])
            .arg(&self.data)
            .args(["-p", &self.port.to_string(), "-U", PG_USER, "-d", database])
            .args(["-c", sql])
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        if self.port != 0 {
            let _ = self
                .command("pg_ctl")
                .args(["stop", "--mode", "fast", "--wait", "--pgdata"])
                .arg(&self.data)
                .output();
        }
    }
}

/// Waits until `GET /readyz` answers 200 (the store reachable), at most 30 s.
fn wait_ready(addr: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Ok(mut s) = std::net::TcpStream::connect(addr) {
            let _ = s.write_all(b"GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
            let mut buf = String::new();
            let _ = std::io::Read::read_to_string(&mut s, &mut buf);
            if buf.starts_with("HTTP/1.1 200") {
                return;
            }
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("bridge on PostgreSQL not ready within 30 s");
}

/// Events in the store of the start-to-ready run.
const STORED_EVENTS: usize = 100_000;

/// A config whose two channels post to `sink` with no practical rate limit.
fn sink_config(sink: &str, sync: &str) -> String {
    let mut c = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nsecret_token = \"{TOKEN}\"\n\
         [outbox]\npath = \"outbox.sqlite\"\nsynchronous = \"{sync}\"\n\
         [delivery]\nmax_attempts = 1\n"
    );
    for name in ["one", "two"] {
        c.push_str(&format!(
            "[[channels]]\nname = \"{name}\"\nurl = \"http://{sink}/api/v2/channelsbyname/{name}/message\"\n\
             zapikey = \"k-{name}\"\nrate_per_minute = 10000000\n"
        ));
    }
    c
}

/// Fills a store with [`STORED_EVENTS`] routed events (through the library, as `serve` would
/// have left them), then times the bridge from spawn to a healthy `/healthz`.
fn ready_with_stored_events(dir: &Path, sync: &str) -> Duration {
    use gitlab_chat_bridge::deliver::store::{self, RawEvent, RoutedEvent, Store};
    std::fs::create_dir_all(dir).expect("dir");
    let config = dir.join("config.toml");
    std::fs::write(&config, sink_config("127.0.0.1:9", sync)).expect("config");
    let body =
        std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("samples/issue__open.json"))
            .expect("fixture");
    let mut s = Store::open(&dir.join("outbox.sqlite"), false).expect("store");
    let tx = s.transaction().expect("tx");
    for i in 0..STORED_EVENTS {
        let raw = RawEvent {
            request_id: format!("stored-{i}"),
            dedupe_key: Some(format!("stored-{i}")),
            headers: vec![("x-gitlab-event".into(), "Issue Hook".into())],
            body: body.clone(),
        };
        let now = 1_795_000_000_000 + i as i64;
        if let Ok(store::Ingested::Accepted(id)) = store::insert_event(&tx, &raw, now, 0) {
            let routed = RoutedEvent {
                event_id: id,
                kind: "issue".into(),
                key: "issue.open".into(),
                outcome: "queued 0".into(),
                ..RoutedEvent::default()
            };
            store::mark_routed(&tx, &routed, now).expect("routed");
        }
    }
    tx.commit().expect("commit");
    drop(s);
    let started = Instant::now();
    let (mut bridge, port) = spawn_bridge(&config);
    wait_healthz(&format!("127.0.0.1:{port}"));
    let ready = started.elapsed();
    let _ = bridge.kill();
    let _ = bridge.wait();
    ready
}

/// A chat endpoint that answers 204 at once and counts the posts.
async fn sink_server() -> (String, Arc<AtomicU64>) {
    use http_body_util::BodyExt;
    use hyper::service::service_fn;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    let posts = Arc::new(AtomicU64::new(0));
    let counter = posts.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let counter = counter.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let counter = counter.clone();
                    async move {
                        let _ = req.into_body().collect().await;
                        counter.fetch_add(1, Ordering::Relaxed);
                        let mut r = hyper::Response::new(http_body_util::Full::new(
                            hyper::body::Bytes::new(),
                        ));
                        *r.status_mut() = hyper::StatusCode::NO_CONTENT;
                        Ok::<_, std::convert::Infallible>(r)
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    (addr, posts)
}

fn spawn_bridge(config: &Path) -> (Child, u16) {
    // GCB_BENCH_BRIDGE=PATH measures another build of the binary (an earlier release, say).
    let bin = std::env::var_os("GCB_BENCH_BRIDGE").map_or_else(
        || PathBuf::from(env!("CARGO_BIN_EXE_gitlab-chat-bridge")),
        PathBuf::from,
    );
    let mut child = Command::new(bin)
        .args(["serve", "--config"])
        .arg(config)
        .env("RUST_LOG", "warn,gitlab_chat_bridge::commands::serve=info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn bridge");
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(rest) = line.split("listen=").nth(1) {
                let port = rest
                    .split_whitespace()
                    .next()
                    .and_then(|a| a.rsplit(':').next())
                    .and_then(|p| p.parse::<u16>().ok());
                if let Some(p) = port {
                    let _ = tx.send(p);
                }
            }
        }
    });
    let port = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("bridge did not report its port");
    (child, port)
}

fn wait_healthz(addr: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Ok(mut s) = std::net::TcpStream::connect(addr) {
            let _ = s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
            let mut buf = String::new();
            let _ = std::io::Read::read_to_string(&mut s, &mut buf);
            if buf.starts_with("HTTP/1.1 200") {
                return;
            }
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    panic!("bridge not ready");
}

async fn bare_server() -> String {
    use http_body_util::BodyExt;
    use hyper::service::service_fn;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                let svc = service_fn(|req: hyper::Request<hyper::body::Incoming>| async move {
                    let _ = req.into_body().collect().await;
                    Ok::<_, std::convert::Infallible>(hyper::Response::new(
                        http_body_util::Full::new(hyper::body::Bytes::from_static(b"ok")),
                    ))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    addr
}

/// The durable reference: hyper reads the body and hands it to one writer thread, which appends
/// every body queued meanwhile to `path`, calls fdatasync once for the group, and only then lets
/// their requests be answered 200 — the least any acknowledgement that survives a power cut costs.
async fn durable_server(path: &Path) -> String {
    use http_body_util::BodyExt;
    use hyper::service::service_fn;
    type Queued = (hyper::body::Bytes, tokio::sync::oneshot::Sender<()>);
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Queued>();
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .expect("reference log");
    std::thread::Builder::new()
        .name("reference-writer".into())
        .spawn(move || {
            let mut group = Vec::with_capacity(1024);
            while let Some(first) = rx.blocking_recv() {
                group.push(first);
                while group.len() < 1024 {
                    match rx.try_recv() {
                        Ok(q) => group.push(q),
                        Err(_) => break,
                    }
                }
                for (body, _) in &group {
                    file.write_all(body).expect("append");
                }
                file.sync_data().expect("fdatasync");
                for (_, done) in group.drain(..) {
                    let _ = done.send(());
                }
            }
        })
        .expect("reference writer");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let tx = tx.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let tx = tx.clone();
                    async move {
                        let body = req
                            .into_body()
                            .collect()
                            .await
                            .map(|b| b.to_bytes())
                            .unwrap_or_default();
                        let (done, synced) = tokio::sync::oneshot::channel();
                        let _ = tx.send((body, done));
                        let mut r = hyper::Response::new(http_body_util::Full::new(
                            hyper::body::Bytes::from_static(b"ok"),
                        ));
                        if synced.await.is_err() {
                            *r.status_mut() = hyper::StatusCode::SERVICE_UNAVAILABLE;
                        }
                        Ok::<_, std::convert::Infallible>(r)
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    addr
}

fn lua_script(body: &Path) -> String {
    format!(
        r#"local f = assert(io.open("{}", "rb"))
local body = f:read("*a")
f:close()
local n = 0
-- Each wrk thread has its own Lua state and the same random sequence: the thread's number keeps
-- their keys apart (otherwise half the requests are duplicates, which are cheaper).
local counter = 1
function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
end
math.randomseed(os.time())
local tag = tostring(math.random(1, 1000000000))
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["X-Gitlab-Event"] = "Issue Hook"
wrk.headers["X-Gitlab-Token"] = "{TOKEN}"
request = function()
  n = n + 1
  wrk.headers["Idempotency-Key"] = "bench-" .. tostring(id) .. "-" .. tag .. "-" .. n
  return wrk.format("POST", "/hooks/gitlab", nil, body)
end
"#,
        body.display()
    )
}

struct Load {
    rps: f64,
    p50: Duration,
    p99: Duration,
}

fn wrk(addr: &str, script: &Path, secs: u64) -> Load {
    let out = Command::new("wrk")
        .args([
            "-t2",
            &format!("-c{CONNECTIONS}"),
            &format!("-d{secs}s"),
            "--latency",
            "-s",
        ])
        .arg(script)
        .arg(format!("http://{addr}/hooks/gitlab"))
        .output()
        .expect("wrk");
    let text = String::from_utf8_lossy(&out.stdout);
    let rps = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0);
    let pct = |p: &str| {
        text.lines()
            .find_map(|l| {
                l.trim()
                    .strip_prefix(p)
                    .map(|v| parse_wrk_duration(v.trim()))
            })
            .unwrap_or_default()
    };
    let non2xx = text
        .lines()
        .find(|l| l.contains("Non-2xx"))
        .unwrap_or("")
        .trim()
        .to_string();
    if !non2xx.is_empty() {
        eprintln!("{addr}: {non2xx}");
    }
    Load {
        rps,
        p50: pct("50%"),
        p99: pct("99%"),
    }
}

fn parse_wrk_duration(v: &str) -> Duration {
    let (num, unit) = v.split_at(v.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(v.len()));
    let n: f64 = num.parse().unwrap_or(0.0);
    let secs = match unit {
        "us" => n / 1e6,
        "ms" => n / 1e3,
        "s" => n,
        "m" => n * 60.0,
        _ => 0.0,
    };
    Duration::from_secs_f64(secs)
}

fn request(
    client: &reqwest::Client,
    addr: &str,
    body: &[u8],
    key: String,
) -> reqwest::RequestBuilder {
    client
        .post(format!("http://{addr}/hooks/gitlab"))
        .header("Content-Type", "application/json")
        .header("X-Gitlab-Event", "Issue Hook")
        .header("X-Gitlab-Token", TOKEN)
        .header("Idempotency-Key", key)
        .body(body.to_vec())
}

async fn closed_loop(addr: &str, body: &[u8]) -> Load {
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(LOAD_SECS);
    let count = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for c in 0..CONNECTIONS {
        let (client, addr, body, count) = (
            client.clone(),
            addr.to_string(),
            body.to_vec(),
            count.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut i = 0u64;
            while Instant::now() < deadline {
                i += 1;
                let t = Instant::now();
                if request(&client, &addr, &body, format!("cl-{c}-{i}"))
                    .send()
                    .await
                    .is_ok()
                {
                    lat.push(t.elapsed());
                    count.fetch_add(1, Ordering::Relaxed);
                }
            }
            lat
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap_or_default());
    }
    all.sort();
    Load {
        rps: count.load(Ordering::Relaxed) as f64 / LOAD_SECS as f64,
        p50: percentile(&all, 0.50),
        p99: percentile(&all, 0.99),
    }
}

struct Paced {
    sent: u64,
    errors: u64,
    p50: Duration,
    p99: Duration,
    max: Duration,
}

async fn paced(addr: &str, body: &[u8]) -> Paced {
    paced_for(addr, body, PACED_SECS, "paced").await
}

/// [`PACED_RATE`] requests a second for `secs` seconds, their dedupe keys starting with `tag`.
async fn paced_for(addr: &str, body: &[u8], secs: u64, tag: &str) -> Paced {
    let client = reqwest::Client::new();
    let total = PACED_RATE * secs;
    let mut ticker = tokio::time::interval(Duration::from_micros(1_000_000 / PACED_RATE));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut tasks = Vec::with_capacity(total as usize);
    for i in 0..total {
        ticker.tick().await;
        let req = request(&client, addr, body, format!("{tag}-{i}"));
        tasks.push(tokio::spawn(async move {
            let t = Instant::now();
            match req.send().await {
                Ok(r) if r.status().is_success() => Some(t.elapsed()),
                _ => None,
            }
        }));
    }
    let mut lat = Vec::new();
    let mut errors = 0;
    for t in tasks {
        match t.await.ok().flatten() {
            Some(d) => lat.push(d),
            None => errors += 1,
        }
    }
    lat.sort();
    Paced {
        sent: total,
        errors,
        p50: percentile(&lat, 0.50),
        p99: percentile(&lat, 0.99),
        max: lat.last().copied().unwrap_or_default(),
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn fmt(d: Duration) -> String {
    if d < Duration::from_millis(1) {
        format!("{}µs", d.as_micros())
    } else {
        format!("{:.2}ms", d.as_secs_f64() * 1000.0)
    }
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

/// Samples a process's RSS on a thread: the peak of a load run, or the course of a soak.
struct RssSampler {
    stop: Arc<AtomicBool>,
    handle: std::thread::JoinHandle<Vec<(Duration, u64)>>,
}

impl RssSampler {
    /// Samples every 50 ms (for the peak of a short run).
    fn start(pid: u32) -> RssSampler {
        Self::every(pid, Duration::from_millis(50))
    }

    /// Samples at start, every `period`, and when stopped.
    fn every(pid: u32, period: Duration) -> RssSampler {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let handle = std::thread::spawn(move || {
            let started = Instant::now();
            let mut samples = Vec::new();
            while !flag.load(Ordering::Relaxed) {
                samples.push((started.elapsed(), rss_kib(pid)));
                let next = started + period * samples.len() as u32;
                while Instant::now() < next && !flag.load(Ordering::Relaxed) {
                    std::thread::sleep(period.min(Duration::from_millis(100)));
                }
            }
            samples.push((started.elapsed(), rss_kib(pid)));
            samples
        });
        RssSampler { stop, handle }
    }

    /// The samples, each with the time since the start.
    fn samples(self) -> Vec<(Duration, u64)> {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.join().unwrap_or_default()
    }

    /// The highest sample.
    fn stop(self) -> u64 {
        self.samples()
            .into_iter()
            .map(|(_, kib)| kib)
            .max()
            .unwrap_or(0)
    }
}

/// Seconds of the `soak` case (`GCB_BENCH_SOAK_SECS` to shorten it), and between two samples.
const SOAK_SECS: u64 = 600;
const SOAK_SAMPLE: Duration = Duration::from_secs(30);

/// The `soak` case's figures: the bridge's RSS every [`SOAK_SAMPLE`] at a steady
/// [`PACED_RATE`] requests/s, and the acknowledgement latency over the whole run.
struct Soak {
    secs: u64,
    rss: Vec<(Duration, u64)>,
    paced: Paced,
}

impl Soak {
    fn print(&self) {
        let mib = |kib: u64| kib as f64 / 1024.0;
        println!(
            "RSS at a steady {PACED_RATE} req/s for {} s (target < 80 MiB, flat ± 5 MiB over 10 minutes)",
            self.secs
        );
        let line: Vec<String> = self
            .rss
            .iter()
            .map(|(t, kib)| format!("{}s {:.1}", t.as_secs(), mib(*kib)))
            .collect();
        println!("  MiB: {}", line.join(", "));
        // From the first minute on (allocator pools and caches warm up in the first seconds).
        let settled: Vec<u64> = self
            .rss
            .iter()
            .filter(|(t, _)| *t >= Duration::from_secs(60))
            .map(|(_, k)| *k)
            .collect();
        if let (Some(lo), Some(hi)) = (settled.iter().min(), settled.iter().max()) {
            println!(
                "  from 60 s on: min {:.1}  max {:.1}  spread {:.1} MiB",
                mib(*lo),
                mib(*hi),
                mib(hi - lo)
            );
        }
        println!(
            "  ack latency: p50 {}  p99 {}  max {}  ({} requests, {} errors)",
            fmt(self.paced.p50),
            fmt(self.paced.p99),
            fmt(self.paced.max),
            self.paced.sent,
            self.paced.errors
        );
    }
}

/// The `soak` case: a fresh bridge on the idle config, [`PACED_RATE`] requests/s for
/// [`SOAK_SECS`], its RSS sampled meanwhile.
fn soak(dir: &Path, sync: &str, rt: &tokio::runtime::Runtime, body: &[u8]) -> Soak {
    let secs = std::env::var("GCB_BENCH_SOAK_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(SOAK_SECS);
    let config = default_config(dir, sync);
    let (mut bridge, port) = spawn_bridge(&config);
    let addr = format!("127.0.0.1:{port}");
    wait_healthz(&addr);
    let sampling = RssSampler::every(bridge.id(), SOAK_SAMPLE);
    let paced = rt.block_on(paced_for(&addr, body, secs, "soak"));
    let rss = sampling.samples();
    let _ = bridge.kill();
    let _ = bridge.wait();
    Soak { secs, rss, paced }
}

/// CPU time of each of a process's threads (`/proc/PID/task/*/stat`), by thread id, with the
/// thread's name: the bench's per-thread profile of one load run.
struct ThreadCpu(std::collections::HashMap<u32, (String, u64)>);

/// Linux's `USER_HZ`: the unit of `/proc`'s CPU times.
const TICKS_PER_SEC: u64 = 100;

impl ThreadCpu {
    fn sample(pid: u32) -> ThreadCpu {
        let mut threads = std::collections::HashMap::new();
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
            return ThreadCpu(threads);
        };
        for task in tasks.flatten() {
            let Some(tid) = task.file_name().to_str().and_then(|t| t.parse().ok()) else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) else {
                continue;
            };
            // `tid (name) state …`: the name may hold blanks and parentheses.
            let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
                continue;
            };
            let name = stat[open + 1..close].to_string();
            let fields: Vec<&str> = stat[close + 1..].split_whitespace().collect();
            let ticks = |i: usize| {
                fields
                    .get(i)
                    .and_then(|v| v.parse::<u64>().ok())
                    .unwrap_or(0)
            };
            // utime and stime: fields 14 and 15 of the line, 11 and 12 after the name.
            threads.insert(tid, (name, ticks(11) + ticks(12)));
        }
        ThreadCpu(threads)
    }

    /// The CPU each thread name used since this sample (threads started since count whole).
    fn since(&self, pid: u32) -> ThreadCpu {
        let now = ThreadCpu::sample(pid);
        let mut used: std::collections::HashMap<u32, (String, u64)> =
            std::collections::HashMap::new();
        for (tid, (name, ticks)) in now.0 {
            let before = self.0.get(&tid).map_or(0, |(_, t)| *t);
            used.insert(tid, (name, ticks.saturating_sub(before)));
        }
        ThreadCpu(used)
    }

    /// One line: each thread name's CPU per webhook (µs) and share of the process's CPU.
    fn print(&self, webhooks: f64) {
        let mut by_name: std::collections::BTreeMap<&str, u64> = std::collections::BTreeMap::new();
        for (name, ticks) in self.0.values() {
            *by_name.entry(name.as_str()).or_default() += ticks;
        }
        let total: u64 = by_name.values().sum();
        let mut rows: Vec<(&str, u64)> = by_name.into_iter().filter(|(_, t)| *t > 0).collect();
        rows.sort_by_key(|(_, t)| std::cmp::Reverse(*t));
        let per = |ticks: u64| ticks as f64 * 1e6 / TICKS_PER_SEC as f64 / webhooks.max(1.0);
        let parts: Vec<String> = rows
            .iter()
            .map(|(name, t)| {
                format!(
                    "{name} {:.0} µs ({:.0} %)",
                    per(*t),
                    *t as f64 * 100.0 / total.max(1) as f64
                )
            })
            .collect();
        println!(
            "  bridge CPU per webhook: {:.0} µs: {}",
            per(total),
            parts.join(", ")
        );
    }
}

/// Events waiting to be routed when the drain run starts.
const DRAIN_EVENTS: usize = 20_000;

/// The drain run's figures.
struct Drain {
    paced: Paced,
    /// The durable reference at the same rate, right before (the floor on this machine now).
    reference: Paced,
    /// When the router stage had routed every stored event, from the start of the paced run.
    drained: Option<Duration>,
}

/// Now, as unix ms (the rows the bench writes itself).
fn unix_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Stores [`DRAIN_EVENTS`] received events that are not routed yet (as `serve` would have
/// left them after a burst), starts the bridge over them and measures acknowledgements at
/// [`PACED_RATE`] while its router stage routes them.
fn drain(
    dir: &Path,
    sync: &str,
    rt: &tokio::runtime::Runtime,
    body: &[u8],
    reference_addr: &str,
) -> Drain {
    use gitlab_chat_bridge::deliver::store::{self, RawEvent, Store};
    std::fs::create_dir_all(dir).expect("dir");
    let config = dir.join("config.toml");
    std::fs::write(&config, idle_config(sync)).expect("config");
    let path = dir.join("outbox.sqlite");
    let mut s = Store::open(&path, false).expect("store");
    let tx = s.transaction().expect("tx");
    let now = unix_ms();
    for i in 0..DRAIN_EVENTS {
        let raw = RawEvent {
            request_id: format!("backlog-{i}"),
            dedupe_key: Some(format!("backlog-{i}")),
            headers: vec![("x-gitlab-event".into(), "Issue Hook".into())],
            body: body.to_vec(),
        };
        store::insert_event(&tx, &raw, now, 0).expect("event");
    }
    tx.commit().expect("commit");
    let reference = rt.block_on(paced(reference_addr, body));
    let (mut bridge, port) = spawn_bridge(&config);
    let addr = format!("127.0.0.1:{port}");
    wait_healthz(&addr);
    let started = Instant::now();
    let watch = std::thread::spawn(move || {
        let deadline = started + Duration::from_secs(PACED_SECS + 30);
        while Instant::now() < deadline {
            if store::unrouted_count(s.conn()).is_ok_and(|n| n == 0) {
                return Some(started.elapsed());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    });
    let paced = rt.block_on(paced(&addr, body));
    let drained = watch.join().ok().flatten();
    let _ = bridge.kill();
    let _ = bridge.wait();
    Drain {
        paced,
        reference,
        drained,
    }
}

/// Messages the backlog run lets pile up.
const BACKLOG_MESSAGES: u64 = 500_000;
/// Length of each load step of the backlog run.
const BACKLOG_STEP_SECS: u64 = 5;

/// One sample of the backlog run.
struct BacklogSample {
    received: u64,
    waiting: u64,
    unrouted: u64,
    rss_kib: u64,
}

/// Streams webhooks at the bridge (one channel that cannot deliver: a closed port at the
/// default budget) in steps of [`BACKLOG_STEP_SECS`] until [`BACKLOG_MESSAGES`] messages
/// wait, then lets the router stage finish and the process idle; RSS after every step.
fn backlog(
    dir: &Path,
    sync: &str,
    script: &Path,
    have_wrk: bool,
    rt: &tokio::runtime::Runtime,
    body: &[u8],
) -> Vec<BacklogSample> {
    use gitlab_chat_bridge::deliver::store::{self, EventFilter, Store};
    std::fs::create_dir_all(dir).expect("dir");
    let config = dir.join("config.toml");
    std::fs::write(&config, idle_config(sync)).expect("config");
    let (mut bridge, port) = spawn_bridge(&config);
    let addr = format!("127.0.0.1:{port}");
    wait_healthz(&addr);
    let s = Store::open(&dir.join("outbox.sqlite"), false).expect("store");
    let sample = || {
        let received = store::list_events(
            s.conn(),
            &EventFilter {
                limit: 1,
                ..EventFilter::default()
            },
        )
        .ok()
        .and_then(|rows| rows.first().map(|r| r.id.max(0) as u64))
        .unwrap_or(0);
        let waiting = store::stats(s.conn())
            .map(|st| st.iter().map(|c| c.pending + c.retrying).sum())
            .unwrap_or(0);
        BacklogSample {
            received,
            waiting,
            unrouted: store::unrouted_count(s.conn()).unwrap_or(0),
            rss_kib: rss_kib(bridge.id()),
        }
    };
    let mut samples = vec![sample()];
    // Bounded: at 1 000 req/s, the slowest this machine ever ran, it takes 100 steps.
    for _ in 0..100 {
        if have_wrk {
            wrk(&addr, script, BACKLOG_STEP_SECS);
        } else {
            rt.block_on(closed_loop(&addr, body));
        }
        samples.push(sample());
        if samples
            .last()
            .is_some_and(|s| s.received >= BACKLOG_MESSAGES)
        {
            break;
        }
    }
    // The router stage finishes the backlog (at most 3 minutes), then the process idles.
    let deadline = Instant::now() + Duration::from_secs(180);
    while Instant::now() < deadline && store::unrouted_count(s.conn()).unwrap_or(0) > 0 {
        std::thread::sleep(Duration::from_secs(1));
    }
    samples.push(sample());
    std::thread::sleep(Duration::from_secs(10));
    samples.push(sample());
    let _ = bridge.kill();
    let _ = bridge.wait();
    samples
}
