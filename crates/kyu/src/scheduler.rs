//! The scheduler: enqueues the job of every schedule at each fire time.
//!
//! Run one in every process that should fire schedules (`kyu serve` does); any
//! number may run on one database. There is no leader: each fire is a
//! compare-and-set on the schedule's next fire time in the same transaction
//! as the job insert ([`ScheduleStore::fire_schedule`](kyu_core::ScheduleStore::fire_schedule)),
//! so each (schedule, fire time) yields at most one job, and a scheduler that
//! loses the race moves on (DESIGN.md, invariant 3).
//!
//! Each tick ([`Scheduler::run_once`]) reads the due schedules and, for each:
//!
//! 1. enqueues its buffered fire time (overlap `buffer_one`) if the previous
//!    job has finished;
//! 2. if its next fire time is more than [`SchedulerConfig::misfire_grace`]
//!    in the past, it **misfired** (no scheduler ran then): the misfire
//!    policy applies to the fire times older than the grace, in one step:
//!    with `skip` no job is enqueued for them, with `run_once` one job is
//!    enqueued, for the first of them; either way the next fire time moves to
//!    the first fire time inside the grace (or after now if there is none);
//! 3. the fire times inside the grace fire in order, one compare-and-set
//!    each, so a scheduler back after any outage catches up on every fire
//!    time late by less than the grace; the overlap policy decides each fire.
//!    (`*/10 * * * * *` stopped at 08:51:45 and restarted at 08:53:05 with
//!    the 60 s grace: 08:51:50 and 08:52:00 misfired, 08:52:10 … 08:53:00 fire.)
//!
//! Between ticks the loop sleeps to the next whole
//! [`poll_interval`](SchedulerConfig::poll_interval) (default 1 s) of the
//! clock, so a fire time (always a whole second) fires a few milliseconds
//! after it comes.
//!
//! ```
//! use kyu::{JobTemplate, Kyu, ScheduleSpec, Scheduler};
//!
//! # async fn demo() -> Result<(), kyu::Error> {
//! let kyu = Kyu::connect("sqlite::memory:").await?; // e.g. "sqlite://kyu.db"
//! kyu.schedule(
//!     ScheduleSpec::new(
//!         "nightly-report",
//!         "0 3 * * *",
//!         JobTemplate::new("report", serde_json::json!({"format": "pdf"})),
//!     )
//!     .zone("Europe/Berlin"),
//! )
//! .await?;
//! let scheduler = Scheduler::new(&kyu).start();
//! // ... a Worker runs the "report" jobs ...
//! scheduler.shutdown().await;
//! # Ok(()) }
//! # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
//! ```

use std::time::Duration;

use chrono::{DateTime, Utc};
use kyu_core::schedule::{Fire, FireResult, MisfirePolicy, ScheduleRecord, SkipReason};
use kyu_core::JobId;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::{Kyu, Result};

/// How a scheduler behaves. Every field has a default; see each.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchedulerConfig {
    /// A fire time later than this when the scheduler finds it has misfired,
    /// and the schedule's misfire policy applies. A fire time late by less
    /// fires normally (the scheduler catches up). Default 60 s.
    pub misfire_grace: Duration,
    /// How often the scheduler looks for due schedules. Default 1 s.
    pub poll_interval: Duration,
    /// Most fire times of one schedule fired in one tick; the rest wait for
    /// the next tick. Default 1000.
    pub max_catch_up: usize,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        SchedulerConfig {
            misfire_grace: Duration::from_secs(60),
            poll_interval: Duration::from_secs(1),
            max_catch_up: 1000,
        }
    }
}

/// What one tick did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TickReport {
    /// Jobs enqueued: schedule, fire time, job id.
    pub fired: Vec<(String, DateTime<Utc>, JobId)>,
    /// Fire times that enqueued nothing (misfire `skip`, overlap `skip`, a
    /// second fire time for `buffer_one`).
    pub skipped: usize,
    /// Fire times buffered behind an unfinished job (overlap `buffer_one`).
    pub buffered: usize,
    /// Fires another scheduler made first.
    pub lost: usize,
    /// Schedules whose fire failed (logged; retried next tick).
    pub errors: usize,
}

