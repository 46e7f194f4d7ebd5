//! Leases: heartbeats, progress, cancel requests, and reaping expired leases.
//! Heartbeats and cancel polls are one statement per batch of leases.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use kyu_core::lifecycle::{self, EndingKind, SqlFacts};
use kyu_core::{HeartbeatReply, JobId, LeaseRef, Progress, Reaped, StoreError};
use sqlx::PgPool;

use crate::row::{db, parse_state, plus};

/// The message recorded for an attempt whose lease ran out.
pub const LEASE_EXPIRED: &str = "lease expired";

fn arrays(leases: &[LeaseRef]) -> (Vec<i64>, Vec<i32>) {
    let mut sorted = leases.to_vec();
    // Lock rows in id order, as every batch statement does: no deadlocks.
    sorted.sort();
    sorted.iter().map(|l| (l.id, l.attempt as i32)).unzip()
}

/// Extends the leases still held to now + `lease`.
pub(crate) async fn heartbeat(
    pool: &PgPool,
    schema: &str,
    now: DateTime<Utc>,
    leases: &[LeaseRef],
    lease: Duration,
) -> Result<HeartbeatReply, StoreError> {
    let (ids, attempts) = arrays(leases);
    let sql = format!(
        "UPDATE {schema}.jobs j SET lease_expires_at = $3 \
         FROM unnest($1::bigint[], $2::int[]) AS u(id, attempt) \
         WHERE j.id = u.id AND j.attempt = u.attempt AND j.state = 'running' \
         RETURNING j.id, j.attempt, j.cancel_requested"
    );
    let held: HashMap<(i64, u32), bool> = sqlx::query_as::<_, (i64, i32, bool)>(&sql)
        .bind(ids)
        .bind(attempts)
        .bind(plus(now, lease))
        .fetch_all(pool)
        .await
        .map_err(db)?
        .into_iter()
        .map(|(id, attempt, cancel)| ((id, attempt as u32), cancel))
        .collect();
    let mut reply = HeartbeatReply::default();
    for l in leases {
        match held.get(&(l.id, l.attempt)) {
            None => reply.lost.push(l.id),
            Some(true) => reply.cancel_requested.push(l.id),
            Some(false) => {}
        }
    }
    Ok(reply)
}

/// The jobs among `leases`, still running that attempt, whose cancel was asked for.
pub(crate) async fn cancel_requests(
    pool: &PgPool,
    schema: &str,
    leases: &[LeaseRef],
) -> Result<Vec<JobId>, StoreError> {
    let (ids, attempts) = arrays(leases);
    let sql = format!(
        "SELECT j.id, j.attempt FROM {schema}.jobs j \
         JOIN unnest($1::bigint[], $2::int[]) AS u(id, attempt) \
           ON j.id = u.id AND j.attempt = u.attempt \
         WHERE j.state = 'running' AND j.cancel_requested"
    );
    let found: Vec<(i64, i32)> = sqlx::query_as(&sql)
        .bind(ids)
        .bind(attempts)
        .fetch_all(pool)
        .await
        .map_err(db)?;
    Ok(leases
        .iter()
        .filter(|l| found.contains(&(l.id, l.attempt as i32)))
        .map(|l| l.id)
        .collect())
}

/// Records progress; false if the attempt is no longer running.
pub(crate) async fn set_progress(
    pool: &PgPool,
    schema: &str,
    now: DateTime<Utc>,
    lease: LeaseRef,
    progress: &Progress,
) -> Result<bool, StoreError> {
    let facts = crate::events::facts(&[
        ("progress", "progress_percent"),
        ("message", "NULLIF(progress_message, '')"),
    ]);
    let sql = format!(
        "WITH p AS (\
           UPDATE {schema}.jobs SET progress_percent = $1, progress_message = $2 \
           WHERE id = $3 AND attempt = $4 AND state = 'running' \
           RETURNING id, queue, kind, attempt, progress_percent, progress_message), \
         ev AS ({} SELECT $5, 'progress', id, queue, kind, attempt, {facts} FROM p) \
         SELECT count(*) FROM p",
        crate::events::insert(schema)
    );
    let n: i64 = sqlx::query_scalar(&sql)
        .bind(i16::from(progress.percent.min(100)))
        .bind(&progress.message)
        .bind(lease.id)
        .bind(lease.attempt as i32)
        .bind(now)
        .fetch_one(pool)
        .await
        .map_err(db)?;
    Ok(n == 1)
}

