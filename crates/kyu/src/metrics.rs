//! Metrics: what the library counts and times, through the [`metrics`]
//! crate's facade.
//!
//! kyu records into whatever recorder the application installed
//! (`metrics::set_global_recorder`); with none installed every call is a
//! no-op. `kyu serve` and `kyu worker` install a Prometheus recorder and
//! serve it at `GET /metrics` (crate `kyu-server`, which also adds the
//! gauges read from the store at scrape time: `kyu_jobs`,
//! `kyu_queue_paused`, `kyu_schedule_next_fire_timestamp_seconds`,
//! `kyu_build_info`). An application that installs its own recorder should
//! do so before it starts workers (handles are taken when a worker starts),
//! call [`describe`] for the help texts, and give the histograms the buckets
//! of [`DURATION_BUCKETS`].
//!
//! Names follow Prometheus's rules: base units (seconds), `_total` only on
//! counters. Labels are the queue, the kind, the schedule and an outcome:
//! never a job id, args or an attempt number, so the number of series stays
//! that of the queues × kinds an application has.
//!
//! | name | type | labels | what |
//! |---|---|---|---|
//! | `kyu_jobs_enqueued_total` | counter | queue, kind | jobs inserted (duplicates of a unique key not counted), by this process's client or scheduler |
//! | `kyu_job_attempts_total` | counter | queue, kind, outcome | attempts this process's workers ran to an end: `success`, `failure` (an error or a panic), `timeout`, `cancelled`, `lease_lost` (the result came too late: the lease had expired and the job was taken over) |
//! | `kyu_jobs_dead_total` | counter | queue, kind | jobs that failed for good (no attempts left, or a permanent error), by this process's workers or lease reaper |
//! | `kyu_job_duration_seconds` | histogram | queue, kind | how long each attempt's handler ran |
//! | `kyu_job_wait_seconds` | histogram | queue, kind | how long each job this process's workers claimed waited from runnable (its run_at) to the start of the attempt |
//! | `kyu_leases_expired_total` | counter | queue | expired leases this process's reaper recovered (a worker died or stalled) |
//! | `kyu_schedule_fires_total` | counter | schedule, outcome | fire times this process's scheduler handled: `fired`, `skipped` (overlap), `misfired`, `buffered`, `lost` (another scheduler fired it), `error` |
//! | `kyu_worker_slots` | gauge | queue, state | this process's worker slots, `used` (a handler runs) and `free` |
//!
//! Snoozes and shutdown releases are not attempts (the store does not count
//! them either) and are not in `kyu_job_attempts_total`. An attempt whose
//! worker died is counted only by the reaper that recovers its job, in
//! `kyu_leases_expired_total`.
//!
//! The store-read gauges of `kyu-server` include `kyu_queue_latency_seconds`:
//! the age of each queue's oldest runnable job at scrape time.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use ::metrics::{counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram};
use ::metrics::{Counter, Gauge, Histogram, Unit};

/// `kyu_jobs_enqueued_total{queue,kind}`.
pub const JOBS_ENQUEUED: &str = "kyu_jobs_enqueued_total";
/// `kyu_job_attempts_total{queue,kind,outcome}`.
pub const JOB_ATTEMPTS: &str = "kyu_job_attempts_total";
/// `kyu_jobs_dead_total{queue,kind}`.
pub const JOBS_DEAD: &str = "kyu_jobs_dead_total";
/// `kyu_job_duration_seconds{queue,kind}` (histogram).
pub const JOB_DURATION: &str = "kyu_job_duration_seconds";
/// `kyu_job_wait_seconds{queue,kind}` (histogram): from runnable to started.
pub const JOB_WAIT: &str = "kyu_job_wait_seconds";
/// `kyu_leases_expired_total{queue}`.
pub const LEASES_EXPIRED: &str = "kyu_leases_expired_total";
/// `kyu_schedule_fires_total{schedule,outcome}`.
pub const SCHEDULE_FIRES: &str = "kyu_schedule_fires_total";
/// `kyu_worker_slots{queue,state}` (`used` / `free`).
pub const WORKER_SLOTS: &str = "kyu_worker_slots";

