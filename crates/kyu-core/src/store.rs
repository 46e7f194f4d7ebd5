//! The Store contract: the only place that talks to a database.
//!
//! The trait is batch-shaped because throughput comes from batching: enqueue
//! many, claim up to N, finish many, heartbeat many leases in one call. Every
//! state change is one statement or one transaction (invariant 4), and every
//! write that acts on a running job is fenced by its [`LeaseRef`] (id and
//! attempt), so a late write from a worker whose lease expired cannot overwrite
//! a job that was rescued and run elsewhere.
//!
//! The contract is five traits, so each part has one home in a backend:
//! [`Store`] (jobs: enqueue, claim, finish, leases, control, reads,
//! retention) requires [`ScheduleStore`], [`LogStore`], [`WorkerRegistry`]
//! [`TokenStore`](crate::TokenStore), [`LimitStore`](crate::LimitStore),
//! [`BatchStore`](crate::BatchStore) and [`EventLog`]. A backend implements each in the module that does that
//! job (its `schedule.rs`, `logs.rs`, `workers.rs`, `tokens.rs`, `events.rs`); a caller
//! holding an `Arc<dyn Store>` calls the methods of all six on it with
//! `Store` alone in scope.
//!
//! Every method that changes a job, queue, schedule or worker writes its
//! events ([`crate::event`]) in the same transaction as the change, in the
//! same batch: an event exists if and only if its change committed.
//!
//! The semantics are stated by the backend conformance suite in
//! `kyu_core::conformance` (feature `conformance`); every backend runs all of it.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::event::{EventId, EventRead};
use crate::schedule::{ConfigSchedule, ConfigSync, Fire, FireResult, ScheduleRecord, ScheduleSpec};
use crate::workers::{LiveWorker, WaitingKind, WorkerInfo};
use crate::{
    Clock, Enqueued, JobId, JobRecord, JobState, NewJob, Progress, RetryPolicy, StoreError,
};

/// A worker's request for up to `limit` jobs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    /// Who claims: recorded on the job and in its attempt errors.
    pub worker: String,
    /// Claim only from these queues. Paused queues are skipped.
    pub queues: Vec<String>,
    /// Claim only jobs of these kinds: the kinds the worker has a handler
    /// for, so a job is never taken (and its attempts used up) by a worker
    /// that cannot run it. `None` claims every kind: only for a worker that
    /// opted in to failing the kinds it has no handler for.
    pub kinds: Option<Vec<String>>,
    /// At most this many jobs.
    pub limit: usize,
    /// The lease: the claimed jobs are the worker's until now + lease,
    /// unless a heartbeat extends it.
    pub lease: Duration,
    /// Claim the jobs ahead, for a worker's prefetch: they are `running`
    /// and leased like any claimed job, but their handlers have not started
    /// until [`Store::mark_started`] says so. Until then a release
    /// ([`FinishOutcome::Released`]) or a lease expiry gives the attempt
    /// back and records no error: only started attempts count. False (the
    /// usual): every claimed job starts at once.
    pub unstarted: bool,
}

/// What a worker needs to run one claimed job.
#[derive(Debug, Clone, PartialEq)]
pub struct ClaimedJob {
    /// The id.
    pub id: JobId,
    /// The queue it was claimed from.
    pub queue: String,
    /// Which handler runs it.
    pub kind: String,
    /// The args, as JSON text (parsed only by the handler).
    pub args: String,
    /// This attempt's number, 1-based.
    pub attempt: u32,
    /// Attempts allowed.
    pub max_attempts: u32,
    /// Delay before a retry.
    pub retry: RetryPolicy,
    /// Time limit of this attempt.
    pub timeout: Option<Duration>,
    /// When the lease runs out unless extended.
    pub lease_expires_at: DateTime<Utc>,
    /// When the job became runnable (for a scheduled job, its fire time;
    /// after a retry or snooze, when that came due).
    pub run_at: DateTime<Utc>,
    /// Its tags (a job a schedule fired has `schedule:NAME`).
    pub tags: Vec<String>,
    /// Its unique key, if it has one (a job a schedule fired has
    /// `schedule:NAME:FIRE_TIME`, see [`crate::schedule::fire_key`]).
    pub unique_key: Option<String>,
}

impl ClaimedJob {
    /// The fencing reference of this attempt.
    pub fn lease(&self) -> LeaseRef {
        LeaseRef {
            id: self.id,
            attempt: self.attempt,
        }
    }
}

/// Names one attempt of one job: writes about an attempt apply only while the
/// job is still running that attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct LeaseRef {
    /// The job.
    pub id: JobId,
    /// The attempt.
    pub attempt: u32,
}

