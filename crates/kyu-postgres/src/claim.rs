//! Claim: take up to N runnable jobs in (priority, run_at, id) order with
//! `FOR UPDATE SKIP LOCKED`, and make them `running`, in one statement.
//!
//! Runnable means `available`, or `scheduled` with run_at reached: the second
//! kind is promoted by the claim itself, so a delayed job needs no background
//! sweep to become claimable. Each kind is read from its own partial index
//! (`jobs_claim` walks one queue in claim order; `jobs_scheduled` finds due
//! jobs) and the two candidate lists are merged. Rows another worker is
//! claiming right now are skipped, never waited on.

use std::time::Duration;

use chrono::{DateTime, Utc};
use kyu_core::{Claim, ClaimedJob, StoreError};
use sqlx::{PgPool, Row};

use crate::row::{db, parse_json, plus};

/// Claims jobs for `claim` (limit > 0, at least one queue).
pub(crate) async fn claim(
    pool: &PgPool,
    schema: &str,
    now: DateTime<Utc>,
    claim: &Claim,
) -> Result<Vec<ClaimedJob>, StoreError> {
    let mut queues = claim.queues.clone();
    queues.sort();
    queues.dedup();
    let limit = i64::try_from(claim.limit).unwrap_or(i64::MAX);
    // $1 queues, $2 now, $3 limit, $4 worker, $5 lease expiry.
    // One queue is the hot path (a worker runs one fetch loop per queue): an
    // equality lets the planner walk jobs_claim in order and stop at $3 rows.
    let queue_match = if queues.len() == 1 {
        "queue = (SELECT qs[1] FROM live)"
    } else {
        "queue = ANY((SELECT qs FROM live)::text[])"
    };
    // `live` drops paused queues once, before any row is read: a paused
    // queue's jobs are never scanned or locked.
    let sql = format!(
        "WITH live AS (\
           SELECT ARRAY(SELECT q FROM unnest($1::text[]) AS q WHERE NOT EXISTS \
             (SELECT 1 FROM {schema}.queues p WHERE p.name = q AND p.paused)) AS qs), \
         available AS (\
           SELECT id, priority, run_at FROM {schema}.jobs \
           WHERE state = 'available' AND {queue_match} \
           ORDER BY priority, run_at, id LIMIT $3 FOR UPDATE SKIP LOCKED), \
         due AS (\
           SELECT id, priority, run_at FROM {schema}.jobs \
           WHERE state = 'scheduled' AND run_at <= $2 AND {queue_match} \
           ORDER BY priority, run_at, id LIMIT $3 FOR UPDATE SKIP LOCKED), \
         picked AS (\
           SELECT id FROM (SELECT * FROM available UNION ALL SELECT * FROM due) AS c \
           ORDER BY priority, run_at, id LIMIT $3) \
         UPDATE {schema}.jobs j SET state = 'running', attempt = j.attempt + 1, worker = $4, \
           attempted_at = $2, lease_expires_at = $5, progress_percent = NULL, \
           progress_message = NULL \
         FROM picked WHERE j.id = picked.id \
         RETURNING j.id, j.queue, j.kind, j.args, j.attempt, j.max_attempts, j.retry, \
           j.timeout_ms, j.priority, j.run_at, j.lease_expires_at"
    );
    let rows = sqlx::query(&sql)
        .bind(&queues)
        .bind(now)
        .bind(limit)
        .bind(&claim.worker)
        .bind(plus(now, claim.lease))
        .fetch_all(pool)
        .await
        .map_err(db)?;
    let mut out: Vec<(i32, DateTime<Utc>, ClaimedJob)> = Vec::with_capacity(rows.len());
    for r in rows {
        let retry: String = r.try_get(6).map_err(db)?;
        let timeout_ms: Option<i64> = r.try_get(7).map_err(db)?;
        out.push((
            r.try_get(8).map_err(db)?,
            r.try_get(9).map_err(db)?,
            ClaimedJob {
                id: r.try_get(0).map_err(db)?,
                queue: r.try_get(1).map_err(db)?,
                kind: r.try_get(2).map_err(db)?,
                args: r.try_get(3).map_err(db)?,
                attempt: r.try_get::<i32, _>(4).map_err(db)? as u32,
                max_attempts: r.try_get::<i32, _>(5).map_err(db)? as u32,
                retry: parse_json("retry policy", &retry)?,
                timeout: timeout_ms.map(|ms| Duration::from_millis(ms.max(0) as u64)),
                lease_expires_at: r.try_get(10).map_err(db)?,
            },
        ));
    }
    // RETURNING order is unspecified.
    out.sort_by_key(|(priority, run_at, job)| (*priority, *run_at, job.id));
    Ok(out.into_iter().map(|(_, _, j)| j).collect())
}
