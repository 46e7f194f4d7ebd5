//! Workers over HTTP: a worker in any language registers, claims jobs with a
//! long poll, heartbeats its leases, and finishes each attempt with the
//! lease token its claim gave it. It is one more worker: every call is the
//! same store call a local worker makes (claim, heartbeat, finish,
//! set_progress, the worker registry).
//!
//! The protocol, every route under `/v1/workers`, scope `work`, filtered by
//! the token's queue patterns:
//!
//! 1. `POST /v1/workers` `{name, queues, kinds, capacity, lease_ms?}` →
//!    `{worker_id, heartbeat_interval_ms, lease_ms, max_wait_ms}`. The
//!    worker is recorded in the store's worker registry (`kyu queues ls`
//!    counts it) and stays registered while it calls at least once per
//!    three lease periods.
//! 2. `POST /v1/workers/{worker}/claim` `{max?, wait_ms?}` → `{jobs, command}`:
//!    up to `max` (at most `capacity`) jobs of its kinds from its queues,
//!    each with a `lease_token`. With `wait_ms` (up to the server's
//!    `max_wait`, 30 s by default) and nothing to claim, the request waits
//!    and is answered the moment a job becomes available (the store's
//!    wake-up), a scheduled job comes due, or the wait ends (`jobs: []`).
//! 3. `POST /v1/workers/{worker}/heartbeat` `{leases: [{job_id, attempt,
//!    lease_token}]}` every `heartbeat_interval_ms`, holding jobs or not →
//!    per lease `extended` or `lost` and `cancel_requested`, and the
//!    `command`: `run`, `quiet` (claim nothing more, finish what you hold)
//!    or `stop` (release what you hold and leave).
//! 4. Finishing, per job under the worker's path
//!    (`/v1/workers/{worker}/jobs/{id}/complete|fail|snooze|progress`) or
//!    many at once (`POST /v1/workers/{worker}/ack`, one store batch). Each
//!    write names the job, the attempt and the lease token: a token that is
//!    not the claim's, or an attempt that no longer holds (the lease expired
//!    and the job was rescued), answers 409 `lease_lost` and changes nothing.
//!    These writes do not need the worker's registration to be live: a
//!    lease that still holds can be finished. Besides the token and the
//!    store's fence, the server checks the attempt is this worker's (its
//!    record of the worker's claims, else the job's row): a snooze or a
//!    release gives the attempt number back, so a late write of the first
//!    holder must not land on the next holder's attempt of the same number.
//! 5. `DELETE /v1/workers/{worker}`: leave. The jobs it holds go back to
//!    `available` at once (as a local worker's graceful shutdown releases
//!    them; the attempt is not counted) and its registration is removed.
//!
//! A worker that vanishes is a crashed worker: its leases run out, the
//! reaper rescues its jobs (the lost attempt recorded), its registration
//! expires.
//!
//! Durations in this protocol are integers of milliseconds (`*_ms`).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, Utc};
use kyu::store::{Claim, ClaimedJob, Finish, FinishOutcome, FinishResult, LeaseRef};
use kyu::{JobId, JobState, Progress, WorkerInfo};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use utoipa::ToSchema;

use super::auth::Caller;
use super::error::{ApiError, ErrorBody};
use super::extract::JsonBody;
use super::worker_sessions::{lease_token, unknown_worker, verify, Held, Session};
use crate::State as Shared;

/// What remote workers are told to do, in every claim and heartbeat reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum WorkerCommand {
    /// Claim and run jobs.
    Run,
    /// Claim nothing more; finish the jobs held, then leave.
    Quiet,
    /// Release the jobs held (`DELETE /v1/workers/{worker}`) and stop.
    Stop,
}

/// The command remote workers get, set by whoever runs the server (`kyu
/// serve` says `quiet` when it starts shutting down, `stop` before its
/// listener closes). Cheap to clone; clones share the command.
#[derive(Debug, Clone)]
pub struct WorkerControl(Arc<tokio::sync::watch::Sender<WorkerCommand>>);

impl Default for WorkerControl {
    fn default() -> Self {
        WorkerControl(Arc::new(tokio::sync::watch::Sender::new(
            WorkerCommand::Run,
        )))
    }
}

impl WorkerControl {
    /// Tells every remote worker `command` from now on; long polls waiting
    /// for jobs answer at once when it is not `run`.
    pub fn set(&self, command: WorkerCommand) {
        self.0.send_replace(command);
    }

    /// The command now.
    pub fn get(&self) -> WorkerCommand {
        *self.0.borrow()
    }

    fn subscribe(&self) -> tokio::sync::watch::Receiver<WorkerCommand> {
        self.0.subscribe()
    }
}

/// A worker's registration.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "resizer-1", "queues": ["images"], "kinds": ["resize"], "capacity": 8}))]
pub struct RegisterRequest {
    /// A name for the worker (1 to 128 characters), shown on the jobs it runs.
    pub name: String,
    /// The queues it works (names, not patterns), each allowed by the token.
    pub queues: Vec<String>,
    /// The kinds it runs: it is given jobs of these kinds only.
    pub kinds: Vec<String>,
    /// Most jobs it takes in one claim. Default 10; 1 to the server's page limit (1000).
    pub capacity: Option<usize>,
    /// Its lease length in ms: a job whose lease is not extended in time
    /// runs again elsewhere. Default the server's (30 000); at least 1000.
    pub lease_ms: Option<u64>,
}

