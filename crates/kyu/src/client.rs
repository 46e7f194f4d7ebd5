//! The client: enqueue, inspect, wait for, cancel and retry jobs; pause queues.

use std::sync::Arc;

use kyu_core::{
    CancelResult, Enqueued, JobCount, JobFilter, JobId, JobPage, JobRecord, Limits, NewJob,
    QueueStats, RetryResult, Store, StoreError,
};
use kyu_core::{ScheduleRecord, ScheduleSpec};
use kyu_sqlite::{SqliteOptions, SqliteStore};

use crate::{Error, IntoNewJob, Result, Wait};

/// A handle on one kyu store. Cheap to clone; share it.
///
/// Enqueueing is one family, each taking a typed [`Job`](crate::Job) or a
/// [`NewJob`] alike: [`enqueue`](Kyu::enqueue) (one job),
/// [`enqueue_with`](Kyu::enqueue_with) (one job, options changed for this
/// call), [`enqueue_many`](Kyu::enqueue_many) (a batch in one transaction)
/// and, on PostgreSQL, `enqueue_in` (a batch in the application's own
/// transaction).
///
/// ```
/// # async fn demo() -> Result<(), kyu::Error> {
/// use kyu::NewJob;
/// use serde_json::json;
///
/// let kyu = kyu::Kyu::connect("sqlite::memory:").await?; // e.g. "sqlite://kyu.db"
/// let one = kyu.enqueue(NewJob::new("resize", json!({"w": 64}))).await?;
/// let batch = kyu
///     .enqueue_many(vec![NewJob::new("resize", json!({"w": 32})), NewJob::new("resize", json!({"w": 16}))])
///     .await?;
/// assert_eq!(kyu.job(one.id).await?.state, kyu::JobState::Available);
/// assert_eq!(batch.len(), 2);
/// # Ok(()) }
/// # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
/// ```
#[derive(Clone)]
pub struct Kyu {
    store: Arc<dyn Store>,
    limits: Limits,
    /// `kyu_jobs_enqueued_total` handles, shared by every clone.
    enqueued: Arc<crate::metrics::EnqueueCounters>,
    /// The same store, when it is PostgreSQL: for [`Kyu::enqueue_in`].
    #[cfg(feature = "postgres")]
    pg: Option<kyu_postgres::PgStore>,
    /// The key job tokens are signed with, read from the store once
    /// (see [`crate::job_token`]); shared by every clone.
    pub(crate) job_token_key: Arc<tokio::sync::OnceCell<Vec<u8>>>,
}

impl std::fmt::Debug for Kyu {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kyu")
            .field("backend", &self.store.backend())
            .field("limits", &self.limits)
            .finish()
    }
}

