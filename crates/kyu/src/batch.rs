//! Batches: enqueue jobs as one group, with callback jobs when the group is
//! done (see `kyu_core::batch` for the rules).
//!
//! ```
//! # async fn demo() -> Result<(), kyu::Error> {
//! use kyu::NewJob;
//! use serde_json::json;
//!
//! let kyu = kyu::Kyu::connect("sqlite::memory:").await?;
//! let batch = kyu
//!     .batch()
//!     .on_complete(NewJob::new("import_report", json!({"file": "users.csv"})))
//!     .on_success(NewJob::new("import_done", json!({})))
//!     .add(vec![NewJob::new("import_row", json!({"row": 1}))])
//!     .await?;
//! batch.add(vec![NewJob::new("import_row", json!({"row": 2}))]).await?;
//! let status = batch.seal().await?; // no job can be added after
//! assert_eq!((status.total, status.pending), (2, 2));
//! # Ok(()) }
//! # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
//! ```

use kyu_core::{BatchId, BatchStatus, Enqueued, NewBatch, NewJob};

use crate::{IntoNewJob, Kyu, Result};

/// Builds a batch: its callbacks, then [`create`](BatchBuilder::create) it
/// empty or [`add`](BatchBuilder::add) its first jobs. From
/// [`Kyu::batch`].
#[must_use = "a batch builder does nothing until create() or add() is awaited"]
pub struct BatchBuilder {
    kyu: Kyu,
    batch: NewBatch,
    error: Option<crate::Error>,
}

impl BatchBuilder {
    pub(crate) fn new(kyu: Kyu) -> BatchBuilder {
        BatchBuilder {
            kyu,
            batch: NewBatch::default(),
            error: None,
        }
    }

    fn job(&mut self, job: impl IntoNewJob) -> Option<NewJob> {
        match job.into_new_job() {
            Ok(j) => Some(j),
            Err(e) => {
                self.error.get_or_insert(e);
                None
            }
        }
    }

    /// The job enqueued once when every job of the sealed batch has
    /// finished, whatever the outcome. Its args (a JSON object) get a
    /// `"batch"` key: `{"id", "total", "succeeded", "failed", "cancelled"}`.
    pub fn on_complete(mut self, job: impl IntoNewJob) -> Self {
        self.batch.on_complete = self.job(job);
        self
    }

    /// The job enqueued once when every job of the sealed batch has
    /// succeeded (never if one failed for good or was cancelled). Its args
    /// get the same `"batch"` key as [`on_complete`](Self::on_complete)'s.
    pub fn on_success(mut self, job: impl IntoNewJob) -> Self {
        self.batch.on_success = self.job(job);
        self
    }

    /// Creates the batch, open and empty.
    pub async fn create(self) -> Result<Batch> {
        if let Some(e) = self.error {
            return Err(e);
        }
        self.batch.validate(self.kyu.limits())?;
        let id = self.kyu.store().create_batch(self.batch).await?;
        Ok(Batch { kyu: self.kyu, id })
    }

    /// Creates the batch and adds `jobs` to it; it stays open: add more,
    /// then [`seal`](Batch::seal) it.
    pub async fn add<J: IntoNewJob>(self, jobs: Vec<J>) -> Result<Batch> {
        let kyu = self.kyu.clone();
        let jobs = jobs
            .into_iter()
            .map(IntoNewJob::into_new_job)
            .collect::<Result<Vec<NewJob>>>()?;
        NewJob::validate_batch(&jobs, kyu.limits())?;
        let batch = self.create().await?;
        batch.add(jobs).await?;
        Ok(batch)
    }
}

/// A handle on one batch: add jobs while it is open, seal it, read its
/// counts. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Batch {
    kyu: Kyu,
    id: BatchId,
}

impl Batch {
    /// The batch's id (for `kyu batches show ID` and the HTTP API).
    pub fn id(&self) -> BatchId {
        self.id
    }

    /// Enqueues `jobs` into the batch, all or none, in one transaction.
    /// Refused once the batch is sealed. A job that is a duplicate of an
    /// existing job (unique key) is not added to the batch.
    pub async fn add<J: IntoNewJob>(&self, jobs: Vec<J>) -> Result<Vec<Enqueued>> {
        let jobs = jobs
            .into_iter()
            .map(IntoNewJob::into_new_job)
            .collect::<Result<Vec<NewJob>>>()?;
        NewJob::validate_batch(&jobs, self.kyu.limits())?;
        Ok(self.kyu.store().add_to_batch(self.id, jobs).await?)
    }

    /// Seals the batch: no job can be added after. If every job has already
    /// finished, the callbacks are enqueued now. Sealing twice is harmless.
    pub async fn seal(&self) -> Result<BatchStatus> {
        Ok(self.kyu.store().seal_batch(self.id).await?)
    }

    /// The batch's counts now: total, pending, running, succeeded, failed,
    /// cancelled.
    pub async fn status(&self) -> Result<BatchStatus> {
        self.kyu.batch_status(self.id).await
    }
}

impl Kyu {
    /// Starts a batch: set its callbacks, then create it or add its first
    /// jobs. See [`crate::batch`].
    pub fn batch(&self) -> BatchBuilder {
        BatchBuilder::new(self.clone())
    }

    /// A handle on an existing batch, e.g. to add to it from another
    /// process. Nothing is checked until it is used.
    pub fn batch_by_id(&self, id: BatchId) -> Batch {
        Batch {
            kyu: self.clone(),
            id,
        }
    }

    /// Batch `id`'s counts now.
    pub async fn batch_status(&self, id: BatchId) -> Result<BatchStatus> {
        self.store()
            .batch(id)
            .await?
            .ok_or_else(|| kyu_core::batch::unknown_batch(id).into())
    }

    /// The newest batches, up to `limit`, newest first.
    pub async fn batches(&self, limit: usize) -> Result<Vec<BatchStatus>> {
        Ok(self.store().list_batches(limit).await?)
    }
}
