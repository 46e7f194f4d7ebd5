//! The worker runtime: claims jobs, runs their handlers, writes the results.
//!
//! One worker is a handful of tasks, each in its own module:
//!
//! - [`claim`]: one fetch loop per queue; claims as many jobs as the queue has
//!   free slots, then sleeps until a wake-up, a poll, or the next scheduled job;
//! - [`prefetch`]: how far ahead of its free slots a queue claims;
//! - [`execute`]: runs one attempt: timeout, panic, cancellation, shutdown;
//! - [`start`]: marks jobs claimed ahead (the prefetch) started, in batches,
//!   when they get a run slot;
//! - [`finish`]: writes finished attempts in batches ([`Store::finish`](kyu_core::Store::finish));
//! - [`lease`]: heartbeats the leases of running jobs and passes on cancel requests;
//! - [`schedule_watch`]: warns when enabled schedules are overdue, i.e. no
//!   scheduler runs on the database;
//! - [`inline`]: runs one chosen job without starting the worker (for
//!   [`crate::testing`]);
//! - [`crate::maintenance`]: the lease reaper and retention, on by default.

mod claim;
mod execute;
mod finish;
mod handler;
pub(crate) mod inline;
mod lease;
pub(crate) mod prefetch;
mod schedule_watch;
mod start;

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kyu_core::{JobId, Store};
use tokio::sync::{mpsc, Notify};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::maintenance::{self, MaintenanceConfig};
use crate::metrics::SlotGauges;
use crate::{Job, JobContext, JobResult, Kyu};
use handler::{FnHandler, Handler, TypedHandler};
pub use prefetch::Prefetch;

/// Jobs of one queue a worker runs at once when nobody said how many.
///
/// A handler is a tokio task, so hundreds waiting on I/O cost little, and a
/// claim takes up to this many jobs in one store round trip. The claim's
/// size is what makes short jobs fast: measured with `kyu bench` (W1, 20,000
/// no-op jobs, one sitting), 500 ran 1.5× the jobs per second of 100 on
/// PostgreSQL and 1.1× on SQLite, and 1,000 no more than 500 (README
/// "Performance"). Give a queue whose handlers burn CPU, or hold scarce
/// connections, its own smaller number with [`Worker::queue`]. (`kyu worker`
/// runs commands, each a process: its queues default to 10, see kyu.toml.)
pub const DEFAULT_CONCURRENCY: usize = 500;

