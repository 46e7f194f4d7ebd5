//! Queue limits (see `kyu_core::limits`): global concurrency and rate,
//! stored in the `queues` table, with the rate window's starts in
//! `queue_starts` (per rate key: module `rate_keys`).
//!
//! A claim is one write transaction and SQLite has one writer, so counting a
//! limited queue's running jobs and recent starts, claiming up to what is
//! left and recording the starts cannot interleave with another claim, in
//! this process or another: the limits hold across processes by construction.
//! Queues without limits are claimed as before ([`split`] reads the small
//! `queues` table once, as the pause check did).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use kyu_core::limits::{LimitStore, RateUse};
use kyu_core::{
    Claim, ClaimedJob, EventFacts, EventType, LimitsUpdate, NewEvent, QueueLimitStatus,
    QueueLimits, StoreError,
};
use rusqlite::{params, Connection, OptionalExtension};

use crate::events::write_one;
use crate::row::{db, us};
use crate::{always, SqliteStore};

/// Migration 7: the limits of a queue and the starts of its rate window.
pub(crate) const MIGRATION: &str = r#"
ALTER TABLE queues ADD COLUMN global_concurrency INTEGER;
ALTER TABLE queues ADD COLUMN rate_starts INTEGER;
ALTER TABLE queues ADD COLUMN rate_per_ms INTEGER;
CREATE TABLE queue_starts (
    queue      TEXT    NOT NULL,
    started_at INTEGER NOT NULL
);
CREATE INDEX queue_starts_window ON queue_starts (queue, started_at);
"#;

/// A limited queue a claim names.
pub(crate) struct Limited {
    queue: String,
    limits: QueueLimits,
}

/// A `queues` row's limits, from its columns `global_concurrency`,
/// `rate_starts`, `rate_per_ms` and `rate_key` at `first` onwards.
fn limits_at(r: &rusqlite::Row<'_>, first: usize) -> rusqlite::Result<QueueLimits> {
    Ok(QueueLimits::from_columns(
        r.get(first)?,
        r.get(first + 1)?,
        r.get(first + 2)?,
        r.get(first + 3)?,
    ))
}

/// Splits the queues a claim names into those claimed without limits (not
/// paused, no limit) and the limited ones (not paused), each once, in order.
pub(crate) fn split(
    conn: &Connection,
    names: &[String],
) -> Result<(Vec<String>, Vec<Limited>), StoreError> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT name, paused, global_concurrency, rate_starts, rate_per_ms, rate_key \
             FROM queues \
             WHERE paused = 1 OR global_concurrency IS NOT NULL OR rate_starts IS NOT NULL",
        )
        .map_err(db)?;
    let special: Vec<(String, bool, QueueLimits)> = stmt
        .query_map([], |r| {
            Ok((r.get(0)?, r.get::<_, i64>(1)? != 0, limits_at(r, 2)?))
        })
        .and_then(|rows| rows.collect())
        .map_err(db)?;
    let mut free: Vec<String> = Vec::with_capacity(names.len());
    let mut limited: Vec<Limited> = Vec::new();
    for n in names {
        if free.contains(n) || limited.iter().any(|l| &l.queue == n) {
            continue;
        }
        match special.iter().find(|(q, _, _)| q == n) {
            None => free.push(n.clone()),
            Some((_, true, _)) => {}
            Some((_, false, limits)) => limited.push(Limited {
                queue: n.clone(),
                limits: limits.clone(),
            }),
        }
    }
    Ok((free, limited))
}

fn running(conn: &Connection, queue: &str) -> Result<u64, StoreError> {
    conn.prepare_cached("SELECT count(*) FROM jobs WHERE state = 'running' AND queue = ?1")
        .and_then(|mut s| s.query_row([queue], |r| r.get::<_, i64>(0)))
        .map(|n| n.max(0) as u64)
        .map_err(db)
}

/// Claims from the limited queues, each up to what its limits leave, until
/// `claim.limit` jobs are claimed in all (`have` so far). `take` claims from
/// one queue as an unlimited claim would; a rated queue is claimed key by
/// key (module `rate_keys`).
pub(crate) fn claim_limited(
    conn: &Connection,
    now_us: i64,
    claim: &Claim,
    limited: Vec<Limited>,
    have: usize,
    mut take: impl FnMut(&Connection, &Claim) -> Result<Vec<(i32, i64, ClaimedJob)>, StoreError>,
) -> Result<Vec<(i32, i64, ClaimedJob)>, StoreError> {
    let mut out = Vec::new();
    for l in limited {
        let mut room = claim.limit.saturating_sub(have + out.len());
        if room == 0 {
            break;
        }
        if let Some(n) = l.limits.global_concurrency {
            let left = (n as u64).saturating_sub(running(conn, &l.queue)?);
            room = room.min(left as usize);
        }
        if room == 0 {
            continue;
        }
        let got = match l.limits.rate {
            Some(rate) => crate::rate_keys::claim_rated(conn, now_us, claim, &l.queue, rate, room)?,
            None => {
                let one = Claim {
                    queues: vec![l.queue.clone()],
                    limit: room,
                    ..claim.clone()
                };
                take(conn, &one)?
            }
        };
        out.extend(got);
    }
    Ok(out)
}

