//! Retry: failed or cancelled jobs made `available` again, by id or the
//! whole dead-letter set, without ever making two unfinished jobs with one
//! unique key.
//!
//! A retry runs in a transaction that first takes the advisory locks of the
//! jobs' unique keys, the same ones enqueue takes
//! ([`lock_keys`](crate::enqueue::lock_keys)), then locks the rows and looks
//! up the unfinished job holding each key. An enqueue or retry of the same
//! key in any process waits for the commit and then sees the retried job.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use kyu_core::{JobId, JobState, KeyHeld, RetriedFailed, RetryResult, StoreError};
use sqlx::{PgConnection, PgPool};

use crate::enqueue::lock_keys;
use crate::row::{db, parse_state};

/// Keyed failed jobs handled per transaction by `retry_failed`: bounds the
/// advisory locks one transaction holds (each takes a lock-table slot).
const PAGE: i64 = 500;

/// What a retry sets: runnable now (`$2`), with at least one attempt left.
const RETRY_SET: &str = "state = 'available', run_at = $2, finished_at = NULL, \
    lease_expires_at = NULL, cancel_requested = false, result = NULL, \
    max_attempts = GREATEST(j.max_attempts, j.attempt + 1)";

/// The `retried` event of every row of the CTE `changed` (`$2` is now).
fn retried_events(schema: &str) -> String {
    format!(
        "{} SELECT $2, 'retried', id, queue, kind, NULL, '{{\"state\":\"available\"}}' \
         FROM changed ORDER BY id",
        crate::events::insert(schema)
    )
}

/// Makes the jobs `ids` available again, each with its `retried` event;
/// one notification if any changed.
async fn retry_ids(
    conn: &mut PgConnection,
    schema: &str,
    channel: &str,
    now: DateTime<Utc>,
    ids: &[JobId],
) -> Result<u64, StoreError> {
    if ids.is_empty() {
        return Ok(0);
    }
    let sql = format!(
        "WITH old AS (SELECT id, state FROM {schema}.jobs WHERE id = ANY($1)), \
         changed AS (\
           UPDATE {schema}.jobs j SET {RETRY_SET} WHERE j.id = ANY($1) \
           RETURNING j.id, j.queue, j.kind, j.batch_id), \
         ev AS ({RETRIED_EVENTS}){batches} \
         SELECT count(*), max(pg_notify($3, '')::text) FROM changed",
        RETRIED_EVENTS = retried_events(schema),
        // A retried job of a batch is uncounted from its old final state.
        batches = crate::batches::count_ctes(
            schema,
            "SELECT c.batch_id, o.state, -1 FROM changed c JOIN old o ON o.id = c.id",
            "$2",
            "$3"
        )
    );
    let (n, _): (i64, Option<String>) = sqlx::query_as(&sql)
        .bind(ids)
        .bind(now)
        .bind(channel)
        .fetch_one(&mut *conn)
        .await
        .map_err(db)?;
    Ok(n as u64)
}

/// The unfinished job holding each of `keys` (the lowest id: the one an
/// enqueue would return).
async fn holders(
    conn: &mut PgConnection,
    schema: &str,
    keys: &[&str],
) -> Result<HashMap<String, JobId>, StoreError> {
    if keys.is_empty() {
        return Ok(HashMap::new());
    }
    let rows: Vec<(String, i64)> = sqlx::query_as(&format!(
        "SELECT DISTINCT ON (unique_key) unique_key, id FROM {schema}.jobs \
         WHERE unique_key = ANY($1) AND state IN ('scheduled', 'available', 'running') \
         ORDER BY unique_key, id"
    ))
    .bind(keys)
    .fetch_all(&mut *conn)
    .await
    .map_err(db)?;
    Ok(rows.into_iter().collect())
}

