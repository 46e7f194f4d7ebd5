//! Claim: take up to N runnable jobs of the claim's kinds in (priority,
//! run_at, id) order with `FOR UPDATE SKIP LOCKED`, and make them `running`,
//! in one statement.
//!
//! Runnable means `available`, or `scheduled` with run_at reached: the second
//! kind is promoted by the claim itself, so a delayed job needs no background
//! sweep to become claimable. Each is read from its own partial index
//! (`jobs_claim`, on (queue, kind, priority, run_at, id), walks one queue and
//! kind in claim order; `jobs_scheduled` finds due jobs) and the candidate
//! lists are merged. Jobs of kinds the claim does not take are never read
//! from `jobs_claim`. Rows another worker is
//! claiming right now are skipped, never waited on.

use std::collections::BTreeSet;
use std::time::Duration;

use chrono::{DateTime, Utc};
use kyu_core::{Claim, ClaimedJob, JobId, StoreError};
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, PgPool, Row};

use crate::row::{db, parse_json, plus};

/// The most (queue, kind) pairs a claim names outright. Beyond it the claim
/// first narrows the pairs to the kinds that have available jobs.
const MAX_WALKS: usize = 32;

/// The (queue, kind) pairs with available jobs in `queues`: a loose scan
/// of the claim index, one seek per distinct kind however many jobs each has.
async fn present_pairs(
    conn: &mut PgConnection,
    schema: &str,
    queues: &[String],
) -> Result<Vec<(String, String)>, StoreError> {
    sqlx::query_as(&format!(
        "WITH RECURSIVE k(queue, kind) AS (\
           SELECT q, (SELECT kind FROM {schema}.jobs WHERE state = 'available' AND queue = q \
                      ORDER BY kind LIMIT 1) FROM unnest($1::text[]) AS q \
           UNION ALL \
           SELECT k.queue, (SELECT kind FROM {schema}.jobs WHERE state = 'available' \
                      AND queue = k.queue AND kind > k.kind ORDER BY kind LIMIT 1) \
           FROM k WHERE k.kind IS NOT NULL) \
         SELECT queue, kind FROM k WHERE kind IS NOT NULL"
    ))
    .bind(queues)
    .fetch_all(conn)
    .await
    .map_err(db)
}

/// A claimed job from a row of `RETURNING j.id, j.queue, j.kind, j.args,
/// j.attempt, j.max_attempts, j.retry, j.timeout_ms, j.priority, j.run_at,
/// j.lease_expires_at, j.tags, j.unique_key`.
pub(crate) fn claimed(r: &PgRow) -> Result<ClaimedJob, StoreError> {
    let retry: String = r.try_get(6).map_err(db)?;
    let timeout_ms: Option<i64> = r.try_get(7).map_err(db)?;
    Ok(ClaimedJob {
        id: r.try_get(0).map_err(db)?,
        queue: r.try_get(1).map_err(db)?,
        kind: r.try_get(2).map_err(db)?,
        args: r.try_get(3).map_err(db)?,
        attempt: r.try_get::<i32, _>(4).map_err(db)? as u32,
        max_attempts: r.try_get::<i32, _>(5).map_err(db)? as u32,
        retry: parse_json("retry policy", &retry)?,
        timeout: timeout_ms.map(|ms| Duration::from_millis(ms.max(0) as u64)),
        lease_expires_at: r.try_get(10).map_err(db)?,
        run_at: r.try_get(9).map_err(db)?,
        tags: r.try_get(11).map_err(db)?,
        unique_key: r.try_get(12).map_err(db)?,
    })
}

/// The `started` event of every row of the CTE `claimed` (a claim's
/// RETURNING, so the ids are drawn after the rows changed: module
/// `events`), in claim order; `now` and `worker` are parameters; `ahead`:
/// the jobs were claimed ahead, not started (the event's `reason` says so).
pub(crate) fn started_events(schema: &str, now: &str, worker: &str, ahead: bool) -> String {
    let reason = if ahead {
        format!(
            "'{}'::text",
            kyu_core::lifecycle::CLAIMED_AHEAD_REASON.replace('\'', "''")
        )
    } else {
        "NULL::text".to_string()
    };
    let facts = crate::events::facts(&[
        ("state", "'running'"),
        ("worker", worker),
        ("reason", &reason),
        (
            "wait_ms",
            &format!("greatest(0, {})", crate::events::ms_between("run_at", now)),
        ),
    ]);
    format!(
        "{} SELECT {now}, 'started', id, queue, kind, attempt, {facts} FROM claimed \
         ORDER BY priority, run_at, id",
        crate::events::insert(schema)
    )
}

