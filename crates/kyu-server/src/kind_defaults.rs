//! A kind's job defaults (`[jobs.KIND]` in kyu.toml, as `kyu serve` hands
//! them to the server): what a job enqueued over HTTP gets when its request
//! does not say, the same stamp `kyu enqueue` applies.

use std::time::Duration;

use kyu::{NewJob, RetryPolicy};

/// The defaults of one job kind; `None` leaves the library's default.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct KindDefaults {
    /// The queue its jobs go to.
    pub queue: Option<String>,
    /// Their priority (lower runs first).
    pub priority: Option<i32>,
    /// Attempts before a job fails for good.
    pub max_attempts: Option<u32>,
    /// The retry policy.
    pub retry: Option<RetryPolicy>,
    /// The time limit of one attempt, stamped on the job so every reader
    /// sees the one that applies.
    pub timeout: Option<Duration>,
}

impl KindDefaults {
    /// `job` with these defaults applied; the request's own options are
    /// applied after, so they win.
    pub fn apply(&self, mut job: NewJob) -> NewJob {
        if let Some(q) = &self.queue {
            job = job.queue(q.clone());
        }
        if let Some(p) = self.priority {
            job = job.priority(p);
        }
        if let Some(n) = self.max_attempts {
            job = job.max_attempts(n);
        }
        if let Some(r) = self.retry {
            job = job.retry(r);
        }
        if let Some(t) = self.timeout {
            job = job.timeout(t);
        }
        job
    }
}
