//! Batches: jobs enqueued as one group, with callback jobs when the group
//! is done.
//!
//! A batch is created open ([`BatchStore::create_batch`]), jobs are added to
//! it in any number of calls ([`BatchStore::add_to_batch`]), and it is
//! sealed ([`BatchStore::seal_batch`]): no job can be added after. Each job
//! of a batch counts once when it reaches a final state: `completed`
//! (succeeded), `failed` (for good, no attempts left or a permanent error)
//! or `cancelled` (a job deleted before it finished counts as cancelled).
//!
//! Two optional callbacks are ordinary jobs enqueued by the store when the
//! batch is done (sealed, and every job counted):
//!
//! - `on_complete` runs once whatever the outcome;
//! - `on_success` runs only if every job succeeded.
//!
//! Each callback's args are its own args (a JSON object) with a `"batch"`
//! key added: `{"id", "total", "succeeded", "failed", "cancelled"}`
//! ([`BatchCounts`]).
//!
//! **Exactly once.** The decision is made in the store, in the same
//! transaction as the finish (or cancel, delete, rescue, seal) that counts
//! the batch's last job: the counters are updated on the batch's row (on
//! PostgreSQL the update locks it, so concurrent finishes of a batch's last
//! jobs take turns and exactly one sees the batch done) and the callbacks are
//! inserted with a compare-and-set of the batch's "fired" mark. A worker
//! killed before its finish committed changes nothing; the job is rescued
//! later and counted when it really ends. Jobs outside a batch cost nothing.
//!
//! A failed or cancelled job of a batch retried by hand is uncounted again
//! (the counts say what the jobs are now); the callbacks never fire twice.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::{Enqueued, InvalidInput, JobId, NewJob, StoreError};

/// A batch's id.
pub type BatchId = i64;

/// A batch to create: its callbacks, each optional.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NewBatch {
    /// Enqueued once when every job of the sealed batch has finished, whatever the outcome.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_complete: Option<NewJob>,
    /// Enqueued once when every job of the sealed batch has succeeded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_success: Option<NewJob>,
}

impl NewBatch {
    /// Checks the callbacks: each a valid job whose args are a JSON object
    /// (the store adds a `"batch"` key to it), without a unique key or a
    /// run_at (a callback runs when the batch is done).
    pub fn validate(&self, limits: &crate::Limits) -> Result<(), InvalidInput> {
        for (field, job) in [
            ("on_complete", &self.on_complete),
            ("on_success", &self.on_success),
        ] {
            let Some(job) = job else { continue };
            job.validate(limits).map_err(|e| InvalidInput {
                field: format!("{field}.{}", e.field),
                problem: e.problem,
            })?;
            let args: serde_json::Value = serde_json::from_str(&job.args)
                .map_err(|e| InvalidInput::new(field, format!("args are not JSON: {e}")))?;
            if !args.is_object() {
                return Err(InvalidInput::new(
                    format!("{field}.args"),
                    "a callback's args must be a JSON object (kyu adds a \"batch\" key with the \
                     batch's id and counts); accepted: {...}",
                ));
            }
            if job.unique_key.is_some() {
                return Err(InvalidInput::new(
                    format!("{field}.unique_key"),
                    "a callback cannot have a unique key: it is enqueued exactly once by the batch",
                ));
            }
            if job.run_at.is_some() {
                return Err(InvalidInput::new(
                    format!("{field}.run_at"),
                    "a callback cannot have a run_at: it runs when the batch is done",
                ));
            }
        }
        Ok(())
    }
}

/// The counts a callback receives under its args' `"batch"` key.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchCounts {
    /// The batch.
    pub id: BatchId,
    /// Jobs in the batch.
    pub total: u64,
    /// Jobs completed.
    pub succeeded: u64,
    /// Jobs failed for good.
    pub failed: u64,
    /// Jobs cancelled (or deleted before they finished).
    pub cancelled: u64,
}

/// A batch as it is now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchStatus {
    /// The id.
    pub id: BatchId,
    /// Whether jobs can no longer be added.
    pub sealed: bool,
    /// Jobs in the batch.
    pub total: u64,
    /// Jobs not yet started: scheduled or available (retries waiting included).
    pub pending: u64,
    /// Jobs running now.
    pub running: u64,
    /// Jobs completed.
    pub succeeded: u64,
    /// Jobs failed for good.
    pub failed: u64,
    /// Jobs cancelled (or deleted before they finished).
    pub cancelled: u64,
    /// When the batch was created.
    pub created_at: DateTime<Utc>,
    /// When the batch was done (sealed and every job finished) and its
    /// callbacks enqueued; `None` until then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub done_at: Option<DateTime<Utc>>,
    /// The on_complete callback's kind, if the batch has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_complete: Option<String>,
    /// The on_success callback's kind, if the batch has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_success: Option<String>,
    /// The callback jobs enqueued when the batch was done, by id.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub callback_jobs: Vec<JobId>,
}

