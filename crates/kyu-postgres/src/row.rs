//! Conversions between rows and kyu-core types. Times are `timestamptz`
//! (microseconds, UTC); args and results are `text` (JSON kept byte for byte);
//! attempt errors are a `jsonb` array; tags a `text[]`.

use std::time::Duration;

use chrono::{DateTime, Utc};
use kyu_core::{AttemptError, JobRecord, JobState, Progress, RetryPolicy, StoreError};
use sqlx::postgres::PgRow;
use sqlx::Row;

/// Maps a sqlx error to a store error.
pub(crate) fn db(e: sqlx::Error) -> StoreError {
    StoreError::database(e)
}

/// A stored state back as a [`JobState`].
pub(crate) fn parse_state(s: &str) -> Result<JobState, StoreError> {
    s.parse::<JobState>()
        .map_err(|e| StoreError::Database(format!("unreadable job state {s:?}: {e}")))
}

/// JSON text stored by kyu, parsed.
pub(crate) fn parse_json<T: serde::de::DeserializeOwned>(
    what: &str,
    s: &str,
) -> Result<T, StoreError> {
    serde_json::from_str(s)
        .map_err(|e| StoreError::Database(format!("unreadable stored {what} {s:?}: {e}")))
}

/// The retry policy as stored.
pub(crate) fn retry_json(p: &RetryPolicy) -> String {
    serde_json::to_string(p).expect("a retry policy serializes")
}

/// An attempt error as appended to the `errors` jsonb array.
pub(crate) fn error_json(at: DateTime<Utc>, attempt: u32, message: &str, worker: &str) -> String {
    serde_json::to_string(&AttemptError {
        at,
        attempt,
        // jsonb refuses \u0000; a handler's message may hold one.
        message: message.replace('\0', "\u{fffd}"),
        worker: worker.replace('\0', "\u{fffd}"),
    })
    .expect("an attempt error serializes")
}

/// A duration in whole milliseconds (saturating).
pub(crate) fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// `now + d`, saturating at the largest time chrono and PostgreSQL share.
pub(crate) fn plus(now: DateTime<Utc>, d: Duration) -> DateTime<Utc> {
    chrono::Duration::from_std(d)
        .ok()
        .and_then(|d| now.checked_add_signed(d))
        .unwrap_or(now + chrono::Duration::days(365 * 1000))
}

/// The columns [`job_from_row`] reads, in order.
pub(crate) const JOB_COLUMNS: &str = "id, queue, kind, args, priority, state, attempt, \
    max_attempts, retry, timeout_ms, unique_key, tags, created_at, run_at, attempted_at, \
    finished_at, worker, lease_expires_at, cancel_requested, progress_percent, \
    progress_message, result, errors::text, batch_id, rate_key";

/// A job from a row of [`JOB_COLUMNS`].
pub(crate) fn job_from_row(r: &PgRow) -> Result<JobRecord, StoreError> {
    let g = |e: sqlx::Error| StoreError::database(e);
    let timeout_ms: Option<i64> = r.try_get(9).map_err(g)?;
    let percent: Option<i16> = r.try_get(19).map_err(g)?;
    let message: Option<String> = r.try_get(20).map_err(g)?;
    let state: String = r.try_get(5).map_err(g)?;
    let retry: String = r.try_get(8).map_err(g)?;
    let errors: String = r.try_get(22).map_err(g)?;
    Ok(JobRecord {
        id: r.try_get(0).map_err(g)?,
        queue: r.try_get(1).map_err(g)?,
        kind: r.try_get(2).map_err(g)?,
        args: r.try_get(3).map_err(g)?,
        priority: r.try_get(4).map_err(g)?,
        state: parse_state(&state)?,
        attempt: r.try_get::<i32, _>(6).map_err(g)? as u32,
        max_attempts: r.try_get::<i32, _>(7).map_err(g)? as u32,
        retry: parse_json("retry policy", &retry)?,
        timeout: timeout_ms.map(|ms| Duration::from_millis(ms as u64)),
        unique_key: r.try_get(10).map_err(g)?,
        tags: r.try_get(11).map_err(g)?,
        created_at: r.try_get(12).map_err(g)?,
        run_at: r.try_get(13).map_err(g)?,
        attempted_at: r.try_get(14).map_err(g)?,
        finished_at: r.try_get(15).map_err(g)?,
        worker: r.try_get(16).map_err(g)?,
        lease_expires_at: r.try_get(17).map_err(g)?,
        cancel_requested: r.try_get(18).map_err(g)?,
        progress: percent.map(|p| Progress {
            percent: p.clamp(0, 100) as u8,
            message: message.unwrap_or_default(),
        }),
        result: r.try_get(21).map_err(g)?,
        errors: parse_json("attempt errors", &errors)?,
        batch_id: r.try_get(23).map_err(g)?,
        // '' is the "no key" bucket: the job has no key.
        rate_key: r
            .try_get::<Option<String>, _>(24)
            .map_err(g)?
            .filter(|k| !k.is_empty()),
    })
}