impl Kyu {
    /// Opens the store named by `url`, creating and migrating it on first use.
    ///
    /// Accepted:
    /// - `sqlite://path/to/file.db` (relative to the current directory),
    ///   `sqlite:///absolute/path.db`, `sqlite::memory:`;
    /// - `postgres://user:password@host:port/database` (or `postgresql://`),
    ///   with `?schema=NAME` to choose the schema kyu's tables live in
    ///   (default `kyu`). Pending migrations are applied on connect. The
    ///   database must be named (in the path or `?dbname=`): kyu does not
    ///   take libpq's default, a database named after the user. TLS as
    ///   libpq: `?sslmode=` `prefer` (the default), `require`, `verify-ca`,
    ///   `verify-full`, …, with `&sslrootcert=/path/ca.pem` (features
    ///   `tls-rustls`, the default, or `tls-native-tls`).
    ///
    /// A SQLite file that cannot be created or written fails with
    /// [`StoreError::Database`] saying so and naming the file or directory
    /// ("permission denied: …"); [`StoreError::BadUrl`] is for URLs that
    /// cannot be understood.
    pub async fn connect(url: &str) -> Result<Kyu> {
        if url.starts_with("sqlite:") {
            let store = SqliteStore::open(url, SqliteOptions::default())?;
            return Ok(Kyu::from_store(Arc::new(store)));
        }
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            #[cfg(feature = "postgres")]
            {
                let store =
                    kyu_postgres::PgStore::connect(url, kyu_postgres::PgOptions::default()).await?;
                return Ok(Kyu::from_postgres(store));
            }
            #[cfg(not(feature = "postgres"))]
            return Err(StoreError::BadUrl {
                url: url.to_string(),
                problem: "this build of kyu has no PostgreSQL store (the `postgres` \
                          feature is off); accepted: sqlite://PATH"
                    .into(),
            }
            .into());
        }
        Err(StoreError::BadUrl {
            url: url.to_string(),
            problem: "unknown scheme; accepted: sqlite://PATH (e.g. sqlite://kyu.db) or \
                      postgres://USER@HOST:PORT/DATABASE"
                .into(),
        }
        .into())
    }

    /// A client over a store you built yourself (e.g. with a test clock).
    pub fn from_store(store: Arc<dyn Store>) -> Kyu {
        Kyu {
            store,
            limits: Limits::default(),
            enqueued: Arc::default(),
            #[cfg(feature = "postgres")]
            pg: None,
            job_token_key: Arc::default(),
        }
    }

    /// A client over a PostgreSQL store you built yourself; unlike
    /// [`Kyu::from_store`] it offers [`Kyu::enqueue_in`].
    #[cfg(feature = "postgres")]
    pub fn from_postgres(store: kyu_postgres::PgStore) -> Kyu {
        Kyu {
            store: Arc::new(store.clone()),
            limits: Limits::default(),
            enqueued: Arc::default(),
            pg: Some(store),
            job_token_key: Arc::default(),
        }
    }

    /// The PostgreSQL store underneath, if it is one: its pool serves the
    /// application's own queries and transactions.
    #[cfg(feature = "postgres")]
    pub fn postgres(&self) -> Option<&kyu_postgres::PgStore> {
        self.pg.as_ref()
    }

    /// Enqueues jobs inside the application's own PostgreSQL transaction: they
    /// exist if and only if that transaction commits, and workers are woken
    /// on commit. Fails with [`StoreError::Unsupported`] on other stores.
    /// `kyu_jobs_enqueued_total` counts them when the insert returns, before
    /// the application commits (or rolls back).
    ///
    /// ```no_run
    /// # async fn demo(kyu: kyu::Kyu) -> Result<(), Box<dyn std::error::Error>> {
    /// use kyu::postgres::sqlx;
    ///
    /// let pool = kyu.postgres().expect("a postgres:// store").pool();
    /// let mut tx = pool.begin().await?;
    /// let (user,): (i64,) = sqlx::query_as("INSERT INTO users (email) VALUES ($1) RETURNING id")
    ///     .bind("ada@example.com")
    ///     .fetch_one(&mut *tx)
    ///     .await?;
    /// kyu.enqueue_in(&mut tx, vec![kyu::NewJob::new("welcome_email", serde_json::json!({ "user": user }))])
    ///     .await?;
    /// tx.commit().await?; // the user and the job, or neither
    /// # Ok(()) }
    /// ```
    #[cfg(feature = "postgres")]
    pub async fn enqueue_in<J: IntoNewJob>(
        &self,
        conn: &mut kyu_postgres::sqlx::PgConnection,
        jobs: Vec<J>,
    ) -> Result<Vec<Enqueued>> {
        let Some(pg) = &self.pg else {
            return Err(StoreError::Unsupported {
                backend: self.store.backend(),
                operation: "enqueue_in (enqueue inside an application transaction)",
            }
            .into());
        };
        let jobs = jobs
            .into_iter()
            .map(IntoNewJob::into_new_job)
            .collect::<Result<Vec<NewJob>>>()?;
        NewJob::validate_batch(&jobs, &self.limits)?;
        let keys = EnqueueKeys::of(&jobs);
        let out = pg.enqueue_in(conn, jobs).await?;
        keys.count(&self.enqueued, &out);
        Ok(out)
    }

    /// Sets the limits enqueue requests are checked against (args size).
    pub fn with_limits(mut self, limits: Limits) -> Kyu {
        self.limits = limits;
        self
    }

    /// The store underneath.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// This client's `kyu_jobs_enqueued_total` handles (the scheduler counts
    /// its fires there too).
    /// The limits enqueued jobs are checked against ([`Kyu::with_limits`]).
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    pub(crate) fn enqueue_counters(&self) -> &crate::metrics::EnqueueCounters {
        &self.enqueued
    }

    /// Enqueues one job: a typed [`Job`](crate::Job) (with its kind's queue
    /// and [`options`](crate::Job::options)) or a [`NewJob`].
    ///
    /// ```
    /// # async fn demo() -> Result<(), kyu::Error> {
    /// let kyu = kyu::Kyu::connect("sqlite::memory:").await?;
    /// let job = kyu.enqueue(kyu::NewJob::new("resize", serde_json::json!({"w": 64}))).await?;
    /// assert!(!job.duplicate);
    /// assert_eq!(kyu.job(job.id).await?.state, kyu::JobState::Available);
    /// # Ok(()) }
    /// # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
    /// ```
    pub async fn enqueue(&self, job: impl IntoNewJob) -> Result<Enqueued> {
        let mut out = self.enqueue_many(vec![job]).await?;
        Ok(out.remove(0))
    }

    /// Enqueues one job with options changed for this call only, over the
    /// kind's own ([`Job::QUEUE`](crate::Job::QUEUE), [`Job::options`](crate::Job::options)):
    ///
    /// ```
    /// # use kyu::{Job, JobContext, JobResult, Outcome};
    /// # #[derive(serde::Serialize, serde::Deserialize)]
    /// # struct Report { month: String }
    /// # impl Job for Report {
    /// #     const KIND: &'static str = "report";
    /// #     async fn run(self, _ctx: JobContext) -> JobResult { Ok(Outcome::Done) }
    /// # }
    /// # async fn demo(kyu: kyu::Kyu) -> Result<(), kyu::Error> {
    /// use std::time::Duration;
    /// let report = Report { month: "2026-11".into() };
    /// kyu.enqueue_with(report, |o| o.priority(-1).delay(Duration::from_secs(600))).await?;
    /// # Ok(()) }
    /// ```
    pub async fn enqueue_with(
        &self,
        job: impl IntoNewJob,
        options: impl FnOnce(NewJob) -> NewJob,
    ) -> Result<Enqueued> {
        self.enqueue(options(job.into_new_job()?)).await
    }

    /// Enqueues many jobs (typed jobs of one kind, or [`NewJob`]s) in one
    /// transaction: all or none, every job checked before anything is
    /// written. One result per job, in order.
    pub async fn enqueue_many<J: IntoNewJob>(&self, jobs: Vec<J>) -> Result<Vec<Enqueued>> {
        let jobs = jobs
            .into_iter()
            .map(IntoNewJob::into_new_job)
            .collect::<Result<Vec<NewJob>>>()?;
        NewJob::validate_batch(&jobs, &self.limits)?;
        let keys = EnqueueKeys::of(&jobs);
        let out = self.store.enqueue(jobs).await?;
        keys.count(&self.enqueued, &out);
        Ok(out)
    }

    /// One job, with everything known about it.
    pub async fn job(&self, id: JobId) -> Result<JobRecord> {
        self.store.get(id).await?.ok_or(Error::NotFound(id))
    }

    /// A page of jobs, newest first.
    pub async fn list(&self, filter: &JobFilter) -> Result<JobPage> {
        Ok(self.store.list(filter).await?)
    }

    /// How many jobs match `filter`, counting at most `cap` (`u64::MAX` for
    /// an exact count): [`JobCount::n`], with [`JobCount::more`] set when
    /// more than `cap` match. It selects the same jobs as [`list`](Kyu::list)
    /// pages through (including the snapshot bound
    /// [`changed_by`](JobFilter::changed_by) with
    /// [`before`](JobFilter::before)) but reads at most `cap` + 1 of them and
    /// decodes none, so "how many failed jobs" costs a bounded scan, not
    /// pages of whole jobs. A filter with a search inside
    /// [`args`](JobFilter::args) is refused ([`Error::Invalid`] on `args`):
    /// no index serves it; page through [`list`](Kyu::list), whose windows
    /// bound each page's work, instead.
    ///
    /// ```no_run
    /// # async fn f(kyu: kyu::Kyu) -> kyu::Result<()> {
    /// let failed = kyu::JobFilter {
    ///     states: vec![kyu::JobState::Failed],
    ///     ..Default::default()
    /// };
    /// let count = kyu.count_jobs(&failed, 10_000).await?;
    /// println!("{}{} failed", count.n, if count.more { "+" } else { "" });
    /// # Ok(())
    /// # }
    /// ```
    pub async fn count_jobs(&self, filter: &JobFilter, cap: u64) -> Result<JobCount> {
        Ok(self.store.count_jobs(filter, cap).await?)
    }

    /// Waits until the job is completed, failed or cancelled, and returns
    /// it: `kyu.wait(id).await`, or with a deadline,
    /// `kyu.wait(id).timeout(Duration::from_secs(30)).await`, which ends with
    /// [`Error::WaitTimedOut`] rather than hang on a job nobody runs. See [`Wait`].
    pub fn wait(&self, id: JobId) -> Wait {
        Wait::new(self.clone(), id)
    }

    /// Cancels jobs. A scheduled or available job never runs; a running job's
    /// handler is signalled and the job ends `cancelled`.
    pub async fn cancel(&self, ids: &[JobId]) -> Result<Vec<CancelResult>> {
        Ok(self.store.cancel(ids).await?)
    }

    /// Runs failed or cancelled jobs again. A job whose unique key another
    /// unfinished job holds is not retried ([`RetryResult::KeyHeld`] names
    /// the holder): a retry never makes two unfinished jobs with one key.
    pub async fn retry(&self, ids: &[JobId]) -> Result<Vec<RetryResult>> {
        Ok(self.store.retry(ids).await?)
    }

    /// Deletes jobs that are not running, with their recorded output
    /// ([`kyu_core::DeleteResult`]); a running job is left alone (cancel it
    /// first). A deleted job's unique key no longer holds.
    pub async fn delete(&self, ids: &[JobId]) -> Result<Vec<kyu_core::DeleteResult>> {
        Ok(self.store.delete_jobs(ids).await?)
    }

    /// Makes scheduled jobs available now, whatever their run_at
    /// ([`kyu_core::RunNowResult`]); the next claim of their queue may take them.
    pub async fn run_now(&self, ids: &[JobId]) -> Result<Vec<kyu_core::RunNowResult>> {
        Ok(self.store.run_now(ids).await?)
    }

    /// Runs every failed job again, of one queue and/or kind if given. Of
    /// failed jobs sharing a unique key only the first is retried, none if an
    /// unfinished job holds the key; the reply counts the retried and lists
    /// those left failed with their key's holder.
    pub async fn retry_failed(
        &self,
        queue: Option<&str>,
        kind: Option<&str>,
    ) -> Result<kyu_core::RetriedFailed> {
        Ok(self.store.retry_failed(queue, kind).await?)
    }

    /// The recorded output of every attempt of a command job, oldest first.
    pub async fn logs(&self, id: JobId) -> Result<Vec<kyu_core::AttemptLogs>> {
        let logs = self.store.logs(id).await?;
        if logs.is_empty() {
            // Tell "no output yet" from "no such job".
            self.job(id).await?;
        }
        Ok(logs)
    }

    /// Records progress for job `id` from outside its handler (the `kyu
    /// progress` command run by a script). Only a running job's progress can
    /// be set.
    pub async fn set_progress(&self, id: JobId, progress: kyu_core::Progress) -> Result<bool> {
        let job = self.job(id).await?;
        if job.state != kyu_core::JobState::Running {
            return Ok(false);
        }
        Ok(self
            .store
            .set_progress(
                kyu_core::LeaseRef {
                    id,
                    attempt: job.attempt,
                },
                progress,
            )
            .await?)
    }

    /// Every queue with its counts by state and paused flag.
    pub async fn queues(&self) -> Result<Vec<QueueStats>> {
        Ok(self.store.queue_stats().await?)
    }

    /// The workers alive now (seen within a few lease periods and not shut
    /// down), with the queues they work and the kinds they claim.
    pub async fn workers(&self) -> Result<Vec<kyu_core::LiveWorker>> {
        Ok(self.store.live_workers().await?)
    }

    /// The runnable jobs no live worker claims, counted by queue and kind:
    /// they wait until a worker that runs their kind on their queue starts.
    pub async fn unhandled(&self) -> Result<Vec<kyu_core::WaitingKind>> {
        let workers = self.store.live_workers().await?;
        let waiting = self.store.waiting_kinds().await?;
        Ok(kyu_core::workers::unhandled(waiting, &workers))
    }

    /// Whether a live worker claims jobs of `kind` from `queue`.
    pub async fn handled(&self, queue: &str, kind: &str) -> Result<bool> {
        let workers = self.store.live_workers().await?;
        Ok(kyu_core::workers::handled(&workers, queue, kind))
    }

    /// Pauses a queue: nothing new starts from it until it is resumed.
    pub async fn pause(&self, queue: &str) -> Result<()> {
        kyu_core::job::check_name("queue", queue)?;
        Ok(self.store.pause_queue(queue).await?)
    }

    /// Resumes a paused queue.
    pub async fn resume(&self, queue: &str) -> Result<()> {
        kyu_core::job::check_name("queue", queue)?;
        Ok(self.store.resume_queue(queue).await?)
    }

    /// Sets or clears a queue's limits, for every process and host that
    /// claims from it (they are stored with the queue, and enforced by the
    /// store's claim): at most `global_concurrency` jobs of the queue
    /// running at once, at most `rate` starts in any window of its period,
    /// per rate key when `rate_key` names where a job's key is in its args
    /// (see [`kyu_core::rate_key`]; a key given at enqueue with
    /// [`NewJob::rate_key`](kyu_core::NewJob::rate_key) wins).
    /// A field of `update` left `None` keeps its value. Returns the limits
    /// as they are now. Jobs already running go on when a limit is lowered.
    ///
    /// ```no_run
    /// # async fn demo(kyu: kyu::Kyu) -> kyu::Result<()> {
    /// use kyu::{LimitsUpdate, RateKeyPath, RateLimit};
    /// // One batch at a time across the fleet, and at most 5000 starts an hour.
    /// kyu.set_queue_limits("batch", LimitsUpdate {
    ///     global_concurrency: Some(Some(1)),
    ///     rate: Some(Some("5000/1h".parse::<RateLimit>()?)),
    ///     ..LimitsUpdate::default()
    /// }).await?;
    /// // At most 10 calls a second to each API named by the job's args.api.
    /// kyu.set_queue_limits("calls", LimitsUpdate {
    ///     rate: Some(Some("10/1s".parse::<RateLimit>()?)),
    ///     rate_key: Some(Some("args.api".parse::<RateKeyPath>()?)),
    ///     ..LimitsUpdate::default()
    /// }).await?;
    /// # Ok(()) }
    /// ```
    pub async fn set_queue_limits(
        &self,
        queue: &str,
        update: kyu_core::LimitsUpdate,
    ) -> Result<kyu_core::QueueLimits> {
        kyu_core::job::check_name("queue", queue)?;
        update.validate()?;
        Ok(self.store.set_queue_limits(queue, update).await?)
    }

    /// Every queue with a limit, by name, with its use now (jobs running,
    /// starts in the rate window, when the next start is allowed).
    pub async fn queue_limits(&self) -> Result<Vec<kyu_core::QueueLimitStatus>> {
        Ok(self.store.queue_limits().await?)
    }
}

