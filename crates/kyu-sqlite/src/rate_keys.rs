//! Rate keys (`kyu_core::rate_key`): each job of a rated queue carries its
//! key in `jobs.rate_key`, resolved at enqueue (`''`: the "no key" bucket;
//! NULL: the job was enqueued while its queue had no rate and no key was
//! given), and each start is recorded with its key in `queue_starts`.
//!
//! A rated queue is claimed key by key, inside the claim's write
//! transaction (one writer: no other claim interleaves): the keys with
//! available jobs are read from `jobs_rate_key` (one seek per key), each
//! key's starts in its window are counted, and each key whose window has
//! room gives at most that many of its first jobs in claim order; the
//! claim takes the first of those in claim order. A key whose window is
//! full is never read past, so its jobs at the head of the queue do not
//! hold back the jobs of other keys behind them.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use kyu_core::limits::{next_key_open, RateKeyPath};
use kyu_core::{Claim, ClaimedJob, NewJob, RateLimit, StoreError};
use rusqlite::{params, Connection, OptionalExtension};

use crate::row::{db, from_us};

/// Migration 10: the rate key of each job and of each recorded start. Jobs
/// of queues that already have a rate join the "no key" bucket.
pub(crate) const MIGRATION: &str = r#"
ALTER TABLE queues ADD COLUMN rate_key TEXT;
ALTER TABLE jobs ADD COLUMN rate_key TEXT;
UPDATE jobs SET rate_key = '' WHERE queue IN (SELECT name FROM queues WHERE rate_starts IS NOT NULL);
CREATE INDEX jobs_rate_key ON jobs (queue, rate_key, priority, run_at, id)
    WHERE state = 'available' AND rate_key IS NOT NULL;
ALTER TABLE queue_starts ADD COLUMN rate_key TEXT NOT NULL DEFAULT '';
CREATE INDEX queue_starts_key ON queue_starts (queue, rate_key, started_at);
"#;

/// A queue's rate and rate key path, as enqueue needs them.
type QueueRate = Option<(bool, Option<RateKeyPath>)>;

/// Resolves the rate key of each job of an enqueue, in order: the key it
/// was given, else (its queue has a rate) the key at the queue's path in
/// its args or `''`, else none. Reads each queue's settings once.
pub(crate) fn keys_of(
    conn: &Connection,
    jobs: &[NewJob],
) -> Result<Vec<Option<String>>, StoreError> {
    let mut queues: HashMap<&str, QueueRate> = HashMap::new();
    let mut out = Vec::with_capacity(jobs.len());
    for job in jobs {
        if let Some(k) = &job.rate_key {
            out.push(Some(k.clone()));
            continue;
        }
        if !queues.contains_key(job.queue.as_str()) {
            let row: Option<(bool, Option<String>)> = conn
                .prepare_cached(
                    "SELECT rate_starts IS NOT NULL, rate_key FROM queues WHERE name = ?1",
                )
                .and_then(|mut s| {
                    s.query_row([&job.queue], |r| Ok((r.get(0)?, r.get(1)?)))
                        .optional()
                })
                .map_err(db)?;
            let rate = row.map(|(rated, path)| {
                (
                    rated,
                    path.and_then(|p| RateKeyPath::parse("rate_key", &p).ok()),
                )
            });
            queues.insert(&job.queue, rate);
        }
        out.push(match &queues[job.queue.as_str()] {
            Some((true, path)) => Some(
                path.as_ref()
                    .and_then(|p| p.key_of(&job.args))
                    .unwrap_or_default(),
            ),
            _ => None,
        });
    }
    Ok(out)
}