/// Claims the one job `id` if it is available or scheduled, whatever its
/// run_at or queue: one conditional update (the row lock makes a second
/// claim of the job wait, then find it running), so of two claims one gets it.
pub(crate) async fn claim_job(
    pool: &PgPool,
    schema: &str,
    now: DateTime<Utc>,
    id: JobId,
    worker: &str,
    lease: Duration,
) -> Result<Option<ClaimedJob>, StoreError> {
    let started = started_events(schema, "$3", "$2", false);
    let row = sqlx::query(&format!(
        "WITH claimed AS (\
           UPDATE {schema}.jobs j SET state = 'running', attempt = j.attempt + 1, worker = $2, \
             attempted_at = $3, lease_expires_at = $4, progress_percent = NULL, \
             progress_message = NULL \
           WHERE j.id = $1 AND j.state IN ('available', 'scheduled') \
           RETURNING j.id, j.queue, j.kind, j.args, j.attempt, j.max_attempts, j.retry, \
             j.timeout_ms, j.priority, j.run_at, j.lease_expires_at, j.tags, j.unique_key), \
         ev AS ({started}) \
         SELECT * FROM claimed"
    ))
    .bind(id)
    .bind(worker)
    .bind(now)
    .bind(plus(now, lease))
    .fetch_optional(pool)
    .await
    .map_err(db)?;
    row.as_ref().map(claimed).transpose()
}

/// Claims jobs for `claim` (limit > 0, at least one queue, kinds not empty):
/// from the queues without limits in one statement, then, if that left room,
/// from each limited queue up to what its limits leave (module `limits`).
pub(crate) async fn claim(
    pool: &PgPool,
    schema: &str,
    now: DateTime<Utc>,
    claim: &Claim,
) -> Result<Vec<ClaimedJob>, StoreError> {
    let mut conn = pool.acquire().await.map_err(db)?;
    let mut out = claim_in(&mut conn, schema, now, claim, false).await?;
    if out.len() < claim.limit {
        let more = crate::limits::claim_limited(&mut conn, schema, now, claim, out.len()).await?;
        if !more.is_empty() {
            out.extend(more);
            out.sort_by_key(|(priority, run_at, job)| (*priority, *run_at, job.id));
        }
    }
    Ok(out.into_iter().map(|(_, _, j)| j).collect())
}