/// How a worker behaves. Every field has a default; see each.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// This worker's name, recorded on the jobs it runs and in attempt errors.
    /// Default: `HOST-PID-RANDOM`.
    pub id: String,
    /// How long a claimed job is the worker's without a heartbeat. A job whose
    /// worker died runs again once this runs out. Default 30 s.
    pub lease: Duration,
    /// How often running jobs' leases are extended. Default: a third of `lease`.
    pub heartbeat_every: Duration,
    /// How often the worker asks the store for cancel requests of its running
    /// jobs. Default 1 s.
    pub cancel_poll: Duration,
    /// Longest sleep of an idle queue between claims when no wake-up arrives.
    /// Default 1 s.
    pub poll_interval: Duration,
    /// On shutdown, how long running handlers get to finish before they are
    /// stopped and their jobs released to other workers. Default 10 s.
    pub shutdown_grace: Duration,
    /// After a cancel, how long a handler gets to return by itself before it
    /// is stopped at its next `.await`. Default 5 s.
    pub cancel_grace: Duration,
    /// Jobs each queue claims beyond its free slots and holds, leased, until a
    /// slot frees up. Default [`Prefetch::Off`]: a claim takes what free
    /// slots can start, and a queue's [concurrency](Worker::queue) is what
    /// makes claims big. Held jobs are heartbeated and can be cancelled.
    ///
    /// Holding costs a job nothing: only started attempts count. A claim
    /// that takes more jobs than there are free slots claims them ahead
    /// ([`Claim::unstarted`](kyu_core::Claim::unstarted)), and a held job is
    /// marked started just before its handler runs (one store call for
    /// every job that got a slot meanwhile: a held job waits that call's
    /// round trip before it starts, which is why a prefetch rarely makes
    /// short jobs faster than a larger concurrency does). On shutdown held
    /// jobs are released silently (available at once, no attempt counted, no
    /// error recorded); if the worker dies, the lease reaper gives them back
    /// the same way, with a `released` event whose reason says they never
    /// started, never an attempt lost, even on a job's last attempt. With
    /// [`Prefetch::Off`] a claim starts every job it takes and nothing more
    /// is written.
    pub prefetch: Prefetch,
    /// Most finished attempts written in one store call. Default 512.
    pub finish_batch: usize,
    /// Whether [`Worker::register`] adds each registered kind's queue
    /// ([`Job::QUEUE`]) to the queues served. Default true; when false, a
    /// registered kind whose queue is not served is warned about at start.
    pub serve_kind_queues: bool,
    /// Lease reaper and retention; `None` turns them off in this worker.
    /// Default on.
    pub maintenance: Option<MaintenanceConfig>,
    /// How often the worker checks that schedules are being fired: an
    /// enabled schedule overdue by more than the misfire grace (60 s) means
    /// no [`Scheduler`](crate::Scheduler) runs on the database, and the
    /// worker warns, naming it (once an hour per schedule). Not checked by a
    /// worker that runs a scheduler itself ([`Worker::scheduler`]). `None`
    /// turns the check off. Default every 60 s.
    pub schedule_check: Option<Duration>,
    /// Claim jobs of every kind in the worker's queues and fail the attempts
    /// of kinds it has no handler for ("no handler registered for kind …"),
    /// as River does. Default false: the worker claims only the kinds it has
    /// a handler for, and jobs of other kinds wait for a worker that runs
    /// them (`kyu queues ls` and `kyu jobs show` say so).
    pub fail_unknown_kinds: bool,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        let lease = Duration::from_secs(30);
        WorkerConfig {
            id: default_worker_id(),
            lease,
            heartbeat_every: lease / 3,
            cancel_poll: Duration::from_secs(1),
            poll_interval: Duration::from_secs(1),
            shutdown_grace: Duration::from_secs(10),
            cancel_grace: Duration::from_secs(5),
            prefetch: Prefetch::default(),
            finish_batch: 512,
            serve_kind_queues: true,
            maintenance: Some(MaintenanceConfig::default()),
            schedule_check: Some(Duration::from_secs(60)),
            fail_unknown_kinds: false,
        }
    }
}

impl WorkerConfig {
    /// Checks the settings a worker cannot run with, with the words of
    /// [`kyu_core::validate`]: a lease of at least 1 s, a heartbeat more
    /// often than the lease runs out, positive poll intervals.
    pub fn validate(&self) -> Result<(), kyu_core::InvalidInput> {
        use kyu_core::validate;
        validate::lease("lease", self.lease)?;
        validate::interval("heartbeat_every", self.heartbeat_every)?;
        if self.heartbeat_every >= self.lease {
            return Err(kyu_core::InvalidInput::new(
                "heartbeat_every",
                format!(
                    "{:?} is not accepted with a lease of {:?}; accepted: shorter than the \
                     lease (default: a third of it), or every lease runs out",
                    self.heartbeat_every, self.lease
                ),
            ));
        }
        validate::interval("cancel_poll", self.cancel_poll)?;
        validate::interval("poll_interval", self.poll_interval)?;
        if let Some(every) = self.schedule_check {
            validate::interval("schedule_check", every)?;
        }
        Ok(())
    }
}

fn default_worker_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "host".into());
    format!(
        "{host}-{}-{:04x}",
        std::process::id(),
        rand::random::<u16>()
    )
}

/// Builds and starts a worker.
///
/// ```
/// use std::time::Duration;
/// use kyu::{Kyu, Outcome, Worker};
///
/// # async fn demo() -> Result<(), kyu::Error> {
/// let kyu = Kyu::connect("sqlite::memory:").await?; // e.g. "sqlite://kyu.db"
/// let worker = Worker::new(&kyu)
///     .handle("hello", |ctx| async move {
///         println!("hello from job {}", ctx.id());
///         Ok(Outcome::Done)
///     })
///     .queue("default", 4)
///     .start();
/// let job = kyu.enqueue(kyu::NewJob::new("hello", serde_json::json!({}))).await?;
/// let done = kyu.wait(job.id).timeout(Duration::from_secs(10)).await?;
/// assert_eq!(done.state, kyu::JobState::Completed);
/// worker.shutdown().await;
/// # Ok(()) }
/// # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
/// ```
pub struct Worker {
    kyu: Kyu,
    /// The queue of each kind registered with `register::<J>()` (`J::QUEUE`).
    kind_queues: Vec<(String, String)>,
    state: crate::state::AppState,
    scheduler: Option<crate::Scheduler>,
    handlers: HashMap<String, Arc<dyn Handler>>,
    queues: Vec<(String, usize)>,
    config: WorkerConfig,
}