/// How an attempt ended.
#[derive(Debug, Clone, PartialEq)]
pub enum FinishOutcome {
    /// Success → `completed` (even if a cancel was asked for meanwhile: the work was done).
    Completed {
        /// The result, as JSON text.
        result: Option<String>,
    },
    /// An error. The job is retried at `retry_at` (→ `scheduled`, or `available`
    /// if that is not in the future) if attempts are left and the error is not
    /// `permanent`; otherwise → `failed`. A cancel asked for meanwhile → `cancelled`.
    /// The error is recorded with the attempt.
    Errored {
        /// What went wrong.
        message: String,
        /// When to run again if it is retried.
        retry_at: DateTime<Utc>,
        /// A permanent error fails the job now, attempts left or not.
        permanent: bool,
    },
    /// Run again at `until` without using an attempt (→ `scheduled`).
    Snoozed {
        /// When to run again.
        until: DateTime<Utc>,
    },
    /// The handler stopped because the job was cancelled → `cancelled`.
    Cancelled {
        /// Why, as the handler or worker saw it.
        message: String,
    },
    /// The worker is shutting down and gives the job back: → `available` at
    /// once, the attempt not counted, the interruption recorded as an attempt
    /// error. A cancel asked for meanwhile → `cancelled`. A job claimed
    /// ahead ([`Claim::unstarted`]) whose handler never started is released
    /// silently: no error recorded, the attempt not counted even if cancelled.
    Released {
        /// Why, e.g. "worker shut down".
        message: String,
    },
}

impl FinishOutcome {
    /// Which [`Ending`](crate::lifecycle::Ending) of the lifecycle rule this is.
    pub fn ending(&self) -> crate::lifecycle::Ending {
        use crate::lifecycle::Ending;
        match self {
            FinishOutcome::Completed { .. } => Ending::Completed,
            FinishOutcome::Errored { permanent, .. } => Ending::Errored {
                permanent: *permanent,
            },
            FinishOutcome::Snoozed { .. } => Ending::Snoozed,
            FinishOutcome::Cancelled { .. } => Ending::Cancelled,
            FinishOutcome::Released { .. } => Ending::Released,
        }
    }

    /// When the job runs again if it does (retry or snooze time; a release
    /// runs again now), or `None` for endings that never run again.
    pub fn run_again_at(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self {
            FinishOutcome::Errored { retry_at, .. } => Some(*retry_at),
            FinishOutcome::Snoozed { until } => Some(*until),
            FinishOutcome::Released { .. } => Some(now),
            FinishOutcome::Completed { .. } | FinishOutcome::Cancelled { .. } => None,
        }
    }

    /// The attempt error's message, for endings that record one.
    pub fn error_message(&self) -> Option<&str> {
        match self {
            FinishOutcome::Errored { message, .. }
            | FinishOutcome::Cancelled { message }
            | FinishOutcome::Released { message } => Some(message),
            FinishOutcome::Completed { .. } | FinishOutcome::Snoozed { .. } => None,
        }
    }
}

/// One finished attempt, for [`Store::finish`].
#[derive(Debug, Clone, PartialEq)]
pub struct Finish {
    /// Which attempt of which job.
    pub lease: LeaseRef,
    /// The worker that ran it.
    pub worker: String,
    /// How it ended.
    pub outcome: FinishOutcome,
}

/// What [`Store::finish`] did with one [`Finish`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinishResult {
    /// Written: the job is now in this state.
    Applied(JobState),
    /// Not written: the job is no longer running this attempt (its lease
    /// expired and it was rescued, or it does not exist).
    Stale,
}

/// What a heartbeat found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeartbeatReply {
    /// Leases that were not extended: the job is no longer running that attempt.
    /// Their handlers' results will be discarded as stale.
    pub lost: Vec<JobId>,
    /// Jobs still held whose cancellation was asked for.
    pub cancel_requested: Vec<JobId>,
}

/// A job whose expired lease was reaped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reaped {
    /// The job.
    pub id: JobId,
    /// The attempt that was lost.
    pub attempt: u32,
    /// Where the job went: `available` (attempts left), `failed` (none left)
    /// or `cancelled` (a cancel was asked for).
    pub state: JobState,
}

/// What [`Store::cancel`] did with one id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "result", content = "state")]
#[non_exhaustive]
pub enum CancelResult {
    /// It was scheduled or available and is now `cancelled`: it will never run.
    Cancelled,
    /// It is running: its worker will signal the handler, and the job ends
    /// `cancelled` (or `completed` if the handler finishes first).
    Requested,
    /// It had already finished in this state; nothing changed.
    AlreadyFinished(JobState),
    /// No job has this id.
    NotFound,
}

/// What [`Store::retry`] did with one id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "result", content = "state")]
#[non_exhaustive]
pub enum RetryResult {
    /// It was failed or cancelled and is now `available` again, with at least
    /// one attempt left (max_attempts is raised if needed).
    Retried,
    /// It is in this state, which cannot be retried; nothing changed.
    NotRetryable(JobState),
    /// It was failed or cancelled, but another unfinished job holds its
    /// unique key (an enqueue with the key would return that job), so it was
    /// left as it was: retrying it would make two unfinished jobs with one key.
    KeyHeld {
        /// The unique key.
        key: String,
        /// The unfinished job holding it.
        holder: JobId,
    },
    /// No job has this id.
    NotFound,
}

/// A failed job [`Store::retry_failed`] left failed because another
/// unfinished job holds its unique key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyHeld {
    /// The failed job, left failed.
    pub id: JobId,
    /// Its unique key.
    pub key: String,
    /// The unfinished job holding the key.
    pub holder: JobId,
}

