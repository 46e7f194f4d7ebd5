//! Batches: create one (with its callbacks and first jobs), add jobs while it
//! is open, seal it, read its counts (see `kyu::batch`).
//!
//! A batch may hold jobs of many queues, so its routes are refused to tokens
//! limited to queues (their counts would tell of other queues' jobs).

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, Utc};
use kyu::{BatchStatus, NewBatch};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::auth::Caller;
use super::error::{ApiError, ErrorBody};
use super::extract::{JobIdPath, JsonBody};
use super::jobs::{job_for, scope_key, EnqueueReply, EnqueueRequest};
use crate::State as Shared;

/// A batch to create.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"on_complete": {"kind": "import_report", "args": {"file": "users.csv"}}, "on_success": {"kind": "import_done"}, "jobs": [{"kind": "import_row", "args": {"row": 1}}], "seal": false}))]
pub struct BatchCreateRequest {
    /// Enqueued once when every job of the sealed batch has finished,
    /// whatever the outcome. Its args must be an object: kyu adds
    /// `"batch": {"id", "total", "succeeded", "failed", "cancelled"}`.
    pub on_complete: Option<EnqueueRequest>,
    /// Enqueued once when every job of the sealed batch has succeeded.
    pub on_success: Option<EnqueueRequest>,
    /// The first jobs (may be empty: add them later).
    #[serde(default)]
    pub jobs: Vec<EnqueueRequest>,
    /// Seal the batch after these jobs: no job can be added after.
    #[serde(default)]
    pub seal: bool,
}

/// Jobs to add to an open batch.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchJobsRequest {
    /// The jobs, enqueued in one transaction.
    pub jobs: Vec<EnqueueRequest>,
    /// Seal the batch after these jobs.
    #[serde(default)]
    pub seal: bool,
}

/// A batch's counts and state.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct BatchView {
    /// The id.
    pub id: i64,
    /// `open` (jobs can be added), `sealed`, or `done` (sealed, every job
    /// finished, callbacks enqueued).
    pub state: String,
    /// Jobs in the batch.
    pub total: u64,
    /// Jobs waiting to run (scheduled or available).
    pub pending: u64,
    /// Jobs running.
    pub running: u64,
    /// Jobs completed.
    pub succeeded: u64,
    /// Jobs failed for good.
    pub failed: u64,
    /// Jobs cancelled (or deleted before they finished).
    pub cancelled: u64,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it was done.
    pub done_at: Option<DateTime<Utc>>,
    /// The on_complete callback's kind.
    pub on_complete: Option<String>,
    /// The on_success callback's kind.
    pub on_success: Option<String>,
    /// The callback jobs enqueued when it was done.
    pub callback_jobs: Vec<i64>,
}

impl From<BatchStatus> for BatchView {
    fn from(b: BatchStatus) -> BatchView {
        BatchView {
            id: b.id,
            state: b.state().into(),
            total: b.total,
            pending: b.pending,
            running: b.running,
            succeeded: b.succeeded,
            failed: b.failed,
            cancelled: b.cancelled,
            created_at: b.created_at,
            done_at: b.done_at,
            on_complete: b.on_complete,
            on_success: b.on_success,
            callback_jobs: b.callback_jobs,
        }
    }
}

/// What a create or add did: the batch now, and one entry per job in order.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct BatchJobsReply {
    /// The batch, after the jobs (and the seal, if asked).
    pub batch: BatchView,
    /// One per job.
    pub jobs: Vec<EnqueueReply>,
}

/// The checked jobs of a request, `field` prefixing their errors.
fn jobs_of(
    shared: &Shared,
    caller: &Caller,
    reqs: Vec<EnqueueRequest>,
) -> Result<Vec<kyu::NewJob>, ApiError> {
    if reqs.len() > shared.options.max_page {
        return Err(ApiError::invalid(
            "jobs",
            format!(
                "jobs: {} jobs; accepted: up to {} per request (add more in further requests)",
                reqs.len(),
                shared.options.max_page
            ),
        ));
    }
    reqs.into_iter()
        .enumerate()
        .map(|(i, r)| {
            job_for(shared, caller, r, &format!("jobs[{i}].queue"))
                .map(|j| scope_key(caller, j))
                .map_err(|e| prefixed(e, &format!("jobs[{i}]")))
        })
        .collect()
}

