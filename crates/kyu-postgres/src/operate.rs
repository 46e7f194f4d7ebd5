//! Operator actions on jobs by id: delete (with their logs) and run now.
//! Each locks the named rows, reads the state they were in, and changes
//! them with their events in one statement.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use kyu_core::{DeleteResult, JobId, JobState, RunNowResult, StoreError};
use sqlx::PgPool;

use crate::row::{db, parse_state};

/// The states of `ids` before the statement changed them.
fn states(rows: Vec<(i64, String)>) -> Result<HashMap<i64, JobState>, StoreError> {
    rows.into_iter()
        .map(|(id, s)| Ok((id, parse_state(&s)?)))
        .collect()
}

/// Deletes each id that is not running, with its logs: see [`DeleteResult`].
pub(crate) async fn delete_jobs(
    pool: &PgPool,
    schema: &str,
    channel: &str,
    now: DateTime<Utc>,
    ids: &[JobId],
) -> Result<Vec<DeleteResult>, StoreError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let sql = format!(
        "WITH old AS (\
           SELECT id, state FROM {schema}.jobs WHERE id = ANY($1) ORDER BY id FOR UPDATE), \
         gone AS (\
           DELETE FROM {schema}.jobs j USING old WHERE j.id = old.id AND old.state <> 'running' \
           RETURNING j.id, j.queue, j.kind, old.state, j.batch_id), \
         logs AS (DELETE FROM {schema}.job_logs WHERE job_id IN (SELECT id FROM gone)), \
         ev AS ({insert} SELECT $2, 'deleted', id, queue, kind, NULL, \
             json_build_object('state', state)::text FROM gone ORDER BY id){batches} \
         SELECT id, state FROM old",
        insert = crate::events::insert(schema),
        // A batch's job deleted before it finished counts as cancelled.
        batches = crate::batches::count_ctes(
            schema,
            "SELECT batch_id, 'cancelled', 1 FROM gone WHERE state IN ('scheduled', 'available')",
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
            None => DeleteResult::NotFound,
            Some(JobState::Running) => DeleteResult::Running,
            Some(s) => DeleteResult::Deleted(*s),
        })
        .collect())
}

/// Makes each scheduled id available now, with one notification if any
/// changed: see [`RunNowResult`].
pub(crate) async fn run_now(
    pool: &PgPool,
    schema: &str,
    channel: &str,
    now: DateTime<Utc>,
    ids: &[JobId],
) -> Result<Vec<RunNowResult>, StoreError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let sql = format!(
        "WITH old AS (\
           SELECT id, state FROM {schema}.jobs WHERE id = ANY($1) ORDER BY id FOR UPDATE), \
         changed AS (\
           UPDATE {schema}.jobs j SET state = 'available', run_at = $2 \
           FROM old WHERE j.id = old.id AND old.state = 'scheduled' \
           RETURNING j.id, j.queue, j.kind), \
         ev AS ({insert} SELECT $2, 'run_now', id, queue, kind, NULL, \
             json_build_object('state', 'available', 'run_at', $2)::text FROM changed ORDER BY id), \
         woke AS (SELECT max(pg_notify($3, '')::text) AS n FROM changed) \
         SELECT old.id, old.state FROM old, woke",
        insert = crate::events::insert(schema)
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
            None => RunNowResult::NotFound,
            Some(JobState::Scheduled) => RunNowResult::MadeAvailable,
            Some(s) => RunNowResult::NotScheduled(*s),
        })
        .collect())
}
