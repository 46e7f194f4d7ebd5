//! Schedules: list, delete, enable, disable, trigger, preview. A schedule
//! belongs to the queue of its job template: a token limited to queues
//! sees and acts on only the schedules whose jobs go to its queues.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, Utc};
use kyu::ScheduleRecord;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::auth::Caller;
use super::error::{ApiError, ErrorBody};
use super::extract::{NamePath, Query};
use crate::State as Shared;

/// A schedule as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"name": "nightly", "cron": "0 3 * * *", "zone": "UTC", "queue": "default", "kind": "report", "enabled": true, "next_fire_at": "2030-01-02T03:00:00Z", "last_fire_at": null, "last_job_id": null}))]
pub struct ScheduleView {
    /// Its name.
    pub name: String,
    /// The cron expression.
    pub cron: String,
    /// The time zone its fire times are in.
    pub zone: String,
    /// The queue its jobs go to.
    pub queue: String,
    /// The kind of its jobs.
    pub kind: String,
    /// Whether it fires.
    pub enabled: bool,
    /// The next fire time.
    pub next_fire_at: Option<DateTime<Utc>>,
    /// The last fire time.
    pub last_fire_at: Option<DateTime<Utc>>,
    /// The job of the last fire.
    pub last_job_id: Option<kyu::JobId>,
}

impl From<ScheduleRecord> for ScheduleView {
    fn from(r: ScheduleRecord) -> ScheduleView {
        ScheduleView {
            cron: r.spec.cron.as_str().to_string(),
            zone: r.spec.zone.name().to_string(),
            queue: r.spec.job.queue.clone(),
            kind: r.spec.job.kind.clone(),
            name: r.spec.name,
            enabled: r.spec.enabled,
            next_fire_at: r.next_fire_at,
            last_fire_at: r.last_fire_at,
            last_job_id: r.last_job_id,
        }
    }
}

/// The schedule if it exists and its queue is the caller's; 404 alike otherwise.
async fn visible(shared: &Shared, caller: &Caller, name: &str) -> Result<ScheduleRecord, ApiError> {
    match shared.kyu.store().get_schedule(name).await? {
        Some(s) if caller.sees(&s.spec.job.queue) => Ok(s),
        _ => Err(ApiError::not_found(format!("schedule {name:?} not found"))),
    }
}

/// Every schedule the token may see, by name.
#[utoipa::path(get, path = "/v1/schedules", tag = "schedules",
    responses((status = 200, body = [ScheduleView])), security(("bearer" = [])))]
pub(crate) async fn list(
    State(shared): State<Shared>,
    caller: Caller,
) -> Result<Json<Vec<ScheduleView>>, ApiError> {
    let all = shared.kyu.schedules().await?;
    Ok(Json(
        all.into_iter()
            .filter(|s| caller.sees(&s.spec.job.queue))
            .map(ScheduleView::from)
            .collect(),
    ))
}

/// Deletes a schedule (its jobs stay).
#[utoipa::path(delete, path = "/v1/schedules/{name}", tag = "schedules",
    params(("name" = String, Path, description = "The schedule")),
    responses((status = 204, description = "Deleted"), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn delete(
    State(shared): State<Shared>,
    caller: Caller,
    NamePath(name): NamePath,
) -> Result<StatusCode, ApiError> {
    visible(&shared, &caller, &name).await?;
    shared.kyu.unschedule(&name).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Enables a schedule: its next fire time is the first after now.
#[utoipa::path(post, path = "/v1/schedules/{name}/enable", tag = "schedules",
    params(("name" = String, Path, description = "The schedule")),
    responses((status = 204, description = "Enabled"), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn enable(
    State(shared): State<Shared>,
    caller: Caller,
    NamePath(name): NamePath,
) -> Result<StatusCode, ApiError> {
    visible(&shared, &caller, &name).await?;
    shared.kyu.enable_schedule(&name).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Disables a schedule.
#[utoipa::path(post, path = "/v1/schedules/{name}/disable", tag = "schedules",
    params(("name" = String, Path, description = "The schedule")),
    responses((status = 204, description = "Disabled"), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn disable(
    State(shared): State<Shared>,
    caller: Caller,
    NamePath(name): NamePath,
) -> Result<StatusCode, ApiError> {
    visible(&shared, &caller, &name).await?;
    shared.kyu.disable_schedule(&name).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The job a trigger made.
#[derive(Debug, Serialize, ToSchema)]
pub struct TriggerReply {
    /// Its id.
    pub id: kyu::JobId,
}

/// Runs a schedule now, enabled or not.
#[utoipa::path(post, path = "/v1/schedules/{name}/trigger", tag = "schedules",
    params(("name" = String, Path, description = "The schedule")),
    responses((status = 201, body = TriggerReply), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn trigger(
    State(shared): State<Shared>,
    caller: Caller,
    NamePath(name): NamePath,
) -> Result<(StatusCode, Json<TriggerReply>), ApiError> {
    visible(&shared, &caller, &name).await?;
    let id = shared.kyu.trigger(&name).await?;
    Ok((StatusCode::CREATED, Json(TriggerReply { id })))
}

/// How many fire times to preview.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct PreviewParams {
    /// 1 to 100 (default 5).
    pub count: Option<usize>,
}

/// The schedule's next fire times after now.
#[utoipa::path(get, path = "/v1/schedules/{name}/preview", tag = "schedules",
    params(("name" = String, Path, description = "The schedule"), PreviewParams),
    responses((status = 200, body = [DateTime<Utc>]), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn preview(
    State(shared): State<Shared>,
    caller: Caller,
    NamePath(name): NamePath,
    Query(p): Query<PreviewParams>,
) -> Result<Json<Vec<DateTime<Utc>>>, ApiError> {
    let count = p.count.unwrap_or(5);
    if count == 0 || count > 100 {
        return Err(ApiError::invalid(
            "count",
            format!("count: {count}; accepted: 1 to 100"),
        ));
    }
    let s = visible(&shared, &caller, &name).await?;
    let now = shared.kyu.store().clock().now();
    Ok(Json(
        s.spec
            .cron
            .fire_times(now, s.spec.zone)
            .take(count)
            .collect(),
    ))
}
