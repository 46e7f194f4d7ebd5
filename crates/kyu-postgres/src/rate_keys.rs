//! Rate keys (`kyu_core::rate_key`): each job of a rated queue carries its
//! key in `jobs.rate_key`, resolved by the enqueue statement itself (`''`:
//! the "no key" bucket; NULL: the job was enqueued while its queue had no
//! rate and no key was given), and each start is recorded with its key in
//! `queue_starts`.
//!
//! A rated queue is claimed under its row lock (module `limits`) by one
//! statement: the keys with available jobs are read from `jobs_rate_key`
//! (one seek per key), each key's starts in its window are counted, each
//! key whose window has room gives at most that many of its first jobs in
//! claim order, the first of those across keys are claimed, and their
//! starts recorded. A key whose window is full is never read past, so its
//! jobs at the head of the queue do not hold back the jobs of other keys.

use chrono::{DateTime, Utc};
use kyu_core::limits::next_key_open;
use kyu_core::{Claim, ClaimedJob, RateLimit, StoreError};
use sqlx::PgConnection;

use crate::row::{db, plus};

/// Migration 10: the rate key of each job and of each recorded start; `{s}`
/// is the schema. Jobs of queues that already have a rate join the "no
/// key" bucket.
pub(crate) const MIGRATION: &str = r#"
ALTER TABLE {s}.queues ADD COLUMN rate_key text;
ALTER TABLE {s}.jobs ADD COLUMN rate_key text;
UPDATE {s}.jobs SET rate_key = ''
    WHERE queue IN (SELECT name FROM {s}.queues WHERE rate_starts IS NOT NULL);
CREATE INDEX jobs_rate_key ON {s}.jobs (queue, rate_key, priority, run_at, id)
    WHERE state = 'available' AND rate_key IS NOT NULL;
ALTER TABLE {s}.queue_starts ADD COLUMN rate_key text NOT NULL DEFAULT '';
CREATE INDEX queue_starts_key ON {s}.queue_starts (queue, rate_key, started_at);
"#;

/// SQL for the key the path `path` (text, `args.A.B`, may be NULL) finds
/// in `args` (JSON text): a string as it is, another value as its JSON
/// text; NULL for no path, a missing field, `null` or `""` (as
/// `RateKeyPath::key_of`).
fn found(args: &str, path: &str) -> String {
    format!(
        "(SELECT CASE json_typeof(v) WHEN 'string' THEN NULLIF(v #>> '{{}}', '') \
           WHEN 'null' THEN NULL ELSE v::text END \
         FROM (SELECT ({args})::json #> string_to_array(substr({path}, 6), '.') AS v) AS rk)"
    )
}

/// SQL for the rate key of a new job: `explicit` (given at enqueue), else,
/// if its queue `queue` has a rate, what the queue's path finds in `args`
/// or `''`, else NULL. Queues without a rate pay one primary-key probe.
pub(crate) fn key_of(schema: &str, explicit: &str, queue: &str, args: &str) -> String {
    format!(
        "COALESCE({explicit}, (SELECT CASE WHEN rq.rate_key IS NULL THEN '' \
           ELSE COALESCE({found}, '') END \
         FROM {schema}.queues rq WHERE rq.name = {queue} AND rq.rate_starts IS NOT NULL))",
        found = found(args, "rq.rate_key")
    )
}

/// Gives the jobs of `queue` that have no key or the "no key" bucket's the
/// key `path` finds in their args (or `''`): run when the queue gets a
/// rate or its path changes. Keys given at enqueue are never empty, so
/// they are kept.
pub(crate) async fn rekey(
    conn: &mut PgConnection,
    schema: &str,
    queue: &str,
    path: Option<String>,
) -> Result<(), StoreError> {
    sqlx::query(&format!(
        "UPDATE {schema}.jobs SET rate_key = COALESCE({found}, '') \
         WHERE queue = $1 AND (rate_key IS NULL OR rate_key = '')",
        found = found("args", "$2::text")
    ))
    .bind(queue)
    .bind(path)
    .execute(conn)
    .await
    .map_err(db)?;
    Ok(())
}