impl BatchStatus {
    /// Jobs counted as finished: succeeded + failed + cancelled.
    pub fn finished(&self) -> u64 {
        self.succeeded + self.failed + self.cancelled
    }

    /// Whether the batch is done: sealed and every job finished.
    pub fn is_done(&self) -> bool {
        self.done_at.is_some()
    }

    /// `open` (jobs may be added), `sealed` (no more jobs; some still to
    /// finish) or `done`: the words the API, the CLI and the dashboard use.
    pub fn state(&self) -> &'static str {
        if self.is_done() {
            "done"
        } else if self.sealed {
            "sealed"
        } else {
            "open"
        }
    }
}

/// The callback args: `args` (a JSON object) with `"batch": counts` added.
pub fn callback_args(args: &str, counts: &BatchCounts) -> Result<String, StoreError> {
    let mut v: serde_json::Value = serde_json::from_str(args).map_err(StoreError::database)?;
    if let Some(o) = v.as_object_mut() {
        o.insert(
            "batch".to_string(),
            serde_json::to_value(counts).map_err(StoreError::database)?,
        );
    }
    Ok(v.to_string())
}

/// The message of a batch's `batch_completed` event.
pub fn completed_message(c: &BatchCounts) -> String {
    format!(
        "batch {}: total {}, succeeded {}, failed {}, cancelled {}",
        c.id, c.total, c.succeeded, c.failed, c.cancelled
    )
}

/// The error for a batch that does not exist.
pub fn unknown_batch(id: BatchId) -> StoreError {
    StoreError::Invalid(InvalidInput::new(
        "batch",
        format!("no batch has id {id}; create one first (kyu enqueue --batch, kyu.batch())"),
    ))
}

/// The error for adding to a sealed batch.
pub fn sealed_batch(id: BatchId) -> StoreError {
    StoreError::Invalid(InvalidInput::new(
        "batch",
        format!("batch {id} is sealed: no job can be added to it; create a new batch"),
    ))
}

/// The batches of a store (see the module docs). The semantics are stated
/// by `kyu_core::conformance::batches`.
#[async_trait]
pub trait BatchStore: Send + Sync {
    /// Creates an open, empty batch with these callbacks (checked by
    /// [`NewBatch::validate`]; nothing is written if refused).
    async fn create_batch(&self, batch: NewBatch) -> Result<BatchId, StoreError>;

    /// Enqueues `jobs` into open batch `id`, all or none, as
    /// [`Store::enqueue`](crate::Store::enqueue) does. A job that is a
    /// duplicate of an existing job (unique key) is not added to the batch.
    /// Refused if the batch does not exist or is sealed.
    async fn add_to_batch(
        &self,
        id: BatchId,
        jobs: Vec<NewJob>,
    ) -> Result<Vec<Enqueued>, StoreError>;

    /// Seals batch `id`: no job can be added after. If every job has
    /// already finished (or there is none), the callbacks are enqueued in
    /// the same transaction. Sealing a sealed batch changes nothing.
    async fn seal_batch(&self, id: BatchId) -> Result<BatchStatus, StoreError>;

    /// Batch `id` as it is now, or `None`.
    async fn batch(&self, id: BatchId) -> Result<Option<BatchStatus>, StoreError>;

    /// The newest batches, up to `limit`, newest first.
    async fn list_batches(&self, limit: usize) -> Result<Vec<BatchStatus>, StoreError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn callback_args_add_the_counts() {
        let c = BatchCounts {
            id: 7,
            total: 3,
            succeeded: 2,
            failed: 1,
            cancelled: 0,
        };
        let a: serde_json::Value =
            serde_json::from_str(&callback_args(r#"{"to":"ops"}"#, &c).unwrap()).unwrap();
        assert_eq!(a["to"], "ops");
        assert_eq!(a["batch"]["id"], 7);
        assert_eq!(a["batch"]["failed"], 1);
    }

    #[test]
    fn callbacks_must_have_object_args_and_no_key() {
        let limits = crate::Limits::default();
        let ok = NewBatch {
            on_complete: Some(NewJob::new("report", serde_json::json!({}))),
            on_success: None,
        };
        ok.validate(&limits).unwrap();
        let bad = NewBatch {
            on_complete: Some(NewJob::new("report", serde_json::json!([1]))),
            on_success: None,
        };
        assert_eq!(bad.validate(&limits).unwrap_err().field, "on_complete.args");
        let keyed = NewBatch {
            on_success: Some(NewJob::new("report", serde_json::json!({})).unique_key("k")),
            on_complete: None,
        };
        assert_eq!(
            keyed.validate(&limits).unwrap_err().field,
            "on_success.unique_key"
        );
    }
}