/// Schedules: declare, list, enable, disable, trigger (see [`crate::scheduler`]).
impl Kyu {
    /// Creates or replaces the schedule `spec.name` (upsert by name, so every
    /// process may declare its schedules at start-up). Its next fire time is
    /// kept when the cron expression and zone are unchanged, so a redeclared
    /// schedule neither skips nor repeats a fire time; otherwise it is the
    /// first fire time after now. An invalid spec is refused before anything
    /// is written, the error naming the field.
    pub async fn schedule(&self, spec: ScheduleSpec) -> Result<ScheduleRecord> {
        spec.validate(&self.limits)?;
        Ok(self.store.upsert_schedule(spec).await?)
    }

    /// Makes the stored schedules declared by a config file those of
    /// `declared`, in one transaction: each is upserted and marked as the
    /// file's; the file's schedules it no longer declares are deleted (their
    /// jobs stay) and named in [`ConfigSync::removed`](kyu_core::ConfigSync::removed).
    /// A stored schedule keeps its enabled state (an operator's disable)
    /// unless the entry sets it explicitly. See
    /// [`ScheduleStore::sync_config_schedules`](kyu_core::ScheduleStore::sync_config_schedules).
    pub async fn sync_config_schedules(
        &self,
        declared: Vec<kyu_core::ConfigSchedule>,
    ) -> Result<kyu_core::ConfigSync> {
        Ok(self.store.sync_config_schedules(declared).await?)
    }

