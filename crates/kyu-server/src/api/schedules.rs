//! Schedules: create or replace (by name), list, delete, enable, disable,
//! trigger, preview. A schedule
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
use super::extract::{JsonBody, NamePath, Query};
use super::jobs::{EnqueueRequest, RetryRequest};
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

/// A schedule to create or replace: when it fires and the job it enqueues.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"cron": "0 * * * *", "zone": "Asia/Tokyo", "kind": "sync_analytics", "args": {"tenant": 42}, "queue": "plugins", "priority": 0, "max_attempts": 3, "retry": {"type": "exponential", "initial": "1s", "cap": "1m"}, "timeout": "5m", "overlap": "skip", "misfire": "skip"}))]
pub struct ScheduleRequest {
    /// The cron expression (5 or 6 fields, e.g. `0 * * * *`).
    pub cron: String,
    /// The IANA time zone its fire times are in; default `UTC`.
    pub zone: Option<String>,
    /// The kind of its jobs.
    pub kind: String,
    /// The jobs' arguments (any JSON; default `{}`).
    #[serde(default)]
    #[schema(value_type = Object)]
    pub args: Option<serde_json::Value>,
    /// The jobs' queue; default `default`.
    pub queue: Option<String>,
    /// Lower runs first; default 0.
    pub priority: Option<i32>,
    /// Attempts before a job fails for good; default 5.
    pub max_attempts: Option<u32>,
    /// Delay before each retry; default exponential 1 s .. 16 s.
    pub retry: Option<RetryRequest>,
    /// Time limit of one attempt, e.g. `5m`.
    pub timeout: Option<String>,
    /// Labels of its jobs.
    #[serde(default)]
    pub tags: Vec<String>,
    /// When a fire time comes while the previous job is unfinished: `allow`, `skip` (default), `buffer_one`.
    pub overlap: Option<String>,
    /// Fire times missed (no scheduler running): `skip` (default) or `run_once`.
    pub misfire: Option<String>,
    /// Whether it fires; default true.
    pub enabled: Option<bool>,
}

/// Creates or replaces the schedule `name` (upsert: every process may declare
/// its schedules at start-up). Its next fire time is kept when the cron
/// expression and zone are unchanged, else it is the first after now.
#[utoipa::path(put, path = "/v1/schedules/{name}", tag = "schedules",
    params(("name" = String, Path, description = "The schedule")),
    request_body = ScheduleRequest,
    responses((status = 200, body = ScheduleView), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn put(
    State(shared): State<Shared>,
    caller: Caller,
    NamePath(name): NamePath,
    JsonBody(req): JsonBody<ScheduleRequest>,
) -> Result<Json<ScheduleView>, ApiError> {
    let now = shared.kyu.store().clock().now();
    let job = EnqueueRequest {
        kind: req.kind,
        args: req.args,
        queue: req.queue,
        priority: req.priority,
        run_at: None,
        delay: None,
        max_attempts: req.max_attempts,
        retry: req.retry,
        timeout: req.timeout,
        unique_key: None,
        unique_for: None,
        tags: req.tags,
    }
    .into_job(now)?;
    caller.check_queue("queue", &job.queue)?;
    // A schedule of this name in a queue the caller may not see is not theirs to replace.
    if let Some(old) = shared.kyu.store().get_schedule(&name).await? {
        if !caller.sees(&old.spec.job.queue) {
            return Err(ApiError::forbidden_queue("queue", &old.spec.job.queue));
        }
    }
    let mut spec = kyu::ScheduleSpec::new(name, req.cron, job);
    if let Some(z) = req.zone {
        // The library names the field `timezone`; this request calls it `zone`.
        let tz = kyu::parse_zone(&z).map_err(|e| {
            let mut err = ApiError::from(e);
            err.body.field = Some("zone".into());
            err.body.message = err.body.message.replacen("timezone:", "zone:", 1);
            err
        })?;
        spec = spec.zone(tz);
    }
    if let Some(o) = req.overlap {
        spec = spec.overlap(o.parse()?);
    }
    if let Some(m) = req.misfire {
        spec = spec.misfire(m.parse()?);
    }
    if let Some(e) = req.enabled {
        spec = spec.enabled(e);
    }
    Ok(Json(shared.kyu.schedule(spec).await?.into()))
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
