//! Test helpers for applications, as River's `rivertest`: assert that your
//! code enqueued a job (and with which args) without running a worker, and
//! run one job's handler inline, through the real store, to test the handler.
//!
//! - [`enqueued`] / [`enqueued_of`]: the jobs not yet run (scheduled or
//!   available), oldest first;
//! - [`assert_enqueued`] (typed, with a predicate on the args) and
//!   [`assert_enqueued_json`] (a kind and a JSON subset of the args), and
//!   their `assert_not_enqueued` twins. A failed assertion panics with every
//!   job that *was* enqueued (id, queue, kind, args), so the mismatch shows;
//! - [`work`]: enqueue a typed job and run it now; [`work_job`]: run an
//!   enqueued job with the handlers of a [`Worker`] you built (not started),
//!   registered the way your application registers them. Either claims
//!   exactly that job with a real lease (whatever its run_at, priority or
//!   queue pause), runs its handler with a real [`JobContext`](crate::JobContext)
//!   (progress, cancel, the job's timeout, panics caught, as in a started
//!   worker), writes how it ended through the store and returns the outcome
//!   with the job as stored afterwards ([`Worked`]).
//!
//! Tests run on a database of their own: a SQLite file in a temporary
//! directory, or a fresh schema on a test PostgreSQL server
//! ([`postgres::with_fresh_schema`]).
//!
//! ```
//! use kyu::{testing, Job, JobContext, JobResult, Kyu, Outcome};
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Serialize, Deserialize)]
//! struct SendEmail { to: String }
//!
//! impl Job for SendEmail {
//!     const KIND: &'static str = "send_email";
//!     const QUEUE: &'static str = "mail";
//!     async fn run(self, ctx: JobContext) -> JobResult {
//!         ctx.set_progress(100, "sent").await;
//!         Ok(Outcome::Result(serde_json::json!({ "sent_to": self.to })))
//!     }
//! }
//!
//! // The application's code under test.
//! async fn sign_up(kyu: &Kyu, email: &str) -> Result<(), kyu::Error> {
//!     kyu.enqueue(SendEmail { to: email.into() }).await?;
//!     Ok(())
//! }
//!
//! # async fn demo() -> Result<(), kyu::Error> {
//! let kyu = Kyu::connect("sqlite::memory:").await?; // each test a database of its own
//! sign_up(&kyu, "ada@example.com").await?;
//!
//! // What was enqueued, without running a worker.
//! let job = testing::assert_enqueued::<SendEmail>(&kyu, |e| e.to == "ada@example.com").await;
//! assert_eq!(job.queue, "mail");
//! testing::assert_enqueued_json(&kyu, "send_email", serde_json::json!({ "to": "ada@example.com" })).await;
//! testing::assert_not_enqueued::<SendEmail>(&kyu, |e| e.to == "bob@example.com").await;
//!
//! // Run that job's handler now, through the real store.
//! let worked = testing::work_job(&kyu::Worker::new(&kyu).register::<SendEmail>(), job.id).await?;
//! assert_eq!(worked.job.state, kyu::JobState::Completed);
//! assert_eq!(worked.job.result.as_deref(), Some(r#"{"sent_to":"ada@example.com"}"#));
//! assert!(testing::enqueued(&kyu).await?.is_empty(), "nothing left to run");
//!
//! // Or enqueue and run in one step.
//! let worked = testing::work(&kyu, SendEmail { to: "bob@example.com".into() }).await?;
//! assert_eq!(worked.job.progress.map(|p| p.percent), Some(100));
//! # Ok(()) }
//! # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
//! ```

use std::fmt::Write as _;

use kyu_core::store::{FinishOutcome, FinishResult};
use kyu_core::{JobFilter, JobId, JobRecord, JobState};
use serde_json::Value;

use crate::{Job, Kyu, Result, Worker};

/// Fresh PostgreSQL schemas for tests (feature `postgres`): each test on
/// the test server gets a schema of its own, so tests can run in parallel.
#[cfg(feature = "postgres")]
pub use kyu_postgres::testing as postgres;

