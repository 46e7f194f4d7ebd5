//! Operator controls: cancel, retry, pause and resume.

use chrono::{DateTime, Utc};
use kyu_core::{
    CancelResult, EventFacts, EventType, JobId, JobState, KeyHeld, NewEvent, RetriedFailed,
    RetryResult, StoreError,
};
use rusqlite::{params, Connection, OptionalExtension};

use crate::batches::{batch_of, Tally};
use crate::events::{write_one, EventWriter};
use crate::row::{db, parse_state, us};

/// The state, queue and kind of a job.
fn state_of(
    conn: &Connection,
    id: JobId,
) -> Result<Option<(JobState, String, String)>, StoreError> {
    conn.prepare_cached("SELECT state, queue, kind FROM jobs WHERE id = ?1")
        .and_then(|mut s| {
            s.query_row([id], |r| {
                Ok((parse_state(&r.get::<_, String>(0)?)?, r.get(1)?, r.get(2)?))
            })
            .optional()
        })
        .map_err(db)
}

/// The event of a job made `available` again by hand.
fn retried(
    events: &mut EventWriter<'_>,
    now_us: i64,
    id: JobId,
    queue: &str,
    kind: &str,
) -> Result<(), StoreError> {
    let facts = EventFacts {
        state: Some(JobState::Available),
        ..EventFacts::default()
    };
    events.job(now_us, EventType::Retried, id, queue, kind, None, &facts)
}

/// Cancels each id: see [`CancelResult`].
pub(crate) fn cancel(
    conn: &Connection,
    now: DateTime<Utc>,
    ids: &[JobId],
) -> Result<(Vec<CancelResult>, bool), StoreError> {
    let now_us = us(now);
    let mut out = Vec::with_capacity(ids.len());
    let mut events = EventWriter::new(conn)?;
    let mut tally = Tally::default();
    for &id in ids {
        let r = match state_of(conn, id)? {
            None => CancelResult::NotFound,
            Some((JobState::Scheduled | JobState::Available, queue, kind)) => {
                conn.prepare_cached(
                    "UPDATE jobs SET state = 'cancelled', finished_at = ?1 \
                     WHERE id = ?2 AND state IN ('scheduled', 'available')",
                )
                .and_then(|mut s| s.execute(params![now_us, id]))
                .map_err(db)?;
                tally.add(batch_of(conn, id)?, JobState::Cancelled, 1);
                let facts = EventFacts {
                    state: Some(JobState::Cancelled),
                    ..EventFacts::default()
                };
                events.job(
                    now_us,
                    EventType::Cancelled,
                    id,
                    &queue,
                    &kind,
                    None,
                    &facts,
                )?;
                CancelResult::Cancelled
            }
            Some((JobState::Running, queue, kind)) => {
                let attempt: Option<u32> = conn
                    .prepare_cached(
                        "UPDATE jobs SET cancel_requested = 1 \
                         WHERE id = ?1 AND state = 'running' AND cancel_requested = 0 \
                         RETURNING attempt",
                    )
                    .and_then(|mut s| s.query_row([id], |r| r.get(0)).optional())
                    .map_err(db)?;
                // Asked again while the first request stands: no change, no event.
                if let Some(attempt) = attempt {
                    let facts = EventFacts {
                        state: Some(JobState::Running),
                        ..EventFacts::default()
                    };
                    events.job(
                        now_us,
                        EventType::CancelRequested,
                        id,
                        &queue,
                        &kind,
                        Some(attempt),
                        &facts,
                    )?;
                }
                CancelResult::Requested
            }
            Some((finished, _, _)) => CancelResult::AlreadyFinished(finished),
        };
        out.push(r);
    }
    events.finish()?;
    let fired = tally.count(conn, now)?;
    Ok((out, fired))
}

const RETRY_SET: &str = "state = 'available', run_at = ?1, finished_at = NULL, \
    lease_expires_at = NULL, cancel_requested = 0, result = NULL, \
    max_attempts = MAX(max_attempts, attempt + 1)";

/// The unfinished job holding `key`, other than `id`: the job an enqueue
/// with the key would return.
fn key_holder(conn: &Connection, key: &str, id: JobId) -> Result<Option<JobId>, StoreError> {
    conn.prepare_cached(
        "SELECT id FROM jobs WHERE unique_key = ?1 AND id <> ?2 \
         AND state IN ('scheduled', 'available', 'running') ORDER BY id LIMIT 1",
    )
    .and_then(|mut s| s.query_row(params![key, id], |r| r.get(0)).optional())
    .map_err(db)
}

/// Makes one failed or cancelled job available again.
/// A job of a batch is uncounted from its batch's failed or cancelled count.
fn retry_one(conn: &Connection, now_us: i64, id: JobId) -> Result<(), StoreError> {
    let was: Option<(String, Option<i64>)> = conn
        .prepare_cached("SELECT state, batch_id FROM jobs WHERE id = ?1")
        .and_then(|mut s| s.query_row([id], |r| Ok((r.get(0)?, r.get(1)?))).optional())
        .map_err(db)?;
    let n = conn
        .prepare_cached(&format!(
            "UPDATE jobs SET {RETRY_SET} WHERE id = ?2 AND state IN ('failed', 'cancelled')"
        ))
        .and_then(|mut s| s.execute(params![now_us, id]))
        .map_err(db)?;
    if let (1, Some((state, Some(batch)))) = (n, was) {
        let mut tally = Tally::default();
        tally.add(Some(batch), parse_state(&state).map_err(db)?, -1);
        tally.count(conn, crate::row::from_us(now_us))?;
    }
    Ok(())
}