/// What [`Store::retry_failed`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetriedFailed {
    /// How many failed jobs are `available` again.
    pub retried: u64,
    /// The failed jobs left failed because their unique key is held, by id.
    pub key_held: Vec<KeyHeld>,
}

/// What [`Store::delete_jobs`] did with one id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "result", content = "state")]
#[non_exhaustive]
pub enum DeleteResult {
    /// It was in this state (anything but running) and is gone, with its
    /// recorded output. Its unique key no longer holds.
    Deleted(JobState),
    /// It is running: nothing changed (cancel it first, then delete it).
    Running,
    /// No job has this id.
    NotFound,
}

/// What [`Store::run_now`] did with one id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "result", content = "state")]
#[non_exhaustive]
pub enum RunNowResult {
    /// It was scheduled and is now `available` with run_at now: the next
    /// claim of its queue may take it.
    MadeAvailable,
    /// It is in this state, not scheduled; nothing changed.
    NotScheduled(JobState),
    /// No job has this id.
    NotFound,
}

/// Longest path of an [`ArgMatch`], in keys.
pub const ARG_PATH_MAX_DEPTH: usize = 8;

/// A search inside a job's args: the JSON value at `path` (object keys from
/// the top, e.g. `["user", "id"]`) equals `value`, a JSON scalar. Numbers
/// compare as numbers (`42` matches `42.0`), strings as exact text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArgMatch {
    /// Object keys from the top of the args: 1 to [`ARG_PATH_MAX_DEPTH`]
    /// keys of 1 to 64 characters `A-Z a-z 0-9 _ -`.
    pub path: Vec<String>,
    /// A string, number, boolean or null (`null` matches a key whose value
    /// is null, not a missing key).
    pub value: serde_json::Value,
}

impl ArgMatch {
    /// Parses `args.PATH=VALUE`, e.g. `args.user=42`, `args.a.b="x"`,
    /// `args.flag=true`: PATH is dot-separated keys; VALUE is a JSON scalar
    /// (a bare word that is not JSON, e.g. `args.name=ada`, is the string).
    /// `field` names where the text came from in the error.
    pub fn parse(field: &str, text: &str) -> Result<ArgMatch, crate::InvalidInput> {
        let accepted = "accepted: args.PATH=VALUE, PATH dot-separated keys (A-Z a-z 0-9 _ -, at most 8), VALUE a JSON string, number, true, false or null, e.g. args.user=42 or args.a.b=\"x\"";
        let bad =
            |why: &str| crate::InvalidInput::new(field, format!("{text:?} {why}; {accepted}"));
        let (path, value) = text.split_once('=').ok_or_else(|| bad("has no ="))?;
        let path = path
            .strip_prefix("args.")
            .ok_or_else(|| bad("does not start with args."))?;
        let path: Vec<String> = path.split('.').map(str::to_string).collect();
        let value = match serde_json::from_str::<serde_json::Value>(value) {
            Ok(v) => v,
            Err(_) if !value.is_empty() && !value.starts_with(['"', '{', '[']) => {
                serde_json::Value::String(value.to_string())
            }
            Err(_) => return Err(bad("has a VALUE that is not JSON")),
        };
        let m = ArgMatch { path, value };
        m.check(field)
            .map_err(|_| bad("is not a search inside args"))?;
        Ok(m)
    }

    /// Checks the path and value: see the fields.
    pub fn check(&self, field: &str) -> Result<(), crate::InvalidInput> {
        let key_ok = |k: &String| {
            !k.is_empty()
                && k.len() <= 64
                && k.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        };
        if self.path.is_empty()
            || self.path.len() > ARG_PATH_MAX_DEPTH
            || !self.path.iter().all(key_ok)
        {
            return Err(crate::InvalidInput::new(
                field,
                format!("the path {:?} is not accepted; accepted: 1 to 8 keys of 1 to 64 characters A-Z a-z 0-9 _ -", self.path.join(".")),
            ));
        }
        if self.value.is_object() || self.value.is_array() {
            return Err(crate::InvalidInput::new(
                field,
                "the value is an object or array; accepted: a JSON string, number, true, false or null",
            ));
        }
        Ok(())
    }

    /// The path as SQLite's JSON path: `$."a"."b"` (keys are checked to
    /// need no escaping).
    pub fn sqlite_path(&self) -> String {
        let mut p = String::from("$");
        for k in &self.path {
            p.push_str(&format!(".\"{k}\""));
        }
        p
    }
}

/// How many jobs a search inside args reads at most for one page: see
/// [`JobFilter::search_window`].
pub const ARG_SEARCH_WINDOW: usize = 20_000;