impl Worker {
    /// A worker over `kyu`'s store, with no handlers yet and the default config.
    pub fn new(kyu: &Kyu) -> Worker {
        Worker {
            kyu: kyu.clone(),
            kind_queues: Vec::new(),
            state: crate::state::AppState::default(),
            scheduler: None,
            handlers: HashMap::new(),
            queues: Vec::new(),
            config: WorkerConfig::default(),
        }
    }

    /// Gives handlers `value`, read with
    /// [`JobContext::state::<T>()`](crate::JobContext::state) by its type `T`:
    /// a database pool, an HTTP client, a config. One value per type (a second
    /// value of the same type replaces the first); wrap it in an `Arc` if it is
    /// not cheap to share. See `crates/kyu/examples/app_state.rs`.
    pub fn state<T: Send + Sync + 'static>(mut self, value: T) -> Worker {
        self.state.insert(value);
        self
    }

    /// Runs `scheduler` beside this worker: it starts with the worker, and
    /// [`WorkerHandle::shutdown`] stops it first (no new fires), then the
    /// worker, so one call shuts both down.
    ///
    /// ```
    /// # async fn demo(kyu: kyu::Kyu) {
    /// use kyu::{Scheduler, Worker};
    /// let running = Worker::new(&kyu)
    ///     .handle("report", |_ctx| async { Ok(kyu::Outcome::Done) })
    ///     .scheduler(Scheduler::new(&kyu))
    ///     .start();
    /// running.shutdown().await; // the scheduler, then the worker
    /// # }
    /// ```
    pub fn scheduler(mut self, scheduler: crate::Scheduler) -> Worker {
        self.scheduler = Some(scheduler);
        self
    }

    /// Runs jobs of kind `J::KIND` with `J::run`, and serves the kind's queue
    /// [`J::QUEUE`](Job::QUEUE) (with the default concurrency of 10 unless
    /// [`queue`](Self::queue) names it), so a registered kind never waits
    /// for a queue nobody works. [`WorkerConfig::serve_kind_queues`] `= false`
    /// serves only the queues named, and warns at start about kinds whose
    /// queue is left out.
    ///
    /// ```
    /// use kyu::{Job, JobContext, JobResult, Outcome, Worker};
    ///
    /// #[derive(serde::Serialize, serde::Deserialize)]
    /// struct SendEmail { to: String }
    ///
    /// impl Job for SendEmail {
    ///     const KIND: &'static str = "send_email";
    ///     const QUEUE: &'static str = "mail";
    ///     async fn run(self, _ctx: JobContext) -> JobResult { Ok(Outcome::Done) }
    /// }
    ///
    /// # async fn demo() -> Result<(), kyu::Error> {
    /// let kyu = kyu::Kyu::connect("sqlite::memory:").await?;
    /// // Serves "mail" (the kind's queue) beside "default".
    /// let worker = Worker::new(&kyu).register::<SendEmail>().queue("default", 4).start();
    /// # worker.shutdown().await;
    ///
    /// // Only "default": logs at start
    /// // WARN kind send_email is registered but its queue mail is not served by this
    /// //      worker: its jobs wait for another worker (add .queue("mail", N), …)
    /// let worker = Worker::new(&kyu)
    ///     .register::<SendEmail>()
    ///     .queue("default", 4)
    ///     .configure(|c| c.serve_kind_queues = false)
    ///     .start();
    /// # worker.shutdown().await;
    /// # Ok(()) }
    /// # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
    /// ```
    pub fn register<J: Job>(mut self) -> Worker {
        self.handlers
            .insert(J::KIND.to_string(), Arc::new(TypedHandler::<J>::new()));
        self.kind_queues
            .push((J::KIND.to_string(), J::QUEUE.to_string()));
        self
    }

    /// Runs jobs of `kind` with a closure over the raw [`JobContext`].
    pub fn handle<F, Fut>(mut self, kind: impl Into<String>, f: F) -> Worker
    where
        F: Fn(JobContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = JobResult> + Send + 'static,
    {
        self.handlers.insert(kind.into(), Arc::new(FnHandler(f)));
        self
    }

    /// Runs jobs of `kind` as a command (see [`crate::command_job`]). Output is
    /// recorded with the attempt as it comes (about twice a second) and can be
    /// read with [`Kyu::logs`](crate::Kyu::logs).
    pub fn command(
        mut self,
        kind: impl Into<String>,
        spec: crate::command_job::CommandSpec,
    ) -> Worker {
        // SIGTERM, the stop grace, SIGKILL, reaping the group, draining output.
        let grace = spec.stop_grace + Duration::from_secs(2);
        let spec = Arc::new(spec);
        let store = self.kyu.store().clone();
        let run = FnHandler(move |ctx: JobContext| {
            let spec = spec.clone();
            let store = store.clone();
            async move {
                let id = ctx.id();
                // One writer per attempt, so log writes stay in order and a
                // slow store coalesces them to the newest.
                let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
                let writer = tokio::spawn(async move {
                    while let Some(mut logs) = rx.recv().await {
                        while let Ok(newer) = rx.try_recv() {
                            logs = newer;
                        }
                        if let Err(e) = store.set_logs(id, logs).await {
                            tracing::warn!(job_id = id, error = %e, "could not record the command's output");
                        }
                    }
                });
                let result = crate::command_job::run_command(
                    &spec,
                    &ctx,
                    Duration::from_millis(500),
                    move |logs| {
                        let _ = tx.send(logs);
                    },
                )
                .await;
                let _ = writer.await;
                result
            }
        });
        self.handlers.insert(
            kind.into(),
            Arc::new(handler::SelfStopping { inner: run, grace }),
        );
        self
    }

    /// Works `queue`, running at most `concurrency` of its jobs at once.
    /// With no queue named, the worker works `default` and the queues of the
    /// kinds it registered, each with [`DEFAULT_CONCURRENCY`] (500).
    pub fn queue(mut self, queue: impl Into<String>, concurrency: usize) -> Worker {
        self.queues.push((queue.into(), concurrency.max(1)));
        self
    }

    /// Replaces the whole configuration.
    pub fn config(mut self, config: WorkerConfig) -> Worker {
        self.config = config;
        self
    }

    /// Changes the configuration in place.
    pub fn configure(mut self, f: impl FnOnce(&mut WorkerConfig)) -> Worker {
        f(&mut self.config);
        self
    }

    /// Starts the worker's tasks on the current tokio runtime, after
    /// checking its config ([`WorkerConfig::validate`]): a config it cannot
    /// run with is refused with [`Error::Invalid`](crate::Error::Invalid)
    /// before any job is claimed.
    pub fn try_start(self) -> crate::Result<WorkerHandle> {
        self.config.validate()?;
        Ok(self.start_checked())
    }

    /// Starts the worker's tasks on the current tokio runtime.
    ///
    /// # Panics
    ///
    /// If the config is one a worker cannot run with (e.g. a zero lease),
    /// here and before any job is claimed, with the reason; use
    /// [`try_start`](Self::try_start) to get it as an error instead.
    pub fn start(self) -> WorkerHandle {
        if let Err(e) = self.config.validate() {
            panic!("kyu worker config refused: {e}");
        }
        self.start_checked()
    }

    fn start_checked(self) -> WorkerHandle {
        let Worker {
            kyu,
            kind_queues,
            state,
            scheduler,
            handlers,
            mut queues,
            config,
        } = self;
        if queues.is_empty() {
            queues.push((
                kyu_core::job::DEFAULT_QUEUE.to_string(),
                DEFAULT_CONCURRENCY,
            ));
        }
        for (kind, queue) in &kind_queues {
            if queues.iter().any(|(q, _)| q == queue) {
                continue;
            }
            if config.serve_kind_queues {
                queues.push((queue.clone(), DEFAULT_CONCURRENCY));
            } else {
                // The silent hang of a kind nobody serves, said out loud.
                tracing::warn!(
                    worker = %config.id, kind = %kind, queue = %queue,
                    "kind {kind} is registered but its queue {queue} is not served by this \
                     worker: its jobs wait for another worker (add .queue({queue:?}, N), or \
                     leave serve_kind_queues on)"
                );
            }
        }
        let store = kyu.store().clone();
        let (shared, finish_rx) =
            Shared::new(kyu.clone(), Arc::new(state), handlers, config.clone());
        tracing::info!(
            worker = %config.id,
            backend = store.backend(),
            queues = ?queues,
            kinds = ?shared.handlers.keys().collect::<Vec<_>>(),
            "worker started"
        );

        if shared.handlers.is_empty() && !config.fail_unknown_kinds {
            tracing::warn!(
                worker = %config.id,
                "this worker has no handlers: it claims no jobs (register a kind, or declare \
                 [jobs.KIND] in kyu.toml for `kyu worker`)"
            );
        }
        let registration = shared.registration(&queues);
        // kyu_worker_slots: this worker's slots are free until handlers run.
        let slot_gauges: Vec<(Arc<SlotGauges>, usize)> = queues
            .iter()
            .map(|(queue, concurrency)| {
                let gauges = Arc::new(SlotGauges::new(queue));
                gauges.add_free(*concurrency as f64);
                (gauges, *concurrency)
            })
            .collect();
        let fetchers = queues
            .into_iter()
            .zip(&slot_gauges)
            .map(|((queue, concurrency), (gauges, _))| {
                tokio::spawn(claim::fetch_loop(
                    shared.clone(),
                    queue,
                    concurrency,
                    gauges.clone(),
                ))
            })
            .collect();
        let completer = tokio::spawn(finish::completer(shared.clone(), finish_rx));
        let background = CancellationToken::new();
        let starter = shared
            .start_rx
            .lock()
            .expect("start lock")
            .take()
            .map(|rx| tokio::spawn(start::starter(store.clone(), rx, background.clone())));
        let lease = tokio::spawn(lease::lease_loop(
            shared.clone(),
            registration,
            background.clone(),
        ));
        let maintenance = config.maintenance.clone().map(|m| {
            let shared = shared.clone();
            let stop = background.clone();
            tokio::spawn(async move {
                maintenance::run(shared.store.clone(), m, stop, || {
                    shared.local_wake.notify_waiters()
                })
                .await
            })
        });
        // A worker that runs the scheduler knows one runs.
        let schedule_watch = match (config.schedule_check, &scheduler) {
            (Some(every), None) => Some(tokio::spawn(schedule_watch::watch(
                shared.clone(),
                every,
                background.clone(),
            ))),
            _ => None,
        };
        WorkerHandle {
            schedule_watch,
            scheduler: scheduler.map(crate::Scheduler::start),
            shared,
            slot_gauges,
            fetchers,
            completer,
            starter,
            lease,
            maintenance,
            background,
        }
    }
}