    /// Deletes the schedule `name`; its jobs stay. False if there was none.
    pub async fn unschedule(&self, name: &str) -> Result<bool> {
        Ok(self.store.delete_schedule(name).await?)
    }

    /// Every schedule, by name, with its next and last fire and last job.
    pub async fn schedules(&self) -> Result<Vec<ScheduleRecord>> {
        Ok(self.store.list_schedules().await?)
    }

    /// The schedule `name`.
    pub async fn get_schedule(&self, name: &str) -> Result<ScheduleRecord> {
        self.store
            .get_schedule(name)
            .await?
            .ok_or_else(|| Error::ScheduleNotFound(name.to_string()))
    }

    /// Enables the schedule `name`. It fires from the first fire time after
    /// now: what it missed while disabled is not a misfire.
    pub async fn enable_schedule(&self, name: &str) -> Result<()> {
        self.set_schedule_enabled(name, true).await
    }

    /// Disables the schedule `name`: it fires nothing until enabled (it can
    /// still be triggered).
    pub async fn disable_schedule(&self, name: &str) -> Result<()> {
        self.set_schedule_enabled(name, false).await
    }

    async fn set_schedule_enabled(&self, name: &str, enabled: bool) -> Result<()> {
        if self.store.set_schedule_enabled(name, enabled).await? {
            Ok(())
        } else {
            Err(Error::ScheduleNotFound(name.to_string()))
        }
    }