/// A registered worker.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(example = json!({"worker_id": "resizer-1-5f3a9c0e1b2d4a67", "heartbeat_interval_ms": 10000, "lease_ms": 30000, "max_wait_ms": 30000}))]
pub struct RegisterReply {
    /// The id to call the other routes with.
    pub worker_id: String,
    /// How often to heartbeat (a third of the lease).
    pub heartbeat_interval_ms: u64,
    /// The lease length.
    pub lease_ms: u64,
    /// The longest `wait_ms` a claim may give.
    pub max_wait_ms: u64,
}

/// A claim.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"max": 8, "wait_ms": 30000}))]
pub struct ClaimRequest {
    /// Most jobs to take; default and at most the worker's capacity.
    pub max: Option<usize>,
    /// With nothing to claim, wait this long for a job (0 to `max_wait_ms`). Default 0.
    pub wait_ms: Option<u64>,
}

/// A claimed job: everything the worker needs to run it.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(example = json!({"id": 42, "attempt": 1, "max_attempts": 5, "queue": "images", "kind": "resize", "args": {"w": 64}, "timeout_ms": 30000, "lease_token": "9c1f…", "lease_expires_at": "2026-01-01T00:00:30Z", "run_at": "2026-01-01T00:00:00Z", "tags": [], "unique_key": null}))]
pub struct ClaimedJobView {
    /// The id.
    pub id: JobId,
    /// This attempt's number, 1-based.
    pub attempt: u32,
    /// Attempts allowed.
    pub max_attempts: u32,
    /// The queue.
    pub queue: String,
    /// The kind.
    pub kind: String,
    /// The args, as enqueued.
    #[schema(value_type = Object)]
    pub args: Box<RawValue>,
    /// Time limit of this attempt, if the job has one.
    pub timeout_ms: Option<u64>,
    /// The token every write about this attempt must carry.
    pub lease_token: String,
    /// When the lease runs out unless a heartbeat extends it.
    pub lease_expires_at: DateTime<Utc>,
    /// When the job became runnable.
    pub run_at: DateTime<Utc>,
    /// Its tags.
    pub tags: Vec<String>,
    /// Its unique key, if any.
    pub unique_key: Option<String>,
}

/// What a claim got.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(example = json!({"jobs": [{"id": 42, "attempt": 1, "max_attempts": 5, "queue": "images", "kind": "resize", "args": {"w": 64}, "timeout_ms": null, "lease_token": "9c1f…", "lease_expires_at": "2026-01-01T00:00:30Z", "run_at": "2026-01-01T00:00:00Z", "tags": [], "unique_key": null}], "command": "run"}))]
pub struct ClaimReply {
    /// The jobs, now running under this worker's lease; empty if none came in the wait.
    pub jobs: Vec<ClaimedJobView>,
    /// What the worker should do.
    pub command: WorkerCommand,
}

/// One lease, as a claim gave it.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"job_id": 42, "attempt": 1, "lease_token": "9c1f…"}))]
pub struct LeaseRequest {
    /// The job.
    pub job_id: JobId,
    /// The attempt.
    pub attempt: u32,
    /// The claim's lease token.
    pub lease_token: String,
}

/// A heartbeat: every lease held.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"leases": [{"job_id": 42, "attempt": 1, "lease_token": "9c1f…"}]}))]
pub struct HeartbeatRequest {
    /// The leases to extend (may be empty: the worker is alive and idle).
    #[serde(default)]
    pub leases: Vec<LeaseRequest>,
}

/// What became of one lease.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum LeaseStatus {
    /// Extended: the job is the worker's for another lease period.
    Extended,
    /// Lost: the job no longer runs this attempt here (rescued, finished,
    /// or the token is not the claim's); stop it, its result would be refused.
    Lost,
}

/// One lease's answer.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct LeaseReply {
    /// The job.
    pub job_id: JobId,
    /// The attempt.
    pub attempt: u32,
    /// Extended or lost.
    pub status: LeaseStatus,
    /// An operator asked to cancel the job: stop it and fail it (or complete it if done).
    pub cancel_requested: bool,
}

/// A heartbeat's answer.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(example = json!({"leases": [{"job_id": 42, "attempt": 1, "status": "extended", "cancel_requested": false}], "lease_expires_at": "2026-01-01T00:01:00Z", "command": "run"}))]
pub struct HeartbeatReply {
    /// One per lease sent, in order.
    pub leases: Vec<LeaseReply>,
    /// When the extended leases run out.
    pub lease_expires_at: DateTime<Utc>,
    /// What the worker should do.
    pub command: WorkerCommand,
}

/// A successful attempt.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"attempt": 1, "lease_token": "9c1f…", "result": {"url": "https://example.com/64.png"}}))]
pub struct CompleteRequest {
    /// The attempt.
    pub attempt: u32,
    /// The claim's lease token.
    pub lease_token: String,
    /// The job's result (any JSON), kept with the job.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub result: Option<serde_json::Value>,
}