/// Which jobs [`Store::list`] returns: newest first, `limit` at a time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobFilter {
    /// Only jobs in one of these states (all states when empty).
    pub states: Vec<JobState>,
    /// Only this queue.
    pub queue: Option<String>,
    /// Only this kind.
    pub kind: Option<String>,
    /// Only jobs with this tag.
    pub tag: Option<String>,
    /// Only jobs created at or after this time.
    pub created_after: Option<DateTime<Utc>>,
    /// Only jobs created before this time.
    pub created_before: Option<DateTime<Utc>>,
    /// Only jobs whose args match every one of these.
    pub args: Vec<ArgMatch>,
    /// With a search inside [`args`](JobFilter::args) (which no index
    /// serves): one page reads at most this many jobs, the newest below
    /// [`before`](JobFilter::before) whatever the other filters, and
    /// returns the matches among them. When the window is read before
    /// `limit` matches are found, the page is short (even empty), its
    /// `next` is the window's oldest id and [`JobPage::searched`] says
    /// which ids were searched: the search goes on from `next`. So a page's
    /// work is bounded whatever the match rate, and paging on returns every
    /// match once, in order. Default [`ARG_SEARCH_WINDOW`]; 0 is taken as 1.
    pub search_window: usize,
    /// A snapshot bound: only jobs whose latest recorded change was at or
    /// before this time, i.e. that were already in their present state then
    /// (the state a state filter asks for). The change is the job's finish
    /// for completed, failed and cancelled jobs (a failed job retried and
    /// failed again counts from its new failure); its attempt's start for
    /// running jobs; for available jobs its run_at too (a retry, release or
    /// run-now sets it), else its creation. A scheduled job put back by a
    /// failed attempt counts from that attempt's start. With [`before`]
    /// (the highest id seen, plus one) it makes "every failed job when I
    /// looked" exact: a job that failed a second later is not in it.
    ///
    /// [`before`]: JobFilter::before
    pub changed_by: Option<DateTime<Utc>>,
    /// Only jobs with an id below this one: the `next` of the previous page.
    pub before: Option<JobId>,
    /// Page size. Default 100.
    pub limit: usize,
}

impl Default for JobFilter {
    fn default() -> Self {
        JobFilter {
            states: Vec::new(),
            queue: None,
            kind: None,
            tag: None,
            created_after: None,
            created_before: None,
            args: Vec::new(),
            search_window: ARG_SEARCH_WINDOW,
            changed_by: None,
            before: None,
            limit: 100,
        }
    }
}

/// One page of [`Store::list`].
#[derive(Debug, Clone, PartialEq)]
pub struct JobPage {
    /// The jobs, newest (highest id) first.
    pub jobs: Vec<JobRecord>,
    /// The cursor for the next page, `None` on the last page.
    pub next: Option<JobId>,
    /// Set when a search inside args read its whole window
    /// ([`JobFilter::search_window`]) before the page was full: the ids it
    /// searched. `next` is then `oldest`, and older jobs may match.
    pub searched: Option<Searched>,
}

impl JobPage {
    /// A backend's page from the jobs it read (up to `limit` + 1, newest
    /// first): full, with the cursor after its last job; or, when a search
    /// inside args read a full window (`window`, see
    /// [`JobFilter::search_window`]) before finding more, short with the
    /// cursor after the window; else the last page.
    pub fn of_rows(mut jobs: Vec<JobRecord>, limit: usize, window: Option<Searched>) -> JobPage {
        if jobs.len() > limit {
            jobs.truncate(limit);
            let next = jobs.last().map(|j| j.id);
            return JobPage {
                jobs,
                next,
                searched: None,
            };
        }
        JobPage {
            jobs,
            next: window.map(|w| w.oldest),
            searched: window,
        }
    }
}

/// What [`Store::count_jobs`] found: how many jobs match, up to its cap.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobCount {
    /// The jobs that match, at most the cap.
    pub n: u64,
    /// True when more jobs than the cap match (`n` is then the cap).
    pub more: bool,
}

impl JobCount {
    /// The count of a backend that read up to `cap` + 1 matching jobs and
    /// found `found`: the cap and `more` past it.
    pub fn capped(found: u64, cap: u64) -> JobCount {
        JobCount {
            n: found.min(cap),
            more: found > cap,
        }
    }

    /// The `LIMIT` a backend reads up to: `cap` + 1 (one past the cap tells
    /// whether there are more), within SQL's signed 64-bit range.
    pub fn sql_limit(cap: u64) -> i64 {
        i64::try_from(cap.saturating_add(1)).unwrap_or(i64::MAX)
    }
}

/// The refusal of [`Store::count_jobs`] for a filter with a search inside
/// args (the same words on every backend).
pub fn count_args_refused() -> crate::InvalidInput {
    crate::InvalidInput::new(
        "args",
        "a count does not search inside args (no index serves the search, so a \
         count could read every job); accepted: a filter without args, or pages \
         of Store::list, which search a bounded window each",
    )
}

/// The ids a search inside args read for one page: every job from
/// `newest` down to `oldest` (both included) was searched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Searched {
    /// The newest id searched.
    pub newest: JobId,
    /// The oldest id searched; older jobs were not.
    pub oldest: JobId,
}

/// A queue's job counts by state and its paused flag.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueStats {
    /// The queue.
    pub queue: String,
    /// Whether workers skip it.
    pub paused: bool,
    /// Jobs in each state (states with no job are absent).
    pub counts: BTreeMap<JobState, u64>,
    /// When the queue's oldest runnable job (available, or scheduled with
    /// its run_at reached) became runnable: its run_at. `None` when no job
    /// is runnable. The queue's latency is now minus this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oldest_runnable_at: Option<DateTime<Utc>>,
}

