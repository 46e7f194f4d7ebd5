//! # kyu
//!
//! Durable background jobs for Rust: typed jobs, a worker runtime and a client,
//! on one SQLite file by default, or on PostgreSQL when many workers on many
//! hosts share the work (`Kyu::connect("postgres://…")`).
//!
//! ```
//! use std::time::Duration;
//! use kyu::{Job, JobContext, JobResult, Kyu, Outcome, Worker};
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Serialize, Deserialize)]
//! struct Greet { name: String }
//!
//! impl Job for Greet {
//!     const KIND: &'static str = "greet";
//!     async fn run(self, _ctx: JobContext) -> JobResult {
//!         Ok(Outcome::Result(serde_json::json!({ "greeting": format!("hello, {}", self.name) })))
//!     }
//! }
//!
//! # async fn demo() -> Result<(), kyu::Error> {
//! let kyu = Kyu::connect("sqlite::memory:").await?; // or "sqlite://kyu.db", "postgres://…"
//! let worker = Worker::new(&kyu).register::<Greet>().start();
//!
//! let job = kyu.enqueue(Greet { name: "ada".into() }).await?;
//! let done = kyu.wait(job.id).timeout(Duration::from_secs(10)).await?;
//! assert_eq!(done.result.as_deref(), Some(r#"{"greeting":"hello, ada"}"#));
//!
//! worker.shutdown().await;
//! # Ok(()) }
//! # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
//! ```
//!
//! Where things happen:
//!
//! - [`Kyu`] (module `client`): enqueue, inspect, wait, cancel, retry, pause;
//! - [`Job`], [`JobContext`], [`Outcome`], [`JobError`]: what a handler is and returns;
//! - [`batch`]: jobs enqueued as a group, with callbacks once the group is done;
//! - [`Worker`]: claims, runs and completes jobs (see the `worker` module's parts);
//! - [`maintenance`]: the lease reaper and retention;
//! - [`metrics`]: what kyu counts and times, through the `metrics` facade;
//! - [`Scheduler`] (module [`scheduler`]): cron schedules, fired exactly once
//!   per fire time however many processes run it; declared with
//!   [`Kyu::schedule`];
//! - [`tokens`]: API tokens for `kyu serve` ([`Kyu::create_token`]);
//! - [`job_token`]: the per-attempt token a command job reports with;
//! - [`testing`]: helpers for an application's tests: assert what was
//!   enqueued, run one job's handler inline.
//!
//! Guarantees: a job runs at least once after `enqueue` returns, whatever
//! process crashes; a duplicate run happens only when a lease expired while its
//! handler was still running. See DESIGN.md in the repository.

#![warn(missing_docs)]

pub mod batch;
mod client;
pub mod command_job;
mod error;
pub mod events;
mod humanize;
mod job;
pub mod job_token;
pub mod maintenance;
pub mod metrics;
pub mod scheduler;
mod state;
pub mod testing;
pub mod tokens;
mod wait;
mod worker;

pub use batch::{Batch, BatchBuilder};
pub use client::Kyu;
pub use error::{Error, Result};
pub use job::{IntoNewJob, Job, JobContext, JobError, JobResult, Outcome, ResultExt};
pub use kyu_core::{BatchCounts, BatchId, BatchStatus, NewBatch};
/// The PostgreSQL store (feature `postgres`, on by default), and the sqlx it
/// uses, for [`Kyu::enqueue_in`].
#[cfg(feature = "postgres")]
pub use kyu_postgres as postgres;
pub use scheduler::{Scheduler, SchedulerConfig, SchedulerHandle, TickReport};
pub use wait::Wait;
pub use worker::{
    wait_for_signal, Prefetch, Worker, WorkerConfig, WorkerHandle, DEFAULT_CONCURRENCY,
};

