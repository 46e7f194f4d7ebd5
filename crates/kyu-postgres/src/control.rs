//! Operator controls (cancel, pause, resume; retry is in `retry`) and housekeeping
//! (retention).
//!
//! Cancel locks the named rows, read the state they were in, and
//! change them in one statement, so the reply says what each job was when the
//! change was made.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use kyu_core::{CancelResult, JobId, JobState, StoreError};
use sqlx::PgPool;

use crate::row::{db, parse_state};

/// The states of `ids` before the statement changed them.
fn states(rows: Vec<(i64, String)>) -> Result<HashMap<i64, JobState>, StoreError> {
    rows.into_iter()
        .map(|(id, s)| Ok((id, parse_state(&s)?)))
        .collect()
}

/// Cancels each id: see [`CancelResult`].
pub(crate) async fn cancel(
    pool: &PgPool,
    schema: &str,
    channel: &str,
    now: DateTime<Utc>,
    ids: &[JobId],
) -> Result<Vec<CancelResult>, StoreError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let sql = format!(
        "WITH old AS (\
           SELECT id, state FROM {schema}.jobs WHERE id = ANY($1) ORDER BY id FOR UPDATE), \
         changed AS (\
           UPDATE {schema}.jobs j SET \
             state = CASE WHEN old.state IN ('scheduled', 'available') THEN 'cancelled' ELSE j.state END, \
             finished_at = CASE WHEN old.state IN ('scheduled', 'available') THEN $2 ELSE j.finished_at END, \
             cancel_requested = j.cancel_requested OR old.state = 'running' \
           FROM old WHERE j.id = old.id AND (old.state IN ('scheduled', 'available') \
             OR (old.state = 'running' AND NOT j.cancel_requested)) \
           RETURNING j.id, j.queue, j.kind, j.attempt, j.state, j.batch_id), \
         ev AS ({insert} SELECT $2, \
             CASE WHEN state = 'cancelled' THEN 'cancelled' ELSE 'cancel_requested' END, \
             id, queue, kind, CASE WHEN state = 'running' THEN attempt END, \
             json_build_object('state', state)::text FROM changed ORDER BY id){batches} \
         SELECT id, state FROM old",
        insert = crate::events::insert(schema),
        batches = crate::batches::count_ctes(
            schema,
            "SELECT batch_id, state, 1 FROM changed",
            "$2",
            "$3"
        )
    );
    let before = states(
        sqlx::query_as(&sql)
            .bind(ids)
            .bind(now)
            .bind(channel)
            .fetch_all(pool)
            .await
            .map_err(db)?,
    )?;
    Ok(ids
        .iter()
        .map(|id| match before.get(id) {
            None => CancelResult::NotFound,
            Some(JobState::Scheduled | JobState::Available) => CancelResult::Cancelled,
            Some(JobState::Running) => CancelResult::Requested,
            Some(finished) => CancelResult::AlreadyFinished(*finished),
        })
        .collect())
}

/// Pauses or resumes a queue, with its event when that changed it (true);
/// a resume wakes the workers of every process.
pub(crate) async fn set_paused(
    pool: &PgPool,
    schema: &str,
    channel: &str,
    now: DateTime<Utc>,
    queue: &str,
    paused: bool,
) -> Result<bool, StoreError> {
    // Only a change writes an event: pausing a paused queue changes nothing.
    let insert = crate::events::insert(schema);
    let sql = if paused {
        format!(
            "WITH c AS (INSERT INTO {schema}.queues (name, paused) VALUES ($1, true) \
               ON CONFLICT (name) DO UPDATE SET paused = true WHERE NOT {schema}.queues.paused \
               RETURNING name), \
             ev AS ({insert} SELECT $3, 'queue_paused', NULL, name, NULL, NULL, '{{}}' FROM c) \
             SELECT count(*) FROM c WHERE $2::text IS NOT NULL"
        )
    } else {
        format!(
            "WITH c AS (UPDATE {schema}.queues SET paused = false WHERE name = $1 AND paused \
               RETURNING name), \
             ev AS ({insert} SELECT $3, 'queue_resumed', NULL, name, NULL, NULL, '{{}}' FROM c) \
             SELECT count(*) FROM c, pg_notify($2, '')"
        )
    };
    let n: i64 = sqlx::query_scalar(&sql)
        .bind(queue)
        .bind(channel)
        .bind(now)
        .fetch_one(pool)
        .await
        .map_err(db)?;
    Ok(n > 0)
}

/// The condition of jobs retention deletes: `$1` completed before, `$2` failed
/// or cancelled before, `$3` now. Unfinished jobs are never deleted, nor a job
/// whose `unique_for` window is still open: its row is what makes the key hold.
const DELETABLE: &str = "((state = 'completed' AND finished_at < $1) \
    OR (state IN ('failed', 'cancelled') AND finished_at < $2)) \
    AND (unique_window_ms IS NULL \
      OR created_at + unique_window_ms * interval '1 millisecond' <= $3)";

/// Deletes finished jobs (and their logs) older than the cut-offs.
pub(crate) async fn delete_finished(
    pool: &PgPool,
    schema: &str,
    now: DateTime<Utc>,
    completed_before: DateTime<Utc>,
    failed_before: DateTime<Utc>,
) -> Result<u64, StoreError> {
    let sql = format!(
        "WITH gone AS (DELETE FROM {schema}.jobs WHERE {DELETABLE} RETURNING id), \
         logs AS (DELETE FROM {schema}.job_logs WHERE job_id IN (SELECT id FROM gone)) \
         SELECT count(*) FROM gone"
    );
    let n: i64 = sqlx::query_scalar(&sql)
        .bind(completed_before)
        .bind(failed_before)
        .bind(now)
        .fetch_one(pool)
        .await
        .map_err(db)?;
    Ok(n as u64)
}
