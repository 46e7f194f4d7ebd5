//! Batches (see `kyu_core::batch`): the `batches` table, the counts of a
//! batch's jobs as they reach a final state, and the callbacks.
//!
//! Every write runs in the writer's transaction, and SQLite has one writer,
//! so the write that counts a batch's last job is the only one that sees it
//! done: it inserts the callbacks and sets `done_at` in that transaction.
//! The paths that end jobs ([`Tally::count`]) pass the `batch_id` of the jobs
//! they ended; a job without a batch adds nothing to do.

use std::collections::BTreeMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use kyu_core::batch::{
    callback_args, sealed_batch, unknown_batch, BatchCounts, BatchId, BatchStatus, BatchStore,
    NewBatch,
};
use kyu_core::{Enqueued, JobState, NewJob, StoreError};
use rusqlite::{params, Connection, OptionalExtension};

use crate::row::{db, from_us, us};
use crate::{fired, inserted, never, SqliteStore};

/// Migration 8: batches, and the batch of a job.
pub(crate) const MIGRATION: &str = r#"
ALTER TABLE jobs ADD COLUMN batch_id INTEGER;
CREATE INDEX jobs_batch ON jobs (batch_id, state) WHERE batch_id IS NOT NULL;
CREATE TABLE batches (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    sealed        INTEGER NOT NULL DEFAULT 0,
    total         INTEGER NOT NULL DEFAULT 0,
    succeeded     INTEGER NOT NULL DEFAULT 0,
    failed        INTEGER NOT NULL DEFAULT 0,
    cancelled     INTEGER NOT NULL DEFAULT 0,
    created_at    INTEGER NOT NULL,
    done_at       INTEGER,
    on_complete   TEXT,
    on_success    TEXT,
    callback_jobs TEXT NOT NULL DEFAULT '[]'
);
"#;

/// Count changes of batches, by batch: (succeeded, failed, cancelled).
#[derive(Default)]
pub(crate) struct Tally(BTreeMap<BatchId, [i64; 3]>);

impl Tally {
    /// Counts a job of `batch` that entered (`+1`) or left (`-1`) `state`;
    /// nothing for a job without a batch or a state that is not final.
    pub(crate) fn add(&mut self, batch: Option<BatchId>, state: JobState, by: i64) {
        let Some(b) = batch else { return };
        let i = match state {
            JobState::Completed => 0,
            JobState::Failed => 1,
            JobState::Cancelled => 2,
            _ => return,
        };
        self.0.entry(b).or_default()[i] += by;
    }

    /// Writes the counts and fires every batch they made done. True if a
    /// callback was enqueued (workers should be woken).
    pub(crate) fn count(self, conn: &Connection, now: DateTime<Utc>) -> Result<bool, StoreError> {
        let mut fired = false;
        for (id, [s, f, c]) in self.0 {
            conn.prepare_cached(
                "UPDATE batches SET succeeded = succeeded + ?1, failed = failed + ?2, \
                 cancelled = cancelled + ?3 WHERE id = ?4",
            )
            .and_then(|mut st| st.execute(params![s, f, c, id]))
            .map_err(db)?;
            fired |= fire_if_done(conn, now, id)?;
        }
        Ok(fired)
    }
}

/// The batch of job `id`, for the paths that read nothing else first.
pub(crate) fn batch_of(conn: &Connection, id: i64) -> Result<Option<BatchId>, StoreError> {
    conn.prepare_cached("SELECT batch_id FROM jobs WHERE id = ?1")
        .and_then(|mut s| s.query_row([id], |r| r.get(0)).optional())
        .map(Option::flatten)
        .map_err(db)
}