/// One job run by [`work`] or [`work_job`].
#[derive(Debug, Clone, PartialEq)]
pub struct Worked {
    /// How the attempt ended, as a started worker would have written it:
    /// completed (with the handler's result), errored (with the retry time
    /// and whether it was permanent), snoozed, cancelled.
    pub outcome: FinishOutcome,
    /// What the store did with it: [`FinishResult::Applied`] with the job's
    /// new state, or [`FinishResult::Stale`] if the job was taken from the
    /// attempt meanwhile.
    pub result: FinishResult,
    /// The job as stored after the attempt (state, attempt, result, errors,
    /// progress).
    pub job: JobRecord,
}

/// The jobs enqueued and not yet run (scheduled or available, including
/// retries waiting for their time), oldest first.
pub async fn enqueued(kyu: &Kyu) -> Result<Vec<JobRecord>> {
    waiting(kyu, None).await
}

/// The jobs of `kind` enqueued and not yet run, oldest first.
pub async fn enqueued_of(kyu: &Kyu, kind: &str) -> Result<Vec<JobRecord>> {
    waiting(kyu, Some(kind)).await
}

async fn waiting(kyu: &Kyu, kind: Option<&str>) -> Result<Vec<JobRecord>> {
    let mut jobs = Vec::new();
    let mut before = None;
    loop {
        let page = kyu
            .list(&JobFilter {
                states: vec![JobState::Scheduled, JobState::Available],
                kind: kind.map(str::to_string),
                before,
                limit: 1000,
                ..JobFilter::default()
            })
            .await?;
        jobs.extend(page.jobs);
        match page.next {
            Some(next) => before = Some(next),
            None => break,
        }
    }
    jobs.reverse(); // newest first → oldest first
    Ok(jobs)
}

/// Asserts that a job of kind `J::KIND` whose args (parsed as `J`) satisfy
/// `matches` is enqueued and not yet run, and returns the oldest such job.
///
/// # Panics
///
/// If there is none (the message lists every job that is enqueued: id,
/// queue, kind and args), or the store cannot be read.
pub async fn assert_enqueued<J: Job>(kyu: &Kyu, matches: impl Fn(&J) -> bool) -> JobRecord {
    let all = listed(kyu).await;
    match all.iter().find(|j| typed_match(j, &matches)) {
        Some(job) => job.clone(),
        None => panic!(
            "expected an enqueued {:?} job whose args satisfy the predicate; {}",
            J::KIND,
            none_of(&all)
        ),
    }
}

/// Asserts that no job of kind `J::KIND` whose args satisfy `matches` is
/// enqueued and not yet run.
///
/// # Panics
///
/// If there is one (the message lists the ones that match), or the store
/// cannot be read.
pub async fn assert_not_enqueued<J: Job>(kyu: &Kyu, matches: impl Fn(&J) -> bool) {
    let all = listed(kyu).await;
    let found: Vec<JobRecord> = all
        .into_iter()
        .filter(|j| typed_match(j, &matches))
        .collect();
    if !found.is_empty() {
        panic!(
            "expected no enqueued {:?} job whose args satisfy the predicate; {} do:{}",
            J::KIND,
            found.len(),
            lines(&found)
        );
    }
}

/// Asserts that a job of `kind` whose args contain `expected` (see
/// [`json_contains`]) is enqueued and not yet run, and returns the oldest
/// such job. For kinds without a Rust type (command jobs, other languages).
///
/// # Panics
///
/// If there is none (the message lists every job that is enqueued: id,
/// queue, kind and args), or the store cannot be read.
pub async fn assert_enqueued_json(kyu: &Kyu, kind: &str, expected: Value) -> JobRecord {
    let all = listed(kyu).await;
    match all.iter().find(|j| json_match(j, kind, &expected)) {
        Some(job) => job.clone(),
        None => panic!(
            "expected an enqueued {kind:?} job whose args contain {expected}; {}",
            none_of(&all)
        ),
    }
}

/// Asserts that no job of `kind` whose args contain `expected` (see
/// [`json_contains`]) is enqueued and not yet run.
///
/// # Panics
///
/// If there is one (the message lists the ones that match), or the store
/// cannot be read.
pub async fn assert_not_enqueued_json(kyu: &Kyu, kind: &str, expected: Value) {
    let found: Vec<JobRecord> = listed(kyu)
        .await
        .into_iter()
        .filter(|j| json_match(j, kind, &expected))
        .collect();
    if !found.is_empty() {
        panic!(
            "expected no enqueued {kind:?} job whose args contain {expected}; {} do:{}",
            found.len(),
            lines(&found)
        );
    }
}

