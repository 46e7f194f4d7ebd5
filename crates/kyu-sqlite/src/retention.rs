//! Retention: deleting finished jobs (and their logs) after a while, and
//! storing attempt logs.

use chrono::{DateTime, Utc};
use kyu_core::{AttemptLogs, JobId, StoreError};
use rusqlite::{params, Connection, OptionalExtension};

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

/// Records (replaces) the logs of one attempt of job `id`.
pub(crate) fn set_logs(conn: &Connection, id: JobId, logs: &AttemptLogs) -> Result<(), StoreError> {
    let exists: Option<i64> = conn
        .prepare_cached("SELECT 1 FROM jobs WHERE id = ?1")
        .and_then(|mut s| s.query_row([id], |r| r.get(0)).optional())
        .map_err(db)?;
    if exists.is_none() {
        return Err(StoreError::NotFound(id));
    }
    conn.prepare_cached(
        "INSERT INTO job_logs (job_id, attempt, stdout, stderr, stdout_bytes, stderr_bytes) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (job_id, attempt) DO UPDATE SET \
         stdout = excluded.stdout, stderr = excluded.stderr, \
         stdout_bytes = excluded.stdout_bytes, stderr_bytes = excluded.stderr_bytes",
    )
    .and_then(|mut s| {
        s.execute(params![
            id,
            logs.attempt,
            AttemptLogs::stored_text(&logs.stdout),
            AttemptLogs::stored_text(&logs.stderr),
            logs.stdout_bytes as i64,
            logs.stderr_bytes as i64
        ])
    })
    .map(|_| ())
    .map_err(db)
}
