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

/// The job a schedule enqueues at each fire time: as an enqueue, without
/// the per-job options a fire sets itself (run_at, unique key).
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"kind": "report", "args": {"format": "pdf"}, "queue": "reports", "priority": 0, "max_attempts": 3, "retry": {"type": "fixed", "delay": "1m"}, "timeout": "10m", "tags": ["nightly"]}))]
pub struct TemplateRequest {
    /// Which handler runs the job.
    pub kind: String,
    /// The args (any JSON; default `{}`).
    #[serde(default)]
    #[schema(value_type = Object)]
    pub args: Option<serde_json::Value>,
    /// The queue; default `default`.
    pub queue: Option<String>,
    /// Lower runs first; default 0.
    pub priority: Option<i32>,
    /// Attempts; default 5.
    pub max_attempts: Option<u32>,
    /// Delay before each retry.
    pub retry: Option<super::jobs::RetryRequest>,
    /// Time limit of one attempt, e.g. `30s`.
    pub timeout: Option<String>,
    /// Labels (each fire adds `schedule:NAME`).
    #[serde(default)]
    pub tags: Vec<String>,
}

impl TemplateRequest {
    fn into_template(self, shared: &Shared, field: &str) -> Result<kyu::JobTemplate, ApiError> {
        let req = super::jobs::EnqueueRequest {
            kind: self.kind,
            args: self.args,
            queue: self.queue,
            priority: self.priority,
            run_at: None,
            delay: None,
            max_attempts: self.max_attempts,
            retry: self.retry,
            timeout: self.timeout,
            unique_key: None,
            unique_for: None,
            tags: self.tags,
            rate_key: None,
        };
        let defaults = shared.options.kind_defaults.get(&req.kind);
        let job = req
            .into_job(shared.kyu.store().clock().now(), defaults)
            .map_err(|e| in_field(e, field))?;
        Ok(kyu::JobTemplate::from(job))
    }
}

/// Names an error's field inside `field`, e.g. `job.queue`.
fn in_field(mut e: ApiError, field: &str) -> ApiError {
    let inner = e.body.field.clone().unwrap_or_default();
    e.body.field = Some(format!("{field}.{inner}"));
    e.body.message = format!("{field}.{}", e.body.message);
    e
}

/// A schedule to create or replace (`PUT`): every field but `cron` and `job`
/// has a default, as in `kyu schedules add`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"cron": "0 3 * * *", "zone": "Asia/Tokyo", "job": {"kind": "report", "args": {"format": "pdf"}, "queue": "reports"}, "overlap": "skip", "misfire": "skip", "enabled": true}))]
pub struct ScheduleRequest {
    /// Cron: 5 fields (minute hour day-of-month month day-of-week), 6 with
    /// seconds first, or @yearly @monthly @weekly @daily @hourly.
    pub cron: String,
    /// IANA time zone whose wall clock the expression reads; default UTC.
    pub zone: Option<String>,
    /// The job each fire enqueues.
    pub job: TemplateRequest,
    /// allow, skip (default) or buffer_one.
    pub overlap: Option<String>,
    /// skip (default) or run_once.
    pub misfire: Option<String>,
    /// Default true.
    pub enabled: Option<bool>,
}

/// Changes to a schedule (`PATCH`): only the fields given change.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"cron": "30 3 * * *", "enabled": false}))]
pub struct ScheduleUpdate {
    /// A new cron expression.
    pub cron: Option<String>,
    /// A new time zone.
    pub zone: Option<String>,
    /// A new job template (replaces the whole template).
    pub job: Option<TemplateRequest>,
    /// allow, skip or buffer_one.
    pub overlap: Option<String>,
    /// skip or run_once.
    pub misfire: Option<String>,
    /// Enable or disable.
    pub enabled: Option<bool>,
}

/// The parts of a spec, parsed as `kyu schedules add` parses them (same words).
struct Parts {
    cron: Option<kyu::CronExpr>,
    zone: Option<kyu::Tz>,
    overlap: Option<kyu::OverlapPolicy>,
    misfire: Option<kyu::MisfirePolicy>,
}

