//! The job model: what a job is, the states it moves through, and the checks an
//! enqueue request passes before anything is written.
//!
//! ```text
//!             enqueue
//!                │
//!    run_at>now  ▼  run_at<=now
//!  scheduled ─────────► available ──claim──► running ──ok──────► completed
//!      ▲                                        │
//!      └───────── error, attempts left ─────────┤
//!                                               ├─ error, none left / permanent ─► failed
//!                      cancel (any unfinished) ─┴────────────────────────────────► cancelled
//! ```

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::{InvalidInput, RetryPolicy};

/// A job's id: unique in its store, increasing in enqueue order.
pub type JobId = i64;

/// Where a job is in its lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    /// Waiting for its `run_at` (a delayed job, or a retry after backoff).
    Scheduled,
    /// Ready to be claimed by a worker.
    Available,
    /// Claimed by a worker that holds its lease.
    Running,
    /// Finished successfully.
    Completed,
    /// Finished with an error and no attempts left, or a permanent error: the dead-letter set.
    Failed,
    /// Cancelled before it finished.
    Cancelled,
}

impl JobState {
    /// Every state, in lifecycle order.
    pub const ALL: [JobState; 6] = [
        JobState::Scheduled,
        JobState::Available,
        JobState::Running,
        JobState::Completed,
        JobState::Failed,
        JobState::Cancelled,
    ];

    /// The name used in the database, the CLI and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Scheduled => "scheduled",
            JobState::Available => "available",
            JobState::Running => "running",
            JobState::Completed => "completed",
            JobState::Failed => "failed",
            JobState::Cancelled => "cancelled",
        }
    }

    /// Whether the job has reached an end state (completed, failed or cancelled).
    pub fn is_finished(self) -> bool {
        matches!(
            self,
            JobState::Completed | JobState::Failed | JobState::Cancelled
        )
    }
}

impl fmt::Display for JobState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for JobState {
    type Err = InvalidInput;

    /// Parses a state name; the seeds' words are accepted too
    /// (`pending`, `waiting`, `delayed`, `processing`, `active`, `stopped`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s.to_ascii_lowercase().as_str() {
            "scheduled" | "delayed" => JobState::Scheduled,
            "available" | "pending" | "waiting" => JobState::Available,
            "running" | "processing" | "active" => JobState::Running,
            "completed" => JobState::Completed,
            "failed" => JobState::Failed,
            "cancelled" | "canceled" | "stopped" => JobState::Cancelled,
            _ => {
                return Err(InvalidInput::new(
                    "state",
                    format!(
                        "unknown state {s:?}; accepted: scheduled, available, running, \
                         completed, failed, cancelled"
                    ),
                ))
            }
        })
    }
}

/// A job's progress, as its handler last reported it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Progress {
    /// 0 to 100.
    pub percent: u8,
    /// A short human-readable note, e.g. `"step 2 of 5"`.
    pub message: String,
}

/// The error of one failed attempt, kept with the job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttemptError {
    /// When the attempt ended.
    pub at: DateTime<Utc>,
    /// Which attempt (1-based).
    pub attempt: u32,
    /// What went wrong: the handler's error, "timed out after 5s", "lease expired", …
    pub message: String,
    /// The worker that ran the attempt.
    pub worker: String,
}

/// When a second enqueue with the same unique key is a duplicate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Uniqueness {
    /// While the first job is unfinished (scheduled, available or running).
    WhileUnfinished,
    /// While the first job was enqueued less than this long ago, whatever its state.
    Within(
        /// The window.
        #[serde(with = "duration_ms")]
        Duration,
    ),
}

/// Limits an enqueue request is checked against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest accepted args document, in bytes of JSON text. Default 1 MiB.
    pub max_args_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_args_bytes: 1024 * 1024,
        }
    }
}

/// The queue a job goes to when none is named.
pub const DEFAULT_QUEUE: &str = "default";
/// How many attempts a job gets when none is named.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 5;

