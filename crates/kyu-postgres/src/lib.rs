//! # kyu-postgres
//!
//! kyu's PostgreSQL [`Store`]: many workers on many hosts share one database.
//!
//! ```no_run
//! # async fn demo() -> Result<(), kyu_core::StoreError> {
//! use kyu_core::{NewJob, Store};
//! use kyu_postgres::{PgOptions, PgStore};
//!
//! let store = PgStore::connect("postgres://postgres@127.0.0.1/app", PgOptions::default()).await?;
//! let ids = store.enqueue(vec![NewJob::new("hello", serde_json::json!({}))]).await?;
//! assert!(store.get(ids[0].id).await?.is_some());
//! # Ok(()) }
//! ```
//!
//! ## How it works
//!
//! - **Schema.** Everything lives in one schema (default `kyu`, or
//!   `?schema=NAME` on the URL, or [`PgOptions::schema`]), so kyu can share a
//!   database with the application. Migrations are versioned in
//!   `<schema>.kyu_migrations` and applied on connect unless
//!   [`PgOptions::migrate`] is false; [`PgStore::migrate`] applies them on demand
//!   (the CLI's `kyu migrate`).
//! - **Claims** (module `claim`) are one statement: `SELECT … ORDER BY priority,
//!   run_at, id LIMIT n FOR UPDATE SKIP LOCKED` on a partial index of available
//!   jobs, feeding an `UPDATE … RETURNING`. Workers never wait on each other's rows.
//! - **Finishes and heartbeats** (modules `finish`, `lease`) are one
//!   statement per batch over `unnest` arrays, each row fenced by
//!   `(id, attempt, state = 'running')`: a late write from a worker whose lease
//!   expired changes nothing.
//! - **Wake-ups** (module `notify`): an enqueue that makes a job runnable sends
//!   one `pg_notify` in its own transaction, so it is delivered on commit and
//!   only then. Each store keeps one `LISTEN` connection that turns
//!   notifications into [`Store::subscribe`] changes; workers also poll, so a
//!   lost notification (a reconnect) costs latency, never a job.
//! - **Events** (module `events`): each change writes its events in the same
//!   statement; readers hand out ids only once their order is final.
//! - **Transactional enqueue**: [`PgStore::enqueue_in`] inserts jobs inside the
//!   application's own transaction: they exist if and only if it commits.
//! - **Connection loss**: every call takes a connection from a sqlx pool that
//!   reconnects on demand; a call made while the server is down fails with
//!   [`StoreError::Database`], and kyu's worker retries with backoff. The
//!   listener reconnects by itself and wakes workers when it does.
//! - **Times** come from the store's [`Clock`] (so tests can move time), bound
//!   as `timestamptz` parameters; args and results are stored as JSON text,
//!   byte for byte.

#![warn(missing_docs)]

mod batches;
mod claim;
mod control;
mod deadline;
mod enqueue;
mod events;
mod finish;
mod lease;
mod limits;
mod logs;
mod notify;
mod operate;
mod prefetch;
mod query;
mod rate_keys;
mod retry;
mod row;
mod schedule;
mod schema;
pub mod testing;
mod tls;
mod tokens;
mod url;
mod workers;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use kyu_core::{
    job::check_name, CancelResult, Claim, ClaimedJob, Clock, DeleteResult, Enqueued, Finish,
    FinishResult, HeartbeatReply, JobCount, JobFilter, JobId, JobPage, JobRecord, JobState,
    LeaseRef, Limits, NewJob, Progress, QueueStats, Reaped, RetriedFailed, RetryResult,
    RunNowResult, Store, StoreError, SystemClock,
};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection, PgConnection, PgPool};