/// What the worker's tasks share.
pub(crate) struct Shared {
    pub(crate) store: Arc<dyn Store>,
    /// The client handlers get from `ctx.kyu()`.
    pub(crate) kyu: Kyu,
    /// What handlers get from `ctx.state()`.
    pub(crate) state: Arc<crate::state::AppState>,
    pub(crate) handlers: HashMap<String, Arc<dyn Handler>>,
    pub(crate) config: WorkerConfig,
    /// Jobs whose attempt has not been written yet, with their cancel signal.
    pub(crate) running: Mutex<HashMap<JobId, RunningJob>>,
    pub(crate) finish_tx: mpsc::UnboundedSender<finish::Message>,
    /// Leases of jobs claimed ahead whose handlers start ([`start`]).
    pub(crate) start_tx: mpsc::UnboundedSender<start::Ask>,
    /// The receiving end of `start_tx`, until the worker's starter takes it.
    start_rx: Mutex<Option<mpsc::UnboundedReceiver<start::Ask>>>,
    /// Set on shutdown: fetch loops stop claiming.
    pub(crate) stop_claiming: CancellationToken,
    /// Set when the shutdown grace runs out: handlers are stopped, jobs released.
    pub(crate) hard_stop: CancellationToken,
    /// Wakes idle fetch loops when this process made jobs runnable (reaper).
    pub(crate) local_wake: Notify,
    /// Every running attempt.
    pub(crate) executing: TaskTracker,
}

