//! Finish: record how attempts ended, one statement per batch.
//!
//! The batch travels as parallel arrays (`unnest`). Every row is fenced by
//! `(id, attempt, state = 'running')`, so a late finish from a worker whose
//! lease expired (the job was rescued, and perhaps finished elsewhere)
//! changes nothing and is reported [`FinishResult::Stale`].
//!
//! Completions, the hot path, need nothing from the row and are one plain
//! `UPDATE … FROM unnest`. Every other outcome depends on the row (attempts
//! left, a cancel asked for meanwhile), so those rows are first locked with
//! `FOR UPDATE`, which reads their latest version, and the new state is
//! decided from that version in the same statement, by kyu-core's lifecycle
//! rule rendered as a SQL `CASE`.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use kyu_core::lifecycle::{self, Ending, SqlFacts};
use kyu_core::{Finish, FinishOutcome, FinishResult, JobId, StoreError};
use sqlx::PgPool;

use crate::events;
use crate::row::{db, error_json, parse_state};

/// Records every finish of `batch`, one result per item, in order.
pub(crate) async fn finish(
    pool: &PgPool,
    schema: &str,
    channel: &str,
    now: DateTime<Utc>,
    batch: &[Finish],
) -> Result<Vec<FinishResult>, StoreError> {
    let mut applied: HashMap<(JobId, u32), FinishResult> = HashMap::with_capacity(batch.len());
    let (done, other): (Vec<&Finish>, Vec<&Finish>) = batch
        .iter()
        .partition(|f| matches!(f.outcome, FinishOutcome::Completed { .. }));
    if !done.is_empty() {
        complete(pool, schema, channel, now, &done, &mut applied).await?;
    }
    if !other.is_empty() {
        settle(pool, schema, channel, now, &other, &mut applied).await?;
    }
    Ok(batch
        .iter()
        .map(|f| {
            applied
                .get(&(f.lease.id, f.lease.attempt))
                .copied()
                .unwrap_or(FinishResult::Stale)
        })
        .collect())
}

/// Completions: one fenced update.
async fn complete(
    pool: &PgPool,
    schema: &str,
    channel: &str,
    now: DateTime<Utc>,
    batch: &[&Finish],
    applied: &mut HashMap<(JobId, u32), FinishResult>,
) -> Result<(), StoreError> {
    let mut ids = Vec::with_capacity(batch.len());
    let mut attempts = Vec::with_capacity(batch.len());
    let mut results: Vec<Option<&str>> = Vec::with_capacity(batch.len());
    for f in batch {
        ids.push(f.lease.id);
        attempts.push(f.lease.attempt as i32);
        results.push(match &f.outcome {
            FinishOutcome::Completed { result } => result.as_deref(),
            _ => None,
        });
    }
    let facts = events::facts(&[
        ("state", "'completed'"),
        ("duration_ms", &events::ms_between("attempted_at", "$4")),
    ]);
    let sql = format!(
        "WITH done AS (\
           UPDATE {schema}.jobs j SET state = 'completed', finished_at = $4, \
             lease_expires_at = NULL, result = u.result \
           FROM unnest($1::bigint[], $2::int[], $3::text[]) AS u(id, attempt, result) \
           WHERE j.id = u.id AND j.attempt = u.attempt AND j.state = 'running' \
           RETURNING j.id, j.attempt, j.queue, j.kind, j.attempted_at, j.batch_id), \
         ev AS ({insert} SELECT $4, 'completed', id, queue, kind, attempt, {facts} \
           FROM done ORDER BY id){batches} \
         SELECT id, attempt FROM done",
        insert = events::insert(schema),
        batches = crate::batches::count_ctes(
            schema,
            "SELECT batch_id, 'completed', 1 FROM done",
            "$4",
            "$5"
        )
    );
    let done: Vec<(i64, i32)> = sqlx::query_as(&sql)
        .bind(ids)
        .bind(attempts)
        .bind(results)
        .bind(now)
        .bind(channel)
        .fetch_all(pool)
        .await
        .map_err(db)?;
    for (id, attempt) in done {
        applied.insert(
            (id, attempt as u32),
            FinishResult::Applied(kyu_core::JobState::Completed),
        );
    }
    Ok(())
}