impl QueueStats {
    /// The number of jobs in `state`.
    pub fn count(&self, state: JobState) -> u64 {
        self.counts.get(&state).copied().unwrap_or(0)
    }

    /// How long the oldest runnable job has waited at `now` (zero when no
    /// job is runnable): the queue's latency.
    pub fn latency(&self, now: DateTime<Utc>) -> std::time::Duration {
        self.oldest_runnable_at
            .and_then(|t| (now - t).to_std().ok())
            .unwrap_or_default()
    }
}

/// The captured output of one attempt of a command job: the kept tails of
/// stdout and stderr and how many bytes were written in all.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttemptLogs {
    /// The attempt.
    pub attempt: u32,
    /// The end of stdout's text: the output decoded as UTF-8 in order (an
    /// undecodable sequence, and a NUL, as U+FFFD), of which the last bytes
    /// are kept.
    pub stdout: String,
    /// The end of stderr's text, as `stdout`.
    pub stderr: String,
    /// Bytes of stdout's text so far, kept or not: the offset just past
    /// `stdout`'s end, so a reader that printed N bytes prints what follows.
    pub stdout_bytes: u64,
    /// Bytes of stderr's text so far, kept or not.
    pub stderr_bytes: u64,
}

impl AttemptLogs {
    /// `text` as every store records it: each NUL character as U+FFFD, as an
    /// undecodable byte is. PostgreSQL text cannot hold NUL, and a reader
    /// should see the same text whichever backend ran the job.
    pub fn stored_text(text: &str) -> Cow<'_, str> {
        if text.contains('\0') {
            Cow::Owned(text.replace('\0', "\u{FFFD}"))
        } else {
            Cow::Borrowed(text)
        }
    }

    /// The part of a kept tail a follower has not shown yet: `total` bytes
    /// of the stream were written (`stdout_bytes` or `stderr_bytes`), the
    /// follower showed the first `shown`. What fell out of the kept tail
    /// meanwhile is named by a line saying how many bytes were not kept.
    ///
    /// ```
    /// use kyu_core::AttemptLogs;
    /// assert_eq!(AttemptLogs::new_part("hello world", 11, 6), "world");
    /// assert_eq!(AttemptLogs::new_part("hello world", 11, 11), "");
    /// assert_eq!(AttemptLogs::new_part("world", 11, 0), "[… 6 bytes not kept …]\nworld");
    /// ```
    pub fn new_part(tail: &str, total: u64, shown: u64) -> String {
        let new = total.saturating_sub(shown) as usize;
        if new == 0 {
            return String::new();
        }
        if new > tail.len() {
            return format!("[… {} bytes not kept …]\n{tail}", new - tail.len());
        }
        let mut start = tail.len() - new;
        while !tail.is_char_boundary(start) {
            start += 1;
        }
        tail[start..].to_string()
    }
}

