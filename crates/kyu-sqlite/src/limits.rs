//! Queue limits (see `kyu_core::limits`): global concurrency and rate,
//! stored in the `queues` table, with the rate window's starts in
//! `queue_starts`.
//!
//! A claim is one write transaction and SQLite has one writer, so counting a
//! limited queue's running jobs and recent starts, claiming up to what is
//! left and recording the starts cannot interleave with another claim, in
//! this process or another: the limits hold across processes by construction.
//! Queues without limits are claimed as before ([`split`] reads the small
//! `queues` table once, as the pause check did).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use kyu_core::limits::{next_start_from, LimitStore};
use kyu_core::{
    Claim, EventFacts, EventType, LimitsUpdate, NewEvent, QueueLimitStatus, QueueLimits, RateLimit,
    StoreError,
};
use rusqlite::{params, Connection, OptionalExtension};

use crate::events::write_one;
use crate::row::{db, from_us, us};
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

fn limits_of(gc: Option<i64>, starts: Option<i64>, per_ms: Option<i64>) -> QueueLimits {
    QueueLimits {
        global_concurrency: gc.map(|n| n.clamp(0, u32::MAX as i64) as u32),
        rate: match (starts, per_ms) {
            (Some(n), Some(ms)) => Some(RateLimit {
                starts: n.clamp(0, u32::MAX as i64) as u32,
                per: std::time::Duration::from_millis(ms.max(0) as u64),
            }),
            _ => None,
        },
    }
}