    /// Runs the schedule `name` now: enqueues its job at once, enabled or
    /// not, whatever its overlap policy, and leaves its next fire time alone.
    /// Returns the job's id.
    pub async fn trigger(&self, name: &str) -> Result<JobId> {
        let id = self
            .store
            .trigger_schedule(name)
            .await?
            .ok_or_else(|| Error::ScheduleNotFound(name.to_string()))?;
        if let Ok(Some(s)) = self.store.get_schedule(name).await {
            self.enqueued.add(&s.spec.job.queue, &s.spec.job.kind, 1);
        }
        Ok(id)
    }
}

/// The (queue, kind) of each job of an enqueue batch, kept while the jobs
/// are moved into the store, to count those inserted. A batch usually holds
/// one (queue, kind): one entry, not one per job.
struct EnqueueKeys {
    /// Distinct (queue, kind) pairs, in order of first appearance.
    pairs: Vec<(String, String)>,
    /// For each job, its pair's index.
    of_job: Vec<usize>,
}

impl EnqueueKeys {
    fn of(jobs: &[NewJob]) -> EnqueueKeys {
        let mut pairs: Vec<(String, String)> = Vec::new();
        let of_job = jobs
            .iter()
            .map(|j| {
                match pairs
                    .iter()
                    .position(|(q, k)| *q == j.queue && *k == j.kind)
                {
                    Some(i) => i,
                    None => {
                        pairs.push((j.queue.clone(), j.kind.clone()));
                        pairs.len() - 1
                    }
                }
            })
            .collect();
        EnqueueKeys { pairs, of_job }
    }

    /// Counts the jobs of `out` that were inserted (not duplicates).
    fn count(&self, counters: &crate::metrics::EnqueueCounters, out: &[Enqueued]) {
        let mut inserted = vec![0u64; self.pairs.len()];
        for (e, &pair) in out.iter().zip(&self.of_job) {
            if !e.duplicate {
                inserted[pair] += 1;
            }
        }
        for ((queue, kind), n) in self.pairs.iter().zip(inserted) {
            counters.add(queue, kind, n);
        }
    }
}