/// The buckets of the `_seconds` histograms, from 5 ms to an hour: jobs
/// range from sub-millisecond calls to hour-long batches (a command job's
/// usual timeout is an hour).
pub const DURATION_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0,
    1800.0, 3600.0,
];

/// Registers the help text and unit of every metric kyu records with the
/// installed recorder. Call it once, after installing the recorder.
pub fn describe() {
    describe_counter!(
        JOBS_ENQUEUED,
        Unit::Count,
        "Jobs enqueued (duplicates of a unique key not counted)."
    );
    describe_counter!(
        JOB_ATTEMPTS,
        Unit::Count,
        "Attempts run to an end, by outcome: success, failure, timeout, cancelled, lease_lost."
    );
    describe_counter!(
        JOBS_DEAD,
        Unit::Count,
        "Jobs that failed for good (no attempts left or a permanent error)."
    );
    describe_histogram!(
        JOB_DURATION,
        Unit::Seconds,
        "How long each attempt's handler ran."
    );
    describe_histogram!(
        JOB_WAIT,
        Unit::Seconds,
        "How long each claimed job waited from runnable (its run_at) to the start of its attempt."
    );
    describe_counter!(
        LEASES_EXPIRED,
        Unit::Count,
        "Expired leases recovered by the lease reaper."
    );
    describe_counter!(
        SCHEDULE_FIRES,
        Unit::Count,
        "Schedule fire times handled, by outcome: fired, skipped, misfired, buffered, lost, error."
    );
    describe_gauge!(
        WORKER_SLOTS,
        Unit::Count,
        "Worker slots of this process, used (a handler runs) or free."
    );
}

/// How an attempt ended, as `kyu_job_attempts_total` counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AttemptOutcome {
    Success,
    Failure,
    Timeout,
    Cancelled,
    /// Snoozed or released: not an attempt.
    NotCounted,
}

/// The handles of one (queue, kind): taken once, so recording an attempt
/// costs a few atomic adds and no allocation.
pub(crate) struct KindMetrics {
    success: Counter,
    failure: Counter,
    timeout: Counter,
    cancelled: Counter,
    lease_lost: Counter,
    dead: Counter,
    duration: Histogram,
    wait: Histogram,
}

impl KindMetrics {
    pub(crate) fn new(queue: &str, kind: &str) -> KindMetrics {
        let attempts = |outcome: &'static str| counter!(JOB_ATTEMPTS, "queue" => queue.to_string(), "kind" => kind.to_string(), "outcome" => outcome);
        KindMetrics {
            success: attempts("success"),
            failure: attempts("failure"),
            timeout: attempts("timeout"),
            cancelled: attempts("cancelled"),
            lease_lost: attempts("lease_lost"),
            dead: counter!(JOBS_DEAD, "queue" => queue.to_string(), "kind" => kind.to_string()),
            duration: histogram!(JOB_DURATION, "queue" => queue.to_string(), "kind" => kind.to_string()),
            wait: histogram!(JOB_WAIT, "queue" => queue.to_string(), "kind" => kind.to_string()),
        }
    }

    /// Counts an attempt whose end was written.
    pub(crate) fn attempt(&self, outcome: AttemptOutcome) {
        match outcome {
            AttemptOutcome::Success => self.success.increment(1),
            AttemptOutcome::Failure => self.failure.increment(1),
            AttemptOutcome::Timeout => self.timeout.increment(1),
            AttemptOutcome::Cancelled => self.cancelled.increment(1),
            AttemptOutcome::NotCounted => {}
        }
    }

    /// Counts an attempt whose result was refused: its lease had expired.
    pub(crate) fn lease_lost(&self) {
        self.lease_lost.increment(1);
    }