/// A failed attempt.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"attempt": 1, "lease_token": "9c1f…", "message": "upstream timed out", "permanent": false, "retry_after_ms": 5000}))]
pub struct FailRequest {
    /// The attempt.
    pub attempt: u32,
    /// The claim's lease token.
    pub lease_token: String,
    /// What went wrong, recorded with the attempt.
    pub message: String,
    /// Fail the job now, attempts left or not. Default false: it is retried
    /// while attempts are left.
    #[serde(default)]
    pub permanent: bool,
    /// Retry after this many ms instead of the job's retry policy.
    pub retry_after_ms: Option<u64>,
}

/// A snoozed attempt: run again later without using an attempt.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"attempt": 1, "lease_token": "9c1f…", "delay_ms": 60000}))]
pub struct SnoozeRequest {
    /// The attempt.
    pub attempt: u32,
    /// The claim's lease token.
    pub lease_token: String,
    /// Run again after this many ms.
    pub delay_ms: u64,
}

/// A running attempt's progress.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"attempt": 1, "lease_token": "9c1f…", "percent": 40, "message": "step 2 of 5"}))]
pub struct ProgressRequest {
    /// The attempt.
    pub attempt: u32,
    /// The claim's lease token.
    pub lease_token: String,
    /// 0 to 100.
    pub percent: u8,
    /// A short note.
    #[serde(default)]
    pub message: String,
}

/// What a write did.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(example = json!({"job_id": 42, "state": "completed"}))]
pub struct FinishReply {
    /// The job.
    pub job_id: JobId,
    /// Its state now (`running` after a progress report).
    #[schema(value_type = String)]
    pub state: JobState,
}

/// How one attempt in a batch acknowledgement ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AckOutcome {
    /// Success (`result` optional).
    Complete,
    /// An error (`message`; `permanent`, `retry_after_ms` optional).
    Fail,
    /// Run again after `delay_ms`, no attempt used.
    Snooze,
    /// Give the job back unstarted or interrupted: `available` at once, the
    /// attempt not counted (`message` optional).
    Release,
}

/// One attempt's end, in a batch.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"job_id": 42, "attempt": 1, "lease_token": "9c1f…", "outcome": "complete", "result": {"ok": true}}))]
pub struct AckItem {
    /// The job.
    pub job_id: JobId,
    /// The attempt.
    pub attempt: u32,
    /// The claim's lease token.
    pub lease_token: String,
    /// How it ended.
    pub outcome: AckOutcome,
    /// `complete`: the result.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub result: Option<serde_json::Value>,
    /// `fail` (required), `release`: what happened.
    pub message: Option<String>,
    /// `fail`: fail the job now.
    #[serde(default)]
    pub permanent: bool,
    /// `fail`: retry after this many ms instead of the retry policy.
    pub retry_after_ms: Option<u64>,
    /// `snooze` (required): run again after this many ms.
    pub delay_ms: Option<u64>,
}

/// Many attempts' ends, written as one store batch.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"acks": [{"job_id": 42, "attempt": 1, "lease_token": "9c1f…", "outcome": "complete"}, {"job_id": 43, "attempt": 2, "lease_token": "77aa…", "outcome": "fail", "message": "bad input", "permanent": true}]}))]
pub struct AckRequest {
    /// The attempts (at most the server's page limit, 1000).
    pub acks: Vec<AckItem>,
}

/// What became of one acknowledged attempt.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AckResult {
    /// The job.
    pub job_id: JobId,
    /// `applied`, or `lease_lost` (nothing was changed for this job).
    pub result: String,
    /// With `applied`: the job's state now.
    #[schema(value_type = Option<String>)]
    pub state: Option<JobState>,
}

/// One result per acknowledged attempt, in order.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(example = json!({"results": [{"job_id": 42, "result": "applied", "state": "completed"}, {"job_id": 43, "result": "lease_lost", "state": null}]}))]
pub struct AckReply {
    /// One per item.
    pub results: Vec<AckResult>,
}

/// What leaving released.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(example = json!({"released": [42, 43]}))]
pub struct LeaveReply {
    /// The jobs given back (now `available`).
    pub released: Vec<JobId>,
}

/// The worker id from the path.
pub struct WorkerPath(pub String);

/// The worker id and job id from the path.
pub struct WorkerJobPath(pub String, pub JobId);

async fn path_params<S: Send + Sync>(
    parts: &mut Parts,
    state: &S,
) -> Result<HashMap<String, String>, ApiError> {
    axum::extract::Path::<HashMap<String, String>>::from_request_parts(parts, state)
        .await
        .map(|axum::extract::Path(m)| m)
        .map_err(|e| ApiError::invalid("worker", format!("path: {}", e.body_text())))
}

impl<S: Send + Sync> FromRequestParts<S> for WorkerPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let mut m = path_params(parts, state).await?;
        Ok(WorkerPath(m.remove("worker").unwrap_or_default()))
    }
}

