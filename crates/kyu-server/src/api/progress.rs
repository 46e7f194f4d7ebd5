//! `POST /v1/jobs/{id}/progress`: a running job's progress, reported by
//! whatever runs it without a worker lease: a command job's script with its
//! job token (`KYU_JOB_TOKEN`, the usual caller: `kyu.progress()` of the
//! Python client), or a token with the `work` scope on the job's queue.
//! Remote workers report through their fenced worker route instead.

use axum::extract::State;
use axum::{Extension, Json};
use kyu::job_token::JobGrant;
use kyu::store::LeaseRef;
use kyu::{JobState, Progress};
use serde::Deserialize;
use utoipa::ToSchema;

use super::auth::Caller;
use super::error::{ApiError, ErrorBody};
use super::extract::{JobIdPath, JsonBody};
use super::workers::FinishReply;
use crate::State as Shared;

/// A progress report.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"percent": 40, "message": "step 2 of 5"}))]
pub struct JobProgressRequest {
    /// 0 to 100.
    pub percent: u8,
    /// A short note.
    #[serde(default)]
    pub message: String,
}

/// Records a running job's progress (the job's `progress` until the next
/// report). 409 `not_running` if the job (with a job token: the token's
/// attempt) is not running.
#[utoipa::path(post, path = "/v1/jobs/{id}/progress", tag = "jobs",
    params(("id" = i64, Path, description = "The job id")),
    request_body = JobProgressRequest,
    responses((status = 200, description = "Recorded; the job is running", body = FinishReply),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn report(
    State(shared): State<Shared>,
    caller: Caller,
    grant: Option<Extension<JobGrant>>,
    JobIdPath(id): JobIdPath,
    JsonBody(req): JsonBody<JobProgressRequest>,
) -> Result<Json<FinishReply>, ApiError> {
    super::workers::check_percent(req.percent)?;
    let job = caller.visible_job(&shared.kyu, id).await?;
    // A job token reports for its own attempt only: should that attempt have
    // ended since the token was checked, the write below changes nothing.
    let attempt = grant.map_or(job.attempt, |Extension(g)| g.attempt);
    let lease = LeaseRef { id, attempt };
    let progress = Progress {
        percent: req.percent,
        message: req.message,
    };
    if job.state == JobState::Running && shared.kyu.store().set_progress(lease, progress).await? {
        return Ok(Json(FinishReply {
            job_id: id,
            state: JobState::Running,
        }));
    }
    Err(ApiError::new(
        axum::http::StatusCode::CONFLICT,
        "not_running",
        format!(
            "job {id} is {} (attempt {}); accepted: progress of a running job's current attempt",
            job.state, job.attempt
        ),
    ))
}
