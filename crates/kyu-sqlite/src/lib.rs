//! # kyu-sqlite
//!
//! kyu's embedded default [`Store`]: one SQLite file, no set-up.
//!
//! ```
//! # async fn demo() -> Result<(), kyu_core::StoreError> {
//! use kyu_core::{NewJob, Store};
//! use kyu_sqlite::{SqliteOptions, SqliteStore};
//!
//! let dir = tempfile::tempdir().unwrap();
//! let url = format!("sqlite://{}/kyu.db", dir.path().display());
//! let store = SqliteStore::open(&url, SqliteOptions::default())?;
//! let ids = store.enqueue(vec![NewJob::new("hello", serde_json::json!({}))]).await?;
//! assert!(store.get(ids[0].id).await?.is_some());
//! # Ok(()) }
//! # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
//! ```
//!
//! ## How it works
//!
//! - **Files.** The database is created and migrated on first use (migrations
//!   are recorded in `PRAGMA user_version`) and runs in WAL mode, so reads go on
//!   beside the writer. Several processes may share the file: writes take the
//!   lock with `BEGIN IMMEDIATE` and wait up to [`SqliteOptions::busy_timeout`].
//! - **Group commit** (module `writer`). One thread per store owns the write
//!   connection. Every write waiting when it looks is run in one transaction,
//!   each in its own savepoint, and committed once; then the callers are answered.
//! - **Reads** (`get`, `list`, `queue_stats`, `cancel_requests`,
//!   `next_scheduled`, `logs`) use a small pool of read connections on
//!   tokio's blocking threads.
//! - **Wake-up** (module `notify`). `subscribe()` changes after every
//!   enqueue, retry or resume committed by this store, and, through Unix
//!   datagram sockets in `<database file>.wake/`, by any other store on the same
//!   file, in this process or another.
//! - **Events** (module `events`): every change writes its event in the
//!   same transaction; event readers have their own wake-up channel.
//! - **A full disk** (module `reserve`): a write that meets `SQLITE_FULL`
//!   fails with [`StoreError::DiskFull`] naming the file, and releases the
//!   reserve file kept beside the database (`<file>.reserve`,
//!   [`RESERVE_BYTES`]) so that stored jobs can still be claimed and
//!   finished; enqueues are refused until space is back, then go on.
//! - **Times** are stored as integer microseconds since the Unix epoch, UTC;
//!   args stay JSON text and are never parsed by the store.

#![warn(missing_docs)]

mod batches;
mod checkpoint;
mod claim;
mod control;
mod enqueue;
mod events;
mod finish;
mod lease;
mod limits;
mod logs;
mod notify;
mod open_error;
mod operate;
mod prefetch;
mod query;
mod rate_keys;
mod reserve;
mod retention;
mod row;
mod schedule;
mod schema;
mod tokens;
mod url;
mod workers;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use kyu_core::{
    job::check_name, CancelResult, Claim, ClaimedJob, Clock, DeleteResult, Enqueued, Finish,
    FinishResult, HeartbeatReply, JobCount, JobFilter, JobId, JobPage, JobRecord, LeaseRef, Limits,
    NewJob, Progress, QueueStats, Reaped, RetriedFailed, RetryResult, RunNowResult, Store,
    StoreError, SystemClock,
};
use rusqlite::{Connection, OpenFlags};

pub use lease::LEASE_EXPIRED;
pub use reserve::RESERVE_BYTES;
pub use url::{parse_location, split_params, Location};

use crate::notify::Notifier;
use crate::reserve::Reserve;
use crate::row::db;
use crate::writer::{Op, Pending};

/// How hard SQLite works to make each commit durable (`PRAGMA synchronous`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Synchronous {
    /// `NORMAL` (the default): in WAL mode a commit survives a crash of any
    /// process; the last commits before a power loss or OS crash may be lost.
    #[default]
    Normal,
    /// `FULL`: every commit is synced to disk before enqueue returns, so it
    /// also survives power loss. Slower: one fsync per group commit.
    Full,
}