/// If batch `id` is sealed, not yet done, and every job is counted:
/// enqueues its callbacks and marks it done. True if it did.
fn fire_if_done(conn: &Connection, now: DateTime<Utc>, id: BatchId) -> Result<bool, StoreError> {
    #[allow(clippy::type_complexity)]
    let row: Option<(i64, i64, i64, i64, Option<String>, Option<String>)> = conn
        .prepare_cached(
            "SELECT total, succeeded, failed, cancelled, on_complete, on_success FROM batches \
             WHERE id = ?1 AND sealed = 1 AND done_at IS NULL \
             AND succeeded + failed + cancelled >= total",
        )
        .and_then(|mut s| {
            s.query_row([id], |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                ))
            })
            .optional()
        })
        .map_err(db)?;
    let Some((total, succeeded, failed, cancelled, on_complete, on_success)) = row else {
        return Ok(false);
    };
    let counts = BatchCounts {
        id,
        total: total.max(0) as u64,
        succeeded: succeeded.max(0) as u64,
        failed: failed.max(0) as u64,
        cancelled: cancelled.max(0) as u64,
    };
    let mut jobs = Vec::new();
    let all_ok = failed == 0 && cancelled == 0;
    for spec in [on_complete, on_success.filter(|_| all_ok)]
        .into_iter()
        .flatten()
    {
        let mut job: NewJob = serde_json::from_str(&spec).map_err(StoreError::database)?;
        job.args = callback_args(&job.args, &counts)?;
        jobs.push(job);
    }
    let ids: Vec<i64> = crate::enqueue::enqueue(conn, now, jobs)?
        .iter()
        .map(|e| e.id)
        .collect();
    conn.prepare_cached("UPDATE batches SET done_at = ?1, callback_jobs = ?2 WHERE id = ?3")
        .and_then(|mut s| {
            s.execute(params![
                us(now),
                serde_json::to_string(&ids).expect("ids serialize"),
                id
            ])
        })
        .map_err(db)?;
    let e = kyu_core::NewEvent::other(now, kyu_core::EventType::BatchCompleted).facts(
        kyu_core::EventFacts {
            message: Some(kyu_core::batch::completed_message(&counts)),
            ..kyu_core::EventFacts::default()
        },
    );
    crate::events::write_one(conn, &e)?;
    tracing::info!(
        batch_id = id,
        callbacks = ids.len(),
        "kyu-sqlite: batch done"
    );
    Ok(true)
}

fn status(conn: &Connection, id: BatchId) -> Result<Option<BatchStatus>, StoreError> {
    #[allow(clippy::type_complexity)]
    let row: Option<(
        bool,
        i64,
        i64,
        i64,
        i64,
        i64,
        Option<i64>,
        Option<String>,
        Option<String>,
        String,
    )> = conn
        .prepare_cached(
            "SELECT sealed, total, succeeded, failed, cancelled, created_at, done_at, \
             on_complete, on_success, callback_jobs FROM batches WHERE id = ?1",
        )
        .and_then(|mut s| {
            s.query_row([id], |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                    r.get(6)?,
                    r.get(7)?,
                    r.get(8)?,
                    r.get(9)?,
                ))
            })
            .optional()
        })
        .map_err(db)?;
    let Some((sealed, total, s, f, c, created, done, oc, os, cbs)) = row else {
        return Ok(None);
    };
    let running: i64 = conn
        .prepare_cached("SELECT count(*) FROM jobs WHERE batch_id = ?1 AND state = 'running'")
        .and_then(|mut st| st.query_row([id], |r| r.get(0)))
        .map_err(db)?;
    let kind_of = |spec: Option<String>| -> Option<String> {
        spec.and_then(|s| serde_json::from_str::<NewJob>(&s).ok())
            .map(|j| j.kind)
    };
    let n = |v: i64| v.max(0) as u64;
    Ok(Some(BatchStatus {
        id,
        sealed,
        total: n(total),
        pending: n(total - s - f - c - running),
        running: n(running),
        succeeded: n(s),
        failed: n(f),
        cancelled: n(c),
        created_at: from_us(created),
        done_at: done.map(from_us),
        on_complete: kind_of(oc),
        on_success: kind_of(os),
        callback_jobs: serde_json::from_str(&cbs).unwrap_or_default(),
    }))
}