/// The loose scan of `jobs_rate_key`: CTE `k(key)` holds each key with
/// available jobs in queue `$1` (and a NULL row at the end).
fn keys_cte(schema: &str) -> String {
    format!(
        "k(key) AS (\
           SELECT (SELECT rate_key FROM {schema}.jobs WHERE state = 'available' AND queue = $1 \
                   AND rate_key IS NOT NULL ORDER BY rate_key LIMIT 1) \
           UNION ALL \
           SELECT (SELECT rate_key FROM {schema}.jobs WHERE state = 'available' AND queue = $1 \
                   AND rate_key IS NOT NULL AND rate_key > k.key ORDER BY rate_key LIMIT 1) \
           FROM k WHERE k.key IS NOT NULL)"
    )
}

/// Each key (`''`: no key) with its starts in a window, oldest first.
pub(crate) type KeyWindows = Vec<(String, Vec<DateTime<Utc>>)>;

/// Where `rate`'s window ending at `now` starts (exclusive).
pub(crate) fn window_start(rate: RateLimit, now: DateTime<Utc>) -> DateTime<Utc> {
    now - chrono::Duration::milliseconds(rate.per_ms())
}

/// Every key's starts in `queue`'s window ending at `now` (oldest first).
pub(crate) async fn key_windows(
    conn: &mut PgConnection,
    schema: &str,
    queue: &str,
    rate: RateLimit,
    now: DateTime<Utc>,
) -> Result<KeyWindows, StoreError> {
    sqlx::query_as(&format!(
        "SELECT rate_key, array_agg(started_at ORDER BY started_at) FROM {schema}.queue_starts \
         WHERE queue = $1 AND started_at > $2 GROUP BY rate_key ORDER BY rate_key"
    ))
    .bind(queue)
    .bind(window_start(rate, now))
    .fetch_all(conn)
    .await
    .map_err(db)
}

/// When `queue` (rated by `rate`) may next start one of its runnable jobs,
/// if every key they have is at its limit now (see
/// [`LimitStore::next_start`](kyu_core::LimitStore::next_start)).
pub(crate) async fn next_open(
    conn: &mut PgConnection,
    schema: &str,
    queue: &str,
    rate: RateLimit,
    now: DateTime<Utc>,
) -> Result<Option<DateTime<Utc>>, StoreError> {
    // Each key of the runnable jobs with its starts in its window.
    let rows: Vec<(String, Vec<DateTime<Utc>>)> = sqlx::query_as(&format!(
        "WITH RECURSIVE {keys}, \
         runnable AS (\
           SELECT key FROM k WHERE key IS NOT NULL \
           UNION SELECT rate_key FROM {schema}.jobs WHERE state = 'scheduled' AND run_at <= $2 \
             AND queue = $1 AND rate_key IS NOT NULL) \
         SELECT r.key, ARRAY(SELECT started_at FROM {schema}.queue_starts s \
           WHERE s.queue = $1 AND s.rate_key = r.key AND s.started_at > $3 ORDER BY started_at) \
         FROM runnable r",
        keys = keys_cte(schema)
    ))
    .bind(queue)
    .bind(now)
    .bind(window_start(rate, now))
    .fetch_all(conn)
    .await
    .map_err(db)?;
    let windows: Vec<Vec<DateTime<Utc>>> = rows.into_iter().map(|(_, w)| w).collect();
    Ok(next_key_open(&windows, rate, now))
}

/// Readies the rated `queue` for a claim, under its row lock, and returns
/// the latest start recorded for it. Due scheduled jobs become available
/// (so they are found by key); jobs without a key (enqueued in a
/// transaction that committed after the queue got its rate) join the "no
/// key" bucket when the queue has no keyed job waiting: never left behind.
pub(crate) async fn prepare(
    conn: &mut PgConnection,
    schema: &str,
    queue: &str,
    now: DateTime<Utc>,
) -> Result<Option<DateTime<Utc>>, StoreError> {
    sqlx::query_scalar(&format!(
        "WITH due AS (\
           UPDATE {schema}.jobs SET state = 'available' \
           WHERE state = 'scheduled' AND run_at <= $2 AND queue = $1 RETURNING 1), \
         adopt AS (\
           UPDATE {schema}.jobs SET rate_key = '' \
           WHERE state = 'available' AND queue = $1 AND rate_key IS NULL AND NOT EXISTS \
             (SELECT 1 FROM {schema}.jobs WHERE state = 'available' AND queue = $1 \
              AND rate_key IS NOT NULL) RETURNING 1) \
         SELECT max(started_at) FROM {schema}.queue_starts WHERE queue = $1"
    ))
    .bind(queue)
    .bind(now)
    .fetch_one(conn)
    .await
    .map_err(db)
}