/// Builds and starts a scheduler. See the [module docs](self).
#[derive(Debug, Clone)]
pub struct Scheduler {
    kyu: Kyu,
    config: SchedulerConfig,
}

impl Scheduler {
    /// A scheduler over `kyu`'s store, with the default config.
    pub fn new(kyu: &Kyu) -> Scheduler {
        Scheduler {
            kyu: kyu.clone(),
            config: SchedulerConfig::default(),
        }
    }

    /// Replaces the whole configuration.
    pub fn config(mut self, config: SchedulerConfig) -> Scheduler {
        self.config = config;
        self
    }

    /// Changes the configuration in place.
    pub fn configure(mut self, f: impl FnOnce(&mut SchedulerConfig)) -> Scheduler {
        f(&mut self.config);
        self
    }

    /// One tick at the store clock's now: see [`run_once`](Self::run_once).
    pub async fn tick(&self) -> Result<TickReport> {
        let now = self.kyu.store().clock().now();
        self.run_once(now).await
    }

    /// One tick at `now`: fires every schedule due at `now` (see the
    /// [module docs](self)). Fails only if the due schedules cannot be
    /// read; a schedule whose fire fails is logged, counted in
    /// [`TickReport::errors`] and tried again next tick.
    pub async fn run_once(&self, now: DateTime<Utc>) -> Result<TickReport> {
        let store = self.kyu.store();
        let due = store.due_schedules(now).await?;
        let mut report = TickReport::default();
        for rec in due {
            if let Err(e) = self.fire_due(&rec, now, &mut report).await {
                report.errors += 1;
                crate::metrics::schedule_fire(&rec.spec.name, "error");
                tracing::warn!(schedule = %rec.spec.name, error = %e, "could not fire the schedule; will retry");
            }
        }
        Ok(report)
    }

    async fn fire_due(
        &self,
        rec: &ScheduleRecord,
        now: DateTime<Utc>,
        report: &mut TickReport,
    ) -> Result<()> {
        let store = self.kyu.store();
        let name = &rec.spec.name;
        if let Some(buffered) = rec.buffered_fire_at {
            if rec.last_job_state.map_or(true, |s| s.is_finished()) {
                let r = store.fire_buffered(name, buffered).await?;
                self.note(report, rec, buffered, r);
            }
        }
        let grace =
            chrono::Duration::from_std(self.config.misfire_grace).unwrap_or(chrono::Duration::MAX);
        let (cron, zone) = (&rec.spec.cron, rec.spec.zone);
        let mut next = rec.next_fire_at;
        for _ in 0..self.config.max_catch_up {
            let Some(expected) = next.filter(|t| *t <= now) else {
                break;
            };
            let misfired = now - expected > grace;
            let (new_next, enqueue) = if misfired {
                let enqueue = rec.spec.misfire == MisfirePolicy::RunOnce;
                tracing::warn!(
                    schedule = %name,
                    missed = %expected,
                    misfire = %rec.spec.misfire,
                    "schedule misfired (no scheduler ran at its fire time)"
                );
                // The policy covers only the fire times older than the grace:
                // go on from the first one inside it (late by seconds after a
                // long outage), which then fires normally.
                let oldest_in_grace = now - grace - chrono::Duration::microseconds(1);
                (cron.next_after(oldest_in_grace, zone), enqueue)
            } else {
                (cron.next_after(expected, zone), true)
            };
            let r = store
                .fire_schedule(Fire {
                    name: name.clone(),
                    expected_next_fire_at: expected,
                    new_next_fire_at: new_next,
                    fire_time: expected,
                    enqueue,
                })
                .await?;
            let lost = r == FireResult::Lost;
            self.note(report, rec, expected, r);
            if lost {
                // Another scheduler fired it (and goes on from there), or
                // the schedule changed; the next tick reads it afresh.
                break;
            }
            next = new_next;
        }
        Ok(())
    }

    /// Starts the scheduler loop on the current tokio runtime.
    pub fn start(self) -> SchedulerHandle {
        let stop = CancellationToken::new();
        let task = tokio::spawn(run_loop(self, stop.clone()));
        SchedulerHandle { stop, task }
    }
}

