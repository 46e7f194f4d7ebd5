//! Queues: list with counts, pause, resume.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

use super::auth::Caller;
use super::error::{ApiError, ErrorBody};
use super::extract::NamePath;
use crate::State as Shared;

/// A queue, its paused flag and its job counts by state.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"queue": "mail", "paused": false, "counts": {"available": 3, "completed": 120}}))]
pub struct QueueView {
    /// The queue.
    pub queue: String,
    /// Whether workers skip it.
    pub paused: bool,
    /// Jobs per state (states with none are absent).
    pub counts: BTreeMap<String, u64>,
}

/// Every queue the token may see, with counts.
#[utoipa::path(get, path = "/v1/queues", tag = "queues",
    responses((status = 200, body = [QueueView])), security(("bearer" = [])))]
pub(crate) async fn list(
    State(shared): State<Shared>,
    caller: Caller,
) -> Result<Json<Vec<QueueView>>, ApiError> {
    let queues = shared.kyu.queues().await?;
    Ok(Json(
        queues
            .into_iter()
            .filter(|q| caller.sees(&q.queue))
            .map(|q| QueueView {
                counts: q
                    .counts
                    .iter()
                    .map(|(s, n)| (s.as_str().to_string(), *n))
                    .collect(),
                queue: q.queue,
                paused: q.paused,
            })
            .collect(),
    ))
}

/// The queue's name, checked as the library checks it and against the token.
fn queue_of(caller: &Caller, name: &str) -> Result<(), ApiError> {
    kyu::validate::queue_name("queue", name)?;
    caller.check_queue("queue", name)
}

/// Pauses a queue: workers claim nothing from it until it is resumed.
#[utoipa::path(post, path = "/v1/queues/{name}/pause", tag = "queues",
    params(("name" = String, Path, description = "The queue")),
    responses((status = 204, description = "Paused"), (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn pause(
    State(shared): State<Shared>,
    caller: Caller,
    NamePath(name): NamePath,
) -> Result<axum::http::StatusCode, ApiError> {
    queue_of(&caller, &name)?;
    shared.kyu.pause(&name).await?;
    Ok(axum::http::StatusCode::NO_CONTENT)
}

/// Resumes a paused queue.
#[utoipa::path(post, path = "/v1/queues/{name}/resume", tag = "queues",
    params(("name" = String, Path, description = "The queue")),
    responses((status = 204, description = "Resumed"), (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn resume(
    State(shared): State<Shared>,
    caller: Caller,
    NamePath(name): NamePath,
) -> Result<axum::http::StatusCode, ApiError> {
    queue_of(&caller, &name)?;
    shared.kyu.resume(&name).await?;
    Ok(axum::http::StatusCode::NO_CONTENT)
}