pub use lease::LEASE_EXPIRED;
pub use schema::{check_schema, latest_version, DEFAULT_SCHEMA};
/// The sqlx this crate is built with, for [`PgStore::enqueue_in`]'s transactions.
pub use sqlx;
pub use url::{
    is_postgres_url, redact as redact_url, split_url, UrlParams, CALL_GRACE,
    DEFAULT_CONNECT_TIMEOUT, DEFAULT_STATEMENT_TIMEOUT,
};

use crate::deadline::Deadlines;
use crate::notify::Notifier;
use crate::row::db;

/// Options of [`PgStore::connect`]. Every field has a default.
#[derive(Debug, Clone)]
pub struct PgOptions {
    /// Where "now" comes from. Default: [`SystemClock`]. Tests pass a
    /// [`ManualClock`](kyu_core::ManualClock).
    pub clock: Arc<dyn Clock>,
    /// The schema kyu's tables live in. Default `kyu`; a `?schema=NAME` on the
    /// URL overrides it. See [`check_schema`] for the accepted names.
    pub schema: String,
    /// Apply pending migrations on connect. Default true. When false, connect
    /// fails unless the schema is already at [`latest_version`].
    pub migrate: bool,
    /// Limits every enqueued job is checked against. Default: [`Limits::default`].
    pub limits: Limits,
    /// Most pooled connections. Default 10 (plus one for the listener).
    pub max_connections: u32,
    /// How long a call waits for a connection (while the server is down, for
    /// instance) before it fails. Default 5 s.
    pub acquire_timeout: Duration,
    /// Keep a LISTEN connection for wake-ups. Default true; a producer-only
    /// process can turn it off.
    pub listen: bool,
}

impl Default for PgOptions {
    fn default() -> Self {
        PgOptions {
            clock: Arc::new(SystemClock),
            schema: DEFAULT_SCHEMA.to_string(),
            migrate: true,
            limits: Limits::default(),
            max_connections: 10,
            acquire_timeout: Duration::from_secs(5),
            listen: true,
        }
    }
}

impl PgOptions {
    /// The default options with `clock`.
    pub fn with_clock(clock: Arc<dyn Clock>) -> Self {
        PgOptions {
            clock,
            ..PgOptions::default()
        }
    }
}

struct Inner {
    pool: PgPool,
    clock: Arc<dyn Clock>,
    schema: String,
    /// The NOTIFY channel of this schema.
    channel: String,
    limits: Limits,
    notify: Notifier,
    /// Sends event notifications to other processes.
    events: events::EventNotifier,
    /// The time limits of calls (module `deadline`).
    deadlines: Arc<Deadlines>,
}

/// The PostgreSQL [`Store`]. Cheap to clone: clones share one pool and one
/// listener.
#[derive(Clone)]
pub struct PgStore {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore")
            .field("schema", &self.inner.schema)
            .finish()
    }
}

/// The channel `pg_notify` uses for a schema.
fn channel_of(schema: &str) -> String {
    format!("kyu_{schema}_wake")
}

impl PgStore {
    /// Connects to the database at `url` (`postgres://` or `postgresql://`,
    /// with the usual libpq parameters) and, unless [`PgOptions::migrate`] is
    /// false, brings kyu's schema up to date. A `schema=NAME` parameter in the
    /// URL chooses the schema.
    ///
    /// The first connection is made now, so a wrong host, user or database is
    /// reported here, not at the first job. `migrate=false` in the URL
    /// overrides [`PgOptions::migrate`].
    pub async fn connect(url: &str, mut options: PgOptions) -> Result<PgStore, StoreError> {
        let (connect, params) = split_url(url)?;
        let schema = params.schema.unwrap_or_else(|| options.schema.clone());
        if let Some(m) = params.migrate {
            options.migrate = m;
        }
        let deadlines = Deadlines::new(params.connect_timeout, params.statement_timeout);
        // One connection first, outside the pool: its error is the real
        // reason (refused, unknown database, bad password), where the pool
        // would only report that it timed out.
        let first =
            match tokio::time::timeout(deadlines.connect, PgConnection::connect_with(&connect))
                .await
            {
                Ok(first) => first.map_err(|e| cannot_connect(url, &connect, e))?,
                Err(_) => {
                    return Err(StoreError::Database(format!(
                        "cannot connect to {}: no answer within connect_timeout ({} s); is the \
                     server up and reachable? (raise connect_timeout=SECONDS in the URL for a \
                     slow network)",
                        redact_url(url),
                        deadlines.connect.as_secs()
                    )))
                }
            };
        let _ = tokio::time::timeout(deadline::PING_LIMIT, first.close()).await;
        let pool = deadlines
            .pool_options()
            .max_connections(options.max_connections.max(1))
            .acquire_timeout(options.acquire_timeout.max(deadlines.connect))
            .connect_lazy_with(connect.clone());
        PgStore::build(pool, Some(connect), schema, options, deadlines).await
    }