/// Retries each failed or cancelled id: see [`RetryResult`]. The ids are
/// taken in order inside one write transaction (the only writer), so a job
/// retried earlier in the call holds its key for the ones after it.
pub(crate) fn retry(
    conn: &Connection,
    now: DateTime<Utc>,
    ids: &[JobId],
) -> Result<Vec<RetryResult>, StoreError> {
    let now_us = us(now);
    let mut out = Vec::with_capacity(ids.len());
    let mut lookup = conn
        .prepare_cached("SELECT state, unique_key, queue, kind FROM jobs WHERE id = ?1")
        .map_err(db)?;
    let mut events = EventWriter::new(conn)?;
    for &id in ids {
        #[allow(clippy::type_complexity)]
        let found: Option<(JobState, Option<String>, String, String)> = lookup
            .query_row([id], |r| {
                Ok((
                    parse_state(&r.get::<_, String>(0)?)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                ))
            })
            .optional()
            .map_err(db)?;
        let r = match found {
            None => RetryResult::NotFound,
            Some((JobState::Failed | JobState::Cancelled, key, queue, kind)) => {
                let holder = match &key {
                    Some(k) => key_holder(conn, k, id)?,
                    None => None,
                };
                match (key, holder) {
                    (Some(key), Some(holder)) => RetryResult::KeyHeld { key, holder },
                    _ => {
                        retry_one(conn, now_us, id)?;
                        retried(&mut events, now_us, id, &queue, &kind)?;
                        RetryResult::Retried
                    }
                }
            }
            Some((other, _, _, _)) => RetryResult::NotRetryable(other),
        };
        out.push(r);
    }
    events.finish()?;
    Ok(out)
}

/// Retries every failed job, of `queue` and/or `kind` if given. Jobs
/// without a unique key in one statement; keyed ones one by one in id order,
/// each left failed if its key is held (by an unfinished job, or by one
/// retried just before it).
pub(crate) fn retry_failed(
    conn: &Connection,
    now: DateTime<Utc>,
    queue: Option<&str>,
    kind: Option<&str>,
) -> Result<RetriedFailed, StoreError> {
    let now_us = us(now);
    let filter = "state = 'failed' AND (?2 IS NULL OR queue = ?2) AND (?3 IS NULL OR kind = ?3)";
    #[allow(clippy::type_complexity)]
    let mut plain: Vec<(JobId, String, String, Option<i64>)> = conn
        .prepare_cached(&format!(
            "UPDATE jobs SET {RETRY_SET} WHERE {filter} AND unique_key IS NULL \
             RETURNING id, queue, kind, batch_id"
        ))
        .and_then(|mut s| {
            s.query_map(params![now_us, queue, kind], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
            })?
            .collect()
        })
        .map_err(db)?;
    // Failed jobs of batches are uncounted from their batch.
    let mut tally = Tally::default();
    for row in &plain {
        tally.add(row.3, JobState::Failed, -1);
    }
    tally.count(conn, now)?;
    plain.sort_unstable_by_key(|r| r.0);
    let mut events = EventWriter::new(conn)?;
    for (id, queue, kind, _) in &plain {
        retried(&mut events, now_us, *id, queue, kind)?;
    }
    #[allow(clippy::type_complexity)]
    let keyed: Vec<(JobId, String, String, String)> = conn
        .prepare_cached(&format!(
            "SELECT id, unique_key, queue, kind FROM jobs \
             WHERE {filter} AND unique_key IS NOT NULL ORDER BY id"
        ))
        .and_then(|mut s| {
            s.query_map(params![now_us, queue, kind], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
            })?
            .collect()
        })
        .map_err(db)?;
    let mut out = RetriedFailed {
        retried: plain.len() as u64,
        key_held: Vec::new(),
    };
    for (id, key, queue, kind) in keyed {
        match key_holder(conn, &key, id)? {
            Some(holder) => out.key_held.push(KeyHeld { id, key, holder }),
            None => {
                retry_one(conn, now_us, id)?;
                retried(&mut events, now_us, id, &queue, &kind)?;
                out.retried += 1;
            }
        }
    }
    events.finish()?;
    Ok(out)
}

/// Pauses or resumes a queue, with its event when that changed it.
pub(crate) fn set_paused(
    conn: &Connection,
    now: DateTime<Utc>,
    queue: &str,
    paused: bool,
) -> Result<(), StoreError> {
    let (sql, t) = if paused {
        (
            "INSERT INTO queues (name, paused) VALUES (?1, 1) \
             ON CONFLICT (name) DO UPDATE SET paused = 1 WHERE paused = 0",
            EventType::QueuePaused,
        )
    } else {
        (
            "UPDATE queues SET paused = 0 WHERE name = ?1 AND paused = 1",
            EventType::QueueResumed,
        )
    };
    let n = conn
        .prepare_cached(sql)
        .and_then(|mut s| s.execute([queue]))
        .map_err(db)?;
    if n > 0 {
        let mut e = NewEvent::other(now, t);
        e.queue = Some(queue.to_string());
        write_one(conn, &e)?;
    }
    Ok(())
}