fn add(
    conn: &Connection,
    now: DateTime<Utc>,
    id: BatchId,
    jobs: Vec<NewJob>,
) -> Result<Vec<Enqueued>, StoreError> {
    let sealed: Option<bool> = conn
        .prepare_cached("SELECT sealed FROM batches WHERE id = ?1")
        .and_then(|mut s| s.query_row([id], |r| r.get(0)).optional())
        .map_err(db)?;
    match sealed {
        None => return Err(unknown_batch(id)),
        Some(true) => return Err(sealed_batch(id)),
        Some(false) => {}
    }
    let out = crate::enqueue::enqueue(conn, now, jobs)?;
    let mut set = conn
        .prepare_cached("UPDATE jobs SET batch_id = ?1 WHERE id = ?2")
        .map_err(db)?;
    let mut added = 0i64;
    for e in out.iter().filter(|e| !e.duplicate) {
        set.execute(params![id, e.id]).map_err(db)?;
        added += 1;
    }
    conn.prepare_cached("UPDATE batches SET total = total + ?1 WHERE id = ?2")
        .and_then(|mut s| s.execute(params![added, id]))
        .map_err(db)?;
    Ok(out)
}

#[async_trait]
impl BatchStore for SqliteStore {
    async fn create_batch(&self, batch: NewBatch) -> Result<BatchId, StoreError> {
        batch.validate(&self.inner.limits)?;
        let spec = |j: &Option<NewJob>| {
            j.as_ref()
                .map(|j| serde_json::to_string(j).expect("a job serializes"))
        };
        let (oc, os) = (spec(&batch.on_complete), spec(&batch.on_success));
        let clock = self.now_fn();
        self.write(never, move |c| {
            c.prepare_cached(
                "INSERT INTO batches (created_at, on_complete, on_success) VALUES (?1, ?2, ?3)",
            )
            .and_then(|mut s| s.execute(params![us(clock.now()), oc, os]))
            .map_err(db)?;
            Ok(c.last_insert_rowid())
        })
        .await
    }

    async fn add_to_batch(
        &self,
        id: BatchId,
        jobs: Vec<NewJob>,
    ) -> Result<Vec<Enqueued>, StoreError> {
        NewJob::validate_batch(&jobs, &self.inner.limits)?;
        self.check_space()?;
        let clock = self.now_fn();
        self.write(inserted, move |c| add(c, clock.now(), id, jobs))
            .await
    }

    async fn seal_batch(&self, id: BatchId) -> Result<BatchStatus, StoreError> {
        let clock = self.now_fn();
        let (s, _) = self
            .write(fired, move |c| {
                let n = c
                    .prepare_cached("UPDATE batches SET sealed = 1 WHERE id = ?1")
                    .and_then(|mut s| s.execute([id]))
                    .map_err(db)?;
                if n == 0 {
                    return Err(unknown_batch(id));
                }
                let fired = fire_if_done(c, clock.now(), id)?;
                let s = status(c, id)?.ok_or_else(|| unknown_batch(id))?;
                Ok((s, fired))
            })
            .await?;
        Ok(s)
    }

    async fn batch(&self, id: BatchId) -> Result<Option<BatchStatus>, StoreError> {
        self.read(move |c| status(c, id)).await
    }

    async fn list_batches(&self, limit: usize) -> Result<Vec<BatchStatus>, StoreError> {
        self.read(move |c| {
            let ids: Vec<i64> = c
                .prepare_cached("SELECT id FROM batches ORDER BY id DESC LIMIT ?1")
                .and_then(|mut s| {
                    s.query_map([i64::try_from(limit).unwrap_or(i64::MAX)], |r| r.get(0))?
                        .collect()
                })
                .map_err(db)?;
            let mut out = Vec::with_capacity(ids.len());
            for id in ids {
                out.extend(status(c, id)?);
            }
            Ok(out)
        })
        .await
    }
}