/// Claims up to `claim.limit` jobs of the rated queue `claim.queues[0]`:
/// of each key at most what its window has room for, the first in claim
/// order across keys, and records their starts. The caller holds the
/// queue's row lock, in `conn`'s transaction, and ran [`prepare`]; `now` is
/// at or after every recorded start.
pub(crate) async fn claim_rated(
    conn: &mut PgConnection,
    schema: &str,
    now: DateTime<Utc>,
    claim: &Claim,
    rate: RateLimit,
) -> Result<Vec<(i32, DateTime<Utc>, ClaimedJob)>, StoreError> {
    let queue = &claim.queues[0];
    let started = crate::claim::started_events(schema, "$2", "$4", claim.unstarted);
    let ahead = if claim.unstarted {
        "unstarted = true, "
    } else {
        ""
    };
    // $1 queue, $2 now, $3 limit, $4 worker, $5 lease expiry, $6 kinds
    // (NULL: every kind), $7 prune before, $8 window start, $9 starts allowed.
    let sql = format!(
        "WITH RECURSIVE {keys}, \
         open AS (\
           SELECT k.key, $9::bigint - (SELECT count(*) FROM {schema}.queue_starts s \
             WHERE s.queue = $1 AND s.rate_key = k.key AND s.started_at > $8) AS room \
           FROM k WHERE k.key IS NOT NULL), \
         cand AS (\
           SELECT c.id, c.priority, c.run_at FROM open CROSS JOIN LATERAL (\
             SELECT x.*, row_number() OVER (ORDER BY x.priority, x.run_at, x.id) AS rn FROM (\
               SELECT id, priority, run_at FROM {schema}.jobs \
               WHERE state = 'available' AND queue = $1 AND rate_key = open.key \
                 AND rate_key IS NOT NULL AND ($6::text[] IS NULL OR kind = ANY($6)) \
               ORDER BY priority, run_at, id LIMIT $3) AS x) AS c \
           WHERE open.room > 0 AND c.rn <= open.room), \
         picked AS (SELECT id FROM cand ORDER BY priority, run_at, id LIMIT $3), \
         claimed AS (\
           UPDATE {schema}.jobs j SET state = 'running', attempt = j.attempt + 1, worker = $4, \
             attempted_at = $2, lease_expires_at = $5, progress_percent = NULL, \
             {ahead}progress_message = NULL \
           FROM picked WHERE j.id = picked.id AND j.state = 'available' \
           RETURNING j.id, j.queue, j.kind, j.args, j.attempt, j.max_attempts, j.retry, \
             j.timeout_ms, j.priority, j.run_at, j.lease_expires_at, j.tags, j.unique_key, \
             j.rate_key), \
         ev AS ({started}), \
         recorded AS (\
           INSERT INTO {schema}.queue_starts (queue, rate_key, started_at) \
           SELECT $1, rate_key, $2 FROM claimed), \
         pruned AS (DELETE FROM {schema}.queue_starts WHERE queue = $1 AND started_at <= $7) \
         SELECT * FROM claimed",
        keys = keys_cte(schema)
    );
    let kinds: Option<Vec<String>> = claim.kinds.clone();
    let rows = sqlx::query(&sql)
        .bind(queue)
        .bind(now)
        .bind(i64::try_from(claim.limit).unwrap_or(i64::MAX))
        .bind(&claim.worker)
        .bind(plus(now, claim.lease))
        .bind(kinds)
        // Pruned a whole window late, so that a claim whose time was read
        // before this one's still counts every start of its window.
        .bind(window_start(rate, window_start(rate, now)))
        .bind(window_start(rate, now))
        .bind(i64::from(rate.starts))
        .fetch_all(&mut *conn)
        .await
        .map_err(db)?;
    let mut out = Vec::with_capacity(rows.len());
    for r in &rows {
        use sqlx::Row;
        out.push((
            r.try_get(8).map_err(db)?,
            r.try_get(9).map_err(db)?,
            crate::claim::claimed(r)?,
        ));
    }
    out.sort_by_key(
        |(priority, run_at, job): &(i32, DateTime<Utc>, ClaimedJob)| (*priority, *run_at, job.id),
    );
    Ok(out)
}