/// Claims up to `claim.limit` jobs from `claim.queues` that are not paused
/// and, unless `limited` (the caller holds the queue's row lock and gives
/// the room its limits leave), have no limit; in claim order, with the
/// priority and run_at of each.
pub(crate) async fn claim_in(
    conn: &mut PgConnection,
    schema: &str,
    now: DateTime<Utc>,
    claim: &Claim,
    limited: bool,
) -> Result<Vec<(i32, DateTime<Utc>, ClaimedJob)>, StoreError> {
    let mut queues = claim.queues.clone();
    queues.sort();
    queues.dedup();
    let kinds: Option<Vec<String>> = claim.kinds.as_ref().map(|ks| {
        let set: BTreeSet<&String> = ks.iter().collect();
        set.into_iter().cloned().collect()
    });
    // The (queue, kind) pairs to walk: all of them when few, else only
    // those with available jobs.
    let pairs: Vec<(String, String)> = match &kinds {
        Some(ks) if queues.len() * ks.len() <= MAX_WALKS => queues
            .iter()
            .flat_map(|q| ks.iter().map(move |k| (q.clone(), k.clone())))
            .collect(),
        _ => present_pairs(&mut *conn, schema, &queues)
            .await?
            .into_iter()
            .filter(|(_, k)| kinds.as_ref().map_or(true, |ks| ks.contains(k)))
            .collect(),
    };
    let limit = i64::try_from(claim.limit).unwrap_or(i64::MAX);
    // $1 queues, $2 now, $3 limit, $4 worker, $5 lease expiry, $6 kinds
    // (NULL: every kind), $7 and $8 the pairs' queues and kinds.
    // One pair is the hot path (a worker runs one fetch loop per queue, and
    // often one kind): equalities let the planner walk jobs_claim in order
    // and stop at $3 rows. Several pairs each take their first $3 rows.
    let queue_match = if queues.len() == 1 {
        "queue = (SELECT qs[1] FROM live)"
    } else {
        "queue = ANY((SELECT qs FROM live)::text[])"
    };
    let available = if pairs.len() == 1 {
        format!(
            "SELECT id, priority, run_at FROM {schema}.jobs \
             WHERE state = 'available' AND queue = $7 AND kind = $8 \
               AND $7 = ANY((SELECT qs FROM live)::text[]) \
             ORDER BY priority, run_at, id LIMIT $3 FOR UPDATE SKIP LOCKED"
        )
    } else {
        format!(
            "SELECT c.id, c.priority, c.run_at \
             FROM unnest($7::text[], $8::text[]) AS p(q, k) CROSS JOIN LATERAL (\
               SELECT id, priority, run_at FROM {schema}.jobs \
               WHERE state = 'available' AND queue = p.q AND kind = p.k \
               ORDER BY priority, run_at, id LIMIT $3 FOR UPDATE SKIP LOCKED) AS c \
             WHERE p.q = ANY((SELECT qs FROM live)::text[])"
        )
    };
    // `live` drops paused queues once, before any row is read: a paused
    // queue's jobs are never scanned or locked. Due scheduled jobs of kinds
    // this claim does not take are made `available` (`stray`), so they
    // wait on the claim index, where other claims skip them unread, instead
    // of staying due-and-scheduled, which would wake idle workers for them
    // at every turn.
    // A limited queue is claimed only under its row lock (module `limits`).
    let skipped = if limited {
        "p.paused"
    } else {
        "(p.paused OR p.global_concurrency IS NOT NULL OR p.rate_starts IS NOT NULL)"
    };
    let started = started_events(schema, "$2", "$4", claim.unstarted);
    // Jobs claimed ahead are flagged until the worker marks them started
    // (module `prefetch`); an ordinary claim writes nothing more.
    let ahead = if claim.unstarted {
        "unstarted = true, "
    } else {
        ""
    };
    let sql = format!(
        "WITH live AS (\
           SELECT ARRAY(SELECT q FROM unnest($1::text[]) AS q WHERE NOT EXISTS \
             (SELECT 1 FROM {schema}.queues p WHERE p.name = q AND {skipped})) AS qs), \
         available AS ({available}), \
         due AS (\
           SELECT id, priority, run_at FROM {schema}.jobs \
           WHERE state = 'scheduled' AND run_at <= $2 AND {queue_match} \
             AND ($6::text[] IS NULL OR kind = ANY($6)) \
           ORDER BY priority, run_at, id LIMIT $3 FOR UPDATE SKIP LOCKED), \
         stray AS (\
           SELECT id FROM {schema}.jobs \
           WHERE state = 'scheduled' AND run_at <= $2 AND {queue_match} \
             AND $6::text[] IS NOT NULL AND kind <> ALL($6) \
           FOR UPDATE SKIP LOCKED), \
         promoted AS (\
           UPDATE {schema}.jobs j SET state = 'available' FROM stray WHERE j.id = stray.id), \
         picked AS (\
           SELECT id FROM (SELECT * FROM available UNION ALL SELECT * FROM due) AS c \
           ORDER BY priority, run_at, id LIMIT $3), \
         claimed AS (\
           UPDATE {schema}.jobs j SET state = 'running', attempt = j.attempt + 1, worker = $4, \
             attempted_at = $2, lease_expires_at = $5, progress_percent = NULL, \
             {ahead}progress_message = NULL \
           FROM picked WHERE j.id = picked.id \
           RETURNING j.id, j.queue, j.kind, j.args, j.attempt, j.max_attempts, j.retry, \
             j.timeout_ms, j.priority, j.run_at, j.lease_expires_at, j.tags, j.unique_key), \
         ev AS ({started}) \
         SELECT * FROM claimed"
    );
    let mut q = sqlx::query(&sql)
        .bind(&queues)
        .bind(now)
        .bind(limit)
        .bind(&claim.worker)
        .bind(plus(now, claim.lease))
        .bind(&kinds);
    q = if let [(pq, pk)] = pairs.as_slice() {
        q.bind(pq.clone()).bind(pk.clone())
    } else {
        let (pq, pk): (Vec<String>, Vec<String>) = pairs.into_iter().unzip();
        q.bind(pq).bind(pk)
    };
    let rows = q.fetch_all(&mut *conn).await.map_err(db)?;
    let mut out: Vec<(i32, DateTime<Utc>, ClaimedJob)> = Vec::with_capacity(rows.len());
    for r in rows {
        out.push((
            r.try_get(8).map_err(db)?,
            r.try_get(9).map_err(db)?,
            claimed(&r)?,
        ));
    }
    // RETURNING order is unspecified.
    out.sort_by_key(|(priority, run_at, job)| (*priority, *run_at, job.id));
    Ok(out)
}