/// A job to enqueue: the kind, its args, and options.
///
/// Every option has a default: queue `default`, priority 0, run now,
/// 5 attempts, exponential retry 1 s..16 s, no timeout, no unique key, no tags.
///
/// ```
/// use std::time::Duration;
/// use kyu_core::NewJob;
///
/// let job = NewJob::new("send_email", serde_json::json!({"to": "a@example.com"}))
///     .queue("mail")
///     .priority(-1) // lower runs first
///     .max_attempts(3)
///     .timeout(Duration::from_secs(30))
///     .unique_key("welcome:a@example.com")
///     .tag("tenant:42");
/// assert_eq!(job.queue, "mail");
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewJob {
    /// Which handler runs the job.
    pub kind: String,
    /// The job's arguments, as JSON text.
    pub args: String,
    /// The queue (lane) the job waits in.
    pub queue: String,
    /// Lower runs first; ties go by run_at, then id. Default 0.
    pub priority: i32,
    /// Earliest time the job may run; `None` is "now".
    pub run_at: Option<DateTime<Utc>>,
    /// Attempts before the job fails for good. Default 5.
    pub max_attempts: u32,
    /// Delay before each retry.
    pub retry: RetryPolicy,
    /// How long one attempt may run before it fails with "timed out after …".
    #[serde(default, with = "opt_duration_ms")]
    pub timeout: Option<Duration>,
    /// A key that makes a second enqueue return the first job (see [`Uniqueness`]).
    pub unique_key: Option<String>,
    /// How long the unique key holds.
    pub uniqueness: Uniqueness,
    /// Free-form labels to filter by.
    pub tags: Vec<String>,
    /// The job's rate key: its queue's rate allows this many starts per key
    /// (see [`crate::rate_key`]). `None`: the key found at the queue's
    /// `rate_key` path in the args, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_key: Option<String>,
}

impl NewJob {
    /// A job of `kind` with `args`, every option at its default.
    pub fn new(kind: impl Into<String>, args: serde_json::Value) -> Self {
        NewJob::from_json_text(kind, args.to_string())
    }

    /// A job whose args are already JSON text (checked by [`validate`](Self::validate)).
    pub fn from_json_text(kind: impl Into<String>, args: impl Into<String>) -> Self {
        NewJob {
            kind: kind.into(),
            args: args.into(),
            queue: DEFAULT_QUEUE.to_string(),
            priority: 0,
            run_at: None,
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            retry: RetryPolicy::default(),
            timeout: None,
            unique_key: None,
            uniqueness: Uniqueness::WhileUnfinished,
            tags: Vec::new(),
            rate_key: None,
        }
    }

    /// Sets the queue.
    pub fn queue(mut self, queue: impl Into<String>) -> Self {
        self.queue = queue.into();
        self
    }
    /// Sets the priority: lower runs first.
    pub fn priority(mut self, priority: i32) -> Self {
        self.priority = priority;
        self
    }
    /// Runs the job no earlier than `at`.
    pub fn run_at(mut self, at: DateTime<Utc>) -> Self {
        self.run_at = Some(at);
        self
    }
    /// Runs the job no earlier than `delay` from now (the system clock, when
    /// this is called): `NewJob::new(..).delay(Duration::from_secs(600))`.
    pub fn delay(self, delay: Duration) -> Self {
        let delay = chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::MAX);
        let at = Utc::now()
            .checked_add_signed(delay)
            .unwrap_or(DateTime::<Utc>::MAX_UTC);
        self.run_at(at)
    }
    /// Sets how many attempts the job gets (at least 1).
    pub fn max_attempts(mut self, n: u32) -> Self {
        self.max_attempts = n;
        self
    }
    /// Sets the retry policy.
    pub fn retry(mut self, policy: RetryPolicy) -> Self {
        self.retry = policy;
        self
    }
    /// Fails an attempt that runs longer than `timeout`.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }
    /// A second enqueue with this key returns this job while it is unfinished.
    pub fn unique_key(mut self, key: impl Into<String>) -> Self {
        self.unique_key = Some(key.into());
        self
    }
    /// A second enqueue with this key returns this job for `window` after it
    /// was enqueued, whatever its state.
    pub fn unique_for(mut self, key: impl Into<String>, window: Duration) -> Self {
        self.unique_key = Some(key.into());
        self.uniqueness = Uniqueness::Within(window);
        self
    }
    /// Adds a tag.
    pub fn tag(mut self, tag: impl Into<String>) -> Self {
        self.tags.push(tag.into());
        self
    }
    /// Sets the rate key: the job counts against its queue's rate in this
    /// key's window (one per external API or tenant, say), whatever the
    /// queue's `rate_key` path finds in the args.
    pub fn rate_key(mut self, key: impl Into<String>) -> Self {
        self.rate_key = Some(key.into());
        self
    }

    /// Checks the request against `limits`; nothing is written for a request
    /// that fails. The error names the field and what is accepted.
    pub fn validate(&self, limits: &Limits) -> Result<(), InvalidInput> {
        crate::validate::kind_name("kind", &self.kind)?;
        crate::validate::queue_name("queue", &self.queue)?;
        if self.args.len() > limits.max_args_bytes {
            return Err(InvalidInput::new(
                "args",
                format!(
                    "{} bytes of JSON is over the limit of {} bytes",
                    self.args.len(),
                    limits.max_args_bytes
                ),
            ));
        }
        if let Err(e) = serde_json::from_str::<serde::de::IgnoredAny>(&self.args) {
            return Err(InvalidInput::new(
                "args",
                // serde_json's message already ends "at line L column C".
                format!("not valid JSON: {e}"),
            ));
        }
        if self.max_attempts == 0 {
            return Err(InvalidInput::new(
                "max_attempts",
                "0 is not accepted; a job needs at least 1 attempt",
            ));
        }
        self.retry.validate()?;
        if let Some(t) = self.timeout {
            crate::validate::timeout("timeout", t)?;
        }
        if let Some(key) = &self.unique_key {
            if key.is_empty() || key.len() > 512 {
                return Err(InvalidInput::new(
                    "unique_key",
                    "must be 1 to 512 bytes long",
                ));
            }
        }
        if let Some(key) = &self.rate_key {
            crate::rate_key::check_rate_key("rate_key", key)?;
        }
        for tag in &self.tags {
            if tag.is_empty() || tag.len() > 128 {
                return Err(InvalidInput::new(
                    "tags",
                    format!("tag {tag:?} must be 1 to 128 bytes long"),
                ));
            }
        }
        Ok(())
    }

    /// Checks every request of an enqueue against `limits`, in order; the
    /// first invalid one refuses the whole batch. In a batch of more than one
    /// the error names the job by its index (`jobs[2].queue`); a lone job's
    /// error names the field alone (`queue`). Every face that enqueues (the
    /// client, each store) checks with this one rule.
    pub fn validate_batch(jobs: &[NewJob], limits: &Limits) -> Result<(), InvalidInput> {
        let many = jobs.len() > 1;
        for (i, job) in jobs.iter().enumerate() {
            job.validate(limits)
                .map_err(|e| if many { e.in_batch(i) } else { e })?;
        }
        Ok(())
    }
}

