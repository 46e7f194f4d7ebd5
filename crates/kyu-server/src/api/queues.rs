//! Queues: list with counts, pause, resume, update (limits).

use std::collections::BTreeMap;

use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Deserializer, Serialize};
use utoipa::ToSchema;

use super::auth::Caller;
use super::error::{ApiError, ErrorBody};
use super::extract::{JsonBody, NamePath};
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

/// A change of a queue's settings. A field left out keeps its value; `null`
/// clears the limit.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"global_concurrency": 1, "rate": "10/1s", "rate_key": "args.api"}))]
pub struct QueueUpdate {
    /// At most this many jobs of the queue running at once across every
    /// process and host (1 or more); `null` clears the limit.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<u32>, nullable)]
    pub global_concurrency: Option<Option<u32>>,
    /// At most STARTS job starts in any window of PERIOD, e.g. "5000/1h",
    /// "10/1s", "10000/1d"; `null` clears the limit.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, nullable)]
    pub rate: Option<Option<String>>,
    /// Apply the rate per key: the path of the key in each job's args,
    /// "args.FIELD[.FIELD…]", e.g. "args.api" (a job's own `rate_key` given
    /// at enqueue wins; jobs without one share one window). Needs a rate
    /// (given here or already set). `null` makes the rate apply to the
    /// whole queue again; clearing the rate clears it too.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, nullable)]
    pub rate_key: Option<Option<String>>,
}

/// A field that is present: `Some(None)` for `null`, `Some(Some(v))` for a value.
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

/// A queue's limits after an update.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"queue": "batch", "global_concurrency": 1, "rate": "10/1s", "rate_key": "args.api"}))]
pub struct QueueSettings {
    /// The queue.
    pub queue: String,
    /// Its global concurrency, if it has one.
    pub global_concurrency: Option<u32>,
    /// Its rate limit, if it has one (STARTS/PERIOD).
    pub rate: Option<String>,
    /// The path of the rate's key in the jobs' args, if the rate is per key.
    pub rate_key: Option<String>,
}

/// Sets or clears a queue's limits (global concurrency, rate), for every
/// worker process and host.
#[utoipa::path(patch, path = "/v1/queues/{name}", tag = "queues",
    params(("name" = String, Path, description = "The queue")),
    request_body = QueueUpdate,
    responses((status = 200, body = QueueSettings), (status = 400, body = ErrorBody),
        (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn update(
    State(shared): State<Shared>,
    caller: Caller,
    NamePath(name): NamePath,
    JsonBody(req): JsonBody<QueueUpdate>,
) -> Result<Json<QueueSettings>, ApiError> {
    queue_of(&caller, &name)?;
    let update = kyu::LimitsUpdate {
        global_concurrency: req.global_concurrency,
        rate: match req.rate {
            None => None,
            Some(None) => Some(None),
            Some(Some(r)) => Some(Some(kyu::RateLimit::parse("rate", &r)?)),
        },
        rate_key: match req.rate_key {
            None => None,
            Some(None) => Some(None),
            Some(Some(p)) => Some(Some(kyu::RateKeyPath::parse("rate_key", &p)?)),
        },
    };
    if update == kyu::LimitsUpdate::default() {
        return Err(kyu::InvalidInput::new(
            "body",
            "nothing to change; give global_concurrency (a number from 1, or null to clear it), \
             rate (STARTS/PERIOD, e.g. \"5000/1h\", or null to clear it) and/or rate_key \
             (a path such as \"args.api\", or null to clear it)",
        )
        .into());
    }
    let now = shared.kyu.set_queue_limits(&name, update).await?;
    Ok(Json(QueueSettings {
        queue: name,
        global_concurrency: now.global_concurrency,
        rate: now.rate.map(|r| r.to_string()),
        rate_key: now.rate_key.map(|p| p.to_string()),
    }))
}