fn parse_parts(
    cron: Option<&str>,
    zone: Option<&str>,
    overlap: Option<&str>,
    misfire: Option<&str>,
) -> Result<Parts, ApiError> {
    Ok(Parts {
        cron: cron.map(|c| c.parse::<kyu::CronExpr>()).transpose()?,
        // The body's field is `zone`; the words are the CLI's (`--tz`).
        zone: zone
            .map(|z| kyu::parse_zone(z).map_err(|e| kyu::InvalidInput::new("zone", e.problem)))
            .transpose()?,
        overlap: overlap
            .map(|o| o.parse::<kyu::OverlapPolicy>())
            .transpose()?,
        misfire: misfire
            .map(|m| m.parse::<kyu::MisfirePolicy>())
            .transpose()?,
    })
}

/// An existing schedule `name` that the caller may not see: its name is
/// taken, and nothing else is said about it.
fn name_taken(name: &str) -> ApiError {
    ApiError::new(
        StatusCode::CONFLICT,
        "name_taken",
        format!("name: schedule name {name:?} is taken; accepted: another name"),
    )
    .field("name")
}

/// Validates and stores `spec`, answering its view.
async fn save(shared: &Shared, spec: kyu::ScheduleSpec) -> Result<ScheduleView, ApiError> {
    spec.validate(&kyu::Limits::default())?;
    Ok(shared.kyu.schedule(spec).await?.into())
}

/// Creates or replaces a schedule (201 created, 200 replaced). Validation
/// errors carry the words of `kyu schedules add`. A token limited to queues
/// may only give a job queue of its own, and may not replace another
/// tenant's schedule (409 `name_taken`, nothing else said).
#[utoipa::path(put, path = "/v1/schedules/{name}", tag = "schedules",
    params(("name" = String, Path, description = "The schedule")), request_body = ScheduleRequest,
    responses((status = 201, body = ScheduleView), (status = 200, body = ScheduleView),
        (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn upsert(
    State(shared): State<Shared>,
    caller: Caller,
    NamePath(name): NamePath,
    super::extract::JsonBody(req): super::extract::JsonBody<ScheduleRequest>,
) -> Result<(StatusCode, Json<ScheduleView>), ApiError> {
    let parts = parse_parts(
        Some(&req.cron),
        req.zone.as_deref(),
        req.overlap.as_deref(),
        req.misfire.as_deref(),
    )?;
    let job = req.job.into_template(&shared, "job")?;
    caller.check_queue("job.queue", &job.queue)?;
    let existing = shared.kyu.store().get_schedule(&name).await?;
    if let Some(s) = &existing {
        if !caller.sees(&s.spec.job.queue) {
            return Err(name_taken(&name));
        }
    }
    let mut spec = kyu::ScheduleSpec::new(name, parts.cron.expect("given"), job)
        .enabled(req.enabled.unwrap_or(true));
    if let Some(z) = parts.zone {
        spec = spec.zone(z);
    }
    if let Some(o) = parts.overlap {
        spec = spec.overlap(o);
    }
    if let Some(m) = parts.misfire {
        spec = spec.misfire(m);
    }
    let view = save(&shared, spec).await?;
    let status = if existing.is_some() {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((status, Json(view)))
}

/// Changes some fields of a schedule; the others stay.
#[utoipa::path(patch, path = "/v1/schedules/{name}", tag = "schedules",
    params(("name" = String, Path, description = "The schedule")), request_body = ScheduleUpdate,
    responses((status = 200, body = ScheduleView), (status = 400, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn update(
    State(shared): State<Shared>,
    caller: Caller,
    NamePath(name): NamePath,
    super::extract::JsonBody(req): super::extract::JsonBody<ScheduleUpdate>,
) -> Result<Json<ScheduleView>, ApiError> {
    let parts = parse_parts(
        req.cron.as_deref(),
        req.zone.as_deref(),
        req.overlap.as_deref(),
        req.misfire.as_deref(),
    )?;
    let job = req
        .job
        .map(|j| j.into_template(&shared, "job"))
        .transpose()?;
    if let Some(j) = &job {
        caller.check_queue("job.queue", &j.queue)?;
    }
    let old = visible(&shared, &caller, &name).await?.spec;
    let spec = kyu::ScheduleSpec::new(
        old.name,
        parts.cron.unwrap_or(old.cron),
        job.unwrap_or(old.job),
    )
    .zone(parts.zone.unwrap_or(old.zone))
    .overlap(parts.overlap.unwrap_or(old.overlap))
    .misfire(parts.misfire.unwrap_or(old.misfire))
    .enabled(req.enabled.unwrap_or(old.enabled));
    Ok(Json(save(&shared, spec).await?))
}