/// Gives the jobs of `queue` that have no key or the "no key" bucket's the
/// key `path` finds in their args (or `''`): called when the queue gets a
/// rate or its path changes. Keys given at enqueue are never empty, so
/// they are kept.
pub(crate) fn rekey(
    conn: &Connection,
    queue: &str,
    path: Option<&RateKeyPath>,
) -> Result<(), StoreError> {
    let jobs: Vec<(i64, String)> = conn
        .prepare_cached(
            "SELECT id, args FROM jobs WHERE queue = ?1 AND (rate_key IS NULL OR rate_key = '')",
        )
        .and_then(|mut s| {
            s.query_map([queue], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect()
        })
        .map_err(db)?;
    let mut set = conn
        .prepare_cached("UPDATE jobs SET rate_key = ?2 WHERE id = ?1")
        .map_err(db)?;
    for (id, args) in jobs {
        let key = path.and_then(|p| p.key_of(&args)).unwrap_or_default();
        set.execute(params![id, key]).map_err(db)?;
    }
    Ok(())
}

/// The keys with available jobs in `queue`: a loose scan of
/// `jobs_rate_key`, one seek per key however many jobs each has.
fn available_keys(conn: &Connection, queue: &str) -> Result<Vec<String>, StoreError> {
    conn.prepare_cached(
        "WITH RECURSIVE k(key) AS (\
           SELECT (SELECT rate_key FROM jobs WHERE state = 'available' AND queue = ?1 \
                   AND rate_key IS NOT NULL ORDER BY rate_key LIMIT 1) \
           UNION ALL \
           SELECT (SELECT rate_key FROM jobs WHERE state = 'available' AND queue = ?1 \
                   AND rate_key IS NOT NULL AND rate_key > k.key ORDER BY rate_key LIMIT 1) \
           FROM k WHERE k.key IS NOT NULL) \
         SELECT key FROM k WHERE key IS NOT NULL",
    )
    .and_then(|mut s| s.query_map([queue], |r| r.get(0))?.collect())
    .map_err(db)
}

/// Each key (`''`: no key) with its starts in a window, oldest first.
pub(crate) type KeyWindows = Vec<(String, Vec<DateTime<Utc>>)>;

/// Where `rate`'s window ending at `now_us` starts (exclusive).
fn window_from(rate: RateLimit, now_us: i64) -> i64 {
    now_us.saturating_sub(rate.per_ms().saturating_mul(1000))
}

/// Starts of `key` in `queue`'s window ending at `now_us`.
fn used(
    conn: &Connection,
    queue: &str,
    key: &str,
    rate: RateLimit,
    now_us: i64,
) -> Result<usize, StoreError> {
    conn.prepare_cached(
        "SELECT count(*) FROM queue_starts WHERE queue = ?1 AND rate_key = ?2 AND started_at > ?3",
    )
    .and_then(|mut s| {
        s.query_row(params![queue, key, window_from(rate, now_us)], |r| {
            r.get::<_, i64>(0)
        })
    })
    .map(|n| n.max(0) as usize)
    .map_err(db)
}

/// The starts of `key` in `queue`'s window ending at `now_us`, oldest first.
fn key_window(
    conn: &Connection,
    queue: &str,
    key: &str,
    rate: RateLimit,
    now_us: i64,
) -> Result<Vec<DateTime<Utc>>, StoreError> {
    conn.prepare_cached(
        "SELECT started_at FROM queue_starts WHERE queue = ?1 AND rate_key = ?2 \
         AND started_at > ?3 ORDER BY started_at",
    )
    .and_then(|mut s| {
        s.query_map(params![queue, key, window_from(rate, now_us)], |r| {
            r.get::<_, i64>(0).map(from_us)
        })?
        .collect()
    })
    .map_err(db)
}

/// Every key's starts in `queue`'s window ending at `now_us` (oldest first).
pub(crate) fn key_windows(
    conn: &Connection,
    queue: &str,
    rate: RateLimit,
    now_us: i64,
) -> Result<KeyWindows, StoreError> {
    let rows: Vec<(String, i64)> = conn
        .prepare_cached(
            "SELECT rate_key, started_at FROM queue_starts WHERE queue = ?1 AND started_at > ?2 \
             ORDER BY rate_key, started_at",
        )
        .and_then(|mut s| {
            s.query_map(params![queue, window_from(rate, now_us)], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })?
            .collect()
        })
        .map_err(db)?;
    let mut out: Vec<(String, Vec<DateTime<Utc>>)> = Vec::new();
    for (key, at) in rows {
        match out.last_mut() {
            Some((k, w)) if *k == key => w.push(from_us(at)),
            _ => out.push((key, vec![from_us(at)])),
        }
    }
    Ok(out)
}