/// A kyu backend: the jobs, and through its supertraits the schedules
/// ([`ScheduleStore`]), the attempt logs ([`LogStore`]) and the worker
/// registry ([`WorkerRegistry`]). See the module docs.
///
/// A backend implements each of the four traits, each in the module of the
/// backend that does that job; callers hold an `Arc<dyn Store>` and call
/// every method of the four on it.
///
/// All times come from the store's [`Clock`]; tests give the store a
/// [`ManualClock`](crate::ManualClock) and move it.
#[async_trait]
pub trait Store:
    ScheduleStore
    + LogStore
    + WorkerRegistry
    + crate::tokens::TokenStore
    + EventLog
    + crate::limits::LimitStore
    + crate::batch::BatchStore
    + Send
    + Sync
    + 'static
{
    /// The backend's name, e.g. `"sqlite"`.
    fn backend(&self) -> &'static str;

    /// The clock the store reads "now" from.
    fn clock(&self) -> Arc<dyn Clock>;

    /// A receiver that changes whenever jobs may have become available:
    /// enqueued in this process or (where the backend can tell) in another,
    /// or made runnable by a retry. Workers wait on it between claims, with a
    /// poll as the fallback.
    fn subscribe(&self) -> tokio::sync::watch::Receiver<u64>;

    /// Inserts jobs, all or none. A job whose unique key matches an unfinished
    /// job (or, for [`Uniqueness::Within`](crate::Uniqueness), one enqueued
    /// within the window) is not inserted: its slot in the reply carries the
    /// existing id, marked duplicate. Every job is validated first; one invalid
    /// job refuses the whole batch.
    async fn enqueue(&self, jobs: Vec<NewJob>) -> Result<Vec<Enqueued>, StoreError>;

    /// Claims up to `claim.limit` runnable jobs (available, or scheduled with
    /// run_at reached) of `claim.kinds` from unpaused queues, in priority,
    /// then run_at, then id order, and makes them `running` under a lease
    /// with their attempt counted. Jobs of other kinds are left as they are
    /// and do not slow the claim down (it walks an index by queue and kind).
    async fn claim(&self, claim: Claim) -> Result<Vec<ClaimedJob>, StoreError>;

    /// Claims the one job `id` for `worker` under a `lease`, as
    /// [`claim`](Store::claim) would, whatever its run_at, queue pause or
    /// priority: if it is available or scheduled it becomes `running` with
    /// its attempt counted, atomically (of two claims of one job, one gets
    /// it). `None`, nothing changed, if there is no such job or it is
    /// running or finished. For running one chosen job now, e.g. from an
    /// application's tests (`kyu::testing`).
    async fn claim_job(
        &self,
        id: JobId,
        worker: &str,
        lease: Duration,
    ) -> Result<Option<ClaimedJob>, StoreError>;

    /// Marks attempts claimed ahead ([`Claim::unstarted`]) as started: their
    /// handlers are about to run, so from now on a lease expiry counts the
    /// attempt and records it lost. One statement for the whole batch.
    /// Returns the leases among `leases` that are no longer held (the job
    /// is not running that attempt: rescued, or finished); their handlers
    /// must not run. Marking an attempt that already started changes nothing.
    async fn mark_started(&self, leases: &[LeaseRef]) -> Result<Vec<LeaseRef>, StoreError>;

    /// Records how attempts ended, one result per item, in order.
    async fn finish(&self, batch: Vec<Finish>) -> Result<Vec<FinishResult>, StoreError>;

    /// Extends the leases of jobs this worker still runs to now + `lease`, and
    /// reports leases it no longer holds and cancellations asked for.
    async fn heartbeat(
        &self,
        worker: &str,
        leases: &[LeaseRef],
        lease: Duration,
    ) -> Result<HeartbeatReply, StoreError>;

    /// The jobs among `leases`, still running that attempt, whose cancellation
    /// was asked for. Reads only: cheap enough to poll every second.
    async fn cancel_requests(&self, leases: &[LeaseRef]) -> Result<Vec<JobId>, StoreError>;

    /// Records a running attempt's progress. False if the attempt is no longer running.
    async fn set_progress(&self, lease: LeaseRef, progress: Progress) -> Result<bool, StoreError>;

    /// Makes up to `limit` running jobs whose lease expired runnable again
    /// (`available`), recording the lost attempt; `failed` if no attempts are
    /// left; `cancelled` if a cancel was asked for. A job claimed ahead whose
    /// handler never started ([`Claim::unstarted`]) is given back like a
    /// release: its attempt not counted, no error recorded, a `released`
    /// event (no `lease_expired`) whose `reason` says it never started.
    async fn reap_expired(&self, limit: usize) -> Result<Vec<Reaped>, StoreError>;

    /// Cancels jobs: see [`CancelResult`]. One result per id, in order.
    async fn cancel(&self, ids: &[JobId]) -> Result<Vec<CancelResult>, StoreError>;

    /// Retries failed or cancelled jobs: see [`RetryResult`]. One result per
    /// id, in order. Unique keys hold as they do for enqueue: a job whose key
    /// is held by another unfinished job (scheduled, available or running,
    /// including one retried earlier in the same call) is not retried
    /// ([`RetryResult::KeyHeld`]), so no two unfinished jobs share a key.
    async fn retry(&self, ids: &[JobId]) -> Result<Vec<RetryResult>, StoreError>;

    /// Retries every failed job, of one queue and/or kind if given. Unique
    /// keys hold as in [`retry`](Store::retry): of several failed jobs with
    /// one key only the lowest id is retried, and none if an unfinished job
    /// holds the key; the others stay failed and are reported.
    async fn retry_failed(
        &self,
        queue: Option<&str>,
        kind: Option<&str>,
    ) -> Result<RetriedFailed, StoreError>;

    /// Deletes jobs that are not running, with their recorded output, each
    /// with a `deleted` event: see [`DeleteResult`]. One result per id, in order.
    async fn delete_jobs(&self, ids: &[JobId]) -> Result<Vec<DeleteResult>, StoreError>;

    /// Makes scheduled jobs `available` now (run_at now, attempts
    /// untouched), each with a `run_now` event, and wakes the workers: see
    /// [`RunNowResult`]. One result per id, in order.
    async fn run_now(&self, ids: &[JobId]) -> Result<Vec<RunNowResult>, StoreError>;

    /// One job, or `None`.
    async fn get(&self, id: JobId) -> Result<Option<JobRecord>, StoreError>;

    /// The newest job that has unique key `key` (whether or not the key
    /// still holds), or `None`: one lookup in the unique-key index, e.g.
    /// the job a schedule fired for one fire time
    /// ([`fire_key`](crate::schedule::fire_key)).
    async fn get_by_unique_key(&self, key: &str) -> Result<Option<JobRecord>, StoreError>;

    /// A page of jobs matching `filter`, newest first.
    async fn list(&self, filter: &JobFilter) -> Result<JobPage, StoreError>;

    /// How many jobs match `filter`, counting at most `cap`: the same jobs
    /// [`list`](Store::list) pages through for it (states, queue, kind, tag,
    /// created range, and the snapshot bound [`JobFilter::changed_by`] with
    /// [`JobFilter::before`]; `limit` and `search_window` play no part), so
    /// a dry run counts what the action will select. It reads at most
    /// `cap` + 1 matching jobs and decodes none, so its cost is bounded
    /// by the cap (`u64::MAX` for an exact count). A filter with a search
    /// inside args is refused ([`count_args_refused`]): no index serves it,
    /// and `list`'s windows bound its cost instead.
    async fn count_jobs(&self, filter: &JobFilter, cap: u64) -> Result<JobCount, StoreError>;

    /// Every queue that has jobs or a paused flag, by name.
    async fn queue_stats(&self) -> Result<Vec<QueueStats>, StoreError>;

    /// Pauses a queue: workers claim nothing from it until it is resumed.
    /// Running jobs go on. Pausing a queue that has no jobs yet is allowed.
    async fn pause_queue(&self, queue: &str) -> Result<(), StoreError>;

    /// Resumes a paused queue (a queue that is not paused is left as it is).
    async fn resume_queue(&self, queue: &str) -> Result<(), StoreError>;

    /// The earliest run_at of a scheduled job in `queues`, so an idle worker
    /// can sleep exactly until then.
    async fn next_scheduled(&self, queues: &[String]) -> Result<Option<DateTime<Utc>>, StoreError>;

    /// Retention: deletes completed jobs finished before `completed_before`
    /// and failed or cancelled jobs finished before `failed_before`. Returns how many.
    /// A job enqueued with a `unique_for` window is kept until the window has
    /// closed (created_at + window <= now), whatever its age: its row is what
    /// makes its key hold, so deleting it would let a duplicate in.
    async fn delete_finished(
        &self,
        completed_before: DateTime<Utc>,
        failed_before: DateTime<Utc>,
    ) -> Result<u64, StoreError>;
}

