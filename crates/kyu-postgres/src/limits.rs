//! Queue limits (see `kyu_core::limits`): global concurrency and rate,
//! stored in the `queues` table, with the rate window's starts in
//! `queue_starts`.
//!
//! The ordinary claim statement skips limited queues (module `claim`). A
//! limited queue is claimed in a transaction that first locks the queue's
//! row (`SELECT … FOR UPDATE`), then, in later statements that therefore see
//! every claim committed before the lock was granted, counts the queue's
//! running jobs and recent starts, claims up to what is left and records
//! the starts. Two hosts claiming from one limited queue take turns on its
//! row, so they cannot both take the last slot. Queues are locked in name
//! order, so claims naming several limited queues cannot deadlock. A queue
//! without limits never takes the lock, and pays one extra read only when
//! a claim came back short (the queue is drained) and named a limited queue.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use kyu_core::limits::{LimitStore, RateUse};
use kyu_core::{
    Claim, ClaimedJob, EventFacts, EventType, LimitsUpdate, NewEvent, QueueLimitStatus,
    QueueLimits, StoreError,
};
use sqlx::{Acquire, PgConnection};

use crate::row::db;
use crate::PgStore;

/// Migration 7: the limits of a queue and the starts of its rate window;
/// `{s}` is the schema.
pub(crate) const MIGRATION: &str = r#"
ALTER TABLE {s}.queues ADD COLUMN global_concurrency integer,
    ADD COLUMN rate_starts integer, ADD COLUMN rate_per_ms bigint;
CREATE TABLE {s}.queue_starts (
    queue      text        NOT NULL,
    started_at timestamptz NOT NULL
);
CREATE INDEX queue_starts_window ON {s}.queue_starts (queue, started_at);
"#;

/// The columns of a queue's limits.
const LIMIT_COLUMNS: &str = "global_concurrency, rate_starts, rate_per_ms, rate_key";

/// A queue is limited when one of its limits is set.
const IS_LIMITED: &str = "(global_concurrency IS NOT NULL OR rate_starts IS NOT NULL)";

/// A `queues` row's limit columns.
type LimitRow = (Option<i32>, Option<i32>, Option<i64>, Option<String>);

/// A `queues` row's name, paused flag and limit columns.
type QueueRow = (
    String,
    bool,
    Option<i32>,
    Option<i32>,
    Option<i64>,
    Option<String>,
);

fn limits_of((gc, starts, per_ms, rate_key): LimitRow) -> QueueLimits {
    QueueLimits::from_columns(gc.map(i64::from), starts.map(i64::from), per_ms, rate_key)
}

async fn running(conn: &mut PgConnection, schema: &str, queue: &str) -> Result<u64, StoreError> {
    // Through jobs_lease: lease_expires_at is set exactly while a job runs,
    // so this reads the running jobs only.
    let n: i64 = sqlx::query_scalar(&format!(
        "SELECT count(*) FROM {schema}.jobs \
         WHERE lease_expires_at IS NOT NULL AND state = 'running' AND queue = $1"
    ))
    .bind(queue)
    .fetch_one(conn)
    .await
    .map_err(db)?;
    Ok(n.max(0) as u64)
}

/// Claims from the limited queues `claim` names, each up to what its limits
/// leave, until `claim.limit` jobs are claimed in all (`have` so far).
pub(crate) async fn claim_limited(
    conn: &mut PgConnection,
    schema: &str,
    now: DateTime<Utc>,
    claim: &Claim,
    have: usize,
) -> Result<Vec<(i32, DateTime<Utc>, ClaimedJob)>, StoreError> {
    let limited: Vec<String> = sqlx::query_scalar(&format!(
        "SELECT name FROM {schema}.queues WHERE name = ANY($1) AND NOT paused AND {IS_LIMITED} \
         ORDER BY name"
    ))
    .bind(&claim.queues)
    .fetch_all(&mut *conn)
    .await
    .map_err(db)?;
    if limited.is_empty() {
        return Ok(Vec::new());
    }
    let mut tx = conn.begin().await.map_err(db)?;
    let mut out = Vec::new();
    for queue in limited {
        let want = claim.limit.saturating_sub(have + out.len());
        if want == 0 {
            break;
        }
        let (paused, gc, starts, per_ms, rate_key): (
            bool,
            Option<i32>,
            Option<i32>,
            Option<i64>,
            Option<String>,
        ) = sqlx::query_as(&format!(
            "SELECT paused, {LIMIT_COLUMNS} FROM {schema}.queues WHERE name = $1 FOR UPDATE"
        ))
        .bind(&queue)
        .fetch_one(&mut *tx)
        .await
        .map_err(db)?;
        if paused {
            continue;
        }
        let limits = limits_of((gc, starts, per_ms, rate_key));
        // The claim's time was read before the queue's lock was won: another
        // host may have recorded later starts meanwhile. Starts are recorded
        // at no earlier time than the latest one, so the window counted here
        // and the starts recorded stay in one order whichever host was
        // slower to reach the lock.
        let now = match limits.rate {
            Some(_) => {
                let latest = crate::rate_keys::prepare(&mut tx, schema, &queue, now).await?;
                latest.map_or(now, |l| l.max(now))
            }
            None => now,
        };
        let mut room = want;
        if let Some(n) = limits.global_concurrency {
            let left = (n as u64).saturating_sub(running(&mut tx, schema, &queue).await?);
            room = room.min(left as usize);
        }
        if room == 0 {
            continue;
        }
        let one = Claim {
            queues: vec![queue.clone()],
            limit: room,
            ..claim.clone()
        };
        let got = match limits.rate {
            Some(rate) => crate::rate_keys::claim_rated(&mut tx, schema, now, &one, rate).await?,
            None => crate::claim::claim_in(&mut tx, schema, now, &one, true).await?,
        };
        out.extend(got);
    }
    tx.commit().await.map_err(db)?;
    Ok(out)
}