/// When `queue` (rated by `rate`) may next start one of its runnable jobs,
/// if every key they have is at its limit now (see
/// [`LimitStore::next_start`](kyu_core::LimitStore::next_start)).
pub(crate) fn next_open(
    conn: &Connection,
    queue: &str,
    rate: RateLimit,
    now_us: i64,
) -> Result<Option<DateTime<Utc>>, StoreError> {
    let mut keys = available_keys(conn, queue)?;
    let due: Vec<String> = conn
        .prepare_cached(
            "SELECT DISTINCT rate_key FROM jobs WHERE state = 'scheduled' AND run_at <= ?2 \
             AND queue = ?1 AND rate_key IS NOT NULL",
        )
        .and_then(|mut s| s.query_map(params![queue, now_us], |r| r.get(0))?.collect())
        .map_err(db)?;
    for k in due {
        if !keys.contains(&k) {
            keys.push(k);
        }
    }
    let mut windows = Vec::with_capacity(keys.len());
    for k in &keys {
        windows.push(key_window(conn, queue, k, rate, now_us)?);
    }
    Ok(next_key_open(&windows, rate, from_us(now_us)))
}

/// Claims up to `want` jobs of the rated `queue` for `claim`: of each key
/// at most what its window has room for, the first in claim order across
/// keys, and records their starts. Runs inside the claim's write
/// transaction.
pub(crate) fn claim_rated(
    conn: &Connection,
    now_us: i64,
    claim: &Claim,
    queue: &str,
    rate: RateLimit,
    want: usize,
) -> Result<Vec<(i32, i64, ClaimedJob)>, StoreError> {
    let kinds = match &claim.kinds {
        Some(ks) => Some(serde_json::to_string(ks).map_err(StoreError::database)?),
        None => None,
    };
    let mut pick = conn
        .prepare_cached(
            "SELECT id, priority, run_at FROM jobs WHERE state = 'available' AND queue = ?1 \
             AND rate_key = ?2 AND rate_key IS NOT NULL \
             AND (?3 IS NULL OR kind IN (SELECT value FROM json_each(?3))) \
             ORDER BY priority, run_at, id LIMIT ?4",
        )
        .map_err(db)?;
    let mut keys = available_keys(conn, queue)?;
    if keys.is_empty() {
        // Jobs without a key in a rated queue (none should be: enqueue and
        // `rekey` give every one a key) join the "no key" bucket rather
        // than wait unseen; cheap, as the queue has no keyed job waiting.
        let adopted = conn
            .prepare_cached(
                "UPDATE jobs SET rate_key = '' \
                 WHERE state = 'available' AND queue = ?1 AND rate_key IS NULL",
            )
            .and_then(|mut s| s.execute([queue]))
            .map_err(db)?;
        if adopted > 0 {
            keys = available_keys(conn, queue)?;
        }
    }
    // (priority, run_at, id, key) of every job a key has room for.
    let mut candidates: Vec<(i32, i64, i64, String)> = Vec::new();
    for key in keys {
        let room = (rate.starts as usize).saturating_sub(used(conn, queue, &key, rate, now_us)?);
        if room == 0 {
            continue;
        }
        let n = i64::try_from(room.min(want)).unwrap_or(i64::MAX);
        let rows: Vec<(i32, i64, i64)> = pick
            .query_map(params![queue, key, kinds, n], |r| {
                Ok((r.get(1)?, r.get(2)?, r.get(0)?))
            })
            .and_then(|rows| rows.collect())
            .map_err(db)?;
        candidates.extend(rows.into_iter().map(|(p, at, id)| (p, at, id, key.clone())));
    }
    candidates.sort_by_key(|(p, at, id, _)| (*p, *at, *id));
    candidates.truncate(want);
    let ids: Vec<i64> = candidates.iter().map(|c| c.2).collect();
    let one = Claim {
        queues: vec![queue.to_string()],
        limit: ids.len(),
        ..claim.clone()
    };
    let got = crate::claim::claim_ids(conn, now_us, &one, &ids)?;
    let mut ins = conn
        .prepare_cached(
            "INSERT INTO queue_starts (queue, rate_key, started_at) VALUES (?1, ?2, ?3)",
        )
        .map_err(db)?;
    for (_, _, j) in &got {
        let key = candidates
            .iter()
            .find(|c| c.2 == j.id)
            .map_or("", |c| c.3.as_str());
        ins.execute(params![queue, key, now_us]).map_err(db)?;
    }
    conn.prepare_cached("DELETE FROM queue_starts WHERE queue = ?1 AND started_at <= ?2")
        .and_then(|mut s| s.execute(params![queue, window_from(rate, now_us)]))
        .map_err(db)?;
    Ok(got)
}