/// The date and time types kyu's API uses (`run_at`, fire times).
pub use chrono;
/// Schedules and cron (re-exported from kyu-core).
pub use kyu_core::cron::{parse_zone, CronExpr, Tz};
/// Checks a queue or kind name (1 to 128 characters, no control characters,
/// no leading or trailing whitespace).
pub use kyu_core::job::check_name;
/// Flow control across hosts: a queue's global concurrency and rate limit
/// (see [`Kyu::set_queue_limits`]; re-exported from kyu-core).
pub use kyu_core::limits::{
    self, KeyUse, LimitsUpdate, QueueLimitStatus, QueueLimits, RateKeyPath, RateLimit,
};
/// Rate keys: one rate window per key within a queue (re-exported from kyu-core).
pub use kyu_core::rate_key;
pub use kyu_core::schedule::{
    fire_key, ConfigSchedule, ConfigSync, FireResult, JobTemplate, MisfirePolicy, OverlapPolicy,
    ScheduleRecord, ScheduleSpec, SkipReason,
};
/// The checks of names and durations every face shares (re-exported from kyu-core).
pub use kyu_core::validate;
/// A refused request: the field, what was wrong and what is accepted.
pub use kyu_core::InvalidInput;
/// The job as stored (re-exported from kyu-core).
pub use kyu_core::JobRecord;
/// The store contract and clocks, for backends and tests.
pub use kyu_core::{clock, store, Clock, ManualClock, Store, StoreError, SystemClock};
pub use kyu_core::{
    ArgMatch, AttemptError, AttemptLogs, CancelResult, DeleteResult, Enqueued, JobCount, JobFilter,
    JobId, JobPage, JobState, KeyHeld, Limits, LiveWorker, NewJob, Progress, QueueStats,
    RetriedFailed, RetryPolicy, RetryResult, RunNowResult, Searched, Uniqueness, WaitingKind,
    WorkerInfo, ARG_SEARCH_WINDOW,
};
/// The event log's types (see [`Kyu::events`]).
pub use kyu_core::{Event, EventFacts, EventFilter, EventGap, EventId, EventType};
/// API tokens' scopes, queue patterns and records (re-exported from kyu-core).
pub use kyu_core::{QueuePattern, Scope, TokenRecord};

/// The README's Rust snippets, compiled by `cargo test --doc` so that they
/// keep compiling as shown.
#[cfg(all(doctest, feature = "postgres"))]
#[doc = include_str!("../../../README.md")]
pub struct ReadmeSnippets;

/// Public enums that may grow are `#[non_exhaustive]` (`Error`, `Outcome`,
/// `StoreError`, `CancelResult`, `RetryResult`, `RetryPolicy`,
/// `OverlapPolicy`, `MisfirePolicy`, `SkipReason`): a match outside kyu has
/// a wildcard arm, so a new variant is not a breaking change.
///
/// ```compile_fail,E0004
/// fn said(o: &kyu::Outcome) -> &'static str {
///     match o {
///         kyu::Outcome::Done => "done",
///         kyu::Outcome::Result(_) => "result",
///         kyu::Outcome::Snooze(_) => "snooze",
///     }
/// }
/// ```
///
/// ```compile_fail,E0004
/// fn said(e: &kyu::Error) -> &'static str {
///     match e {
///         kyu::Error::Invalid(_) => "invalid",
///         kyu::Error::Store(_) => "store",
///         kyu::Error::NotFound(_) => "not found",
///         kyu::Error::NotRunnable { .. } => "not runnable",
///         kyu::Error::ScheduleNotFound(_) => "no schedule",
///         kyu::Error::Serialize { .. } => "serialize",
///         kyu::Error::WaitTimedOut { .. } => "timed out",
///     }
/// }
/// ```
///
/// ```
/// fn said(e: &kyu::Error) -> &'static str {
///     match e {
///         kyu::Error::NotFound(_) => "not found",
///         kyu::Error::WaitTimedOut { .. } => "timed out",
///         _ => "something else",
///     }
/// }
/// ```
#[cfg(doctest)]
pub struct NonExhaustiveEnums;
