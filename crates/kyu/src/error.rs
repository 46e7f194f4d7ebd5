//! The library's error type.

use kyu_core::{InvalidInput, JobId, StoreError};

/// What a [`Kyu`](crate::Kyu) call can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The request was invalid; nothing was written.
    #[error(transparent)]
    Invalid(#[from] InvalidInput),
    /// The store failed.
    #[error(transparent)]
    Store(StoreError),
    /// No job has this id.
    #[error("job {0} not found")]
    NotFound(JobId),
    /// The job cannot be run now: only a scheduled or available job can
    /// ([`testing::work_job`](crate::testing::work_job)).
    #[error("job {id} is {state}; accepted: a scheduled or available job")]
    NotRunnable {
        /// The job.
        id: JobId,
        /// The state it is in.
        state: kyu_core::JobState,
    },
    /// No schedule has this name.
    #[error("schedule {0:?} not found")]
    ScheduleNotFound(String),
    /// A typed job's args could not be turned into JSON.
    #[error("could not serialize the args of a {kind} job: {source}")]
    Serialize {
        /// The job's kind.
        kind: &'static str,
        /// Why.
        source: serde_json::Error,
    },
    /// A token with this name exists ([`Kyu::create_token`](crate::Kyu::create_token)).
    #[error(
        "a token named {0:?} exists; accepted: a name no other token has (see `kyu tokens ls`)"
    )]
    TokenNameTaken(String),
    /// A wait with a deadline ([`Wait::timeout`](crate::Wait::timeout)) gave up;
    /// the job is left as it is.
    #[error("job {id} did not finish within {waited:?}")]
    WaitTimedOut {
        /// The job.
        id: JobId,
        /// How long it waited.
        waited: std::time::Duration,
    },
}

impl From<StoreError> for Error {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Invalid(i) => Error::Invalid(i),
            StoreError::NotFound(id) => Error::NotFound(id),
            other => Error::Store(other),
        }
    }
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