/// Makes up to `limit` running jobs whose lease ran out (lease_expires_at <= now)
/// runnable again, failed (no attempts left) or cancelled (a cancel was asked
/// for); the lost attempt is recorded. A job claimed ahead and never started
/// (module `prefetch`) is given back instead: its attempt not counted, no
/// error, a `released` event saying why. Rows being finished or reaped by
/// another process right now are skipped.
pub(crate) async fn reap_expired(
    pool: &PgPool,
    schema: &str,
    channel: &str,
    now: DateTime<Utc>,
    limit: usize,
) -> Result<Vec<Reaped>, StoreError> {
    // The attempt error is built in SQL (the worker differs per row), in the
    // same shape serde gives kyu_core::AttemptError.
    let at = serde_json::to_value(now).map_err(StoreError::database)?;
    let next_state = lifecycle::sql_state_case_for(
        EndingKind::LeaseExpired,
        SqlFacts {
            ending: "",
            cancel_requested: "cancel_requested",
            permanent: "false",
            attempt: "attempt",
            max_attempts: "max_attempts",
            run_at_in_future: "false",
            unstarted: "unstarted",
        },
    );
    // A job that never started was given back, not lost: a release (its
    // attempt not counted, no error: `unstarted` below stands for the
    // lifecycle rule's `silent_when_unstarted` of a lease expiry).
    debug_assert!(EndingKind::LeaseExpired.silent_when_unstarted());
    let event_type = kyu_core::event::sql_for_ending(
        "CASE WHEN unstarted THEN 'released' ELSE 'lease_expired' END",
        "state",
    );
    let facts = crate::events::facts(&[
        ("state", "state"),
        ("worker", "worker"),
        ("error", "CASE WHEN NOT unstarted THEN $4::text END"),
        (
            "reason",
            "CASE WHEN unstarted THEN replace($6, '{worker}', COALESCE(worker, '')) END",
        ),
        (
            "duration_ms",
            &crate::events::ms_between("attempted_at", "$1"),
        ),
    ]);
    let insert = crate::events::insert(schema);
    let batches =
        crate::batches::count_ctes(schema, "SELECT batch_id, state, 1 FROM updated", "$1", "$5");
    let sql = format!(
        "WITH expired AS (\
           SELECT id, attempt, max_attempts, cancel_requested, worker, unstarted \
           FROM {schema}.jobs \
           WHERE state = 'running' AND lease_expires_at <= $1 \
           ORDER BY lease_expires_at, id LIMIT $2 FOR UPDATE SKIP LOCKED), \
         decided AS (\
           SELECT *, {next_state} AS next \
           FROM expired), \
         updated AS (\
           UPDATE {schema}.jobs j SET state = d.next, \
             run_at = CASE WHEN d.next = 'available' THEN $1 ELSE j.run_at END, \
             finished_at = CASE WHEN d.next = 'available' THEN NULL ELSE $1 END, \
             lease_expires_at = NULL, \
             errors = CASE WHEN d.unstarted THEN j.errors ELSE \
               j.errors || jsonb_build_array(jsonb_build_object('at', $3::jsonb, \
               'attempt', d.attempt, 'message', $4::text, 'worker', COALESCE(d.worker, ''))) END, \
             attempt = j.attempt - CASE WHEN d.unstarted THEN 1 ELSE 0 END, \
             unstarted = false \
           FROM decided d WHERE j.id = d.id \
           RETURNING j.id, d.attempt, j.state, j.queue, j.kind, j.attempted_at, d.worker, \
             d.unstarted, j.batch_id), \
         ev AS ({insert} SELECT $1, {event_type}, id, queue, kind, attempt, {facts} \
           FROM updated ORDER BY id){batches} \
         SELECT u.id, u.attempt, u.state, n.notified FROM updated u CROSS JOIN \
           (SELECT max(pg_notify($5, '')::text) AS notified FROM updated \
            WHERE state = 'available') AS n"
    );
    let rows: Vec<(i64, i32, String, Option<String>)> = sqlx::query_as(&sql)
        .bind(now)
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .bind(at.to_string())
        .bind(LEASE_EXPIRED)
        .bind(channel)
        .bind(lifecycle::NEVER_STARTED_REASON)
        .fetch_all(pool)
        .await
        .map_err(db)?;
    let mut out = Vec::with_capacity(rows.len());
    for (id, attempt, state, _) in rows {
        let state = parse_state(&state)?;
        tracing::warn!(job_id = id, attempt, state = %state, "kyu-postgres: reaped an expired lease (or gave back a job claimed ahead and never started)");
        out.push(Reaped {
            id,
            attempt: attempt as u32,
            state,
        });
    }
    out.sort_by_key(|r| r.id);
    Ok(out)
}