/// The schedules of a [`Store`] (see `kyu_core::schedule`). The semantics
/// are stated by `kyu_core::conformance::schedules` (feature `conformance`).
#[async_trait]
pub trait ScheduleStore: Send + Sync {
    /// Creates or replaces the schedule `spec.name`, after
    /// [`ScheduleSpec::validate`](crate::schedule::ScheduleSpec::validate)
    /// (nothing is written for an invalid spec). The stored next fire time is
    /// kept or reset by [`next_fire_on_upsert`](crate::schedule::next_fire_on_upsert);
    /// the last fire, last job and buffered fire time are kept. The schedule
    /// is no longer [`from_config`](crate::schedule::ScheduleRecord::from_config):
    /// whoever declares it this way takes it over from the config file.
    async fn upsert_schedule(&self, spec: ScheduleSpec) -> Result<ScheduleRecord, StoreError>;

    /// Makes the stored config-declared schedules those of a config file,
    /// in ONE transaction: each of `declared` is upserted as by
    /// [`upsert_schedule`](Self::upsert_schedule) (validated first; nothing
    /// is written if one fails) and marked
    /// [`from_config`](crate::schedule::ScheduleRecord::from_config), its
    /// enabled state decided by
    /// [`ConfigSchedule::enabled_given`](crate::schedule::ConfigSchedule::enabled_given);
    /// then every schedule marked `from_config` whose name is not in
    /// `declared` is deleted (its jobs stay). Schedules not marked are
    /// never touched.
    async fn sync_config_schedules(
        &self,
        declared: Vec<ConfigSchedule>,
    ) -> Result<ConfigSync, StoreError>;

    /// Deletes a schedule (its jobs stay). False if there was none.
    async fn delete_schedule(&self, name: &str) -> Result<bool, StoreError>;

    /// Enables or disables a schedule. Enabling a disabled schedule sets its
    /// next fire time to the first after now: what it missed while disabled
    /// is not a misfire. False if there is no such schedule.
    async fn set_schedule_enabled(&self, name: &str, enabled: bool) -> Result<bool, StoreError>;

    /// One schedule, or `None`.
    async fn get_schedule(&self, name: &str) -> Result<Option<ScheduleRecord>, StoreError>;

    /// Every schedule, by name.
    async fn list_schedules(&self) -> Result<Vec<ScheduleRecord>, StoreError>;

    /// The enabled schedules that have work at `now`: next fire time reached,
    /// or a buffered fire time whose previous job has finished (or is gone).
    /// Reads only.
    async fn due_schedules(&self, now: DateTime<Utc>) -> Result<Vec<ScheduleRecord>, StoreError>;

    /// Fires one fire time, in ONE transaction: a compare-and-set moves the
    /// next fire time from `fire.expected_next_fire_at` to
    /// `fire.new_next_fire_at` if the schedule is enabled and still has the
    /// expected value (otherwise [`FireResult::Lost`], nothing written). Then,
    /// if `fire.enqueue`, the stored overlap policy decides
    /// ([`OverlapPolicy::decide`](crate::schedule::OverlapPolicy::decide)) on
    /// the state of the last job: the job
    /// ([`JobTemplate::job_for`](crate::schedule::JobTemplate::job_for) the
    /// fire time, from the stored template) is inserted and recorded as the
    /// last job with the fire time as the last fire, or the fire time is
    /// buffered, or skipped. Without `enqueue` the result is
    /// `Skipped(Misfire)`.
    async fn fire_schedule(&self, fire: Fire) -> Result<FireResult, StoreError>;

