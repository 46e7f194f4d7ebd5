//! Group commit: one writer thread per store owns the write connection.
//!
//! Async callers send operations over a channel, each with a oneshot reply.
//! The writer takes every operation waiting, runs them all in one
//! `BEGIN IMMEDIATE` transaction (each inside its own SAVEPOINT, so one failing
//! operation does not undo the others), commits once, wakes workers if any
//! operation made jobs runnable (and event readers if events were written),
//! and only then replies. A caller therefore
//! learns of success only once its write is durable.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc;
use std::sync::Arc;

use kyu_core::StoreError;
use rusqlite::Connection;
use tokio::sync::oneshot;

use crate::checkpoint::{self, Checkpointer};
use crate::db;
use crate::notify::Notifier;
use crate::reserve::{LowSpace, Reserve};

/// One operation queued for the writer.
pub(crate) trait Op: Send {
    /// Runs the operation inside the open transaction; true if it succeeded
    /// (its savepoint is kept), false if it failed (rolled back).
    fn run(&mut self, conn: &Connection) -> bool;
    /// Whether the (successful) run should wake idle workers after the commit.
    fn wakes(&self) -> bool;
    /// Whether the (failed) run met a full disk.
    fn disk_full(&self) -> bool;
    /// Sends the reply: the operation's own result, or `failure` when the
    /// transaction as a whole could not be begun or committed.
    fn reply(self: Box<Self>, failure: Option<&Failure>);
}

/// Why a whole group failed.
pub(crate) enum Failure {
    /// BEGIN or COMMIT failed, for this reason.
    Message(String),
    /// BEGIN or COMMIT met a full disk.
    DiskFull,
}

impl Failure {
    fn of(what: &str, e: StoreError) -> Failure {
        match e {
            StoreError::DiskFull { .. } => Failure::DiskFull,
            e => Failure::Message(format!("{what}: {e}")),
        }
    }
}

/// An operation made of a closure and the oneshot its caller waits on.
pub(crate) struct Pending<T, F> {
    f: Option<F>,
    wakes: fn(&T) -> bool,
    result: Option<Result<T, StoreError>>,
    tx: oneshot::Sender<Result<T, StoreError>>,
}

impl<T, F> Pending<T, F>
where
    T: Send + 'static,
    F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
{
    /// An operation and the receiver of its result; `wakes` tells from a
    /// successful result whether idle workers should be woken after the commit.
    pub(crate) fn queue(
        wakes: fn(&T) -> bool,
        f: F,
    ) -> (Box<dyn Op>, oneshot::Receiver<Result<T, StoreError>>) {
        let (tx, rx) = oneshot::channel();
        (
            Box::new(Pending {
                f: Some(f),
                wakes,
                result: None,
                tx,
            }),
            rx,
        )
    }
}

impl<T, F> Op for Pending<T, F>
where
    T: Send + 'static,
    F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
{
    fn run(&mut self, conn: &Connection) -> bool {
        let Some(f) = self.f.take() else { return false };
        let r = match catch_unwind(AssertUnwindSafe(|| f(conn))) {
            Ok(r) => r,
            Err(_) => Err(StoreError::Database(
                "internal error: a store operation panicked; it was rolled back".into(),
            )),
        };
        let ok = r.is_ok();
        self.result = Some(r);
        ok
    }

    fn wakes(&self) -> bool {
        matches!(&self.result, Some(Ok(r)) if (self.wakes)(r))
    }

    fn disk_full(&self) -> bool {
        matches!(&self.result, Some(Err(StoreError::DiskFull { .. })))
    }

    fn reply(self: Box<Self>, failure: Option<&Failure>) {
        let r = match (failure, self.result) {
            (Some(Failure::Message(msg)), _) => Err(StoreError::Database(msg.clone())),
            (Some(Failure::DiskFull), _) => Err(StoreError::DiskFull {
                path: String::new(),
            }),
            (None, Some(r)) => r,
            (None, None) => Err(StoreError::Database("the operation did not run".into())),
        };
        let _ = self.tx.send(r);
    }
}

