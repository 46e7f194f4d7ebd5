//! Typed jobs: the [`Job`] trait, what a handler returns, and what it can see.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use kyu_core::{JobId, LeaseRef, NewJob, Progress, Store};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::Error;

/// A typed job: its args are the struct, its handler is [`run`](Job::run).
///
/// ```
/// use kyu::{Job, JobContext, JobResult, Outcome};
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Serialize, Deserialize)]
/// struct SendEmail {
///     to: String,
/// }
///
/// impl Job for SendEmail {
///     const KIND: &'static str = "send_email";
///
///     // Optional: the queue of this kind (a worker that registers the kind
///     // serves it), and options that may depend on the args.
///     const QUEUE: &'static str = "mail";
///     fn options(&self, job: kyu::NewJob) -> kyu::NewJob {
///         job.max_attempts(3).unique_key(format!("email:{}", self.to))
///     }
///
///     async fn run(self, ctx: JobContext) -> JobResult {
///         ctx.set_progress(50, "connecting").await;
///         if self.to.is_empty() {
///             // Never retried: the input is wrong, not the weather.
///             return Err(kyu::JobError::permanent("no recipient"));
///         }
///         Ok(Outcome::Done)
///     }
/// }
/// ```
pub trait Job: Serialize + DeserializeOwned + Send + Sync + 'static {
    /// The kind name stored with the job and used to find this handler.
    const KIND: &'static str;

    /// The queue jobs of this kind go to (default `default`). A worker that
    /// registers the kind serves this queue (see [`Worker::register`](crate::Worker::register)).
    const QUEUE: &'static str = kyu_core::job::DEFAULT_QUEUE;

    /// Options of this job (priority, attempts, a unique key, …), which may
    /// depend on its args. Options given per call
    /// ([`Kyu::enqueue_with`](crate::Kyu::enqueue_with)) override these.
    fn options(&self, job: NewJob) -> NewJob {
        job
    }

    /// Runs one attempt.
    fn run(self, ctx: JobContext) -> impl Future<Output = JobResult> + Send;

    /// This job as an enqueue request, with its [`QUEUE`](Job::QUEUE) and
    /// [`options`](Job::options) applied, ready for more options (and for
    /// [`JobTemplate`](crate::JobTemplate) of a schedule: `.into()`).
    fn to_new_job(&self) -> Result<NewJob, Error> {
        let args = serde_json::to_string(self).map_err(|source| Error::Serialize {
            kind: Self::KIND,
            source,
        })?;
        Ok(self.options(NewJob::from_json_text(Self::KIND, args).queue(Self::QUEUE)))
    }
}

/// What the enqueue calls ([`Kyu::enqueue`](crate::Kyu::enqueue),
/// [`enqueue_many`](crate::Kyu::enqueue_many), …) take: a typed [`Job`] or
/// a [`NewJob`]. Implemented for both; not meant to be implemented elsewhere.
pub trait IntoNewJob: sealed::Sealed + Send {
    /// The enqueue request; fails only when a typed job's args cannot be
    /// serialized.
    fn into_new_job(self) -> Result<NewJob, Error>;
}

impl<J: Job> IntoNewJob for J {
    fn into_new_job(self) -> Result<NewJob, Error> {
        self.to_new_job()
    }
}

impl IntoNewJob for NewJob {
    fn into_new_job(self) -> Result<NewJob, Error> {
        Ok(self)
    }
}

mod sealed {
    /// Keeps [`IntoNewJob`](super::IntoNewJob) to the types kyu implements it for.
    pub trait Sealed {}
    impl<J: super::Job> Sealed for J {}
    impl Sealed for kyu_core::NewJob {}
}

/// What a handler returns.
pub type JobResult = Result<Outcome, JobError>;

/// How a successful handler ended.
#[derive(Debug, Clone, PartialEq, Default)]
#[non_exhaustive]
pub enum Outcome {
    /// Done; the job is `completed`.
    #[default]
    Done,
    /// Done with a result, kept with the job.
    Result(serde_json::Value),
    /// Not now: run again after this long, without using an attempt.
    Snooze(Duration),
}

impl From<()> for Outcome {
    fn from(_: ()) -> Self {
        Outcome::Done
    }
}