impl Synchronous {
    fn pragma(self) -> &'static str {
        match self {
            Synchronous::Normal => "NORMAL",
            Synchronous::Full => "FULL",
        }
    }
}

/// Options of [`SqliteStore::open`]. Every field has a default.
#[derive(Debug, Clone)]
pub struct SqliteOptions {
    /// Where "now" comes from. Default: [`SystemClock`]. Tests pass a
    /// [`ManualClock`](kyu_core::ManualClock).
    pub clock: Arc<dyn Clock>,
    /// Durability of each commit. Default: [`Synchronous::Normal`].
    pub synchronous: Synchronous,
    /// How long a write waits for another process holding the database lock
    /// before it fails with "database is locked". Default: 5 s.
    pub busy_timeout: Duration,
    /// Limits every enqueued job is checked against. Default: [`Limits::default`]
    /// (args up to 1 MiB).
    pub limits: Limits,
    /// How many read connections are kept open. Default: 4.
    pub readers: usize,
    /// The most writes committed in one transaction. Default: 512.
    pub max_group: usize,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        SqliteOptions {
            clock: Arc::new(SystemClock),
            synchronous: Synchronous::Normal,
            busy_timeout: Duration::from_secs(5),
            limits: Limits::default(),
            readers: 4,
            max_group: 512,
        }
    }
}

impl SqliteOptions {
    /// The default options with `clock`.
    pub fn with_clock(clock: Arc<dyn Clock>) -> Self {
        SqliteOptions {
            clock,
            ..SqliteOptions::default()
        }
    }
}

/// The read connections of a file database.
struct Readers {
    path: PathBuf,
    busy_timeout: Duration,
    keep: usize,
    pool: Mutex<Vec<Connection>>,
}

impl Readers {
    fn take(&self) -> Result<Connection, StoreError> {
        if let Some(c) = self.pool.lock().expect("reader pool poisoned").pop() {
            return Ok(c);
        }
        let conn = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(db)?;
        conn.busy_timeout(self.busy_timeout).map_err(db)?;
        conn.execute_batch("PRAGMA query_only = ON").map_err(db)?;
        Ok(conn)
    }

    fn put(&self, conn: Connection) {
        let mut pool = self.pool.lock().expect("reader pool poisoned");
        if pool.len() < self.keep {
            pool.push(conn);
        }
    }
}

struct Inner {
    clock: Arc<dyn Clock>,
    writer: mpsc::Sender<Box<dyn Op>>,
    readers: Option<Arc<Readers>>,
    notify: Arc<Notifier>,
    events: Arc<Notifier>,
    limits: Limits,
    location: Location,
    /// The reserve file of a file database (module `reserve`).
    reserve: Option<Arc<Reserve>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // The writer thread may outlive this handle by a moment; the socket goes now.
        self.notify.stop_listening();
        self.events.stop_listening();
    }
}

/// The SQLite [`Store`]. Cheap to clone: clones share one writer thread.
#[derive(Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("location", &self.inner.location)
            .finish()
    }
}

