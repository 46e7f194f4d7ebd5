//! Operator controls: cancel, retry, pause and resume.

use chrono::{DateTime, Utc};
use kyu_core::{CancelResult, JobId, JobState, RetryResult, StoreError};
use rusqlite::{params, Connection, OptionalExtension};

use crate::row::{db, parse_state, us};

fn state_of(conn: &Connection, id: JobId) -> Result<Option<JobState>, StoreError> {
    conn.prepare_cached("SELECT state FROM jobs WHERE id = ?1")
        .and_then(|mut s| {
            s.query_row([id], |r| parse_state(&r.get::<_, String>(0)?))
                .optional()
        })
        .map_err(db)
}

/// Cancels each id: see [`CancelResult`].
pub(crate) fn cancel(
    conn: &Connection,
    now: DateTime<Utc>,
    ids: &[JobId],
) -> Result<Vec<CancelResult>, StoreError> {
    let now_us = us(now);
    let mut out = Vec::with_capacity(ids.len());
    for &id in ids {
        let r = match state_of(conn, id)? {
            None => CancelResult::NotFound,
            Some(JobState::Scheduled | JobState::Available) => {
                conn.prepare_cached(
                    "UPDATE jobs SET state = 'cancelled', finished_at = ?1 \
                     WHERE id = ?2 AND state IN ('scheduled', 'available')",
                )
                .and_then(|mut s| s.execute(params![now_us, id]))
                .map_err(db)?;
                CancelResult::Cancelled
            }
            Some(JobState::Running) => {
                conn.prepare_cached(
                    "UPDATE jobs SET cancel_requested = 1 WHERE id = ?1 AND state = 'running'",
                )
                .and_then(|mut s| s.execute([id]))
                .map_err(db)?;
                CancelResult::Requested
            }
            Some(finished) => CancelResult::AlreadyFinished(finished),
        };
        out.push(r);
    }
    Ok(out)
}

const RETRY_SET: &str = "state = 'available', run_at = ?1, finished_at = NULL, \
    lease_expires_at = NULL, cancel_requested = 0, result = NULL, \
    max_attempts = MAX(max_attempts, attempt + 1)";

/// Retries each failed or cancelled id: see [`RetryResult`].
pub(crate) fn retry(
    conn: &Connection,
    now: DateTime<Utc>,
    ids: &[JobId],
) -> Result<Vec<RetryResult>, StoreError> {
    let now_us = us(now);
    let mut out = Vec::with_capacity(ids.len());
    for &id in ids {
        let r = match state_of(conn, id)? {
            None => RetryResult::NotFound,
            Some(JobState::Failed | JobState::Cancelled) => {
                conn.prepare_cached(&format!(
                    "UPDATE jobs SET {RETRY_SET} WHERE id = ?2 AND state IN ('failed', 'cancelled')"
                ))
                .and_then(|mut s| s.execute(params![now_us, id]))
                .map_err(db)?;
                RetryResult::Retried
            }
            Some(other) => RetryResult::NotRetryable(other),
        };
        out.push(r);
    }
    Ok(out)
}

/// Retries every failed job, of `queue` and/or `kind` if given.
pub(crate) fn retry_failed(
    conn: &Connection,
    now: DateTime<Utc>,
    queue: Option<&str>,
    kind: Option<&str>,
) -> Result<u64, StoreError> {
    conn.prepare_cached(&format!(
        "UPDATE jobs SET {RETRY_SET} WHERE state = 'failed' \
         AND (?2 IS NULL OR queue = ?2) AND (?3 IS NULL OR kind = ?3)"
    ))
    .and_then(|mut s| s.execute(params![us(now), queue, kind]))
    .map(|n| n as u64)
    .map_err(db)
}

/// Pauses or resumes a queue.
pub(crate) fn set_paused(conn: &Connection, queue: &str, paused: bool) -> Result<(), StoreError> {
    let sql = if paused {
        "INSERT INTO queues (name, paused) VALUES (?1, 1) \
         ON CONFLICT (name) DO UPDATE SET paused = 1"
    } else {
        "UPDATE queues SET paused = 0 WHERE name = ?1"
    };
    conn.prepare_cached(sql)
        .and_then(|mut s| s.execute([queue]))
        .map(|_| ())
        .map_err(db)
}
