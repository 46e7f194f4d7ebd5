//! Errors of the library crates.

/// An enqueue or other request that was refused before anything was written.
///
/// The message names the bad value, where it was, and what is accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {problem}")]
pub struct InvalidInput {
    /// Which field or argument was wrong, e.g. `args` or `jobs[3].queue`.
    pub field: String,
    /// What was wrong with it and what is accepted.
    pub problem: String,
}

impl InvalidInput {
    /// An error about `field`.
    pub fn new(field: impl Into<String>, problem: impl Into<String>) -> Self {
        InvalidInput {
            field: field.into(),
            problem: problem.into(),
        }
    }

    /// The same error, with its field named inside a batch: `jobs[i].field`.
    pub fn in_batch(mut self, index: usize) -> Self {
        self.field = format!("jobs[{index}].{}", self.field);
        self
    }
}

/// What a [`Store`](crate::Store) operation can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The request was invalid; nothing was written.
    #[error("invalid input: {0}")]
    Invalid(#[from] InvalidInput),
    /// No job has this id.
    #[error("job {0} not found")]
    NotFound(i64),
    /// The database URL could not be understood.
    #[error("bad database URL {url:?}: {problem}")]
    BadUrl {
        /// The URL as given.
        url: String,
        /// What was wrong and what is accepted.
        problem: String,
    },
    /// The database refused or failed the operation.
    #[error("database error: {0}")]
    Database(String),
    /// This backend cannot do the operation: it is not part of the [`Store`]
    /// contract (every backend implements all of that) but of one backend,
    /// such as enqueueing inside a PostgreSQL transaction.
    ///
    /// [`Store`]: crate::Store
    #[error("the {backend} store does not support {operation}")]
    Unsupported {
        /// The backend.
        backend: &'static str,
        /// The operation.
        operation: &'static str,
    },
    /// The store has been shut down.
    #[error("the store is closed")]
    Closed,
    /// The disk holding the database is full: the write was refused and
    /// nothing of it was stored. Jobs already stored keep running (kyu keeps
    /// a small reserve file beside the database for their results), and
    /// writes resume by themselves once space is freed.
    #[error(
        "the disk holding {path} is full: nothing was written; free space on that disk \
         (or move the database to a bigger one) and try again; jobs already stored keep running"
    )]
    DiskFull {
        /// The database file.
        path: String,
    },
}

impl StoreError {
    /// A database error from any displayable source.
    pub fn database(e: impl std::fmt::Display) -> Self {
        StoreError::Database(e.to_string())
    }
}