impl SqliteStore {
    /// Opens (creating and migrating on first use) the database named by
    /// `url`: see [`parse_location`] for the accepted forms. The parent
    /// directories of a new file are created.
    ///
    /// Must be called where blocking is allowed or inside a tokio runtime's
    /// context; the store's reads run on tokio's blocking threads.
    ///
    /// A URL may end in `?synchronous=full` (or `normal`), which overrides
    /// [`SqliteOptions::synchronous`].
    pub fn open(url: &str, mut options: SqliteOptions) -> Result<SqliteStore, StoreError> {
        let (url, sync) = split_params(url)?;
        if let Some(s) = sync {
            options.synchronous = s;
        }
        let location = parse_location(url)?;
        let conn = match &location {
            Location::Memory => Connection::open_in_memory().map_err(db)?,
            Location::File(path) => {
                // Failures below are the file system's, not the URL's: say
                // what happened and where (open_error).
                if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                    std::fs::create_dir_all(parent)
                        .map_err(|e| open_error::create_dir_failed(path, parent, e))?;
                }
                let conn = Connection::open(path).map_err(|e| open_error::open_failed(path, e))?;
                // SQLite opens a file it may not write read-only, without a
                // word; kyu would then fail at its first write.
                if conn.is_readonly(rusqlite::MAIN_DB).unwrap_or(false) {
                    return Err(open_error::open_failed(path, "opened read-only"));
                }
                conn
            }
        };
        conn.busy_timeout(options.busy_timeout).map_err(db)?;
        if let Location::File(path) = &location {
            // Switching a new file to WAL does not wait on the busy handler:
            // when another process is creating the same file it fails at once
            // with "database is locked". Retry within the busy timeout.
            let deadline = std::time::Instant::now() + options.busy_timeout;
            let mode: String = loop {
                match conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0)) {
                    Ok(mode) => break mode,
                    Err(rusqlite::Error::SqliteFailure(e, _))
                        if e.code == rusqlite::ErrorCode::DatabaseBusy
                            && std::time::Instant::now() < deadline =>
                    {
                        std::thread::sleep(std::time::Duration::from_millis(10));
                    }
                    Err(e) => return Err(open_error::open_failed(path, e)),
                }
            };
            if !mode.eq_ignore_ascii_case("wal") {
                tracing::warn!(path = %path.display(), mode, "kyu-sqlite: WAL mode not available");
            }
        }
        conn.execute_batch(&format!(
            "PRAGMA synchronous = {}; PRAGMA foreign_keys = OFF; \
             PRAGMA cache_size = -8192; \
             PRAGMA temp_store = MEMORY;",
            options.synchronous.pragma()
        ))
        .map_err(db)?;
        conn.set_prepared_statement_cache_capacity(64);
        schema::migrate(&conn).map_err(|e| match &location {
            // A file SQLite opened read-only fails here, on the first write.
            Location::File(path) if open_error::permission_problem(path).is_some() => {
                open_error::open_failed(path, e)
            }
            Location::File(path) if matches!(e, StoreError::DiskFull { .. }) => {
                reserve::full_error(path)
            }
            _ => e,
        })?;

        let (readers, wake_dir) = match &location {
            Location::Memory => (None, None),
            Location::File(path) => (
                Some(Arc::new(Readers {
                    path: path.clone(),
                    busy_timeout: options.busy_timeout,
                    keep: options.readers.max(1),
                    pool: Mutex::new(Vec::new()),
                })),
                Some(wake_dir(path)),
            ),
        };
        let reserve = match &location {
            Location::Memory => None,
            Location::File(path) => Some(Arc::new(Reserve::new(path))),
        };
        let notify = Arc::new(Notifier::new(wake_dir.clone(), "sock"));
        let events = Arc::new(Notifier::new(wake_dir, "events"));
        let (tx, rx) = mpsc::channel();
        let thread_notify = notify.clone();
        let thread_events = events.clone();
        let max_group = options.max_group.max(1);
        let thread_reserve = reserve.clone();
        let checkpointer = match &location {
            Location::Memory => None,
            Location::File(path) => checkpoint::Checkpointer::start(path),
        };
        std::thread::Builder::new()
            .name("kyu-sqlite-writer".into())
            .spawn(move || {
                writer::run(
                    conn,
                    rx,
                    max_group,
                    thread_notify,
                    thread_events,
                    thread_reserve,
                    checkpointer,
                )
            })
            .map_err(|e| StoreError::Database(format!("cannot start the writer thread: {e}")))?;
        tracing::debug!(location = ?location, "kyu-sqlite store opened");
        Ok(SqliteStore {
            inner: Arc::new(Inner {
                clock: options.clock,
                writer: tx,
                readers,
                notify,
                events,
                limits: options.limits,
                location,
                reserve,
            }),
        })
    }

    /// Where the database lives.
    pub fn location(&self) -> &Location {
        &self.inner.location
    }

    /// Runs `f` in the writer's next group commit.
    async fn write<T, F>(&self, wakes: fn(&T) -> bool, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let (op, rx) = Pending::queue(wakes, f);
        self.inner.writer.send(op).map_err(|_| StoreError::Closed)?;
        let r = rx.await.map_err(|_| StoreError::Closed)?;
        r.map_err(|e| self.named(e))
    }

    /// Refuses a write that adds jobs while the disk is full (see module
    /// `reserve`): nothing is written, and the space left goes to the jobs
    /// already stored.
    pub(crate) fn check_space(&self) -> Result<(), StoreError> {
        match &self.inner.reserve {
            Some(r) => r.ensure(),
            None => Ok(()),
        }
    }

    /// A full-disk error named with this store's file.
    fn named(&self, e: StoreError) -> StoreError {
        match (e, &self.inner.location) {
            (StoreError::DiskFull { path }, Location::File(p)) if path.is_empty() => {
                reserve::full_error(p)
            }
            (StoreError::DiskFull { path }, Location::Memory) if path.is_empty() => {
                StoreError::DiskFull {
                    path: ":memory:".into(),
                }
            }
            (e, _) => e,
        }
    }

    /// Runs `f` on a read connection (on the writer for an in-memory database).
    async fn read<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let Some(readers) = self.inner.readers.clone() else {
            return self.write(never, f).await;
        };
        let r = tokio::task::spawn_blocking(move || {
            let conn = readers.take()?;
            let r = f(&conn);
            readers.put(conn);
            r
        })
        .await
        .map_err(|e| StoreError::Database(format!("a read task failed: {e}")))?;
        r.map_err(|e| self.named(e))
    }

    fn now_fn(&self) -> Arc<dyn Clock> {
        self.inner.clock.clone()
    }
}