impl<S: Send + Sync> FromRequestParts<S> for WorkerJobPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let mut m = path_params(parts, state).await?;
        let raw = m.remove("id").unwrap_or_default();
        let id = raw
            .parse::<JobId>()
            .ok()
            .filter(|id| *id > 0)
            .ok_or_else(|| {
                ApiError::invalid(
                    "id",
                    format!("id: {raw:?} is not a job id; accepted: a positive integer"),
                )
            })?;
        Ok(WorkerJobPath(m.remove("worker").unwrap_or_default(), id))
    }
}

fn ms(d: Duration) -> u64 {
    d.as_millis().try_into().unwrap_or(u64::MAX)
}

/// 409 `lease_lost`.
fn lease_lost(job: JobId, attempt: u32) -> ApiError {
    ApiError::new(
        StatusCode::CONFLICT,
        "lease_lost",
        format!(
            "job {job} attempt {attempt}: this worker does not hold this lease (it expired and \
             the job was rescued, the attempt was already finished, or the lease_token is not \
             the one its claim gave); nothing was changed; accepted: the job_id, attempt and \
             lease_token of a claim by this worker, while its lease holds"
        ),
    )
    .field("lease_token")
}

/// Registers a remote worker.
#[utoipa::path(post, path = "/v1/workers", tag = "workers", request_body = RegisterRequest,
    responses(
        (status = 201, description = "Registered", body = RegisterReply),
        (status = 400, description = "Bad input", body = ErrorBody),
        (status = 403, description = "Scope or queue not allowed", body = ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn register(
    State(shared): State<Shared>,
    caller: Caller,
    JsonBody(req): JsonBody<RegisterRequest>,
) -> Result<(StatusCode, Json<RegisterReply>), ApiError> {
    kyu::validate::name("name", "worker name", &req.name)?;
    if req.queues.is_empty() {
        return Err(ApiError::invalid(
            "queues",
            "queues: empty; accepted: the names of the queues the worker works, e.g. [\"default\"]",
        ));
    }
    for (i, q) in req.queues.iter().enumerate() {
        let field = format!("queues[{i}]");
        kyu::validate::queue_name(&field, q)?;
        caller.check_queue(&field, q)?;
    }
    if req.kinds.is_empty() {
        return Err(ApiError::invalid(
            "kinds",
            "kinds: empty; accepted: the kinds the worker runs, e.g. [\"send_email\"]",
        ));
    }
    for (i, k) in req.kinds.iter().enumerate() {
        kyu::validate::kind_name(&format!("kinds[{i}]"), k)?;
    }
    let max = shared.options.max_page;
    let capacity = req.capacity.unwrap_or(10);
    if capacity == 0 || capacity > max {
        return Err(ApiError::invalid(
            "capacity",
            format!("capacity: {capacity} is not accepted; accepted: 1 to {max}"),
        ));
    }
    let lease = req
        .lease_ms
        .map(Duration::from_millis)
        .unwrap_or(shared.options.worker_lease);
    kyu::validate::lease("lease_ms", lease)?;
    if lease > Duration::from_secs(24 * 3600) {
        return Err(ApiError::invalid(
            "lease_ms",
            format!(
                "lease_ms: {} is not accepted; accepted: 1000 to 86400000 (24 h)",
                ms(lease)
            ),
        ));
    }
    let mut queues = req.queues;
    queues.dedup();
    let info = WorkerInfo {
        id: format!("{}-{:016x}", req.name, rand::random::<u64>()),
        queues,
        kinds: Some(req.kinds),
    };
    let now = shared.kyu.store().clock().now();
    let session = shared.workers.insert(info, capacity, lease, now);
    shared
        .kyu
        .store()
        .worker_seen(&session.info, session.ttl())
        .await?;
    tracing::info!(worker = %session.info.id, queues = ?session.info.queues, "remote worker registered");
    Ok((
        StatusCode::CREATED,
        Json(RegisterReply {
            worker_id: session.info.id.clone(),
            heartbeat_interval_ms: ms(session.heartbeat_interval()),
            lease_ms: ms(lease),
            max_wait_ms: ms(shared.options.max_wait),
        }),
    ))
}

/// Claims up to `max` jobs, waiting up to `wait_ms` for one.
#[utoipa::path(post, path = "/v1/workers/{worker}/claim", tag = "workers",
    params(("worker" = String, Path, description = "The worker id")),
    request_body = ClaimRequest,
    responses(
        (status = 200, description = "The jobs claimed (maybe none)", body = ClaimReply),
        (status = 400, description = "Bad input (e.g. wait_ms over the limit)", body = ErrorBody),
        (status = 404, description = "No such worker", body = ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn claim(
    State(shared): State<Shared>,
    caller: Caller,
    WorkerPath(worker): WorkerPath,
    JsonBody(req): JsonBody<ClaimRequest>,
) -> Result<Json<ClaimReply>, ApiError> {
    let max_wait = shared.options.max_wait;
    let wait = Duration::from_millis(req.wait_ms.unwrap_or(0));
    if wait > max_wait {
        return Err(ApiError::invalid(
            "wait_ms",
            format!(
                "wait_ms: {} is not accepted; accepted: 0 to {} (the server's longest wait)",
                ms(wait),
                ms(max_wait)
            ),
        ));
    }
    let session = shared.workers.touch(&shared, &caller, &worker).await?;
    let max = req.max.unwrap_or(session.capacity);
    if max == 0 || max > session.capacity {
        return Err(ApiError::invalid(
            "max",
            format!(
                "max: {max} is not accepted; accepted: 1 to the worker's capacity ({})",
                session.capacity
            ),
        ));
    }
    let store = shared.kyu.store();
    let mut wake = store.subscribe();
    let mut control = shared.options.worker_control.subscribe();
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let command = *control.borrow_and_update();
        if command != WorkerCommand::Run {
            return Ok(Json(ClaimReply {
                jobs: Vec::new(),
                command,
            }));
        }
        // Seen before claiming: a job enqueued from here on wakes the wait.
        wake.borrow_and_update();
        let jobs = store
            .claim(Claim {
                worker: session.info.id.clone(),
                queues: session.info.queues.clone(),
                kinds: session.info.kinds.clone(),
                limit: max,
                lease: session.lease,
                unstarted: false,
            })
            .await?;
        let now = tokio::time::Instant::now();
        if !jobs.is_empty() || now >= deadline {
            let jobs = claimed(&shared, &session, jobs).await?;
            return Ok(Json(ClaimReply { jobs, command }));
        }
        // Nothing yet: wait for a wake-up (an enqueue, a retry, a rescue, a
        // resume), the next scheduled job's time, or the end of the wait.
        let mut until = deadline;
        if let Some(at) = store.next_scheduled(&session.info.queues).await? {
            let in_store = store.clock().now();
            // A due scheduled job not claimed is of another kind: it is no
            // reason to wake, but it hides later ones, so look again in a second.
            let d = if at > in_store {
                (at - in_store).to_std().unwrap_or(Duration::ZERO)
            } else {
                Duration::from_secs(1)
            };
            until = until.min(now + d);
        }
        tokio::select! {
            changed = wake.changed() => if changed.is_err() {
                tokio::time::sleep_until(until).await;
            },
            _ = control.changed() => {}
            _ = tokio::time::sleep_until(until) => {}
        }
    }
}

/// The API's view of claimed jobs, with their lease tokens; recorded as held.
async fn claimed(
    shared: &Shared,
    session: &Session,
    jobs: Vec<ClaimedJob>,
) -> Result<Vec<ClaimedJobView>, ApiError> {
    if jobs.is_empty() {
        return Ok(Vec::new());
    }
    let key = shared.workers.key(shared).await?;
    let id = &session.info.id;
    shared.workers.hold(
        id,
        jobs.iter().map(|j| {
            (
                j.id,
                Held {
                    attempt: j.attempt,
                    retry: j.retry,
                },
            )
        }),
    );
    Ok(jobs
        .into_iter()
        .map(|j| ClaimedJobView {
            lease_token: lease_token(key, id, j.id, j.attempt),
            args: RawValue::from_string(j.args).unwrap_or_else(|e| {
                tracing::warn!(error = %e, "stored args are not JSON; sent as a string");
                RawValue::from_string("null".into()).expect("null is JSON")
            }),
            id: j.id,
            attempt: j.attempt,
            max_attempts: j.max_attempts,
            queue: j.queue,
            kind: j.kind,
            timeout_ms: j.timeout.map(ms),
            lease_expires_at: j.lease_expires_at,
            run_at: j.run_at,
            tags: j.tags,
            unique_key: j.unique_key,
        })
        .collect())
}

/// Extends the leases of the jobs a worker holds; tells it what to do.
#[utoipa::path(post, path = "/v1/workers/{worker}/heartbeat", tag = "workers",
    params(("worker" = String, Path, description = "The worker id")),
    request_body = HeartbeatRequest,
    responses(
        (status = 200, description = "Each lease extended or lost, and the command", body = HeartbeatReply),
        (status = 400, description = "Bad input", body = ErrorBody),
        (status = 404, description = "No such worker: register again", body = ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn heartbeat(
    State(shared): State<Shared>,
    caller: Caller,
    WorkerPath(worker): WorkerPath,
    JsonBody(req): JsonBody<HeartbeatRequest>,
) -> Result<Json<HeartbeatReply>, ApiError> {
    check_batch(&shared, "leases", req.leases.len())?;
    let session = shared.workers.touch(&shared, &caller, &worker).await?;
    let key = shared.workers.key(&shared).await?;
    let store = shared.kyu.store();
    let mut genuine: Vec<LeaseRef> = Vec::with_capacity(req.leases.len());
    for l in &req.leases {
        if verify(key, &worker, l.job_id, l.attempt, &l.lease_token)
            && holds(&shared, &caller, &worker, true, l.job_id, l.attempt)
                .await?
                .is_some()
        {
            genuine.push(LeaseRef {
                id: l.job_id,
                attempt: l.attempt,
            });
        }
    }
    let reply = store.heartbeat(&worker, &genuine, session.lease).await?;
    let lease_expires_at = store.clock().now()
        + chrono::Duration::from_std(session.lease).unwrap_or(chrono::Duration::MAX);
    let leases: Vec<LeaseReply> = req
        .leases
        .iter()
        .map(|l| {
            let held = genuine
                .iter()
                .any(|g| g.id == l.job_id && g.attempt == l.attempt)
                && !reply.lost.contains(&l.job_id);
            LeaseReply {
                job_id: l.job_id,
                attempt: l.attempt,
                status: if held {
                    LeaseStatus::Extended
                } else {
                    LeaseStatus::Lost
                },
                cancel_requested: held && reply.cancel_requested.contains(&l.job_id),
            }
        })
        .collect();
    shared.workers.release(
        &worker,
        leases
            .iter()
            .filter(|l| l.status == LeaseStatus::Lost)
            .map(|l| l.job_id),
    );
    Ok(Json(HeartbeatReply {
        leases,
        lease_expires_at,
        command: shared.options.worker_control.get(),
    }))
}

fn check_batch(shared: &Shared, field: &str, n: usize) -> Result<(), ApiError> {
    let max = shared.options.max_page;
    if n > max {
        return Err(ApiError::invalid(
            field,
            format!("{field}: {n} items are not accepted; accepted: up to {max} per request"),
        ));
    }
    Ok(())
}

/// One write to fence: which attempt and how it ended.
struct Write {
    job: JobId,
    attempt: u32,
    token: String,
    outcome: Pending,
}

/// How an attempt ended, before its retry time is known.
enum Pending {
    Complete(Option<String>),
    Fail {
        message: String,
        permanent: bool,
        retry_after: Option<Duration>,
    },
    Snooze(Duration),
    Release(String),
}

fn later(now: DateTime<Utc>, d: Duration, field: &str) -> Result<DateTime<Utc>, ApiError> {
    chrono::Duration::from_std(d)
        .ok()
        .and_then(|d| now.checked_add_signed(d))
        .ok_or_else(|| {
            ApiError::invalid(
                field,
                format!("{field}: too long; accepted: up to 100 years in ms"),
            )
        })
}

/// Whether `worker` holds attempt `attempt` of `job`, as far as can be told
/// before the store's fence (job id + attempt): this server's record of the
/// worker's claims while its session is live, else the job's own row
/// (running that attempt, for this worker, in a queue the caller may see).
/// The second check matters because a snooze or a release gives the attempt
/// number back: the store alone would take a late write of the first holder
/// for the next one's. With the job's retry policy.
async fn holds(
    shared: &Shared,
    caller: &Caller,
    worker: &str,
    live: bool,
    job: JobId,
    attempt: u32,
) -> Result<Option<kyu::RetryPolicy>, ApiError> {
    if live {
        if let Some(h) = shared.workers.held(worker, job, attempt) {
            return Ok(Some(h.retry));
        }
    }
    Ok(match shared.kyu.store().get(job).await? {
        Some(j)
            if caller.sees(&j.queue)
                && j.state == JobState::Running
                && j.attempt == attempt
                && j.worker.as_deref() == Some(worker) =>
        {
            Some(j.retry)
        }
        _ => None,
    })
}

/// Checks each write's lease token and the caller's right to its job, then
/// writes the genuine ones in one `Store::finish` batch. One result per
/// write, in order: the job's state, or `None` for a lost lease.
async fn finish_all(
    shared: &Shared,
    caller: &Caller,
    worker: &str,
    writes: Vec<Write>,
) -> Result<Vec<Option<JobState>>, ApiError> {
    let store = shared.kyu.store();
    let key = shared.workers.key(shared).await?;
    let now = store.clock().now();
    let session = shared.workers.peek(caller, worker, now);
    let mut batch = Vec::new();
    let mut slots = Vec::with_capacity(writes.len());
    for w in writes {
        let retry = if verify(key, worker, w.job, w.attempt, &w.token) {
            holds(shared, caller, worker, session.is_some(), w.job, w.attempt).await?
        } else {
            None
        };
        let Some(retry) = retry else {
            slots.push(None);
            continue;
        };
        let outcome = match w.outcome {
            Pending::Complete(result) => FinishOutcome::Completed { result },
            Pending::Fail {
                message,
                permanent,
                retry_after,
            } => FinishOutcome::Errored {
                message,
                permanent,
                retry_at: match retry_after {
                    Some(d) => later(now, d, "retry_after_ms")?,
                    None => later(now, retry.delay(w.attempt), "retry_after_ms")?,
                },
            },
            Pending::Snooze(d) => FinishOutcome::Snoozed {
                until: later(now, d, "delay_ms")?,
            },
            Pending::Release(message) => FinishOutcome::Released { message },
        };
        slots.push(Some(batch.len()));
        batch.push(Finish {
            lease: LeaseRef {
                id: w.job,
                attempt: w.attempt,
            },
            worker: worker.to_string(),
            outcome,
        });
    }
    let ids: Vec<JobId> = batch.iter().map(|f| f.lease.id).collect();
    let results = if batch.is_empty() {
        Vec::new()
    } else {
        store.finish(batch).await?
    };
    shared.workers.release(worker, ids);
    Ok(slots
        .into_iter()
        .map(|slot| match slot.map(|i| results[i]) {
            Some(FinishResult::Applied(state)) => Some(state),
            _ => None,
        })
        .collect())
}

/// One write; 409 `lease_lost` if it was not applied.
async fn finish_one(
    shared: &Shared,
    caller: &Caller,
    worker: &str,
    write: Write,
) -> Result<Json<FinishReply>, ApiError> {
    let (job, attempt) = (write.job, write.attempt);
    match finish_all(shared, caller, worker, vec![write]).await?[0] {
        Some(state) => Ok(Json(FinishReply { job_id: job, state })),
        None => Err(lease_lost(job, attempt)),
    }
}

fn result_text(result: Option<serde_json::Value>) -> Option<String> {
    result.map(|v| v.to_string())
}

/// Completes an attempt.
#[utoipa::path(post, path = "/v1/workers/{worker}/jobs/{id}/complete", tag = "workers",
    params(("worker" = String, Path, description = "The worker id"), ("id" = i64, Path, description = "The job id")),
    request_body = CompleteRequest,
    responses(
        (status = 200, description = "Completed", body = FinishReply),
        (status = 400, description = "Bad input", body = ErrorBody),
        (status = 409, description = "lease_lost: not this worker's lease (any more); nothing changed", body = ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn complete(
    State(shared): State<Shared>,
    caller: Caller,
    WorkerJobPath(worker, job): WorkerJobPath,
    JsonBody(req): JsonBody<CompleteRequest>,
) -> Result<Json<FinishReply>, ApiError> {
    let write = Write {
        job,
        attempt: req.attempt,
        token: req.lease_token,
        outcome: Pending::Complete(result_text(req.result)),
    };
    finish_one(&shared, &caller, &worker, write).await
}

/// Fails an attempt: retried while attempts are left, unless permanent.
#[utoipa::path(post, path = "/v1/workers/{worker}/jobs/{id}/fail", tag = "workers",
    params(("worker" = String, Path, description = "The worker id"), ("id" = i64, Path, description = "The job id")),
    request_body = FailRequest,
    responses(
        (status = 200, description = "Recorded: the job's state now (scheduled or available for a retry, failed)", body = FinishReply),
        (status = 400, description = "Bad input", body = ErrorBody),
        (status = 409, description = "lease_lost: not this worker's lease (any more); nothing changed", body = ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn fail(
    State(shared): State<Shared>,
    caller: Caller,
    WorkerJobPath(worker, job): WorkerJobPath,
    JsonBody(req): JsonBody<FailRequest>,
) -> Result<Json<FinishReply>, ApiError> {
    let write = Write {
        job,
        attempt: req.attempt,
        token: req.lease_token,
        outcome: Pending::Fail {
            message: req.message,
            permanent: req.permanent,
            retry_after: req.retry_after_ms.map(Duration::from_millis),
        },
    };
    finish_one(&shared, &caller, &worker, write).await
}

/// Snoozes an attempt: the job runs again after `delay_ms`, no attempt used.
#[utoipa::path(post, path = "/v1/workers/{worker}/jobs/{id}/snooze", tag = "workers",
    params(("worker" = String, Path, description = "The worker id"), ("id" = i64, Path, description = "The job id")),
    request_body = SnoozeRequest,
    responses(
        (status = 200, description = "Snoozed", body = FinishReply),
        (status = 400, description = "Bad input", body = ErrorBody),
        (status = 409, description = "lease_lost: not this worker's lease (any more); nothing changed", body = ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn snooze(
    State(shared): State<Shared>,
    caller: Caller,
    WorkerJobPath(worker, job): WorkerJobPath,
    JsonBody(req): JsonBody<SnoozeRequest>,
) -> Result<Json<FinishReply>, ApiError> {
    let write = Write {
        job,
        attempt: req.attempt,
        token: req.lease_token,
        outcome: Pending::Snooze(Duration::from_millis(req.delay_ms)),
    };
    finish_one(&shared, &caller, &worker, write).await
}

/// A progress percent from a request: 0 to 100, else the one error both
/// progress routes (a worker's and a job token's) give.
pub(crate) fn check_percent(percent: u8) -> Result<(), ApiError> {
    if percent > 100 {
        return Err(ApiError::invalid(
            "percent",
            format!("percent: {percent} is not accepted; accepted: 0 to 100"),
        ));
    }
    Ok(())
}

/// Records a running attempt's progress.
#[utoipa::path(post, path = "/v1/workers/{worker}/jobs/{id}/progress", tag = "workers",
    params(("worker" = String, Path, description = "The worker id"), ("id" = i64, Path, description = "The job id")),
    request_body = ProgressRequest,
    responses(
        (status = 200, description = "Recorded", body = FinishReply),
        (status = 400, description = "Bad input (percent over 100)", body = ErrorBody),
        (status = 409, description = "lease_lost: not this worker's lease (any more); nothing changed", body = ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn progress(
    State(shared): State<Shared>,
    caller: Caller,
    WorkerJobPath(worker, job): WorkerJobPath,
    JsonBody(req): JsonBody<ProgressRequest>,
) -> Result<Json<FinishReply>, ApiError> {
    check_percent(req.percent)?;
    let store = shared.kyu.store();
    let key = shared.workers.key(&shared).await?;
    if !verify(key, &worker, job, req.attempt, &req.lease_token) {
        return Err(lease_lost(job, req.attempt));
    }
    let live = shared
        .workers
        .peek(&caller, &worker, store.clock().now())
        .is_some();
    if holds(&shared, &caller, &worker, live, job, req.attempt)
        .await?
        .is_none()
    {
        return Err(lease_lost(job, req.attempt));
    }
    let lease = LeaseRef {
        id: job,
        attempt: req.attempt,
    };
    let progress = Progress {
        percent: req.percent,
        message: req.message,
    };
    if store.set_progress(lease, progress).await? {
        Ok(Json(FinishReply {
            job_id: job,
            state: JobState::Running,
        }))
    } else {
        Err(lease_lost(job, req.attempt))
    }
}

/// Acknowledges many attempts at once, written as one store batch.
#[utoipa::path(post, path = "/v1/workers/{worker}/ack", tag = "workers",
    params(("worker" = String, Path, description = "The worker id")),
    request_body = AckRequest,
    responses(
        (status = 200, description = "One result per attempt: applied, or lease_lost (that one changed nothing)", body = AckReply),
        (status = 400, description = "Bad input: nothing was written", body = ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn ack(
    State(shared): State<Shared>,
    caller: Caller,
    WorkerPath(worker): WorkerPath,
    JsonBody(req): JsonBody<AckRequest>,
) -> Result<Json<AckReply>, ApiError> {
    check_batch(&shared, "acks", req.acks.len())?;
    let mut writes = Vec::with_capacity(req.acks.len());
    for (i, a) in req.acks.into_iter().enumerate() {
        let field = |f: &str| format!("acks[{i}].{f}");
        let outcome = match a.outcome {
            AckOutcome::Complete => Pending::Complete(result_text(a.result)),
            AckOutcome::Fail => Pending::Fail {
                message: a.message.ok_or_else(|| {
                    ApiError::invalid(
                        &field("message"),
                        format!(
                            "{}: missing; accepted: what went wrong, with outcome fail",
                            field("message")
                        ),
                    )
                })?,
                permanent: a.permanent,
                retry_after: a.retry_after_ms.map(Duration::from_millis),
            },
            AckOutcome::Snooze => {
                Pending::Snooze(Duration::from_millis(a.delay_ms.ok_or_else(|| {
                    ApiError::invalid(
                        &field("delay_ms"),
                        format!(
                            "{}: missing; accepted: ms to wait, with outcome snooze",
                            field("delay_ms")
                        ),
                    )
                })?))
            }
            AckOutcome::Release => Pending::Release(
                a.message
                    .unwrap_or_else(|| "released by its remote worker".into()),
            ),
        };
        writes.push(Write {
            job: a.job_id,
            attempt: a.attempt,
            token: a.lease_token,
            outcome,
        });
    }
    let ids: Vec<JobId> = writes.iter().map(|w| w.job).collect();
    let states = finish_all(&shared, &caller, &worker, writes).await?;
    Ok(Json(AckReply {
        results: ids
            .into_iter()
            .zip(states)
            .map(|(job_id, state)| AckResult {
                job_id,
                result: if state.is_some() {
                    "applied"
                } else {
                    "lease_lost"
                }
                .into(),
                state,
            })
            .collect(),
    }))
}

/// Leaves: the jobs the worker holds go back to `available` at once.
#[utoipa::path(delete, path = "/v1/workers/{worker}", tag = "workers",
    params(("worker" = String, Path, description = "The worker id")),
    responses(
        (status = 200, description = "Left; the jobs it held were released", body = LeaveReply),
        (status = 404, description = "No such worker", body = ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn leave(
    State(shared): State<Shared>,
    caller: Caller,
    WorkerPath(worker): WorkerPath,
) -> Result<Json<LeaveReply>, ApiError> {
    let store = shared.kyu.store();
    if shared
        .workers
        .peek(&caller, &worker, store.clock().now())
        .is_none()
    {
        return Err(unknown_worker(&worker));
    }
    let held = shared.workers.remove(&worker);
    let batch: Vec<Finish> = held
        .iter()
        .map(|(id, h)| Finish {
            lease: LeaseRef {
                id: *id,
                attempt: h.attempt,
            },
            worker: worker.clone(),
            outcome: FinishOutcome::Released {
                message: "its remote worker left".into(),
            },
        })
        .collect();
    let results = if batch.is_empty() {
        Vec::new()
    } else {
        store.finish(batch).await?
    };
    store.worker_gone(&worker).await?;
    let released = held
        .iter()
        .zip(results)
        .filter(|(_, r)| matches!(r, FinishResult::Applied(_)))
        .map(|((id, _), _)| *id)
        .collect();
    tracing::info!(worker = %worker, "remote worker left");
    Ok(Json(LeaveReply { released }))
}