/// A failed attempt: retried with backoff while attempts are left, unless
/// [`permanent`](JobError::permanent).
///
/// `?` works on any error in a handler: every `std::error::Error`, a
/// `Box<dyn Error + Send + Sync>`, an `anyhow::Error`, a `String`: anything
/// that converts into `Box<dyn Error + Send + Sync>` becomes a retryable
/// `JobError` whose message is the error and its chain of sources. To say how
/// it should be retried, use [`ResultExt`]: `.permanent()?` or `.retryable()?`.
///
/// ```
/// use std::time::Duration;
/// use kyu::{JobError, JobResult, Outcome, ResultExt};
///
/// fn parse(text: &str) -> JobResult {
///     let n: u32 = text.parse().permanent()?; // bad input: never retried
///     let _file = std::fs::read("/no/such/file")?; // an io::Error: retried
///     Ok(Outcome::Result(serde_json::json!(n)))
/// }
/// let e = parse("x").unwrap_err();
/// assert!(e.permanent);
/// let e = parse("7").unwrap_err();
/// assert!(!e.permanent && e.message.contains("No such file"), "{e}");
///
/// // anyhow, a boxed error, a String: the same.
/// fn others(which: u8) -> JobResult {
///     match which {
///         0 => Err(anyhow::anyhow!("from anyhow"))?,
///         1 => Err(Box::<dyn std::error::Error + Send + Sync>::from("boxed"))?,
///         _ => Err(String::from("a string"))?,
///     }
/// }
/// assert_eq!(others(0).unwrap_err().message, "from anyhow");
/// assert_eq!(others(1).unwrap_err().message, "boxed");
/// assert_eq!(others(2).unwrap_err().message, "a string");
///
/// // "The API said come back in 60 s": retried then, not by the backoff.
/// let e = JobError::retry_after(Duration::from_secs(60), "429 Too Many Requests");
/// assert_eq!(e.retry_after, Some(Duration::from_secs(60)));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct JobError {
    /// What went wrong; recorded with the attempt.
    pub message: String,
    /// A permanent error fails the job now, without retry (the seeds' "business error").
    pub permanent: bool,
    /// Retry after this long instead of the job's backoff (attempts left permitting).
    pub retry_after: Option<Duration>,
}

impl JobError {
    /// An error worth retrying (a network blip, a busy service).
    pub fn retryable(message: impl Into<String>) -> Self {
        JobError {
            message: message.into(),
            permanent: false,
            retry_after: None,
        }
    }

    /// An error that retrying cannot fix: the job fails now.
    pub fn permanent(message: impl Into<String>) -> Self {
        JobError {
            message: message.into(),
            permanent: true,
            retry_after: None,
        }
    }

    /// An error worth retrying after `delay` rather than after the job's
    /// backoff: a rate-limited API that said when to come back. It uses an
    /// attempt like any error; with none left the job fails.
    pub fn retry_after(delay: Duration, message: impl Into<String>) -> Self {
        JobError {
            message: message.into(),
            permanent: false,
            retry_after: Some(delay),
        }
    }

    /// The message of `error` followed by its chain of sources.
    fn from_error(error: &(dyn std::error::Error + 'static)) -> String {
        let mut message = error.to_string();
        let mut source = error.source();
        while let Some(s) = source {
            let s_text = s.to_string();
            // anyhow and others repeat a source's text in their own: once is enough.
            if !message.ends_with(&s_text) {
                message.push_str(": ");
                message.push_str(&s_text);
            }
            source = s.source();
        }
        message
    }
}

impl std::fmt::Display for JobError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl<E: Into<Box<dyn std::error::Error + Send + Sync>>> From<E> for JobError {
    fn from(e: E) -> Self {
        let boxed: Box<dyn std::error::Error + Send + Sync> = e.into();
        JobError::retryable(JobError::from_error(boxed.as_ref()))
    }
}

/// Says how a failed call should fail the attempt, for `?` in handlers:
/// `.permanent()?` (never retried) or `.retryable()?` (the default for `?`).
pub trait ResultExt<T> {
    /// On error, fail the job now: retrying cannot help.
    fn permanent(self) -> Result<T, JobError>;
    /// On error, fail the attempt; it is retried with backoff.
    fn retryable(self) -> Result<T, JobError>;
}

impl<T, E: Into<Box<dyn std::error::Error + Send + Sync>>> ResultExt<T> for Result<T, E> {
    fn permanent(self) -> Result<T, JobError> {
        self.map_err(|e| JobError {
            permanent: true,
            ..JobError::from(e)
        })
    }
    fn retryable(self) -> Result<T, JobError> {
        self.map_err(JobError::from)
    }
}

/// What a handler can see and do while it runs.
#[derive(Clone)]
pub struct JobContext {
    pub(crate) store: Arc<dyn Store>,
    /// The client, for handlers that enqueue (fan out) or look jobs up.
    pub(crate) kyu: crate::Kyu,
    /// What the application gave the worker with `Worker::state`.
    pub(crate) state: Arc<crate::state::AppState>,
    pub(crate) lease: LeaseRef,
    pub(crate) queue: Arc<str>,
    pub(crate) kind: Arc<str>,
    pub(crate) args: Arc<str>,
    pub(crate) max_attempts: u32,
    pub(crate) cancel: CancellationToken,
    /// The job's own time limit per attempt, if it has one.
    pub(crate) timeout: Option<Duration>,
    /// Cancelled when the worker's shutdown grace ran out: a handler that
    /// stops by itself (a command) stops now; others are dropped.
    pub(crate) stopping: CancellationToken,
    pub(crate) run_at: DateTime<Utc>,
    pub(crate) tags: Arc<[String]>,
    /// The fire time of a scheduled job is read from it (with the tags).
    pub(crate) unique_key: Option<Arc<str>>,
}

impl std::fmt::Debug for JobContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobContext")
            .field("id", &self.lease.id)
            .field("attempt", &self.lease.attempt)
            .field("queue", &self.queue)
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

impl JobContext {
    /// The job's id.
    pub fn id(&self) -> JobId {
        self.lease.id
    }
    /// This attempt's number, from 1.
    pub fn attempt(&self) -> u32 {
        self.lease.attempt
    }
    /// Attempts the job is allowed.
    pub fn max_attempts(&self) -> u32 {
        self.max_attempts
    }
    /// The queue the job was claimed from.
    pub fn queue(&self) -> &str {
        &self.queue
    }
    /// The job's kind.
    pub fn kind(&self) -> &str {
        &self.kind
    }
    /// When the job became runnable: the `run_at` it was enqueued with (or
    /// its enqueue time), or, after a retry or a snooze, when that came due.
    /// A job a schedule fired has its fire time here on its first attempt.
    pub fn run_at(&self) -> DateTime<Utc> {
        self.run_at
    }
    /// The job's tags, in the order given (a job a schedule fired also has
    /// `schedule:NAME`).
    pub fn tags(&self) -> &[String] {
        &self.tags
    }
    /// For a job a schedule fired, the fire time it was fired for (the one
    /// cron named, whatever the attempt, retry or delay since; for a
    /// triggered schedule, when it was triggered); `None` for other jobs.
    ///
    /// ```
    /// use kyu::{JobContext, JobResult, Outcome};
    ///
    /// async fn daily_report(ctx: JobContext) -> JobResult {
    ///     // The report of the day cron fired for, even when retried tomorrow.
    ///     let day = ctx.fire_time().unwrap_or_else(|| ctx.run_at()).date_naive();
    ///     println!("report for {day}");
    ///     Ok(Outcome::Done)
    /// }
    /// ```
    pub fn fire_time(&self) -> Option<DateTime<Utc>> {
        kyu_core::schedule::fire_time_of(&self.tags, self.unique_key.as_deref())
    }
    /// The args, as JSON text.
    pub fn args(&self) -> &str {
        &self.args
    }
    /// The kyu client of the worker running this job: enqueue follow-up jobs
    /// (fan out), look jobs up, wait for them.
    pub fn kyu(&self) -> &crate::Kyu {
        &self.kyu
    }