fn never<T>(_: &T) -> bool {
    false
}

fn always<T>(_: &T) -> bool {
    true
}

/// A write that enqueued a batch's callbacks (see module `batches`).
fn fired<T>(r: &(T, bool)) -> bool {
    r.1
}

#[allow(clippy::ptr_arg)] // must be a fn(&T) for T = Vec<_>
fn inserted(r: &Vec<Enqueued>) -> bool {
    r.iter().any(|e| !e.duplicate)
}

#[allow(clippy::ptr_arg)] // must be a fn(&T) for T = Vec<_>
fn reaped(r: &Vec<Reaped>) -> bool {
    r.iter().any(|r| r.state == kyu_core::JobState::Available)
}

#[allow(clippy::ptr_arg)] // must be a fn(&T) for T = Vec<_>
fn retried(r: &Vec<RetryResult>) -> bool {
    r.contains(&RetryResult::Retried)
}

#[allow(clippy::ptr_arg)] // must be a fn(&T) for T = Vec<_>
fn made_available(r: &Vec<RunNowResult>) -> bool {
    r.contains(&RunNowResult::MadeAvailable)
}

/// A finish that made a job runnable again (a retry soon, a release).
#[allow(clippy::ptr_arg)] // must be a fn(&T) for T = Vec<_>
fn runnable_again(r: &Vec<FinishResult>) -> bool {
    r.iter().any(|r| {
        matches!(
            r,
            FinishResult::Applied(kyu_core::JobState::Available | kyu_core::JobState::Scheduled)
        )
    })
}

/// The wake-up directory of a database file: `<file>.wake`.
fn wake_dir(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".wake");
    PathBuf::from(s)
}

