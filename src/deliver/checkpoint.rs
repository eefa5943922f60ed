//! The checkpointer: copies the outbox's write-ahead log back into the database file on its own
//! thread and connection, so the writer's commits never wait for that copy (or its fsyncs).
//!
//! SQLite's default is to checkpoint inside whichever commit crosses 1 000 log pages; under a
//! burst of webhooks that commit, and every acknowledgement grouped into it, then waits for
//! megabytes to be written and synced. Here the writer's connection has automatic checkpoints
//! off, tells this thread when a commit left the log at [`LOG_PAGES`] pages or more, and this
//! thread then runs a passive checkpoint (never blocks the writer or readers), at most every
//! [`PERIOD`].
//!
//! Under a steady stream of commits a passive checkpoint never catches up (the writer appends
//! while it copies), and the log only starts over once everything in it was copied. So when a
//! pass leaves the log at [`FINISH_OVER`] pages or more, this thread first catches up (passes
//! in a row, each copying what was appended during the one before, until one finds fewer than
//! [`FINISH_LEFT`] new pages), then asks the writer to finish ([`Checkpointer::finish_request`]):
//! between two groups the writer runs a passive checkpoint of its own, which has only those
//! few pages to copy and sync (about a millisecond), and its next commit starts the log over.
//! Nothing here ever takes the write lock: a blocking (`RESTART`) checkpoint held every
//! acknowledgement behind it for as long as SQLite's busy handler slept (1, 2, 5, 10, 15, 20…
//! milliseconds: stalls of 50 to 130 ms under load).

use super::bell::Bell;
use super::store::LogCopier;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Log length (pages) that calls for a checkpoint: SQLite's own default.
pub const LOG_PAGES: i64 = 1_000;
/// Least time between two checkpoints. Short, so that each pass has only a few megabytes to
/// write and sync: a webhook's commit syncing the log at the same moment waits behind them
/// (passes every 100 ms put p99 acknowledgements at 11 ms under load, every 20 ms at 7).
pub const PERIOD: Duration = Duration::from_millis(20);
/// Log pages (4 KiB each) a pass may leave behind before it asks the writer to finish it.
pub const FINISH_OVER: i64 = 8_192;
/// New log pages few enough for the writer to copy itself.
pub const FINISH_LEFT: i64 = 256;
/// Most passes in a row while catching up (each copies what the one before left).
const CATCH_UP_PASSES: usize = 4;

/// Handle to the checkpointer thread: tell it about commits; dropping it stops the thread.
#[derive(Debug)]
pub struct Checkpointer {
    bell: Arc<Bell>,
    stop: Arc<AtomicBool>,
    finish: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Checkpointer {
    /// Opens a connection to the store at `path` (already created and migrated) and starts the
    /// thread.
    pub fn spawn(path: &Path) -> Result<Checkpointer, String> {
        Self::spawn_finishing_over(path, FINISH_OVER)
    }

    /// As [`Checkpointer::spawn`], asking the writer to finish once a pass leaves `finish_over`
    /// log pages or more.
    pub(crate) fn spawn_finishing_over(
        path: &Path,
        finish_over: i64,
    ) -> Result<Checkpointer, String> {
        let copier = LogCopier::open(path).map_err(|e| e.to_string())?;
        let bell = Arc::new(Bell::default());
        let stop = Arc::new(AtomicBool::new(false));
        let finish = Arc::new(AtomicBool::new(false));
        let (b, s, f) = (Arc::clone(&bell), Arc::clone(&stop), Arc::clone(&finish));
        let thread = std::thread::Builder::new()
            .name("outbox-checkpoint".into())
            .spawn(move || run(&copier, &b, &s, &f, finish_over))
            .map_err(|e| format!("cannot start the checkpoint thread: {e}"))?;
        Ok(Checkpointer {
            bell,
            stop,
            finish,
            thread: Some(thread),
        })
    }

    /// A function that calls for a checkpoint (for [`Store::manual_checkpoints`]).
    ///
    /// [`Store::manual_checkpoints`]: super::store::Store::manual_checkpoints
    pub fn trigger(&self) -> impl Fn() + Send + 'static {
        let bell = Arc::clone(&self.bell);
        move || bell.ring()
    }

    /// The flag this thread raises when the writer should finish a checkpoint (see the module
    /// doc); the writer lowers it when it does.
    pub fn finish_request(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.finish)
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        self.bell.ring();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn run(copier: &LogCopier, bell: &Bell, stop: &AtomicBool, finish: &AtomicBool, finish_over: i64) {
    loop {
        // Waits for a commit (or the stop), then lets commits gather for a period.
        bell.wait(Duration::from_secs(3600));
        if stop.load(Ordering::Acquire) {
            break;
        }
        std::thread::sleep(PERIOD);
        match copier.checkpoint() {
            Ok(log) if log >= finish_over => {
                catch_up(copier, log);
                finish.store(true, Ordering::Release);
            }
            Ok(_) => {}
            Err(error) => tracing::warn!(%error, "cannot checkpoint the outbox log"),
        }
    }
    // The last commits' pages, so the next start finds a short log.
    let _ = copier.checkpoint();
}

/// Passes in a row, from a log of `log` pages, until one finds fewer than [`FINISH_LEFT`] new
/// pages (or after [`CATCH_UP_PASSES`]).
fn catch_up(copier: &LogCopier, mut log: i64) {
    for _ in 0..CATCH_UP_PASSES {
        match copier.checkpoint() {
            Ok(now) if now - log >= FINISH_LEFT => log = now,
            _ => break,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deliver::store::{self, RawEvent, Store};
    use crate::deliver::test_support::incompressible;
    use std::time::Instant;

    #[test]
    fn commits_reach_the_database_file_through_the_checkpointer(
    ) -> Result<(), Box<dyn std::error::Error>> {
        let dir = std::env::temp_dir().join(format!("gcb-checkpoint-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let path = dir.join("o.sqlite");
        let mut s = Store::open(&path, false)?;
        let c = Checkpointer::spawn(&path)?;
        s.manual_checkpoints(LOG_PAGES, c.trigger())?;
        let size = || std::fs::metadata(&path).map_or(0, |m| m.len());
        let before = size();
        let tx = s.transaction()?;
        // Bodies that do not compress: about 2 000 pages of log in all.
        let mut seed: u64 = 7;
        for i in 0..2_000 {
            let pad = String::from_utf8_lossy(&incompressible(4_000, &mut seed)).into_owned();
            let ev = RawEvent {
                request_id: format!("r{i}"),
                dedupe_key: Some(format!("k{i}")),
                headers: vec![],
                body: format!("{{\"n\":{i},\"pad\":\"{pad}\"}}").into_bytes(),
            };
            store::insert_event(&tx, &ev, 1, 0)?;
        }
        tx.commit()?;
        // The commit left the log over LOG_PAGES: the hook called the checkpointer, which
        // copies it while the checkpointer is still running (not only when it stops).
        let deadline = Instant::now() + Duration::from_secs(10);
        while size() <= before && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let copied = size() > before;
        drop(c);
        assert!(copied, "the log was not copied while the checkpointer ran");
        assert!(
            size() > before,
            "the log was never copied ({} bytes)",
            size()
        );
        let _ = std::fs::remove_dir_all(&dir);
        Ok(())
    }
}