    /// The application state of type `T` the worker was given with
    /// [`Worker::state`](crate::Worker::state): a database pool, an HTTP
    /// client, a config. A worker without one fails the attempt with an error
    /// that names the type (retried: another worker may have it).
    ///
    /// ```
    /// use std::sync::Arc;
    /// use kyu::{JobContext, JobResult, Outcome, Worker};
    ///
    /// struct App { greeting: String }
    ///
    /// async fn greet(ctx: JobContext) -> JobResult {
    ///     let app = ctx.state::<Arc<App>>()?;
    ///     println!("{} from job {}", app.greeting, ctx.id());
    ///     Ok(Outcome::Done)
    /// }
    ///
    /// # async fn demo(kyu: kyu::Kyu) {
    /// let app = Arc::new(App { greeting: "hello".into() });
    /// let worker = Worker::new(&kyu).state(app).handle("greet", greet).start();
    /// # worker.shutdown().await;
    /// # }
    /// ```
    pub fn state<T: Send + Sync + 'static>(&self) -> Result<&T, JobError> {
        self.state.get::<T>().ok_or_else(|| {
            JobError::retryable(format!(
                "this worker has no state of type {}; give it with Worker::new(&kyu).state(value)",
                std::any::type_name::<T>()
            ))
        })
    }

    /// The args, parsed. A parse error is permanent: retrying cannot fix the args.
    pub fn args_as<T: DeserializeOwned>(&self) -> Result<T, JobError> {
        serde_json::from_str(&self.args)
            .map_err(|e| JobError::permanent(format!("args do not fit the {} job: {e}", self.kind)))
    }

    /// Records progress (`percent` is clamped to 100). Errors are logged, not
    /// returned: progress is a courtesy, never a reason to fail the job.
    pub async fn set_progress(&self, percent: u8, message: impl Into<String>) {
        let progress = Progress {
            percent: percent.min(100),
            message: message.into(),
        };
        if let Err(e) = self.store.set_progress(self.lease, progress).await {
            tracing::warn!(job_id = self.lease.id, error = %e, "could not record progress");
        }
    }

    /// True once the job was cancelled (or the worker is stopping it).
    pub fn is_cancelled(&self) -> bool {
        self.cancel.is_cancelled()
    }

    /// Completes when the job is cancelled: `select!` on it in long handlers.
    /// A handler that does not stop by itself is stopped at its next `.await`
    /// after the worker's cancel grace period.
    pub async fn cancelled(&self) {
        self.cancel.cancelled().await
    }
}