    /// A store over an existing pool (the application's own, for instance).
    /// Wake-ups listen on a connection made with the pool's options.
    pub async fn from_pool(pool: PgPool, options: PgOptions) -> Result<PgStore, StoreError> {
        let schema = options.schema.clone();
        PgStore::build(pool, None, schema, options, Deadlines::new(None, None)).await
    }

    async fn build(
        pool: PgPool,
        connect: Option<PgConnectOptions>,
        schema: String,
        options: PgOptions,
        deadlines: Arc<Deadlines>,
    ) -> Result<PgStore, StoreError> {
        check_schema(&schema)?;
        if options.migrate {
            schema::migrate(&pool, &schema).await?;
        } else {
            let v = schema::version(&pool, &schema).await?;
            if v != latest_version() {
                return Err(StoreError::Database(format!(
                    "the kyu schema {schema:?} is at version {v}, this kyu needs version {}; \
                     run `kyu migrate` (or connect with migrations enabled)",
                    latest_version()
                )));
            }
        }
        let channel = channel_of(&schema);
        let notify = Notifier::new();
        if options.listen {
            let connect = connect.unwrap_or_else(|| (*pool.connect_options()).clone());
            notify.listen(
                connect,
                channel.clone(),
                events::channel_of(&schema),
                deadlines.clone(),
            );
        }
        let events = events::EventNotifier::start(pool.clone(), events::channel_of(&schema));
        tracing::debug!(schema, "kyu-postgres store ready");
        Ok(PgStore {
            inner: Arc::new(Inner {
                pool,
                clock: options.clock,
                schema,
                channel,
                limits: options.limits,
                notify,
                events,
                deadlines,
            }),
        })
    }

    /// Applies pending migrations to `schema` of the database at `url`;
    /// returns the versions applied (empty when it was up to date).
    pub async fn migrate(url: &str, schema: Option<&str>) -> Result<Vec<i64>, StoreError> {
        let (connect, params) = split_url(url)?;
        let schema = schema
            .map(str::to_string)
            .or(params.schema)
            .unwrap_or_else(|| DEFAULT_SCHEMA.to_string());
        check_schema(&schema)?;
        let pool = PgPoolOptions::new()
            .max_connections(1)
            .connect_with(connect.clone())
            .await
            .map_err(|e| cannot_connect(url, &connect, e))?;
        let applied = schema::migrate(&pool, &schema).await;
        pool.close().await;
        applied
    }

    /// The schema version of this store's database (see [`latest_version`]).
    pub async fn schema_version(&self) -> Result<i64, StoreError> {
        schema::version(&self.inner.pool, &self.inner.schema).await
    }

    /// The schema this store uses.
    pub fn schema(&self) -> &str {
        &self.inner.schema
    }

    /// The connection pool, for the application's own queries.
    pub fn pool(&self) -> &PgPool {
        &self.inner.pool
    }