#[async_trait]
impl Store for SqliteStore {
    fn backend(&self) -> &'static str {
        "sqlite"
    }

    fn clock(&self) -> Arc<dyn Clock> {
        self.inner.clock.clone()
    }

    fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.inner.notify.subscribe()
    }

    async fn enqueue(&self, jobs: Vec<NewJob>) -> Result<Vec<Enqueued>, StoreError> {
        NewJob::validate_batch(&jobs, &self.inner.limits)?;
        if jobs.is_empty() {
            return Ok(Vec::new());
        }
        self.check_space()?;
        let clock = self.now_fn();
        self.write(inserted, move |c| enqueue::enqueue(c, clock.now(), jobs))
            .await
    }

    async fn claim(&self, claim: Claim) -> Result<Vec<ClaimedJob>, StoreError> {
        if claim.limit == 0
            || claim.queues.is_empty()
            || claim.kinds.as_ref().is_some_and(Vec::is_empty)
        {
            return Ok(Vec::new());
        }
        let clock = self.now_fn();
        self.write(never, move |c| claim::claim(c, clock.now(), &claim))
            .await
    }

    async fn claim_job(
        &self,
        id: JobId,
        worker: &str,
        lease: Duration,
    ) -> Result<Option<ClaimedJob>, StoreError> {
        let clock = self.now_fn();
        let worker = worker.to_string();
        self.write(never, move |c| {
            claim::claim_job(c, clock.now(), id, &worker, lease)
        })
        .await
    }

    async fn finish(&self, batch: Vec<Finish>) -> Result<Vec<FinishResult>, StoreError> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        // A job made runnable again (retry soon, release) should be picked up at once.
        let clock = self.now_fn();
        // So should a batch's callback the finish enqueued.
        let (out, _) = self
            .write(
                |r: &(Vec<FinishResult>, bool)| r.1 || runnable_again(&r.0),
                move |c| finish::finish(c, clock.now(), &batch),
            )
            .await?;
        Ok(out)
    }

    async fn mark_started(&self, leases: &[LeaseRef]) -> Result<Vec<LeaseRef>, StoreError> {
        if leases.is_empty() {
            return Ok(Vec::new());
        }
        let leases = leases.to_vec();
        self.write(never, move |c| prefetch::mark_started(c, &leases))
            .await
    }

    async fn heartbeat(
        &self,
        _worker: &str,
        leases: &[LeaseRef],
        lease: Duration,
    ) -> Result<HeartbeatReply, StoreError> {
        if leases.is_empty() {
            return Ok(HeartbeatReply::default());
        }
        let clock = self.now_fn();
        let leases = leases.to_vec();
        self.write(never, move |c| {
            lease::heartbeat(c, clock.now(), &leases, lease)
        })
        .await
    }

    async fn cancel_requests(&self, leases: &[LeaseRef]) -> Result<Vec<JobId>, StoreError> {
        if leases.is_empty() {
            return Ok(Vec::new());
        }
        let leases = leases.to_vec();
        self.read(move |c| lease::cancel_requests(c, &leases)).await
    }

    async fn set_progress(&self, lease: LeaseRef, progress: Progress) -> Result<bool, StoreError> {
        if progress.percent > 100 {
            return Err(kyu_core::InvalidInput::new(
                "progress.percent",
                format!("{} is not accepted; give 0 to 100", progress.percent),
            )
            .into());
        }
        let clock = self.now_fn();
        self.write(never, move |c| {
            lease::set_progress(c, clock.now(), lease, &progress)
        })
        .await
    }

    async fn reap_expired(&self, limit: usize) -> Result<Vec<Reaped>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let clock = self.now_fn();
        // A rescued job, or a batch callback the rescue enqueued, runs at once.
        let (out, _) = self
            .write(
                |r: &(Vec<Reaped>, bool)| r.1 || reaped(&r.0),
                move |c| lease::reap_expired(c, clock.now(), limit),
            )
            .await?;
        Ok(out)
    }

    async fn cancel(&self, ids: &[JobId]) -> Result<Vec<CancelResult>, StoreError> {
        let clock = self.now_fn();
        let ids = ids.to_vec();
        // Wakes the workers only for a batch callback the cancel enqueued.
        let (out, _) = self
            .write(fired, move |c| control::cancel(c, clock.now(), &ids))
            .await?;
        Ok(out)
    }

    async fn retry(&self, ids: &[JobId]) -> Result<Vec<RetryResult>, StoreError> {
        let clock = self.now_fn();
        let ids = ids.to_vec();
        self.write(retried, move |c| control::retry(c, clock.now(), &ids))
            .await
    }

    async fn retry_failed(
        &self,
        queue: Option<&str>,
        kind: Option<&str>,
    ) -> Result<RetriedFailed, StoreError> {
        let clock = self.now_fn();
        let queue = queue.map(str::to_string);
        let kind = kind.map(str::to_string);
        self.write(
            |r: &RetriedFailed| r.retried > 0,
            move |c| control::retry_failed(c, clock.now(), queue.as_deref(), kind.as_deref()),
        )
        .await
    }

    async fn delete_jobs(&self, ids: &[JobId]) -> Result<Vec<DeleteResult>, StoreError> {
        let clock = self.now_fn();
        let ids = ids.to_vec();
        // Wakes the workers only for a batch callback the delete enqueued.
        let (out, _) = self
            .write(fired, move |c| operate::delete_jobs(c, clock.now(), &ids))
            .await?;
        Ok(out)
    }

    async fn run_now(&self, ids: &[JobId]) -> Result<Vec<RunNowResult>, StoreError> {
        let clock = self.now_fn();
        let ids = ids.to_vec();
        self.write(made_available, move |c| {
            operate::run_now(c, clock.now(), &ids)
        })
        .await
    }

    async fn get(&self, id: JobId) -> Result<Option<JobRecord>, StoreError> {
        self.read(move |c| query::get(c, id)).await
    }

    async fn get_by_unique_key(&self, key: &str) -> Result<Option<JobRecord>, StoreError> {
        let key = key.to_string();
        self.read(move |c| query::get_by_unique_key(c, &key)).await
    }

    async fn list(&self, filter: &JobFilter) -> Result<JobPage, StoreError> {
        let filter = filter.clone();
        self.read(move |c| query::list(c, &filter)).await
    }

    async fn count_jobs(&self, filter: &JobFilter, cap: u64) -> Result<JobCount, StoreError> {
        let filter = filter.clone();
        self.read(move |c| query::count(c, &filter, cap)).await
    }

    async fn queue_stats(&self) -> Result<Vec<QueueStats>, StoreError> {
        let now_us = row::us(self.inner.clock.now());
        self.read(move |c| query::queue_stats(c, now_us)).await
    }

    async fn pause_queue(&self, queue: &str) -> Result<(), StoreError> {
        check_name("queue", queue)?;
        let queue = queue.to_string();
        let clock = self.now_fn();
        self.write(never, move |c| {
            control::set_paused(c, clock.now(), &queue, true)
        })
        .await
    }

    async fn resume_queue(&self, queue: &str) -> Result<(), StoreError> {
        check_name("queue", queue)?;
        let queue = queue.to_string();
        let clock = self.now_fn();
        self.write(always, move |c| {
            control::set_paused(c, clock.now(), &queue, false)
        })
        .await
    }

    async fn next_scheduled(&self, queues: &[String]) -> Result<Option<DateTime<Utc>>, StoreError> {
        let queues = queues.to_vec();
        self.read(move |c| query::next_scheduled(c, &queues)).await
    }

    async fn delete_finished(
        &self,
        completed_before: DateTime<Utc>,
        failed_before: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        let clock = self.now_fn();
        self.write(never, move |c| {
            retention::delete_finished(c, clock.now(), completed_before, failed_before)
        })
        .await
    }
}