impl Scheduler {
    /// Logs and counts what one fire did (in the report and in
    /// `kyu_schedule_fires_total`; a job enqueued in `kyu_jobs_enqueued_total`).
    fn note(
        &self,
        report: &mut TickReport,
        rec: &ScheduleRecord,
        fire_time: DateTime<Utc>,
        r: FireResult,
    ) {
        let name = rec.spec.name.as_str();
        crate::metrics::schedule_fire(name, fire_outcome(&r));
        if let FireResult::Fired { .. } = r {
            self.kyu
                .enqueue_counters()
                .add(&rec.spec.job.queue, &rec.spec.job.kind, 1);
        }
        note(report, name, fire_time, r);
    }
}

/// The `outcome` label of `kyu_schedule_fires_total`.
fn fire_outcome(r: &FireResult) -> &'static str {
    match r {
        FireResult::Fired { .. } => "fired",
        FireResult::Buffered => "buffered",
        FireResult::Skipped {
            reason: SkipReason::Misfire,
        } => "misfired",
        FireResult::Skipped { .. } => "skipped",
        FireResult::Lost => "lost",
    }
}

fn note(report: &mut TickReport, name: &str, fire_time: DateTime<Utc>, r: FireResult) {
    match r {
        FireResult::Fired { job } => {
            tracing::info!(schedule = %name, fire_time = %fire_time, job_id = job, "schedule fired");
            report.fired.push((name.to_string(), fire_time, job));
        }
        FireResult::Buffered => {
            tracing::info!(schedule = %name, fire_time = %fire_time, "previous job unfinished; fire buffered");
            report.buffered += 1;
        }
        FireResult::Skipped { reason } => {
            match reason {
                SkipReason::Misfire => {}
                SkipReason::Overlap { last_job, state } => {
                    tracing::info!(schedule = %name, fire_time = %fire_time, last_job, state = %state, "previous job unfinished; fire skipped")
                }
                SkipReason::AlreadyBuffered => {
                    tracing::info!(schedule = %name, fire_time = %fire_time, "a fire is already buffered; fire skipped")
                }
                // A reason added to kyu-core later.
                other => {
                    tracing::info!(schedule = %name, fire_time = %fire_time, reason = ?other, "fire skipped")
                }
            }
            report.skipped += 1;
        }
        FireResult::Lost => {
            tracing::debug!(schedule = %name, fire_time = %fire_time, "fired by another scheduler");
            report.lost += 1;
        }
    }
}

async fn run_loop(scheduler: Scheduler, stop: CancellationToken) {
    let clock = scheduler.kyu.store().clock();
    match scheduler.kyu.schedules().await {
        Ok(all) => {
            let next: Vec<String> = all
                .iter()
                .filter(|s| s.spec.enabled)
                .map(|s| match s.next_fire_at {
                    Some(t) => format!("{} at {}", s.spec.name, t.to_rfc3339()),
                    None => format!("{} never", s.spec.name),
                })
                .collect();
            tracing::info!(schedules = all.len(), next = ?next, "scheduler started");
        }
        Err(e) => tracing::warn!(error = %e, "scheduler started; could not list schedules"),
    }
    let poll = scheduler
        .config
        .poll_interval
        .max(Duration::from_millis(10));
    loop {
        if let Err(e) = scheduler.tick().await {
            tracing::warn!(error = %e, "scheduler tick failed; will retry");
        }
        // Wake just after the next whole poll interval of the clock: fire
        // times are whole seconds.
        let p = poll.as_micros() as i64;
        let into = clock.now().timestamp_micros().rem_euclid(p);
        let wait = Duration::from_micros((p - into) as u64) + Duration::from_millis(2);
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tokio::time::sleep(wait) => {}
        }
    }
    tracing::info!("scheduler stopped");
}

/// A started scheduler. Call [`shutdown`](SchedulerHandle::shutdown) to stop
/// it; dropping the handle leaves it running.
#[derive(Debug)]
#[must_use = "a scheduler runs until shut down: keep the handle and call shutdown().await"]
pub struct SchedulerHandle {
    stop: CancellationToken,
    task: JoinHandle<()>,
}

impl SchedulerHandle {
    /// Stops the loop after the tick in progress (a fire is one transaction:
    /// it is written whole or not at all).
    pub async fn shutdown(self) {
        self.stop.cancel();
        let _ = self.task.await;
    }
}