    /// Counts a job that failed for good.
    pub(crate) fn dead(&self) {
        self.dead.increment(1);
    }

    /// Records how long a handler ran.
    pub(crate) fn duration(&self, d: std::time::Duration) {
        self.duration.record(d.as_secs_f64());
    }

    /// Records how long a claimed job waited to start.
    pub(crate) fn wait(&self, d: std::time::Duration) {
        self.wait.record(d.as_secs_f64());
    }
}

/// [`KindMetrics`] by kind, for one queue: each fetch loop keeps its own, so
/// a lookup takes no lock and allocates only the first time a kind is seen.
#[derive(Default)]
pub(crate) struct KindCache {
    by_kind: HashMap<String, Arc<KindMetrics>>,
}

impl KindCache {
    pub(crate) fn get(&mut self, queue: &str, kind: &str) -> Arc<KindMetrics> {
        if let Some(m) = self.by_kind.get(kind) {
            return m.clone();
        }
        let m = Arc::new(KindMetrics::new(queue, kind));
        self.by_kind.insert(kind.to_string(), m.clone());
        m
    }
}

/// `kyu_worker_slots{queue,state}` of one queue of one worker. Several
/// workers in one process add up: each adds its own slots.
pub(crate) struct SlotGauges {
    used: Gauge,
    free: Gauge,
}

impl SlotGauges {
    pub(crate) fn new(queue: &str) -> SlotGauges {
        SlotGauges {
            used: gauge!(WORKER_SLOTS, "queue" => queue.to_string(), "state" => "used"),
            free: gauge!(WORKER_SLOTS, "queue" => queue.to_string(), "state" => "free"),
        }
    }
    /// The worker starts (`n` slots) or stops (`-n`).
    pub(crate) fn add_free(&self, n: f64) {
        self.free.increment(n);
    }
    /// A handler starts.
    pub(crate) fn take(&self) {
        self.free.decrement(1.0);
        self.used.increment(1.0);
    }
    /// A handler ended.
    pub(crate) fn give_back(&self) {
        self.used.decrement(1.0);
        self.free.increment(1.0);
    }
}

/// `kyu_jobs_enqueued_total` handles by queue and kind, shared by the
/// clones of one client: an enqueue looks its (queue, kind) up without
/// allocating once it has been seen.
#[derive(Default)]
pub(crate) struct EnqueueCounters {
    by_queue: Mutex<HashMap<String, HashMap<String, Counter>>>,
}

impl EnqueueCounters {
    /// Counts `n` jobs inserted into `queue` of `kind`.
    pub(crate) fn add(&self, queue: &str, kind: &str, n: u64) {
        if n == 0 {
            return;
        }
        let mut map = self.by_queue.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = map.get(queue).and_then(|kinds| kinds.get(kind)) {
            c.increment(n);
            return;
        }
        let c = counter!(JOBS_ENQUEUED, "queue" => queue.to_string(), "kind" => kind.to_string());
        c.increment(n);
        map.entry(queue.to_string())
            .or_default()
            .insert(kind.to_string(), c);
    }
}

/// Counts a fire time the scheduler handled (fires are rare: no caching).
pub(crate) fn schedule_fire(schedule: &str, outcome: &'static str) {
    counter!(SCHEDULE_FIRES, "schedule" => schedule.to_string(), "outcome" => outcome).increment(1);
}

/// Counts an expired lease the reaper recovered.
pub(crate) fn lease_expired(queue: &str) {
    counter!(LEASES_EXPIRED, "queue" => queue.to_string()).increment(1);
}

/// Counts a job the reaper failed for good (its last attempt's lease expired).
pub(crate) fn reaped_dead(queue: &str, kind: &str) {
    counter!(JOBS_DEAD, "queue" => queue.to_string(), "kind" => kind.to_string()).increment(1);
}