/// Every limited queue: name, paused, limits.
async fn limited_queues(
    conn: &mut PgConnection,
    schema: &str,
) -> Result<Vec<(String, bool, QueueLimits)>, StoreError> {
    let rows: Vec<QueueRow> = sqlx::query_as(&format!(
        "SELECT name, paused, {LIMIT_COLUMNS} FROM {schema}.queues WHERE {IS_LIMITED} \
             ORDER BY name"
    ))
    .fetch_all(conn)
    .await
    .map_err(db)?;
    Ok(rows
        .into_iter()
        .map(|(q, p, gc, s, ms, k)| (q, p, limits_of((gc, s, ms, k))))
        .collect())
}

async fn status_of(
    conn: &mut PgConnection,
    schema: &str,
    queue: String,
    limits: QueueLimits,
    now: DateTime<Utc>,
) -> Result<QueueLimitStatus, StoreError> {
    let running = running(&mut *conn, schema, &queue).await?;
    let rate_use = match limits.rate {
        Some(rate) => Some(RateUse {
            windows: crate::rate_keys::key_windows(&mut *conn, schema, &queue, rate, now).await?,
            next_start_at: crate::rate_keys::next_open(&mut *conn, schema, &queue, rate, now)
                .await?,
        }),
        None => None,
    };
    Ok(QueueLimitStatus::from_use(
        queue, limits, running, rate_use, now,
    ))
}

#[async_trait]
impl LimitStore for PgStore {
    async fn set_queue_limits(
        &self,
        queue: &str,
        update: LimitsUpdate,
    ) -> Result<QueueLimits, StoreError> {
        kyu_core::job::check_name("queue", queue)?;
        update.validate()?;
        let schema = self.s();
        let now = self.now();
        let mut conn = self.conn().await?;
        let mut tx = conn.begin().await.map_err(db)?;
        sqlx::query(&format!(
            "INSERT INTO {schema}.queues (name) VALUES ($1) ON CONFLICT (name) DO NOTHING"
        ))
        .bind(queue)
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        let row: LimitRow = sqlx::query_as(&format!(
            "SELECT {LIMIT_COLUMNS} FROM {schema}.queues WHERE name = $1 FOR UPDATE"
        ))
        .bind(queue)
        .fetch_one(&mut *tx)
        .await
        .map_err(db)?;
        let before = limits_of(row);
        let after = update.apply(before.clone())?;
        if after == before {
            tx.commit().await.map_err(db)?;
            return Ok(after);
        }
        sqlx::query(&format!(
            "UPDATE {schema}.queues SET global_concurrency = $2, rate_starts = $3, \
             rate_per_ms = $4, rate_key = $5 WHERE name = $1"
        ))
        .bind(queue)
        .bind(
            after
                .global_concurrency
                .map(|n| n.min(i32::MAX as u32) as i32),
        )
        .bind(after.rate.map(|r| r.starts.min(i32::MAX as u32) as i32))
        .bind(after.rate.map(|r| r.per_ms()))
        .bind(after.rate_key.as_ref().map(|p| p.to_string()))
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        // Jobs without a key (enqueued while the queue had no rate) or in
        // the "no key" bucket get the key the new path finds.
        if after.rate.is_some() && (before.rate.is_none() || before.rate_key != after.rate_key) {
            let path = after.rate_key.as_ref().map(|p| p.to_string());
            crate::rate_keys::rekey(&mut tx, schema, queue, path).await?;
        }
        let mut e = NewEvent::other(now, EventType::QueueLimitsChanged).facts(EventFacts {
            message: Some(kyu_core::limits::describe(&after)),
            ..EventFacts::default()
        });
        e.queue = Some(queue.to_string());
        crate::events::write_one(&mut tx, schema, &e).await?;
        // A limit lifted or raised may let waiting jobs start: wake workers.
        sqlx::query("SELECT pg_notify($1, '')")
            .bind(&self.inner.channel)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        tx.commit().await.map_err(db)?;
        self.events_written();
        Ok(after)
    }

    async fn queue_limits(&self) -> Result<Vec<QueueLimitStatus>, StoreError> {
        let schema = self.s();
        let now = self.now();
        let mut conn = self.conn().await?;
        let mut out = Vec::new();
        for (q, _, l) in limited_queues(&mut conn, schema).await? {
            out.push(status_of(&mut conn, schema, q, l, now).await?);
        }
        Ok(out)
    }

    async fn next_start(&self, queues: &[String]) -> Result<Option<DateTime<Utc>>, StoreError> {
        let schema = self.s();
        let now = self.now();
        let mut conn = self.conn().await?;
        let mut next: Option<DateTime<Utc>> = None;
        for (q, paused, l) in limited_queues(&mut conn, schema).await? {
            let Some(rate) = l.rate else { continue };
            if paused || !queues.contains(&q) {
                continue;
            }
            if let Some(at) = crate::rate_keys::next_open(&mut conn, schema, &q, rate, now).await? {
                next = Some(next.map_or(at, |n| n.min(at)));
            }
        }
        Ok(next)
    }
}
