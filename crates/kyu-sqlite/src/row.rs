//! Conversions between rows and kyu-core types: times as integer microseconds
//! since the Unix epoch (UTC), lists and policies as JSON text.

use std::time::Duration;

use chrono::{DateTime, Utc};
use kyu_core::{AttemptError, JobRecord, JobState, Progress, RetryPolicy, StoreError};
use rusqlite::Row;

/// A time as stored: microseconds since the Unix epoch, UTC.
pub(crate) fn us(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

/// A stored time back as a `DateTime`.
pub(crate) fn from_us(v: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(v).unwrap_or_default()
}

/// A duration in whole microseconds (saturating).
pub(crate) fn dur_us(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

/// A state as stored.
pub(crate) fn parse_state(s: &str) -> rusqlite::Result<JobState> {
    s.parse::<JobState>().map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e))
    })
}

pub(crate) fn parse_json<T: serde::de::DeserializeOwned>(
    col: usize,
    s: &str,
) -> rusqlite::Result<T> {
    serde_json::from_str(s).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(col, rusqlite::types::Type::Text, Box::new(e))
    })
}

/// The retry policy as stored.
pub(crate) fn retry_json(p: &RetryPolicy) -> String {
    serde_json::to_string(p).expect("a retry policy serializes")
}

/// An attempt error as stored in the `errors` JSON array.
pub(crate) fn error_json(at: DateTime<Utc>, attempt: u32, message: &str, worker: &str) -> String {
    serde_json::to_string(&AttemptError {
        at,
        attempt,
        message: message.to_string(),
        worker: worker.to_string(),
    })
    .expect("an attempt error serializes")
}

/// The columns [`job_from_row`] reads, in order.
pub(crate) const JOB_COLUMNS: &str = "id, queue, kind, args, priority, state, attempt, \
    max_attempts, retry, timeout_ms, unique_key, tags, created_at, run_at, attempted_at, \
    finished_at, worker, lease_expires_at, cancel_requested, progress_percent, \
    progress_message, result, errors, batch_id, rate_key";

/// A job from a row of [`JOB_COLUMNS`].
pub(crate) fn job_from_row(r: &Row<'_>) -> rusqlite::Result<JobRecord> {
    let timeout_ms: Option<i64> = r.get(9)?;
    let percent: Option<i64> = r.get(19)?;
    let message: Option<String> = r.get(20)?;
    Ok(JobRecord {
        id: r.get(0)?,
        queue: r.get(1)?,
        kind: r.get(2)?,
        args: r.get(3)?,
        priority: r.get(4)?,
        state: parse_state(&r.get::<_, String>(5)?)?,
        attempt: r.get(6)?,
        max_attempts: r.get(7)?,
        retry: parse_json(8, &r.get::<_, String>(8)?)?,
        timeout: timeout_ms.map(|ms| Duration::from_millis(ms as u64)),
        unique_key: r.get(10)?,
        tags: parse_json(11, &r.get::<_, String>(11)?)?,
        created_at: from_us(r.get(12)?),
        run_at: from_us(r.get(13)?),
        attempted_at: r.get::<_, Option<i64>>(14)?.map(from_us),
        finished_at: r.get::<_, Option<i64>>(15)?.map(from_us),
        worker: r.get(16)?,
        lease_expires_at: r.get::<_, Option<i64>>(17)?.map(from_us),
        cancel_requested: r.get(18)?,
        progress: percent.map(|p| Progress {
            percent: p.clamp(0, 100) as u8,
            message: message.unwrap_or_default(),
        }),
        result: r.get(21)?,
        errors: parse_json(22, &r.get::<_, String>(22)?)?,
        batch_id: r.get(23)?,
        // '' is the "no key" bucket: the job has no key.
        rate_key: r.get::<_, Option<String>>(24)?.filter(|k| !k.is_empty()),
    })
}

/// Maps a rusqlite error to a store error.
///
/// `SQLITE_FULL` becomes [`StoreError::DiskFull`] with no path yet: the
/// store's `read` and `write` name the file (see [`crate::named`]).
pub(crate) fn db(e: rusqlite::Error) -> StoreError {
    if crate::reserve::is_full(&e) {
        return StoreError::DiskFull {
            path: String::new(),
        };
    }
    StoreError::database(e)
}
