//! Retention: deleting finished jobs (and their logs) after a while.

use chrono::{DateTime, Utc};
use kyu_core::StoreError;
use rusqlite::{params, Connection};

use crate::row::{db, us};

/// `?1` completed before, `?2` failed or cancelled before, `?3` now. A job
/// whose `unique_for` window is still open (created_at + window > now) is
/// kept: its row is what makes the key hold (see `enqueue::existing`).
const DELETABLE: &str = "((state = 'completed' AND finished_at < ?1) \
    OR (state IN ('failed', 'cancelled') AND finished_at < ?2)) \
    AND (unique_window_ms IS NULL OR created_at + unique_window_ms * 1000 <= ?3)";

/// Deletes completed jobs finished before `completed_before` and failed or
/// cancelled jobs finished before `failed_before`, except those whose unique
/// window is open at `now`. Unfinished jobs are never deleted.
pub(crate) fn delete_finished(
    conn: &Connection,
    now: DateTime<Utc>,
    completed_before: DateTime<Utc>,
    failed_before: DateTime<Utc>,
) -> Result<u64, StoreError> {
    let p = params![us(completed_before), us(failed_before), us(now)];
    conn.prepare_cached(&format!(
        "DELETE FROM job_logs WHERE job_id IN (SELECT id FROM jobs WHERE {DELETABLE})"
    ))
    .and_then(|mut s| s.execute(p))
    .map_err(db)?;
    conn.prepare_cached(&format!("DELETE FROM jobs WHERE {DELETABLE}"))
        .and_then(|mut s| s.execute(p))
        .map(|n| n as u64)
        .map_err(db)
}
