//! # kyu-core
//!
//! The vocabulary every other kyu crate speaks:
//!
//! - [`job`]: the job model ([`JobRecord`], [`NewJob`], [`JobState`]) and the checks an
//!   enqueue request must pass before anything is written;
//! - [`lifecycle`]: what the end of an attempt does to its job, stated once for
//!   every backend;
//! - [`retry`]: when a failed attempt runs again ([`RetryPolicy`]);
//! - [`cron`]: cron expressions and their fire times in any time zone ([`CronExpr`]);
//! - [`clock`]: the one source of "now", so tests move time instead of sleeping;
//! - [`schedule`]: cron schedules, their policies and the exactly-once firing rule;
//! - [`store`]: the [`Store`] contract, the only place that talks to a database:
//!   jobs, and through its supertraits [`ScheduleStore`], [`LogStore`] and
//!   [`WorkerRegistry`];
//! - [`limits`]: a queue's global concurrency and rate limit, across hosts ([`LimitStore`]);
//! - [`batch`]: jobs enqueued as one group with callbacks when done ([`BatchStore`]);
//! - [`event`]: events, the log of every change, written with it;
//! - [`tokens`]: API tokens, their scopes and queue patterns ([`TokenStore`]);
//! - [`validate`]: the checks of names and durations every face shares;
//! - [`workers`]: the worker registry (who runs which kinds where);
//! - [`error`]: the typed errors of the library crates.
//!
//! With the `conformance` feature, [`conformance`] holds the backend
//! conformance suite: the [`Store`] contract stated as tests, which every
//! backend runs (it is not a set of test helpers for applications).

#![warn(missing_docs)]

pub mod batch;
pub mod clock;
#[cfg(feature = "conformance")]
pub mod conformance;
pub mod cron;
pub mod error;
pub mod event;
pub mod job;
pub mod lifecycle;
pub mod limits;
pub mod rate_key;
pub mod retry;
pub mod schedule;
pub mod store;
pub mod tokens;
pub mod validate;
pub mod workers;

pub use batch::{BatchCounts, BatchId, BatchStatus, BatchStore, NewBatch};
pub use clock::{Clock, ManualClock, SystemClock};
pub use cron::{parse_zone, CronExpr, FireTimes, IntoCron, IntoZone, Tz};
pub use error::{InvalidInput, StoreError};
pub use event::{
    Event, EventFacts, EventFilter, EventGap, EventId, EventRead, EventType, NewEvent,
};
pub use job::{
    AttemptError, Enqueued, JobId, JobRecord, JobState, Limits, NewJob, Progress, Uniqueness,
};
pub use limits::{LimitStore, LimitsUpdate, QueueLimitStatus, QueueLimits, RateLimit};
pub use retry::RetryPolicy;
pub use schedule::{
    ConfigSchedule, ConfigSync, Fire, FireResult, JobTemplate, MisfirePolicy, OverlapPolicy,
    ScheduleRecord, ScheduleSpec, SkipReason,
};
pub use store::{
    count_args_refused, ArgMatch, AttemptLogs, CancelResult, Claim, ClaimedJob, DeleteResult,
    EventLog, Finish, FinishOutcome, FinishResult, HeartbeatReply, JobCount, JobFilter, JobPage,
    KeyHeld, LeaseRef, LogStore, QueueStats, Reaped, RetriedFailed, RetryResult, RunNowResult,
    ScheduleStore, Searched, Store, WorkerRegistry, ARG_SEARCH_WINDOW,
};
pub use tokens::{NewToken, QueuePattern, Scope, TokenRecord, TokenStore};
pub use workers::{LiveWorker, WaitingKind, WorkerInfo};