/// Checks a queue or kind name named by `field` ("queue" or "kind"): 1 to
/// 128 characters, no control characters, no leading or trailing whitespace
/// (see [`crate::validate::name`]).
pub fn check_name(field: &str, name: &str) -> Result<(), InvalidInput> {
    crate::validate::name(field, field, name)
}

/// What an enqueue returned for one job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Enqueued {
    /// The job's id (the first job's, for a duplicate).
    pub id: JobId,
    /// True when the unique key matched an existing job and nothing was inserted.
    pub duplicate: bool,
}

/// A job as stored, with everything known about it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobRecord {
    /// The id.
    pub id: JobId,
    /// The queue.
    pub queue: String,
    /// The kind.
    pub kind: String,
    /// The args, as JSON text.
    pub args: String,
    /// Lower runs first.
    pub priority: i32,
    /// Where the job is in its lifecycle.
    pub state: JobState,
    /// Attempts made so far (the running one included).
    pub attempt: u32,
    /// Attempts allowed.
    pub max_attempts: u32,
    /// Delay before each retry.
    pub retry: RetryPolicy,
    /// Time limit of one attempt.
    #[serde(default, with = "opt_duration_ms")]
    pub timeout: Option<Duration>,
    /// The unique key, if any.
    pub unique_key: Option<String>,
    /// Labels.
    pub tags: Vec<String>,
    /// When it was enqueued.
    pub created_at: DateTime<Utc>,
    /// Earliest time it may run (next).
    pub run_at: DateTime<Utc>,
    /// When the latest attempt started.
    pub attempted_at: Option<DateTime<Utc>>,
    /// When it reached an end state.
    pub finished_at: Option<DateTime<Utc>>,
    /// The worker holding (or that last held) the lease.
    pub worker: Option<String>,
    /// When the running attempt's lease runs out.
    pub lease_expires_at: Option<DateTime<Utc>>,
    /// True when a cancel was asked for while the job ran.
    pub cancel_requested: bool,
    /// The last progress the handler reported.
    pub progress: Option<Progress>,
    /// The result of a completed job, as JSON text.
    pub result: Option<String>,
    /// The error of every failed attempt, oldest first.
    pub errors: Vec<AttemptError>,
    /// The batch the job belongs to, if any (see [`crate::batch`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch_id: Option<i64>,
    /// The rate key the job got at enqueue, if any (see [`crate::rate_key`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_key: Option<String>,
}