/// Errors, snoozes, cancels and releases: lock, decide, update.
async fn settle(
    pool: &PgPool,
    schema: &str,
    channel: &str,
    now: DateTime<Utc>,
    batch: &[&Finish],
    applied: &mut HashMap<(JobId, u32), FinishResult>,
) -> Result<(), StoreError> {
    let n = batch.len();
    let mut ids = Vec::with_capacity(n);
    let mut attempts = Vec::with_capacity(n);
    let mut outcomes = Vec::with_capacity(n);
    let mut run_ats: Vec<Option<DateTime<Utc>>> = Vec::with_capacity(n);
    let mut permanent = Vec::with_capacity(n);
    let mut errors: Vec<Option<String>> = Vec::with_capacity(n);
    for f in batch {
        ids.push(f.lease.id);
        attempts.push(f.lease.attempt as i32);
        let ending = f.outcome.ending();
        outcomes.push(ending.as_str());
        run_ats.push(f.outcome.run_again_at(now));
        permanent.push(matches!(ending, Ending::Errored { permanent: true }));
        errors.push(
            f.outcome
                .error_message()
                .filter(|_| ending.records_error())
                .map(|m| error_json(now, f.lease.attempt, m, &f.worker)),
        );
    }
    // The lifecycle rule of kyu-core, rendered as SQL over the locked rows.
    let next_state = lifecycle::sql_state_case(SqlFacts {
        ending: "outcome",
        cancel_requested: "cancel_requested",
        permanent: "permanent",
        attempt: "attempt",
        max_attempts: "max_attempts",
        run_at_in_future: "run_at > $7",
        unstarted: "unstarted",
    });
    let give_back = lifecycle::sql_give_back_endings();
    let silent_endings = lifecycle::sql_silent_when_unstarted_endings();
    // Each applied row's event, named from its ending and new state as
    // kyu-core's event::for_ending names it.
    let event_type = kyu_core::event::sql_for_ending("outcome", "state");
    let facts = events::facts(&[
        ("state", "state"),
        ("error", "error::jsonb->>'message'"),
        (
            "run_at",
            "CASE WHEN state IN ('scheduled', 'available') THEN run_at END",
        ),
        // A job released before it started: why, without an error.
        ("reason", "reason"),
        ("duration_ms", &events::ms_between("attempted_at", "$7")),
    ]);
    let insert = events::insert(schema);
    let batches =
        crate::batches::count_ctes(schema, "SELECT batch_id, state, 1 FROM updated", "$7", "$8");
    // $1 ids, $2 attempts, $3 outcomes, $4 run_at, $5 permanent, $6 error json, $7 now, $8 channel.
    let sql = format!(
        "WITH u AS (\
           SELECT * FROM unnest($1::bigint[], $2::int[], $3::text[], $4::timestamptz[], \
             $5::bool[], $6::text[]) AS u(id, attempt, outcome, run_at, permanent, error)), \
         locked AS (\
           SELECT j.id, j.max_attempts, j.cancel_requested, j.unstarted, u.attempt, u.outcome, \
             u.run_at, u.permanent, u.error \
           FROM {schema}.jobs j JOIN u ON j.id = u.id \
           WHERE j.attempt = u.attempt AND j.state = 'running' \
           ORDER BY j.id FOR UPDATE OF j), \
         ruled AS (\
           SELECT id, attempt, run_at, error, outcome, {next_state} AS state, \
             unstarted AND outcome IN ({silent_endings}) AS silent \
           FROM locked), \
         decided AS (\
           SELECT id, attempt, run_at, outcome, state, \
             CASE WHEN silent THEN NULL ELSE error END AS error, \
             CASE WHEN silent THEN error::jsonb->>'message' END AS reason, \
             silent OR (outcome IN ({give_back}) AND state IN ('scheduled', 'available')) \
               AS uncount \
           FROM ruled), \
         updated AS (\
           UPDATE {schema}.jobs j SET state = d.state, \
             run_at = CASE WHEN d.state IN ('scheduled', 'available') THEN d.run_at ELSE j.run_at END, \
             finished_at = CASE WHEN d.state IN ('completed', 'failed', 'cancelled') THEN $7 END, \
             lease_expires_at = NULL, \
             errors = CASE WHEN d.error IS NULL THEN j.errors \
               ELSE j.errors || jsonb_build_array(d.error::jsonb) END, \
             attempt = j.attempt - CASE WHEN d.uncount THEN 1 ELSE 0 END, \
             unstarted = false \
           FROM decided d WHERE j.id = d.id \
           RETURNING j.id, d.attempt, j.state, j.queue, j.kind, j.attempted_at, j.run_at, \
             d.outcome, d.error, d.reason, j.batch_id), \
         ev AS ({insert} SELECT $7, {event_type}, id, queue, kind, attempt, {facts} \
           FROM updated ORDER BY id){batches} \
         SELECT u.id, u.attempt, u.state, n.notified FROM updated u CROSS JOIN \
           (SELECT max(pg_notify($8, '')::text) AS notified FROM updated \
            WHERE state = 'available') AS n"
    );
    let rows: Vec<(i64, i32, String, Option<String>)> = sqlx::query_as(&sql)
        .bind(ids)
        .bind(attempts)
        .bind(outcomes)
        .bind(run_ats)
        .bind(permanent)
        .bind(errors)
        .bind(now)
        .bind(channel)
        .fetch_all(pool)
        .await
        .map_err(db)?;
    for (id, attempt, state, _) in rows {
        applied.insert(
            (id, attempt as u32),
            FinishResult::Applied(parse_state(&state)?),
        );
    }
    Ok(())
}