/// Runs the writer loop until every sender is dropped. When a group meets a
/// full disk, `reserve` is released (see module `reserve`). With a
/// `checkpointer`, WAL checkpoints are its work, not the commits' (module
/// `checkpoint`).
pub(crate) fn run(
    conn: Connection,
    rx: mpsc::Receiver<Box<dyn Op>>,
    max_group: usize,
    notify: Arc<Notifier>,
    events: Arc<Notifier>,
    reserve: Option<Arc<Reserve>>,
    checkpointer: Option<Checkpointer>,
) {
    let mut batch: Vec<Box<dyn Op>> = Vec::with_capacity(max_group);
    // SQLite's default, unless a checkpoint thread does the work.
    let normal_pages = if checkpointer.is_some() {
        checkpoint::BACKSTOP_PAGES
    } else {
        1000
    };
    if let Err(e) = conn.pragma_update(None, "wal_autocheckpoint", normal_pages) {
        tracing::warn!(error = %e, "kyu-sqlite: could not set wal_autocheckpoint");
    }
    let mut space = LowSpace::new(reserve, normal_pages);
    while let Ok(first) = rx.recv() {
        space.check(&conn, false);
        batch.push(first);
        while batch.len() < max_group {
            match rx.try_recv() {
                Ok(op) => batch.push(op),
                Err(_) => break,
            }
        }
        if run_group(&conn, &mut batch, &notify, &events, &mut space) {
            if let Some(c) = &checkpointer {
                c.committed();
            }
        }
    }
    tracing::debug!("kyu-sqlite writer stopped");
}

fn exec(conn: &Connection, sql: &str) -> Result<(), StoreError> {
    conn.prepare_cached(sql)
        .and_then(|mut s| s.execute([]))
        .map(|_| ())
        .map_err(db)
}

/// Runs and answers one group; true if it committed. When it meets a full
/// disk the reserve is released before anyone is answered.
fn run_group(
    conn: &Connection,
    batch: &mut Vec<Box<dyn Op>>,
    notify: &Notifier,
    events: &Notifier,
    space: &mut LowSpace,
) -> bool {
    // Events written by a group that does not commit wake nobody.
    crate::events::take_written();
    if let Err(e) = exec(conn, "BEGIN IMMEDIATE") {
        tracing::error!(error = %e, ops = batch.len(), "kyu-sqlite: BEGIN IMMEDIATE failed");
        let failure = Failure::of("could not begin a write transaction", e);
        if matches!(failure, Failure::DiskFull) {
            space.check(conn, true);
        }
        for op in batch.drain(..) {
            op.reply(Some(&failure));
        }
        return false;
    }
    let mut full = false;
    let mut wake = false;
    if let [op] = batch.as_mut_slice() {
        // Alone in its transaction: no savepoint needed, a failure rolls back.
        if op.run(conn) {
            wake = op.wakes();
        } else {
            let _ = exec(conn, "ROLLBACK");
            if op.disk_full() {
                space.check(conn, true);
            }
            for op in batch.drain(..) {
                op.reply(None);
            }
            return false;
        }
    } else {
        for op in batch.iter_mut() {
            if let Err(e) = exec(conn, "SAVEPOINT op") {
                tracing::error!(error = %e, "kyu-sqlite: SAVEPOINT failed");
                continue;
            }
            if op.run(conn) {
                wake |= op.wakes();
            } else {
                full |= op.disk_full();
                let _ = exec(conn, "ROLLBACK TO op");
            }
            let _ = exec(conn, "RELEASE op");
        }
    }
    if let Err(e) = exec(conn, "COMMIT") {
        tracing::error!(error = %e, ops = batch.len(), "kyu-sqlite: COMMIT failed");
        let _ = conn.execute_batch("ROLLBACK");
        // A full disk may have rolled the whole transaction back already.
        let failure = if full {
            Failure::DiskFull
        } else {
            Failure::of("could not commit", e)
        };
        if matches!(failure, Failure::DiskFull) {
            space.check(conn, true);
        }
        for op in batch.drain(..) {
            op.reply(Some(&failure));
        }
        return false;
    }
    if wake {
        notify.wake();
    }
    if crate::events::take_written() {
        events.wake();
    }
    if full {
        space.check(conn, true);
    }
    for op in batch.drain(..) {
        op.reply(None);
    }
    true
}