fn prefixed(mut e: ApiError, prefix: &str) -> ApiError {
    let field = e.body.field.clone().unwrap_or_default();
    if !field.starts_with(prefix) {
        e.body.field = Some(format!("{prefix}.{field}"));
        e.body.message = format!("{prefix}.{}", e.body.message);
    }
    e
}

/// The batch, or 404.
async fn existing(shared: &Shared, id: i64) -> Result<BatchStatus, ApiError> {
    shared
        .kyu
        .store()
        .batch(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("batch {id} not found")))
}

/// Adds `jobs` to batch `id` and seals it if asked.
async fn add(
    shared: &Shared,
    id: i64,
    jobs: Vec<kyu::NewJob>,
    seal: bool,
) -> Result<BatchJobsReply, ApiError> {
    let batch = shared.kyu.batch_by_id(id);
    let out = if jobs.is_empty() {
        Vec::new()
    } else {
        batch.add(jobs).await?
    };
    let status = if seal {
        batch.seal().await?
    } else {
        batch.status().await?
    };
    Ok(BatchJobsReply {
        batch: status.into(),
        jobs: out
            .into_iter()
            .map(|e| EnqueueReply {
                id: e.id,
                duplicate: e.duplicate,
            })
            .collect(),
    })
}

/// Creates a batch with its callbacks and, optionally, its first jobs (one
/// transaction) and the seal. Refused to tokens limited to queues.
#[utoipa::path(post, path = "/v1/batches", tag = "batches", request_body = BatchCreateRequest,
    responses((status = 201, body = BatchJobsReply), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn create(
    State(shared): State<Shared>,
    caller: Caller,
    JsonBody(req): JsonBody<BatchCreateRequest>,
) -> Result<(StatusCode, Json<BatchJobsReply>), ApiError> {
    let callback = |r: Option<EnqueueRequest>, field: &str| {
        r.map(|r| {
            job_for(&shared, &caller, r, &format!("{field}.queue")).map_err(|e| prefixed(e, field))
        })
        .transpose()
    };
    let batch = NewBatch {
        on_complete: callback(req.on_complete, "on_complete")?,
        on_success: callback(req.on_success, "on_success")?,
    };
    let jobs = jobs_of(&shared, &caller, req.jobs)?;
    // Everything is checked before the batch is written: bad input writes nothing.
    batch.validate(shared.kyu.limits())?;
    kyu::NewJob::validate_batch(&jobs, shared.kyu.limits())?;
    let id = shared.kyu.store().create_batch(batch).await?;
    let reply = add(&shared, id, jobs, req.seal).await?;
    Ok((StatusCode::CREATED, Json(reply)))
}

/// Adds jobs to an open batch (one transaction), and seals it if asked.
/// 400 `invalid` if the batch is sealed.
#[utoipa::path(post, path = "/v1/batches/{id}/jobs", tag = "batches", request_body = BatchJobsRequest,
    params(("id" = i64, Path, description = "The batch id")),
    responses((status = 201, body = BatchJobsReply), (status = 400, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn add_jobs(
    State(shared): State<Shared>,
    caller: Caller,
    JobIdPath(id): JobIdPath,
    JsonBody(req): JsonBody<BatchJobsRequest>,
) -> Result<(StatusCode, Json<BatchJobsReply>), ApiError> {
    let jobs = jobs_of(&shared, &caller, req.jobs)?;
    existing(&shared, id).await?;
    let reply = add(&shared, id, jobs, req.seal).await?;
    Ok((StatusCode::CREATED, Json(reply)))
}

/// Seals a batch: no job can be added after; if every job has finished,
/// its callbacks are enqueued now. Sealing twice changes nothing.
#[utoipa::path(post, path = "/v1/batches/{id}/seal", tag = "batches",
    params(("id" = i64, Path, description = "The batch id")),
    responses((status = 200, body = BatchView), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn seal(
    State(shared): State<Shared>,
    JobIdPath(id): JobIdPath,
) -> Result<Json<BatchView>, ApiError> {
    existing(&shared, id).await?;
    Ok(Json(shared.kyu.batch_by_id(id).seal().await?.into()))
}

/// A batch's counts: total, pending, running, succeeded, failed, cancelled.
#[utoipa::path(get, path = "/v1/batches/{id}", tag = "batches",
    params(("id" = i64, Path, description = "The batch id")),
    responses((status = 200, body = BatchView), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn get(
    State(shared): State<Shared>,
    JobIdPath(id): JobIdPath,
) -> Result<Json<BatchView>, ApiError> {
    Ok(Json(existing(&shared, id).await?.into()))
}