impl Shared {
    /// What the tasks of a worker with these handlers and config share, and
    /// the receiving end of its completer's channel.
    pub(crate) fn new(
        kyu: Kyu,
        state: Arc<crate::state::AppState>,
        handlers: HashMap<String, Arc<dyn Handler>>,
        config: WorkerConfig,
    ) -> (Arc<Shared>, mpsc::UnboundedReceiver<finish::Message>) {
        let (finish_tx, finish_rx) = mpsc::unbounded_channel();
        let (start_tx, start_rx) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            store: kyu.store().clone(),
            kyu,
            state,
            handlers,
            config,
            running: Mutex::new(HashMap::new()),
            finish_tx,
            start_tx,
            start_rx: Mutex::new(Some(start_rx)),
            stop_claiming: CancellationToken::new(),
            hard_stop: CancellationToken::new(),
            local_wake: Notify::new(),
            executing: TaskTracker::new(),
        });
        (shared, finish_rx)
    }

    /// The kinds this worker claims: those it has a handler for, or every
    /// kind (`None`) when it opted in to failing unknown kinds.
    pub(crate) fn claim_kinds(&self) -> Option<Vec<String>> {
        if self.config.fail_unknown_kinds {
            return None;
        }
        let mut kinds: Vec<String> = self.handlers.keys().cloned().collect();
        kinds.sort();
        Some(kinds)
    }

    /// What this worker records in the store's worker registry.
    fn registration(&self, queues: &[(String, usize)]) -> kyu_core::WorkerInfo {
        kyu_core::WorkerInfo {
            id: self.config.id.clone(),
            queues: queues.iter().map(|(q, _)| q.clone()).collect(),
            kinds: self.claim_kinds(),
        }
    }
}

