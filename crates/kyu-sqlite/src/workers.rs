//! The worker registry (see `kyu_core::workers`): one row per live worker,
//! its queues and kinds as JSON text, and the runnable-job counts by queue
//! and kind it is compared against.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use kyu_core::{
    EventFacts, EventType, LiveWorker, NewEvent, StoreError, WaitingKind, WorkerInfo,
    WorkerRegistry,
};
use rusqlite::{params, Connection, OptionalExtension};

use crate::events::write_one;
use crate::row::{db, dur_us, from_us, parse_json, us};
use crate::{never, SqliteStore};

/// How long an expired registration is kept before it is removed: expired
/// rows are never read, this only keeps the table small.
const FORGET_AFTER: Duration = Duration::from_secs(3600);

/// Records (replaces) a worker's registration, alive until now + `ttl`.
fn seen(
    conn: &Connection,
    now: DateTime<Utc>,
    info: &WorkerInfo,
    ttl: Duration,
) -> Result<(), StoreError> {
    let now_us = us(now);
    let known: Option<i64> = conn
        .prepare_cached("SELECT 1 FROM workers WHERE id = ?1")
        .and_then(|mut s| s.query_row([&info.id], |r| r.get(0)).optional())
        .map_err(db)?;
    if known.is_none() {
        write_one(conn, &worker_event(now, EventType::WorkerStarted, &info.id))?;
    }
    let queues = serde_json::to_string(&info.queues).map_err(StoreError::database)?;
    let kinds = info
        .kinds
        .as_ref()
        .map(serde_json::to_string)
        .transpose()
        .map_err(StoreError::database)?;
    conn.prepare_cached(
        "INSERT INTO workers (id, queues, kinds, last_seen, expires_at) VALUES (?1, ?2, ?3, ?4, ?5) \
         ON CONFLICT (id) DO UPDATE SET queues = excluded.queues, kinds = excluded.kinds, \
         last_seen = excluded.last_seen, expires_at = excluded.expires_at",
    )
    .and_then(|mut s| {
        s.execute(params![
            info.id,
            queues,
            kinds,
            now_us,
            now_us.saturating_add(dur_us(ttl))
        ])
    })
    .map_err(db)?;
    conn.prepare_cached("DELETE FROM workers WHERE expires_at < ?1")
        .and_then(|mut s| s.execute([now_us.saturating_sub(dur_us(FORGET_AFTER))]))
        .map_err(db)?;
    Ok(())
}

/// A worker's start or stop event.
fn worker_event(now: DateTime<Utc>, t: EventType, id: &str) -> NewEvent {
    NewEvent::other(now, t).facts(EventFacts {
        worker: Some(id.to_string()),
        ..EventFacts::default()
    })
}

/// Removes a worker's registration (with its `worker_stopped` event, if it had one).
fn gone(conn: &Connection, now: DateTime<Utc>, id: &str) -> Result<(), StoreError> {
    let n = conn
        .prepare_cached("DELETE FROM workers WHERE id = ?1")
        .and_then(|mut s| s.execute([id]))
        .map_err(db)?;
    if n > 0 {
        write_one(conn, &worker_event(now, EventType::WorkerStopped, id))?;
    }
    Ok(())
}

/// The workers whose registration has not expired, by id.
fn live(conn: &Connection, now: DateTime<Utc>) -> Result<Vec<LiveWorker>, StoreError> {
    conn.prepare_cached(
        "SELECT id, queues, kinds, last_seen FROM workers WHERE expires_at > ?1 ORDER BY id",
    )
    .and_then(|mut s| {
        s.query_map([us(now)], |r| {
            let kinds: Option<String> = r.get(2)?;
            Ok(LiveWorker {
                info: WorkerInfo {
                    id: r.get(0)?,
                    queues: parse_json(1, &r.get::<_, String>(1)?)?,
                    kinds: kinds.map(|k| parse_json(2, &k)).transpose()?,
                },
                last_seen: from_us(r.get(3)?),
            })
        })?
        .collect()
    })
    .map_err(db)
}

/// Runnable jobs by queue and kind: available ones off the claim index, due
/// scheduled ones off the scheduled index.
fn waiting(conn: &Connection, now: DateTime<Utc>) -> Result<Vec<WaitingKind>, StoreError> {
    let rows: Vec<(String, String, i64)> = conn
        .prepare_cached(
            "SELECT queue, kind, COUNT(*) FROM jobs WHERE state = 'available' GROUP BY queue, kind \
             UNION ALL \
             SELECT queue, kind, COUNT(*) FROM jobs WHERE state = 'scheduled' AND run_at <= ?1 \
             GROUP BY queue, kind",
        )
        .and_then(|mut s| {
            s.query_map([us(now)], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                .collect()
        })
        .map_err(db)?;
    let mut counts: BTreeMap<(String, String), u64> = BTreeMap::new();
    for (queue, kind, n) in rows {
        *counts.entry((queue, kind)).or_default() += n as u64;
    }
    Ok(counts
        .into_iter()
        .map(|((queue, kind), count)| WaitingKind { queue, kind, count })
        .collect())
}

/// The worker registry of a [`SqliteStore`]: registrations are writes in the
/// group commit, the lists are reads.
#[async_trait]
impl WorkerRegistry for SqliteStore {
    async fn worker_seen(&self, info: &WorkerInfo, ttl: Duration) -> Result<(), StoreError> {
        let clock = self.now_fn();
        let info = info.clone();
        self.write(never, move |c| seen(c, clock.now(), &info, ttl))
            .await
    }

    async fn worker_gone(&self, id: &str) -> Result<(), StoreError> {
        let id = id.to_string();
        let clock = self.now_fn();
        self.write(never, move |c| gone(c, clock.now(), &id)).await
    }

    async fn live_workers(&self) -> Result<Vec<LiveWorker>, StoreError> {
        let clock = self.now_fn();
        self.read(move |c| live(c, clock.now())).await
    }

    async fn waiting_kinds(&self) -> Result<Vec<WaitingKind>, StoreError> {
        let clock = self.now_fn();
        self.read(move |c| waiting(c, clock.now())).await
    }
}