/// Splits the queues a claim names into those claimed without limits (not
/// paused, no limit) and the limited ones (not paused), each once, in order.
pub(crate) fn split(
    conn: &Connection,
    names: &[String],
) -> Result<(Vec<String>, Vec<Limited>), StoreError> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT name, paused, global_concurrency, rate_starts, rate_per_ms FROM queues \
             WHERE paused = 1 OR global_concurrency IS NOT NULL OR rate_starts IS NOT NULL",
        )
        .map_err(db)?;
    let special: Vec<(String, bool, QueueLimits)> = stmt
        .query_map([], |r| {
            Ok((
                r.get(0)?,
                r.get::<_, i64>(1)? != 0,
                limits_of(r.get(2)?, r.get(3)?, r.get(4)?),
            ))
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
                limits: *limits,
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

/// The starts of `queue` in the window of `rate` ending at `now_us`, oldest first.
fn window(
    conn: &Connection,
    queue: &str,
    rate: RateLimit,
    now_us: i64,
) -> Result<Vec<i64>, StoreError> {
    let from = now_us.saturating_sub(rate.per_ms().saturating_mul(1000));
    conn.prepare_cached(
        "SELECT started_at FROM queue_starts WHERE queue = ?1 AND started_at > ?2 \
         ORDER BY started_at",
    )
    .and_then(|mut s| s.query_map(params![queue, from], |r| r.get(0))?.collect())
    .map_err(db)
}

/// How many jobs `queue` may start now, at most `want`.
fn room(conn: &Connection, l: &Limited, now_us: i64, want: usize) -> Result<usize, StoreError> {
    let mut room = want;
    if let Some(n) = l.limits.global_concurrency {
        let left = (n as u64).saturating_sub(running(conn, &l.queue)?);
        room = room.min(left as usize);
    }
    if let (Some(rate), true) = (l.limits.rate, room > 0) {
        let used = window(conn, &l.queue, rate, now_us)?.len();
        room = room.min((rate.starts as usize).saturating_sub(used));
    }
    Ok(room)
}

/// Records `n` starts of `queue` at `now_us` and forgets those that left
/// the window.
fn record_starts(
    conn: &Connection,
    queue: &str,
    rate: RateLimit,
    now_us: i64,
    n: usize,
) -> Result<(), StoreError> {
    let mut ins = conn
        .prepare_cached("INSERT INTO queue_starts (queue, started_at) VALUES (?1, ?2)")
        .map_err(db)?;
    for _ in 0..n {
        ins.execute(params![queue, now_us]).map_err(db)?;
    }
    let from = now_us.saturating_sub(rate.per_ms().saturating_mul(1000));
    conn.prepare_cached("DELETE FROM queue_starts WHERE queue = ?1 AND started_at <= ?2")
        .and_then(|mut s| s.execute(params![queue, from]))
        .map_err(db)?;
    Ok(())
}

/// Claims from the limited queues, each up to what its limits leave, until
/// `claim.limit` jobs are claimed in all (`have` so far). `take` claims from
/// one queue as an unlimited claim would.
pub(crate) fn claim_limited<T>(
    conn: &Connection,
    now_us: i64,
    claim: &Claim,
    limited: Vec<Limited>,
    have: usize,
    mut take: impl FnMut(&Connection, &Claim) -> Result<Vec<T>, StoreError>,
) -> Result<Vec<T>, StoreError> {
    let mut out = Vec::new();
    for l in limited {
        let want = claim.limit.saturating_sub(have + out.len());
        if want == 0 {
            break;
        }
        let room = room(conn, &l, now_us, want)?;
        if room == 0 {
            continue;
        }
        let one = Claim {
            queues: vec![l.queue.clone()],
            limit: room,
            ..claim.clone()
        };
        let got = take(conn, &one)?;
        if let Some(rate) = l.limits.rate {
            record_starts(conn, &l.queue, rate, now_us, got.len())?;
        }
        out.extend(got);
    }
    Ok(out)
}

fn has_runnable(conn: &Connection, queue: &str, now_us: i64) -> Result<bool, StoreError> {
    conn.prepare_cached(
        "SELECT EXISTS (SELECT 1 FROM jobs WHERE queue = ?1 AND (state = 'available' \
         OR (state = 'scheduled' AND run_at <= ?2)))",
    )
    .and_then(|mut s| s.query_row(params![queue, now_us], |r| r.get::<_, bool>(0)))
    .map_err(db)
}

fn status_of(
    conn: &Connection,
    queue: String,
    limits: QueueLimits,
    now: DateTime<Utc>,
) -> Result<QueueLimitStatus, StoreError> {
    let now_us = us(now);
    let (rate_used, next_start_at) = match limits.rate {
        Some(rate) => {
            let w: Vec<DateTime<Utc>> = window(conn, &queue, rate, now_us)?
                .into_iter()
                .map(from_us)
                .collect();
            (w.len() as u64, next_start_from(&w, rate, now))
        }
        None => (0, None),
    };
    Ok(QueueLimitStatus {
        running: running(conn, &queue)?,
        queue,
        limits,
        rate_used,
        next_start_at,
    })
}

fn limited_queues(conn: &Connection) -> Result<Vec<(String, bool, QueueLimits)>, StoreError> {
    conn.prepare_cached(
        "SELECT name, paused, global_concurrency, rate_starts, rate_per_ms FROM queues \
         WHERE global_concurrency IS NOT NULL OR rate_starts IS NOT NULL ORDER BY name",
    )
    .and_then(|mut s| {
        s.query_map([], |r| {
            Ok((
                r.get(0)?,
                r.get::<_, i64>(1)? != 0,
                limits_of(r.get(2)?, r.get(3)?, r.get(4)?),
            ))
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
            "SELECT global_concurrency, rate_starts, rate_per_ms FROM queues WHERE name = ?1",
        )
        .and_then(|mut s| {
            s.query_row([queue], |r| Ok(limits_of(r.get(0)?, r.get(1)?, r.get(2)?)))
                .optional()
        })
        .map_err(db)?
        .unwrap_or_default();
    let after = update.apply(before);
    if after == before {
        return Ok(after);
    }
    conn.prepare_cached(
        "INSERT INTO queues (name, paused, global_concurrency, rate_starts, rate_per_ms) \
         VALUES (?1, 0, ?2, ?3, ?4) ON CONFLICT (name) DO UPDATE SET \
         global_concurrency = ?2, rate_starts = ?3, rate_per_ms = ?4",
    )
    .and_then(|mut s| {
        s.execute(params![
            queue,
            after.global_concurrency,
            after.rate.map(|r| r.starts),
            after.rate.map(|r| r.per_ms()),
        ])
    })
    .map_err(db)?;
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
            let now = clock.now();
            let mut next: Option<DateTime<Utc>> = None;
            for (q, paused, l) in limited_queues(c)? {
                if paused || l.rate.is_none() || !queues.contains(&q) {
                    continue;
                }
                let s = status_of(c, q.clone(), l, now)?;
                if let Some(at) = s.next_start_at {
                    if has_runnable(c, &q, us(now))? {
                        next = Some(next.map_or(at, |n| n.min(at)));
                    }
                }
            }
            Ok(next)
        })
        .await
    }
}