/// A job this worker runs (or has run and not yet written).
pub(crate) struct RunningJob {
    pub(crate) attempt: u32,
    pub(crate) cancel: CancellationToken,
    /// The handler has ended and its result is on its way to the store: the
    /// lease is no longer heartbeated, and a store that says the job is not
    /// running any more is reporting that very result, not a take-over.
    pub(crate) ended: bool,
}

/// A started worker (and its scheduler, if it was given one). Call
/// [`shutdown`](WorkerHandle::shutdown) to stop it gracefully; dropping the
/// handle leaves the tasks running.
#[must_use = "a worker runs until shut down: keep the handle and call shutdown().await"]
pub struct WorkerHandle {
    scheduler: Option<crate::SchedulerHandle>,
    schedule_watch: Option<JoinHandle<()>>,
    shared: Arc<Shared>,
    /// Each queue's `kyu_worker_slots` and its concurrency.
    slot_gauges: Vec<(Arc<SlotGauges>, usize)>,
    fetchers: Vec<JoinHandle<()>>,
    completer: JoinHandle<()>,
    starter: Option<JoinHandle<()>>,
    lease: JoinHandle<()>,
    maintenance: Option<JoinHandle<()>>,
    background: CancellationToken,
}

impl WorkerHandle {
    /// This worker's id.
    pub fn id(&self) -> &str {
        &self.shared.config.id
    }

    /// How many jobs are running now.
    pub fn running(&self) -> usize {
        self.shared.executing.len()
    }

    /// Graceful shutdown: stop claiming; give running handlers
    /// [`shutdown_grace`](WorkerConfig::shutdown_grace) to finish; stop the
    /// rest and release their jobs so another worker takes them at once; write
    /// every result; stop heartbeats and maintenance.
    pub async fn shutdown(self) {
        if let Some(scheduler) = self.scheduler {
            scheduler.shutdown().await;
        }
        let shared = &self.shared;
        tracing::info!(worker = %shared.config.id, running = shared.executing.len(), "worker shutting down");
        shared.stop_claiming.cancel();
        for f in self.fetchers {
            let _ = f.await;
        }
        shared.executing.close();
        if tokio::time::timeout(shared.config.shutdown_grace, shared.executing.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                worker = %shared.config.id,
                running = shared.executing.len(),
                grace = ?shared.config.shutdown_grace,
                "handlers still running after the shutdown grace; releasing their jobs"
            );
            shared.hard_stop.cancel();
            shared.executing.wait().await;
        }
        finish::flush(shared).await;
        // Every handler has ended: this worker's slots leave the count.
        for (gauges, concurrency) in &self.slot_gauges {
            gauges.add_free(-(*concurrency as f64));
        }
        self.background.cancel();
        let _ = self.lease.await;
        if let Some(s) = self.starter {
            let _ = s.await;
        }
        // No longer counted as a worker that runs these kinds.
        if let Err(e) = shared.store.worker_gone(&shared.config.id).await {
            tracing::warn!(worker = %shared.config.id, error = %e, "could not remove the worker's registration; it expires by itself");
        }
        if let Some(m) = self.maintenance {
            let _ = m.await;
        }
        if let Some(w) = self.schedule_watch {
            let _ = w.await;
        }
        drop(self.completer);
        tracing::info!(worker = %shared.config.id, "worker stopped");
    }

    /// Runs until Ctrl-C or SIGTERM, then shuts down gracefully.
    pub async fn run_until_signal(self) {
        wait_for_signal().await;
        self.shutdown().await;
    }
}

/// Completes on Ctrl-C (SIGINT) or SIGTERM.
pub async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = match signal(SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
                return;
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
