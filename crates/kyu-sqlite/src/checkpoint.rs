//! WAL checkpoints off the write path.
//!
//! SQLite's own automatic checkpoint runs inside the commit that crosses
//! `wal_autocheckpoint` pages: that commit, and every write waiting for the
//! writer behind it, waits while the WAL is copied into the database file
//! and the file is synced. Here a thread with its own connection does it
//! instead, passively (it never blocks the writer or readers), shortly after
//! commits, so the WAL stays small and the writer only writes.
//!
//! The writer's own automatic checkpoint stays on at [`BACKSTOP_PAGES`]: if
//! this thread falls behind (a reader holding an old snapshot keeps a
//! passive checkpoint from finishing), the WAL still cannot grow without
//! bound. While disk space is short the writer checkpoints every few pages
//! itself (module `reserve`).

use std::path::Path;
use std::sync::mpsc::{self, SyncSender, TrySendError};
use std::time::Duration;

use rusqlite::Connection;

/// The writer's own `wal_autocheckpoint` while this thread runs: far above
/// what the thread lets the WAL reach, so it only acts if the thread cannot.
pub(crate) const BACKSTOP_PAGES: u32 = 10_000;

/// The pause after each checkpoint: commits meanwhile share the next one.
const PAUSE: Duration = Duration::from_millis(100);

/// The writer's handle on the checkpoint thread.
pub(crate) struct Checkpointer {
    commits: SyncSender<()>,
}

impl Checkpointer {
    /// Opens a connection to `path` and starts the thread; `None` (the
    /// writer then checkpoints itself, as SQLite does by default) if either
    /// fails.
    pub(crate) fn start(path: &Path) -> Option<Checkpointer> {
        let conn = match Connection::open(path) {
            Ok(conn) => conn,
            Err(e) => {
                tracing::warn!(error = %e, "kyu-sqlite: no checkpoint thread; the writer checkpoints");
                return None;
            }
        };
        // One pending signal holds every commit made since the last
        // checkpoint began.
        let (commits, rx) = mpsc::sync_channel::<()>(1);
        std::thread::Builder::new()
            .name("kyu-sqlite-checkpoint".into())
            .spawn(move || run(conn, rx))
            .map_err(|e| {
                tracing::warn!(error = %e, "kyu-sqlite: no checkpoint thread; the writer checkpoints");
            })
            .ok()?;
        Some(Checkpointer { commits })
    }

    /// Tells the thread a group committed (never waits).
    pub(crate) fn committed(&self) {
        // Full: a signal is pending already. Disconnected: the thread is
        // gone (it never stops before the writer), and the backstop remains.
        let _: Result<(), TrySendError<()>> = self.commits.try_send(());
    }
}

/// Checkpoints after commits, at most once per [`PAUSE`], until the writer
/// is gone.
fn run(conn: Connection, commits: mpsc::Receiver<()>) {
    while commits.recv().is_ok() {
        let r = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, i64>(2)?,
            ))
        });
        match r {
            Ok((busy, log, done)) => {
                tracing::trace!(busy, log, done, "kyu-sqlite: checkpoint");
            }
            // A full disk or a locked file: the next commit tries again,
            // and the writer's backstop remains.
            Err(e) => tracing::debug!(error = %e, "kyu-sqlite: checkpoint failed"),
        }
        std::thread::sleep(PAUSE);
    }
    tracing::debug!("kyu-sqlite checkpoint thread stopped");
}