    /// Enqueues `jobs` inside the caller's transaction (or on any connection):
    /// the jobs exist if and only if that transaction commits, and workers are
    /// woken on commit, not before.
    ///
    /// ```no_run
    /// # async fn demo(store: kyu_postgres::PgStore) -> Result<(), Box<dyn std::error::Error>> {
    /// use kyu_core::NewJob;
    ///
    /// let mut tx = store.pool().begin().await?;
    /// sqlx::query("INSERT INTO users (email) VALUES ($1)")
    ///     .bind("ada@example.com")
    ///     .execute(&mut *tx)
    ///     .await?;
    /// store
    ///     .enqueue_in(&mut tx, vec![NewJob::new("welcome_email", serde_json::json!({"to": "ada@example.com"}))])
    ///     .await?;
    /// tx.commit().await?; // the user and the job, or neither
    /// # Ok(()) }
    /// ```
    pub async fn enqueue_in(
        &self,
        conn: &mut PgConnection,
        jobs: Vec<NewJob>,
    ) -> Result<Vec<Enqueued>, StoreError> {
        NewJob::validate_batch(&jobs, &self.inner.limits)?;
        if jobs.is_empty() {
            return Ok(Vec::new());
        }
        let now = self.inner.clock.now();
        let inner = &self.inner;
        if enqueue::has_keys(&jobs) {
            enqueue::enqueue_keyed(conn, &inner.schema, &inner.channel, now, &jobs).await
        } else {
            enqueue::enqueue_plain(conn, &inner.schema, &inner.channel, now, &jobs).await
        }
    }

    pub(crate) fn now(&self) -> DateTime<Utc> {
        self.inner.clock.now()
    }

    fn s(&self) -> &str {
        &self.inner.schema
    }

    /// Runs one store call within its time limit (module `deadline`).
    pub(crate) async fn limit<T>(
        &self,
        call: impl std::future::Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        self.inner.deadlines.limit(call).await
    }

    async fn conn(&self) -> Result<sqlx::pool::PoolConnection<sqlx::Postgres>, StoreError> {
        self.inner.pool.acquire().await.map_err(db)
    }

    /// Wakes this process's workers at once (other processes hear the NOTIFY).
    fn wake(&self) {
        self.inner.notify.bump();
    }

    /// Events were committed: wakes this process's event readers at once and
    /// other processes' soon (see module `events`).
    pub(crate) fn events_written(&self) {
        self.inner.notify.bump_events();
        self.inner.events.written();
    }
}

/// The error of a first connection that failed (server down, wrong
/// database, password refused, TLS refused), naming the URL without its
/// password, and the sslmode when TLS failed.
fn cannot_connect(url: &str, connect: &PgConnectOptions, e: sqlx::Error) -> StoreError {
    StoreError::Database(tls::connect_error(url, connect, e))
}

