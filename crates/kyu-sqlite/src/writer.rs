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

use crate::db;
use crate::notify::Notifier;

/// One operation queued for the writer.
pub(crate) trait Op: Send {
    /// Runs the operation inside the open transaction; true if it succeeded
    /// (its savepoint is kept), false if it failed (rolled back).
    fn run(&mut self, conn: &Connection) -> bool;
    /// Whether the (successful) run should wake idle workers after the commit.
    fn wakes(&self) -> bool;
    /// Sends the reply: the operation's own result, or `failure` when the
    /// transaction as a whole could not be begun or committed.
    fn reply(self: Box<Self>, failure: Option<&str>);
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

    fn reply(self: Box<Self>, failure: Option<&str>) {
        let r = match (failure, self.result) {
            (Some(msg), _) => Err(StoreError::Database(msg.to_string())),
            (None, Some(r)) => r,
            (None, None) => Err(StoreError::Database("the operation did not run".into())),
        };
        let _ = self.tx.send(r);
    }
}

/// Runs the writer loop until every sender is dropped.
pub(crate) fn run(
    conn: Connection,
    rx: mpsc::Receiver<Box<dyn Op>>,
    max_group: usize,
    notify: Arc<Notifier>,
    events: Arc<Notifier>,
) {
    let mut batch: Vec<Box<dyn Op>> = Vec::with_capacity(max_group);
    while let Ok(first) = rx.recv() {
        batch.push(first);
        while batch.len() < max_group {
            match rx.try_recv() {
                Ok(op) => batch.push(op),
                Err(_) => break,
            }
        }
        run_group(&conn, &mut batch, &notify, &events);
    }
    tracing::debug!("kyu-sqlite writer stopped");
}

fn exec(conn: &Connection, sql: &str) -> Result<(), StoreError> {
    conn.prepare_cached(sql)
        .and_then(|mut s| s.execute([]))
        .map(|_| ())
        .map_err(db)
}

fn run_group(
    conn: &Connection,
    batch: &mut Vec<Box<dyn Op>>,
    notify: &Notifier,
    events: &Notifier,
) {
    // Events written by a group that does not commit wake nobody.
    crate::events::take_written();
    if let Err(e) = exec(conn, "BEGIN IMMEDIATE") {
        let msg = format!("could not begin a write transaction: {e}");
        tracing::error!(error = %e, ops = batch.len(), "kyu-sqlite: BEGIN IMMEDIATE failed");
        for op in batch.drain(..) {
            op.reply(Some(&msg));
        }
        return;
    }
    let mut wake = false;
    if let [op] = batch.as_mut_slice() {
        // Alone in its transaction: no savepoint needed, a failure rolls back.
        if op.run(conn) {
            wake = op.wakes();
        } else {
            let _ = exec(conn, "ROLLBACK");
            for op in batch.drain(..) {
                op.reply(None);
            }
            return;
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
                let _ = exec(conn, "ROLLBACK TO op");
            }
            let _ = exec(conn, "RELEASE op");
        }
    }
    if let Err(e) = exec(conn, "COMMIT") {
        tracing::error!(error = %e, ops = batch.len(), "kyu-sqlite: COMMIT failed");
        let _ = conn.execute_batch("ROLLBACK");
        let msg = format!("could not commit: {e}");
        for op in batch.drain(..) {
            op.reply(Some(&msg));
        }
        return;
    }
    if wake {
        notify.wake();
    }
    if crate::events::take_written() {
        events.wake();
    }
    for op in batch.drain(..) {
        op.reply(None);
    }
}