impl JobRecord {
    /// The result of a completed job as a `T`, or `None` if it has none.
    ///
    /// ```
    /// # let job: kyu_core::JobRecord = serde_json::from_value(serde_json::json!({
    /// #   "id": 1, "queue": "default", "kind": "add", "args": "{}", "state": "completed",
    /// #   "priority": 0, "run_at": "2026-01-01T00:00:00Z", "attempt": 1, "max_attempts": 5,
    /// #   "retry": serde_json::to_value(kyu_core::RetryPolicy::default()).unwrap(),
    /// #   "timeout": null, "unique_key": null, "tags": [], "created_at": "2026-01-01T00:00:00Z",
    /// #   "attempted_at": null, "finished_at": null, "worker": null, "lease_expires_at": null,
    /// #   "cancel_requested": false, "progress": null, "result": "{\"sum\":5}", "errors": []
    /// # })).unwrap();
    /// #[derive(serde::Deserialize)]
    /// struct Sum { sum: i64 }
    /// let sum: Sum = job.result_as()?.expect("a completed job with a result");
    /// assert_eq!(sum.sum, 5);
    /// # Ok::<(), serde_json::Error>(())
    /// ```
    pub fn result_as<T: serde::de::DeserializeOwned>(
        &self,
    ) -> Result<Option<T>, serde_json::Error> {
        self.result.as_deref().map(serde_json::from_str).transpose()
    }
}

/// Serde helpers: durations as whole milliseconds.
mod duration_ms {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_millis() as u64)
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Ok(Duration::from_millis(u64::deserialize(d)?))
    }
}

/// Serde helpers: optional durations as whole milliseconds.
mod opt_duration_ms {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_some(&(d.as_millis() as u64)),
            None => s.serialize_none(),
        }
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        Ok(Option::<u64>::deserialize(d)?.map(Duration::from_millis))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validate_batch_names_the_job_by_index_only_in_a_batch() {
        let limits = Limits::default();
        let ok = || NewJob::new("k", serde_json::json!({}));
        assert!(NewJob::validate_batch(&[], &limits).is_ok());
        assert!(NewJob::validate_batch(&[ok(), ok()], &limits).is_ok());
        let e = NewJob::validate_batch(&[ok().queue("")], &limits).unwrap_err();
        assert_eq!(e.field, "queue", "a lone job: the field alone");
        let e = NewJob::validate_batch(&[ok(), ok().queue(""), ok().max_attempts(0)], &limits)
            .unwrap_err();
        assert_eq!(e.field, "jobs[1].queue", "the first invalid job, by index");
    }

    #[test]
    fn states_round_trip_and_accept_seed_words() {
        for s in JobState::ALL {
            assert_eq!(s.as_str().parse::<JobState>().unwrap(), s);
        }
        assert_eq!("pending".parse::<JobState>().unwrap(), JobState::Available);
        assert_eq!("delayed".parse::<JobState>().unwrap(), JobState::Scheduled);
        assert_eq!("stopped".parse::<JobState>().unwrap(), JobState::Cancelled);
        let e = "done".parse::<JobState>().unwrap_err();
        assert!(e.problem.contains("accepted"), "{e}");
    }

    #[test]
    fn bad_json_says_where_it_broke() {
        let j = NewJob::from_json_text("k", "{\"a\": 1,\n \"b\": }");
        let e = j.validate(&Limits::default()).unwrap_err();
        assert_eq!(e.field, "args");
        assert!(e.problem.contains("line 2"), "{e}");
    }

    #[test]
    fn oversized_args_are_refused() {
        let big = format!("\"{}\"", "x".repeat(100));
        let j = NewJob::from_json_text("k", big);
        let e = j.validate(&Limits { max_args_bytes: 50 }).unwrap_err();
        assert!(e.problem.contains("over the limit of 50 bytes"), "{e}");
    }

    #[test]
    fn names_and_numbers_are_checked() {
        let l = Limits::default();
        assert!(NewJob::new("", serde_json::json!({})).validate(&l).is_err());
        assert!(NewJob::new("k", serde_json::json!({}))
            .queue("")
            .validate(&l)
            .is_err());
        assert!(NewJob::new("k", serde_json::json!({}))
            .max_attempts(0)
            .validate(&l)
            .is_err());
        assert!(NewJob::new("k", serde_json::json!({})).validate(&l).is_ok());
    }
}