/// Retries each failed or cancelled id: see [`RetryResult`].
pub(crate) async fn retry(
    pool: &PgPool,
    schema: &str,
    channel: &str,
    now: DateTime<Utc>,
    ids: &[JobId],
) -> Result<Vec<RetryResult>, StoreError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut tx = pool.begin().await.map_err(db)?;
    // A job's key never changes, so the keys read before the locks are the
    // keys of the rows locked after them.
    let keys: Vec<String> = sqlx::query_scalar(&format!(
        "SELECT DISTINCT unique_key FROM {schema}.jobs \
         WHERE id = ANY($1) AND unique_key IS NOT NULL"
    ))
    .bind(ids)
    .fetch_all(&mut *tx)
    .await
    .map_err(db)?;
    let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
    lock_keys(&mut tx, schema, &keys).await?;
    let rows: Vec<(i64, String, Option<String>)> = sqlx::query_as(&format!(
        "SELECT id, state, unique_key FROM {schema}.jobs WHERE id = ANY($1) ORDER BY id FOR UPDATE"
    ))
    .bind(ids)
    .fetch_all(&mut *tx)
    .await
    .map_err(db)?;
    let mut found = HashMap::with_capacity(rows.len());
    for (id, state, key) in rows {
        found.insert(id, (parse_state(&state)?, key));
    }
    let mut holder = holders(&mut tx, schema, &keys).await?;
    let mut retried = HashSet::new();
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        let r = match found.get(id) {
            None => RetryResult::NotFound,
            // Named twice: the first retried it.
            Some(_) if retried.contains(id) => RetryResult::NotRetryable(JobState::Available),
            Some((JobState::Failed | JobState::Cancelled, key)) => {
                match key.as_ref().map(|k| (k, holder.get(k))) {
                    Some((key, Some(h))) => RetryResult::KeyHeld {
                        key: key.clone(),
                        holder: *h,
                    },
                    held => {
                        if let Some((key, None)) = held {
                            holder.insert(key.clone(), *id);
                        }
                        retried.insert(*id);
                        RetryResult::Retried
                    }
                }
            }
            Some((other, _)) => RetryResult::NotRetryable(*other),
        };
        out.push(r);
    }
    let to_retry: Vec<JobId> = retried.into_iter().collect();
    retry_ids(&mut tx, schema, channel, now, &to_retry).await?;
    tx.commit().await.map_err(db)?;
    Ok(out)
}

/// Retries every failed job, of `queue` and/or `kind` if given: those
/// without a unique key in one statement, keyed ones in pages of [`PAGE`]
/// by id, each page one transaction.
pub(crate) async fn retry_failed(
    pool: &PgPool,
    schema: &str,
    channel: &str,
    now: DateTime<Utc>,
    queue: Option<&str>,
    kind: Option<&str>,
) -> Result<RetriedFailed, StoreError> {
    let plain = format!(
        "WITH changed AS (\
           UPDATE {schema}.jobs j SET {RETRY_SET} WHERE j.state = 'failed' \
           AND ($3::text IS NULL OR j.queue = $3) AND ($4::text IS NULL OR j.kind = $4) \
           AND j.unique_key IS NULL RETURNING j.id, j.queue, j.kind, j.batch_id), \
         ev AS ({RETRIED_EVENTS}){batches} \
         SELECT count(*), max(pg_notify($1, '')::text) FROM changed",
        RETRIED_EVENTS = retried_events(schema),
        batches = crate::batches::count_ctes(
            schema,
            "SELECT batch_id, 'failed', -1 FROM changed",
            "$2",
            "$1"
        )
    );
    let (n, _): (i64, Option<String>) = sqlx::query_as(&plain)
        .bind(channel)
        .bind(now)
        .bind(queue)
        .bind(kind)
        .fetch_one(pool)
        .await
        .map_err(db)?;
    let mut out = RetriedFailed {
        retried: n as u64,
        key_held: Vec::new(),
    };
    let page_sql = format!(
        "SELECT id, unique_key FROM {schema}.jobs WHERE state = 'failed' \
         AND ($1::text IS NULL OR queue = $1) AND ($2::text IS NULL OR kind = $2) \
         AND unique_key IS NOT NULL AND id > $3 ORDER BY id LIMIT $4"
    );
    let lock_sql = format!(
        "SELECT id, unique_key FROM {schema}.jobs WHERE id = ANY($1) AND state = 'failed' \
         ORDER BY id FOR UPDATE"
    );
    let mut after: JobId = 0;
    loop {
        let mut tx = pool.begin().await.map_err(db)?;
        let page: Vec<(i64, String)> = sqlx::query_as(&page_sql)
            .bind(queue)
            .bind(kind)
            .bind(after)
            .bind(PAGE)
            .fetch_all(&mut *tx)
            .await
            .map_err(db)?;
        let Some(&(last, _)) = page.last() else {
            break;
        };
        let ids: Vec<JobId> = page.iter().map(|(id, _)| *id).collect();
        let keys: Vec<&str> = page.iter().map(|(_, k)| k.as_str()).collect();
        lock_keys(&mut tx, schema, &keys).await?;
        // Still failed now that the keys are ours (another retry may have
        // taken some meanwhile).
        let rows: Vec<(i64, String)> = sqlx::query_as(&lock_sql)
            .bind(&ids)
            .fetch_all(&mut *tx)
            .await
            .map_err(db)?;
        let mut holder = holders(&mut tx, schema, &keys).await?;
        let mut chosen = Vec::new();
        for (id, key) in rows {
            match holder.get(&key) {
                Some(&h) => out.key_held.push(KeyHeld { id, key, holder: h }),
                None => {
                    holder.insert(key, id);
                    chosen.push(id);
                }
            }
        }
        out.retried += retry_ids(&mut tx, schema, channel, now, &chosen).await?;
        tx.commit().await.map_err(db)?;
        if (page.len() as i64) < PAGE {
            break;
        }
        after = last;
    }
    Ok(out)
}