fn status_of(
    conn: &Connection,
    queue: String,
    limits: QueueLimits,
    now: DateTime<Utc>,
) -> Result<QueueLimitStatus, StoreError> {
    let now_us = us(now);
    let running = running(conn, &queue)?;
    let rate_use = match limits.rate {
        Some(rate) => Some(RateUse {
            windows: crate::rate_keys::key_windows(conn, &queue, rate, now_us)?,
            next_start_at: crate::rate_keys::next_open(conn, &queue, rate, now_us)?,
        }),
        None => None,
    };
    Ok(QueueLimitStatus::from_use(
        queue, limits, running, rate_use, now,
    ))
}

fn limited_queues(conn: &Connection) -> Result<Vec<(String, bool, QueueLimits)>, StoreError> {
    conn.prepare_cached(
        "SELECT name, paused, global_concurrency, rate_starts, rate_per_ms, rate_key FROM queues \
         WHERE global_concurrency IS NOT NULL OR rate_starts IS NOT NULL ORDER BY name",
    )
    .and_then(|mut s| {
        s.query_map([], |r| {
            Ok((r.get(0)?, r.get::<_, i64>(1)? != 0, limits_at(r, 2)?))
        })?
        .collect()
    })
    .map_err(db)
}

/// A change of a queue's limits, and its event if it changed them.
fn set(
    conn: &Connection,
    now: DateTime<Utc>,
    queue: &str,
    update: LimitsUpdate,
) -> Result<QueueLimits, StoreError> {
    let before = conn
        .prepare_cached(
            "SELECT global_concurrency, rate_starts, rate_per_ms, rate_key FROM queues \
             WHERE name = ?1",
        )
        .and_then(|mut s| s.query_row([queue], |r| limits_at(r, 0)).optional())
        .map_err(db)?
        .unwrap_or_default();
    let after = update.apply(before.clone())?;
    if after == before {
        return Ok(after);
    }
    conn.prepare_cached(
        "INSERT INTO queues (name, paused, global_concurrency, rate_starts, rate_per_ms, rate_key) \
         VALUES (?1, 0, ?2, ?3, ?4, ?5) ON CONFLICT (name) DO UPDATE SET \
         global_concurrency = ?2, rate_starts = ?3, rate_per_ms = ?4, rate_key = ?5",
    )
    .and_then(|mut s| {
        s.execute(params![
            queue,
            after.global_concurrency,
            after.rate.map(|r| r.starts),
            after.rate.map(|r| r.per_ms()),
            after.rate_key.as_ref().map(|p| p.to_string()),
        ])
    })
    .map_err(db)?;
    // Jobs without a key (enqueued while the queue had no rate) or in the
    // "no key" bucket get the key the new path finds.
    if after.rate.is_some() && (before.rate.is_none() || before.rate_key != after.rate_key) {
        crate::rate_keys::rekey(conn, queue, after.rate_key.as_ref())?;
    }
    let mut e = NewEvent::other(now, EventType::QueueLimitsChanged).facts(EventFacts {
        message: Some(kyu_core::limits::describe(&after)),
        ..EventFacts::default()
    });
    e.queue = Some(queue.to_string());
    write_one(conn, &e)?;
    Ok(after)
}

#[async_trait]
impl LimitStore for SqliteStore {
    async fn set_queue_limits(
        &self,
        queue: &str,
        update: LimitsUpdate,
    ) -> Result<QueueLimits, StoreError> {
        kyu_core::job::check_name("queue", queue)?;
        update.validate()?;
        let queue = queue.to_string();
        let clock = self.now_fn();
        self.write(always, move |c| set(c, clock.now(), &queue, update))
            .await
    }

    async fn queue_limits(&self) -> Result<Vec<QueueLimitStatus>, StoreError> {
        let clock = self.now_fn();
        self.read(move |c| {
            let now = clock.now();
            limited_queues(c)?
                .into_iter()
                .map(|(q, _, l)| status_of(c, q, l, now))
                .collect()
        })
        .await
    }

    async fn next_start(&self, queues: &[String]) -> Result<Option<DateTime<Utc>>, StoreError> {
        let queues = queues.to_vec();
        let clock = self.now_fn();
        self.read(move |c| {
            let now_us = us(clock.now());
            let mut next: Option<DateTime<Utc>> = None;
            for (q, paused, l) in limited_queues(c)? {
                let Some(rate) = l.rate else { continue };
                if paused || !queues.contains(&q) {
                    continue;
                }
                if let Some(at) = crate::rate_keys::next_open(c, &q, rate, now_us)? {
                    next = Some(next.map_or(at, |n| n.min(at)));
                }
            }
            Ok(next)
        })
        .await
    }
}
