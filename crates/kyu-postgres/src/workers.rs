//! The worker registry (see `kyu_core::workers`): one row per live worker,
//! and the runnable-job counts by queue and kind it is compared against.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use kyu_core::{LiveWorker, StoreError, WaitingKind, WorkerInfo, WorkerRegistry};

use crate::row::{db, plus};
use crate::PgStore;

/// How long an expired registration is kept before it is removed: expired
/// rows are never read, this only keeps the table small.
const FORGET_AFTER: Duration = Duration::from_secs(3600);

/// A row of the registry: id, queues, kinds (NULL: every kind), last seen.
type WorkerRow = (String, Vec<String>, Option<Vec<String>>, DateTime<Utc>);

/// The worker registry of a [`PgStore`]: one statement each.
#[async_trait]
impl WorkerRegistry for PgStore {
    /// Records (replaces) a worker's registration, alive until now + `ttl`,
    /// and removes registrations long expired.
    async fn worker_seen(&self, info: &WorkerInfo, ttl: Duration) -> Result<(), StoreError> {
        self.limit(async {
            let (pool, schema, now) = (self.pool(), self.schema(), self.now());
            let forget_before =
                now - chrono::Duration::from_std(FORGET_AFTER).unwrap_or(chrono::Duration::zero());
            // A registration that was not there is a worker starting: its event
            // (xmax = 0 tells an insert from an update of the upsert).
            let fresh: bool = sqlx::query_scalar(&format!(
                "WITH up AS (\
               INSERT INTO {schema}.workers (id, queues, kinds, last_seen, expires_at) \
               VALUES ($1, $2, $3, $4, $5) \
               ON CONFLICT (id) DO UPDATE SET queues = excluded.queues, kinds = excluded.kinds, \
                 last_seen = excluded.last_seen, expires_at = excluded.expires_at \
               RETURNING id, (xmax = 0) AS fresh), \
             ev AS ({insert} SELECT $4, 'worker_started', NULL, NULL, NULL, NULL, \
               json_build_object('worker', id)::text FROM up WHERE fresh), \
             old AS (DELETE FROM {schema}.workers WHERE expires_at < $6 AND id <> $1) \
             SELECT COALESCE((SELECT fresh FROM up), false)",
                insert = crate::events::insert(schema)
            ))
            .bind(&info.id)
            .bind(&info.queues)
            .bind(&info.kinds)
            .bind(now)
            .bind(plus(now, ttl))
            .bind(forget_before)
            .fetch_one(pool)
            .await
            .map_err(db)?;
            if fresh {
                self.events_written();
            }
            Ok(())
        })
        .await
    }

    /// Removes a worker's registration, with its `worker_stopped` event.
    async fn worker_gone(&self, id: &str) -> Result<(), StoreError> {
        self.limit(async {
            let (pool, schema, now) = (self.pool(), self.schema(), self.now());
            let n: i64 = sqlx::query_scalar(&format!(
                "WITH gone AS (DELETE FROM {schema}.workers WHERE id = $1 RETURNING id), \
             ev AS ({insert} SELECT $2, 'worker_stopped', NULL, NULL, NULL, NULL, \
               json_build_object('worker', id)::text FROM gone) \
             SELECT count(*) FROM gone",
                insert = crate::events::insert(schema)
            ))
            .bind(id)
            .bind(now)
            .fetch_one(pool)
            .await
            .map_err(db)?;
            if n > 0 {
                self.events_written();
            }
            Ok(())
        })
        .await
    }

    /// The workers whose registration has not expired, by id.
    async fn live_workers(&self) -> Result<Vec<LiveWorker>, StoreError> {
        self.limit(async {
            let (pool, schema, now) = (self.pool(), self.schema(), self.now());
            let rows: Vec<WorkerRow> = sqlx::query_as(&format!(
                "SELECT id, queues, kinds, last_seen FROM {schema}.workers \
             WHERE expires_at > $1 ORDER BY id"
            ))
            .bind(now)
            .fetch_all(pool)
            .await
            .map_err(db)?;
            Ok(rows
                .into_iter()
                .map(|(id, queues, kinds, last_seen)| LiveWorker {
                    info: WorkerInfo { id, queues, kinds },
                    last_seen,
                })
                .collect())
        })
        .await
    }

    /// Runnable jobs by queue and kind: available ones off the claim index, due
    /// scheduled ones off the scheduled index.
    async fn waiting_kinds(&self) -> Result<Vec<WaitingKind>, StoreError> {
        self.limit(async {
            let (pool, schema, now) = (self.pool(), self.schema(), self.now());
            let rows: Vec<(String, String, i64)> = sqlx::query_as(&format!(
                "SELECT queue, kind, count(*) FROM {schema}.jobs WHERE state = 'available' \
             GROUP BY queue, kind \
             UNION ALL \
             SELECT queue, kind, count(*) FROM {schema}.jobs \
             WHERE state = 'scheduled' AND run_at <= $1 GROUP BY queue, kind"
            ))
            .bind(now)
            .fetch_all(pool)
            .await
            .map_err(db)?;
            let mut counts: BTreeMap<(String, String), u64> = BTreeMap::new();
            for (queue, kind, n) in rows {
                *counts.entry((queue, kind)).or_default() += n as u64;
            }
            Ok(counts
                .into_iter()
                .map(|((queue, kind), count)| WaitingKind { queue, kind, count })
                .collect())
        })
        .await
    }
}