/// Whether `actual` contains `expected`: an object contains each key of the
/// expected object with a value that contains the expected one (other keys
/// are ignored); an array contains an array of the same length whose items
/// it contains in order; any other value only an equal one.
///
/// ```
/// use serde_json::json;
/// use kyu::testing::json_contains;
/// assert!(json_contains(&json!({"to": "ada", "cc": []}), &json!({"to": "ada"})));
/// assert!(!json_contains(&json!({"to": "ada"}), &json!({"to": "bob"})));
/// ```
pub fn json_contains(actual: &Value, expected: &Value) -> bool {
    match (actual, expected) {
        (Value::Object(a), Value::Object(e)) => e
            .iter()
            .all(|(k, ev)| a.get(k).is_some_and(|av| json_contains(av, ev))),
        (Value::Array(a), Value::Array(e)) => {
            a.len() == e.len() && a.iter().zip(e).all(|(av, ev)| json_contains(av, ev))
        }
        _ => actual == expected,
    }
}

/// Enqueues `job` (with its kind's [`options`](Job::options)) and runs it
/// now with its handler, as [`work_job`] does with a worker that registers
/// only `J`.
pub async fn work<J: Job>(kyu: &Kyu, job: J) -> Result<Worked> {
    let enqueued = kyu.enqueue(job).await?;
    work_job(&Worker::new(kyu).register::<J>(), enqueued.id).await
}

/// Runs the enqueued job `id` once, now, with `worker`'s handler for its
/// kind and `worker`'s config (lease, timeouts, worker id), without starting
/// the worker: claims exactly that job with a real lease (a scheduled job,
/// one behind others, or in a paused queue included), runs the handler with
/// a real [`JobContext`](crate::JobContext) (the lease heartbeated and
/// cancel requests passed on meanwhile), writes how the attempt ended
/// through the store (a retryable error schedules a retry, as in a started
/// worker) and returns it with the job as stored afterwards.
///
/// Fails with [`Error::NotFound`](crate::Error::NotFound) if there is no
/// such job, [`Error::NotRunnable`](crate::Error::NotRunnable) if it is
/// running or finished, and [`Error::Invalid`](crate::Error::Invalid) if
/// `worker` has no handler for its kind (the job is left as it is).
pub async fn work_job(worker: &Worker, id: JobId) -> Result<Worked> {
    crate::worker::inline::work_one(worker, id).await
}

/// Every job enqueued and not yet run; panics if the store cannot be read.
async fn listed(kyu: &Kyu) -> Vec<JobRecord> {
    enqueued(kyu)
        .await
        .unwrap_or_else(|e| panic!("kyu::testing: could not list the enqueued jobs: {e}"))
}

fn typed_match<J: Job>(job: &JobRecord, matches: &impl Fn(&J) -> bool) -> bool {
    job.kind == J::KIND
        && serde_json::from_str::<J>(&job.args)
            .map(|args| matches(&args))
            .unwrap_or(false)
}

fn json_match(job: &JobRecord, kind: &str, expected: &Value) -> bool {
    job.kind == kind
        && serde_json::from_str::<Value>(&job.args).is_ok_and(|args| json_contains(&args, expected))
}

/// What a failed `assert_enqueued` found instead: every enqueued job.
fn none_of(all: &[JobRecord]) -> String {
    if all.is_empty() {
        "no job is enqueued".to_string()
    } else {
        format!(
            "none of the {} enqueued jobs does:{}",
            all.len(),
            lines(all)
        )
    }
}

/// The jobs, one a line: id, queue, kind, state and args.
fn lines(jobs: &[JobRecord]) -> String {
    let mut out = String::new();
    for j in jobs {
        let _ = write!(
            out,
            "\n  job {} queue {:?} kind {:?} {} args {}",
            j.id, j.queue, j.kind, j.state, j.args
        );
    }
    out
}