#[async_trait]
impl Store for PgStore {
    fn backend(&self) -> &'static str {
        "postgres"
    }

    fn clock(&self) -> Arc<dyn Clock> {
        self.inner.clock.clone()
    }

    fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.inner.notify.subscribe()
    }

    async fn enqueue(&self, jobs: Vec<NewJob>) -> Result<Vec<Enqueued>, StoreError> {
        self.limit(async {
            let mut conn = self.conn().await?;
            let out = self.enqueue_in(&mut conn, jobs).await?;
            if out.iter().any(|e| !e.duplicate) {
                self.wake();
            }
            if !out.is_empty() {
                self.events_written();
            }
            Ok(out)
        })
        .await
    }

    async fn claim(&self, claim: Claim) -> Result<Vec<ClaimedJob>, StoreError> {
        self.limit(async {
            if claim.limit == 0
                || claim.queues.is_empty()
                || claim.kinds.as_ref().is_some_and(Vec::is_empty)
            {
                return Ok(Vec::new());
            }
            let out = claim::claim(&self.inner.pool, self.s(), self.now(), &claim).await?;
            if !out.is_empty() {
                self.events_written();
            }
            Ok(out)
        })
        .await
    }

    async fn claim_job(
        &self,
        id: JobId,
        worker: &str,
        lease: Duration,
    ) -> Result<Option<ClaimedJob>, StoreError> {
        self.limit(async {
            let out =
                claim::claim_job(&self.inner.pool, self.s(), self.now(), id, worker, lease).await?;
            if out.is_some() {
                self.events_written();
            }
            Ok(out)
        })
        .await
    }

    async fn finish(&self, batch: Vec<Finish>) -> Result<Vec<FinishResult>, StoreError> {
        self.limit(async {
            if batch.is_empty() {
                return Ok(Vec::new());
            }
            let out = finish::finish(
                &self.inner.pool,
                self.s(),
                &self.inner.channel,
                self.now(),
                &batch,
            )
            .await?;
            if out.iter().any(|r| {
                matches!(
                    r,
                    FinishResult::Applied(JobState::Available | JobState::Scheduled)
                )
            }) {
                self.wake();
            }
            if out.iter().any(|r| matches!(r, FinishResult::Applied(_))) {
                self.events_written();
            }
            Ok(out)
        })
        .await
    }

    async fn mark_started(&self, leases: &[LeaseRef]) -> Result<Vec<LeaseRef>, StoreError> {
        self.limit(async {
            if leases.is_empty() {
                return Ok(Vec::new());
            }
            prefetch::mark_started(&self.inner.pool, self.s(), leases).await
        })
        .await
    }

    async fn heartbeat(
        &self,
        _worker: &str,
        leases: &[LeaseRef],
        lease: Duration,
    ) -> Result<HeartbeatReply, StoreError> {
        self.limit(async {
            if leases.is_empty() {
                return Ok(HeartbeatReply::default());
            }
            lease::heartbeat(&self.inner.pool, self.s(), self.now(), leases, lease).await
        })
        .await
    }

    async fn cancel_requests(&self, leases: &[LeaseRef]) -> Result<Vec<JobId>, StoreError> {
        self.limit(async {
            if leases.is_empty() {
                return Ok(Vec::new());
            }
            lease::cancel_requests(&self.inner.pool, self.s(), leases).await
        })
        .await
    }

    async fn set_progress(&self, lease: LeaseRef, progress: Progress) -> Result<bool, StoreError> {
        self.limit(async {
            if progress.percent > 100 {
                return Err(kyu_core::InvalidInput::new(
                    "progress.percent",
                    format!("{} is not accepted; give 0 to 100", progress.percent),
                )
                .into());
            }
            let done =
                lease::set_progress(&self.inner.pool, self.s(), self.now(), lease, &progress)
                    .await?;
            if done {
                self.events_written();
            }
            Ok(done)
        })
        .await
    }

    async fn reap_expired(&self, limit: usize) -> Result<Vec<Reaped>, StoreError> {
        self.limit(async {
            if limit == 0 {
                return Ok(Vec::new());
            }
            let out = lease::reap_expired(
                &self.inner.pool,
                self.s(),
                &self.inner.channel,
                self.now(),
                limit,
            )
            .await?;
            if out.iter().any(|r| r.state == JobState::Available) {
                self.wake();
            }
            if !out.is_empty() {
                self.events_written();
            }
            Ok(out)
        })
        .await
    }

    async fn cancel(&self, ids: &[JobId]) -> Result<Vec<CancelResult>, StoreError> {
        self.limit(async {
            let out = control::cancel(
                &self.inner.pool,
                self.s(),
                &self.inner.channel,
                self.now(),
                ids,
            )
            .await?;
            if out
                .iter()
                .any(|r| matches!(r, CancelResult::Cancelled | CancelResult::Requested))
            {
                self.events_written();
            }
            Ok(out)
        })
        .await
    }

    async fn delete_jobs(&self, ids: &[JobId]) -> Result<Vec<DeleteResult>, StoreError> {
        let out = operate::delete_jobs(
            &self.inner.pool,
            self.s(),
            &self.inner.channel,
            self.now(),
            ids,
        )
        .await?;
        if out.iter().any(|r| matches!(r, DeleteResult::Deleted(_))) {
            self.events_written();
        }
        Ok(out)
    }

    async fn run_now(&self, ids: &[JobId]) -> Result<Vec<RunNowResult>, StoreError> {
        let out = operate::run_now(
            &self.inner.pool,
            self.s(),
            &self.inner.channel,
            self.now(),
            ids,
        )
        .await?;
        if out.contains(&RunNowResult::MadeAvailable) {
            self.wake();
            self.events_written();
        }
        Ok(out)
    }

    async fn retry(&self, ids: &[JobId]) -> Result<Vec<RetryResult>, StoreError> {
        self.limit(async {
            let out = retry::retry(
                &self.inner.pool,
                self.s(),
                &self.inner.channel,
                self.now(),
                ids,
            )
            .await?;
            if out.contains(&RetryResult::Retried) {
                self.wake();
                self.events_written();
            }
            Ok(out)
        })
        .await
    }

    async fn retry_failed(
        &self,
        queue: Option<&str>,
        kind: Option<&str>,
    ) -> Result<RetriedFailed, StoreError> {
        self.limit(async {
            let out = retry::retry_failed(
                &self.inner.pool,
                self.s(),
                &self.inner.channel,
                self.now(),
                queue,
                kind,
            )
            .await?;
            if out.retried > 0 {
                self.wake();
                self.events_written();
            }
            Ok(out)
        })
        .await
    }

    async fn get(&self, id: JobId) -> Result<Option<JobRecord>, StoreError> {
        self.limit(async { query::get(&self.inner.pool, self.s(), id).await })
            .await
    }

    async fn get_by_unique_key(&self, key: &str) -> Result<Option<JobRecord>, StoreError> {
        self.limit(async { query::get_by_unique_key(&self.inner.pool, self.s(), key).await })
            .await
    }

    async fn list(&self, filter: &JobFilter) -> Result<JobPage, StoreError> {
        self.limit(async { query::list(&self.inner.pool, self.s(), filter).await })
            .await
    }

    async fn count_jobs(&self, filter: &JobFilter, cap: u64) -> Result<JobCount, StoreError> {
        self.limit(async { query::count(&self.inner.pool, self.s(), filter, cap).await })
            .await
    }

    async fn queue_stats(&self) -> Result<Vec<QueueStats>, StoreError> {
        self.limit(async { query::queue_stats(&self.inner.pool, self.s(), self.now()).await })
            .await
    }

    async fn pause_queue(&self, queue: &str) -> Result<(), StoreError> {
        self.limit(async {
            check_name("queue", queue)?;
            let changed = control::set_paused(
                &self.inner.pool,
                self.s(),
                &self.inner.channel,
                self.now(),
                queue,
                true,
            )
            .await?;
            if changed {
                self.events_written();
            }
            Ok(())
        })
        .await
    }

    async fn resume_queue(&self, queue: &str) -> Result<(), StoreError> {
        self.limit(async {
            check_name("queue", queue)?;
            let changed = control::set_paused(
                &self.inner.pool,
                self.s(),
                &self.inner.channel,
                self.now(),
                queue,
                false,
            )
            .await?;
            self.wake();
            if changed {
                self.events_written();
            }
            Ok(())
        })
        .await
    }

    async fn next_scheduled(&self, queues: &[String]) -> Result<Option<DateTime<Utc>>, StoreError> {
        self.limit(async { query::next_scheduled(&self.inner.pool, self.s(), queues).await })
            .await
    }

    async fn delete_finished(
        &self,
        completed_before: DateTime<Utc>,
        failed_before: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        self.limit(async {
            control::delete_finished(
                &self.inner.pool,
                self.s(),
                self.now(),
                completed_before,
                failed_before,
            )
            .await
        })
        .await
    }
}