    /// Enqueues the job of a buffered fire time, in one transaction: only if
    /// the schedule is enabled, its buffered fire time is still `fire_time`
    /// (else `Lost`) and its last job has finished or is gone (else
    /// `Skipped(Overlap)`, nothing written). The buffered fire time is cleared
    /// and the job recorded as the last job.
    async fn fire_buffered(
        &self,
        name: &str,
        fire_time: DateTime<Utc>,
    ) -> Result<FireResult, StoreError>;

    /// Runs a schedule now, enabled or not, whatever its overlap policy: the
    /// job for fire time "now" is inserted and recorded as the last job; the
    /// next fire time is untouched. `None` if there is no such schedule.
    async fn trigger_schedule(&self, name: &str) -> Result<Option<JobId>, StoreError>;
}

/// The recorded output of command jobs' attempts, kept with their job.
/// The semantics are stated by `kyu_core::conformance::logs`.
#[async_trait]
pub trait LogStore: Send + Sync {
    /// Records the output of attempt `logs.attempt` of job `id`, replacing
    /// what was recorded for that attempt before. Written while the attempt
    /// runs (so it can be followed live) and once at its end. The text is
    /// recorded as [`AttemptLogs::stored_text`] gives it (NUL as U+FFFD);
    /// the byte counts as given. [`StoreError::NotFound`] if there is no job `id`.
    async fn set_logs(&self, id: JobId, logs: AttemptLogs) -> Result<(), StoreError>;

    /// The recorded output of every attempt of job `id`, one entry per
    /// attempt, oldest attempt first; empty for a job without output or an
    /// unknown id. Logs live as long as their job: retention deletes them
    /// with it.
    async fn logs(&self, id: JobId) -> Result<Vec<AttemptLogs>, StoreError>;
}

/// Which workers are alive and what they claim, so jobs no live worker can
/// run are visible (see `kyu_core::workers`). The semantics are stated by
/// `kyu_core::conformance::workers`.
#[async_trait]
pub trait WorkerRegistry: Send + Sync {
    /// Records that worker `info.id` is alive and what it claims, replacing
    /// what it recorded before; it counts as alive until now + `ttl` unless
    /// it is seen again. Registrations expired for a while are removed.
    async fn worker_seen(&self, info: &WorkerInfo, ttl: Duration) -> Result<(), StoreError>;

    /// Removes worker `id`'s registration (it shut down).
    async fn worker_gone(&self, id: &str) -> Result<(), StoreError>;

    /// The workers alive now (registration not expired), by id.
    async fn live_workers(&self) -> Result<Vec<LiveWorker>, StoreError>;

    /// The jobs runnable now (available, or scheduled with run_at reached),
    /// counted by queue and kind, by queue then kind.
    async fn waiting_kinds(&self) -> Result<Vec<WaitingKind>, StoreError>;
}

/// The event log of a [`Store`] (see `kyu_core::event`): every change, written
/// with it, kept for a retention period, read in id order. The semantics are
/// stated by `kyu_core::conformance::events`.
#[async_trait]
pub trait EventLog: Send + Sync {
    /// A receiver that changes after events were written: by this store at
    /// once, and by other processes where the backend can tell (SQLite: the
    /// wake-up sockets beside the file; PostgreSQL: a notification). Readers
    /// also poll, so a lost wake-up costs latency, never an event.
    fn subscribe_events(&self) -> tokio::sync::watch::Receiver<u64>;

    /// Up to `limit` events with ids above `after`, in id order, and where
    /// to read next. Only events whose place in the order is final are
    /// returned: no event committed later can have a smaller id than one
    /// returned, so reading on from [`EventRead::next`] misses nothing and
    /// repeats nothing. When events after `after` were pruned, the read says
    /// so ([`EventRead::gap`]) and goes on after them.
    async fn read_events(&self, after: EventId, limit: usize) -> Result<EventRead, StoreError>;

    /// An id to read after to see only what happens from now on: every event
    /// committed before the call has an id at or below it, and every event
    /// committed after the call (or not yet visible) has a greater one.
    async fn last_event_id(&self) -> Result<EventId, StoreError>;

    /// Up to `limit` events with ids above `after` that are committed now,
    /// in id order, without waiting for any write in flight: a snapshot of
    /// the log as it is now, for a reader that prints it and stops. Unlike
    /// [`read_events`](Self::read_events), an event with a smaller id than
    /// one returned may still commit afterwards (PostgreSQL), so a reader
    /// that follows the log must not resume from it. The default is
    /// `read_events`, for backends where every committed event is final.
    async fn read_committed_events(
        &self,
        after: EventId,
        limit: usize,
    ) -> Result<EventRead, StoreError> {
        self.read_events(after, limit).await
    }

    /// The highest event id committed now (or pruned), without waiting for
    /// any write in flight: the end of [`read_committed_events`](Self::read_committed_events).
    /// The default is [`last_event_id`](Self::last_event_id).
    async fn committed_event_id(&self) -> Result<EventId, StoreError> {
        self.last_event_id().await
    }

    /// Retention: deletes the events written before `before`. Returns how
    /// many. A reader asking for ids they had afterwards gets a gap.
    async fn prune_events(&self, before: DateTime<Utc>) -> Result<u64, StoreError>;
}
