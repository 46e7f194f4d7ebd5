//! Producers and operators on jobs: enqueue (one, or a batch in one
//! transaction), get, list, logs, wait (long poll), cancel, retry.

use std::collections::BTreeMap;
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use chrono::{DateTime, Utc};
use kyu::{JobFilter, JobId, JobRecord, JobState, NewJob, RetryPolicy};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::auth::Caller;
use super::error::{ApiError, ErrorBody};
use super::extract::{duration, JobIdPath, JsonBody, Query};
use super::filter::FilterInput;
use crate::State as Shared;

/// How long an `Idempotency-Key` holds: a retry of the same request within
/// this window returns the first job.
pub const IDEMPOTENCY_WINDOW: Duration = Duration::from_secs(24 * 3600);

/// One job to enqueue. Every field but `kind` is optional; defaults as the library's.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"kind": "send_email", "args": {"to": "a@example.com"}, "queue": "mail", "priority": 0, "delay": "10s", "max_attempts": 3, "retry": {"type": "exponential", "initial": "1s", "cap": "1m"}, "timeout": "30s", "unique_key": "welcome:a@example.com", "unique_for": "1h", "tags": ["tenant:42"], "rate_key": "tenant:42"}))]
pub struct EnqueueRequest {
    /// Which handler runs the job.
    pub kind: String,
    /// The job's arguments (any JSON; default `{}`).
    #[serde(default)]
    #[schema(value_type = Object)]
    pub args: Option<serde_json::Value>,
    /// The queue; default `default`.
    pub queue: Option<String>,
    /// Lower runs first; default 0.
    pub priority: Option<i32>,
    /// Earliest time to run (RFC 3339). Not with `delay`.
    pub run_at: Option<DateTime<Utc>>,
    /// Run after this long, e.g. `10s`. Not with `run_at`.
    pub delay: Option<String>,
    /// Attempts before the job fails for good; default 5.
    pub max_attempts: Option<u32>,
    /// Delay before each retry; default exponential 1 s .. 16 s.
    pub retry: Option<RetryRequest>,
    /// Time limit of one attempt, e.g. `30s`.
    pub timeout: Option<String>,
    /// A second enqueue with this key returns the first job while it is unfinished.
    pub unique_key: Option<String>,
    /// With `unique_key`: the key holds for this long whatever the job's state, e.g. `1h`.
    pub unique_for: Option<String>,
    /// Labels to filter by.
    #[serde(default)]
    pub tags: Vec<String>,
    /// The job's rate key (1 to 512 bytes): the queue's rate allows that
    /// many starts per key, e.g. one window per tenant. Wins over the
    /// queue's `rate_key` path; without either, the job shares the queue's
    /// "no key" window.
    pub rate_key: Option<String>,
}

/// A retry policy.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum RetryRequest {
    /// Doubling from `initial` up to `cap`.
    Exponential {
        /// First delay, e.g. `1s`.
        initial: String,
        /// Longest delay, e.g. `5m`.
        cap: String,
    },
    /// The same delay every time.
    Fixed {
        /// The delay, e.g. `30s`.
        delay: String,
    },
}

impl EnqueueRequest {
    /// The library's job, checked as the library checks it (same words).
    /// `defaults`: the kind's (kyu.toml's `[jobs.KIND]`), applied first so
    /// the request's own options win.
    pub(crate) fn into_job(
        self,
        now: DateTime<Utc>,
        defaults: Option<&crate::KindDefaults>,
    ) -> Result<NewJob, ApiError> {
        let args = self.args.unwrap_or_else(|| serde_json::json!({}));
        let mut job = NewJob::new(self.kind, args);
        if let Some(d) = defaults {
            job = d.apply(job);
        }
        if let Some(q) = self.queue {
            job = job.queue(q);
        }
        if let Some(p) = self.priority {
            job = job.priority(p);
        }
        match (self.run_at, self.delay) {
            (Some(_), Some(_)) => {
                return Err(ApiError::invalid(
                    "delay",
                    "delay: given with run_at; accepted: one of run_at and delay",
                ))
            }
            (Some(at), None) => job = job.run_at(at),
            (None, Some(d)) => {
                let d = duration("delay", &d)?;
                let d = chrono::Duration::from_std(d).map_err(|_| {
                    ApiError::invalid("delay", "delay: too long; accepted: up to 100 years")
                })?;
                job = job.run_at(now + d);
            }
            (None, None) => {}
        }
        if let Some(n) = self.max_attempts {
            job = job.max_attempts(n);
        }
        if let Some(r) = self.retry {
            job = job.retry(match r {
                RetryRequest::Exponential { initial, cap } => RetryPolicy::exponential(
                    duration("retry.initial", &initial)?,
                    duration("retry.cap", &cap)?,
                ),
                RetryRequest::Fixed { delay } => {
                    RetryPolicy::fixed(duration("retry.delay", &delay)?)
                }
            });
        }
        if let Some(t) = self.timeout {
            job = job.timeout(duration("timeout", &t)?);
        }
        match (self.unique_key, self.unique_for) {
            (Some(k), None) => job = job.unique_key(k),
            (Some(k), Some(w)) => job = job.unique_for(k, duration("unique_for", &w)?),
            (None, Some(_)) => {
                return Err(ApiError::invalid(
                    "unique_for",
                    "unique_for: given without unique_key; accepted: unique_for with a unique_key",
                ))
            }
            (None, None) => {}
        }
        for t in self.tags {
            job = job.tag(t);
        }
        if let Some(k) = self.rate_key {
            job = job.rate_key(k);
        }
        Ok(job)
    }
}

/// What an enqueue did.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(example = json!({"id": 42, "duplicate": false}))]
pub struct EnqueueReply {
    /// The job's id (the first job's, for a duplicate).
    pub id: JobId,
    /// True when a unique or idempotency key matched an existing job and nothing was inserted.
    pub duplicate: bool,
}

/// A batch to enqueue, all or none.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchRequest {
    /// The jobs.
    pub jobs: Vec<EnqueueRequest>,
}

/// What a batch enqueue did, one entry per job in order.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct BatchReply {
    /// One per job.
    pub jobs: Vec<EnqueueReply>,
}

/// A job as the API shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct JobView {
    /// The id.
    pub id: JobId,
    /// The queue.
    pub queue: String,
    /// The kind.
    pub kind: String,
    /// The state: scheduled, available, running, completed, failed, cancelled.
    #[schema(value_type = String)]
    pub state: JobState,
    /// The args; null when redacted.
    #[schema(value_type = Object)]
    pub args: Option<serde_json::Value>,
    /// The result of a completed job; null when redacted or absent.
    #[schema(value_type = Object)]
    pub result: Option<serde_json::Value>,
    /// True when args and result are hidden (the token lacks `read_args`).
    pub redacted: bool,
    /// Lower runs first.
    pub priority: i32,
    /// Attempts made so far.
    pub attempt: u32,
    /// Attempts allowed.
    pub max_attempts: u32,
    /// The unique key, if any.
    pub unique_key: Option<String>,
    /// Labels.
    pub tags: Vec<String>,
    /// When it was enqueued.
    pub created_at: DateTime<Utc>,
    /// Earliest time it may run (next).
    pub run_at: DateTime<Utc>,
    /// When the latest attempt started.
    pub attempted_at: Option<DateTime<Utc>>,
    /// When it reached an end state.
    pub finished_at: Option<DateTime<Utc>>,
    /// The worker holding (or that last held) the lease.
    pub worker: Option<String>,
    /// True when a cancel was asked for while it ran.
    pub cancel_requested: bool,
    /// The last progress reported.
    pub progress: Option<ProgressView>,
    /// The error of every failed attempt, oldest first.
    pub errors: Vec<AttemptErrorView>,
    /// The batch the job belongs to (`GET /v1/batches/{id}`), if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub batch_id: Option<i64>,
    /// The job's rate key, if it has one; hidden with the args (it may be
    /// a value of them).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate_key: Option<String>,
}

/// A job's progress.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ProgressView {
    /// 0 to 100.
    pub percent: u8,
    /// A short note.
    pub message: String,
}

/// One failed attempt.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AttemptErrorView {
    /// Which attempt.
    pub attempt: u32,
    /// When it ended.
    pub at: DateTime<Utc>,
    /// What went wrong.
    pub message: String,
    /// The worker that ran it.
    pub worker: String,
}

/// JSON text as a value (text that is not JSON is shown as a string).
fn json_of(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|_| serde_json::Value::String(text.to_string()))
}

impl JobView {
    /// The view of `job` for `caller` (args and result redacted without `read_args`).
    pub(crate) fn of(job: JobRecord, caller: &Caller) -> JobView {
        let show = caller.reads_args();
        let unique_key = job
            .unique_key
            .clone()
            .map(|k| unscoped_key(caller, &job.queue, k));
        JobView {
            id: job.id,
            args: show.then(|| json_of(&job.args)),
            result: if show {
                job.result.as_deref().map(json_of)
            } else {
                None
            },
            redacted: !show,
            queue: job.queue,
            kind: job.kind,
            state: job.state,
            priority: job.priority,
            attempt: job.attempt,
            max_attempts: job.max_attempts,
            unique_key,
            tags: job.tags,
            created_at: job.created_at,
            run_at: job.run_at,
            attempted_at: job.attempted_at,
            finished_at: job.finished_at,
            worker: job.worker,
            cancel_requested: job.cancel_requested,
            batch_id: job.batch_id,
            rate_key: job.rate_key.filter(|_| show),
            progress: job.progress.map(|p| ProgressView {
                percent: p.percent,
                message: p.message,
            }),
            errors: job
                .errors
                .into_iter()
                .map(|e| AttemptErrorView {
                    attempt: e.attempt,
                    at: e.at,
                    message: e.message,
                    worker: e.worker,
                })
                .collect(),
        }
    }
}

/// Scopes a unique key given through a token limited to queues to the
/// job's queue (`queue:QUEUE:KEY`), so it can only ever match a job of that
/// queue, one the token may see: a tenant cannot learn of another tenant's
/// job by enqueueing with the same key. Keys given through a token without
/// queue limits are used as they are (global, as in the library).
pub(crate) fn scope_key(caller: &Caller, mut job: NewJob) -> NewJob {
    if !caller.token.queues.is_empty() {
        if let Some(k) = job.unique_key.take() {
            job.unique_key = Some(format!("queue:{}:{k}", job.queue));
        }
    }
    job
}

/// A unique key as the caller gave it (without the scope [`scope_key`] added).
fn unscoped_key(caller: &Caller, queue: &str, key: String) -> String {
    if caller.token.queues.is_empty() {
        return key;
    }
    match key.strip_prefix(&format!("queue:{queue}:")) {
        Some(k) => k.to_string(),
        None => key,
    }
}

/// Whether the job an enqueue answered with is one the caller may see (a
/// duplicate of a key it does not own is never shown).
async fn shown(shared: &Shared, caller: &Caller, out: &kyu::Enqueued) -> Result<bool, ApiError> {
    if !out.duplicate || caller.token.queues.is_empty() {
        return Ok(true);
    }
    Ok(caller.visible_job(&shared.kyu, out.id).await.is_ok())
}

/// Makes the library's job for one request, checking the caller may enqueue into its queue.
pub(crate) fn job_for(
    shared: &Shared,
    caller: &Caller,
    req: EnqueueRequest,
    field: &str,
) -> Result<NewJob, ApiError> {
    let defaults = shared.options.kind_defaults.get(&req.kind);
    let job = req.into_job(shared.kyu.store().clock().now(), defaults)?;
    caller.check_queue(field, &job.queue)?;
    Ok(job)
}

/// Enqueues one job. With an `Idempotency-Key` header, a repeat of the
/// request within 24 h returns the first job (`duplicate: true`, status 200)
/// instead of making a second: the key becomes the job's unique key
/// (`idempotency:TOKEN:KEY`, held for 24 h whatever the job's state), so it
/// cannot be given with `unique_key`.
///
/// A unique key (or Idempotency-Key) given through a token limited to
/// queues is scoped to the job's queue (stored as `queue:QUEUE:KEY`; shown
/// to that token without the prefix): it only ever matches a job of that
/// queue, so a tenant cannot learn of another tenant's job through a shared
/// key. Keys from a token without queue limits are global, as in the
/// library. Should a tenant's key still meet a job it may not see (a key an
/// unlimited token wrote in that form), the answer is 409
/// `unique_key_taken` with no id.
#[utoipa::path(post, path = "/v1/jobs", tag = "jobs", request_body = EnqueueRequest,
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes a retried request return the first job")),
    responses(
        (status = 201, description = "Enqueued", body = EnqueueReply),
        (status = 200, description = "A duplicate: the existing job", body = EnqueueReply),
        (status = 400, description = "Bad input", body = ErrorBody),
        (status = 403, description = "Scope or queue not allowed", body = ErrorBody),
        (status = 409, description = "The unique key is held by a job this token may not see", body = ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn enqueue(
    State(shared): State<Shared>,
    caller: Caller,
    headers: HeaderMap,
    JsonBody(req): JsonBody<EnqueueRequest>,
) -> Result<(StatusCode, Json<EnqueueReply>), ApiError> {
    let idem = match headers.get("idempotency-key") {
        None => None,
        Some(v) => {
            let key = v
                .to_str()
                .ok()
                .filter(|k| !k.is_empty() && k.len() <= 200)
                .ok_or_else(|| {
                    ApiError::invalid(
                    "Idempotency-Key",
                    "Idempotency-Key: not accepted; accepted: 1 to 200 visible ASCII characters",
                )
                })?;
            if req.unique_key.is_some() {
                return Err(ApiError::invalid(
                    "Idempotency-Key",
                    "Idempotency-Key: given with unique_key; accepted: one of the two",
                ));
            }
            Some(format!("idempotency:{}:{key}", caller.token.name))
        }
    };
    let mut job = job_for(&shared, &caller, req, "queue")?;
    if let Some(key) = idem {
        job = job.unique_for(key, IDEMPOTENCY_WINDOW);
    }
    let out = shared.kyu.enqueue(scope_key(&caller, job)).await?;
    if !shown(&shared, &caller, &out).await? {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "unique_key_taken",
            "unique_key: held by a job this token may not see; accepted: another key",
        )
        .field("unique_key"));
    }
    let status = if out.duplicate {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((
        status,
        Json(EnqueueReply {
            id: out.id,
            duplicate: out.duplicate,
        }),
    ))
}

/// Enqueues a batch in one transaction: every job is checked first, and one
/// refused job refuses the batch (nothing written; `field` names it, e.g. `jobs[3].queue`).
#[utoipa::path(post, path = "/v1/jobs/batch", tag = "jobs", request_body = BatchRequest,
    responses((status = 201, body = BatchReply), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn enqueue_batch(
    State(shared): State<Shared>,
    caller: Caller,
    JsonBody(req): JsonBody<BatchRequest>,
) -> Result<(StatusCode, Json<BatchReply>), ApiError> {
    if req.jobs.len() > shared.options.max_page {
        return Err(ApiError::invalid(
            "jobs",
            format!(
                "jobs: {} jobs; accepted: 1 to {} per batch",
                req.jobs.len(),
                shared.options.max_page
            ),
        ));
    }
    let mut jobs = Vec::with_capacity(req.jobs.len());
    for (i, r) in req.jobs.into_iter().enumerate() {
        let job = job_for(&shared, &caller, r, &format!("jobs[{i}].queue")).map_err(|mut e| {
            let field = e.body.field.clone().unwrap_or_default();
            if !field.starts_with("jobs[") {
                e.body.field = Some(format!("jobs[{i}].{field}"));
                e.body.message = format!("jobs[{i}].{}", e.body.message);
            }
            e
        })?;
        jobs.push(scope_key(&caller, job));
    }
    let out = shared.kyu.enqueue_many(jobs).await?;
    let mut replies = Vec::with_capacity(out.len());
    for e in out {
        // A duplicate of a job the token may not see: id 0, nothing shown.
        let id = if shown(&shared, &caller, &e).await? {
            e.id
        } else {
            0
        };
        replies.push(EnqueueReply {
            id,
            duplicate: e.duplicate,
        });
    }
    Ok((StatusCode::CREATED, Json(BatchReply { jobs: replies })))
}

/// How to read one job.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct GetParams {
    /// Wait up to this long (at most 30 s) for the job to finish, e.g. `30s`;
    /// the answer is the job as it is then, finished or not.
    pub wait: Option<String>,
}

/// One job: state, attempts with their errors, progress, result. With
/// `?wait=30s`, a long poll: answered when the job finishes or the wait ends.
#[utoipa::path(get, path = "/v1/jobs/{id}", tag = "jobs", params(("id" = i64, Path, description = "The job id"), GetParams),
    responses((status = 200, body = JobView), (status = 404, body = ErrorBody),
        (status = 429, description = "The token holds its cap of long polls", body = ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn get_job(
    State(shared): State<Shared>,
    caller: Caller,
    JobIdPath(id): JobIdPath,
    Query(p): Query<GetParams>,
) -> Result<Json<JobView>, ApiError> {
    let job = caller.visible_job(&shared.kyu, id).await?;
    let Some(wait) = p.wait else {
        return Ok(Json(JobView::of(job, &caller)));
    };
    let wait = duration("wait", &wait)?;
    if wait > shared.options.max_wait {
        return Err(ApiError::invalid(
            "wait",
            format!(
                "wait: {wait:?} is too long; accepted: up to {:?}",
                shared.options.max_wait
            ),
        ));
    }
    if job.state.is_finished() || wait.is_zero() {
        return Ok(Json(JobView::of(job, &caller)));
    }
    let _permit = shared.permits.take(
        &caller.token.name,
        super::permits::Kind::LongPoll,
        shared.options.long_polls_per_token,
    )?;
    let job = match shared.kyu.wait(id).timeout(wait).await {
        Ok(job) => job,
        Err(kyu::Error::WaitTimedOut { .. }) => caller.visible_job(&shared.kyu, id).await?,
        Err(e) => return Err(e.into()),
    };
    Ok(Json(JobView::of(job, &caller)))
}

/// Which jobs to list.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ListParams {
    /// Only this state (scheduled, available, running, completed, failed, cancelled).
    pub state: Option<String>,
    /// Only this queue.
    pub queue: Option<String>,
    /// Only this kind.
    pub kind: Option<String>,
    /// Only jobs with this tag.
    pub tag: Option<String>,
    /// Only jobs created at or after this time (RFC 3339).
    pub created_after: Option<DateTime<Utc>>,
    /// Only jobs created before this time (RFC 3339).
    pub created_before: Option<DateTime<Utc>>,
    /// A search inside args: the parameter's name is the path, e.g.
    /// `args.user=42`, `args.a.b="x"`, `args.flag=true` (repeat for several;
    /// all must match). The value is a JSON scalar; a bare word is a string.
    /// Needs the `read_args` scope (403 without: the args are hidden).
    #[serde(rename = "args.PATH")]
    pub args_path: Option<String>,
    /// The `next` of the previous page.
    pub cursor: Option<String>,
    /// Page size, 1 to 1000 (default 100).
    pub limit: Option<usize>,
}

/// A list request's query: the filter, the cursor and the page size.
struct ListQuery {
    filter: FilterInput,
    cursor: Option<String>,
    limit: Option<usize>,
}

impl ListQuery {
    /// The query from its name=value pairs: the filter's fields (`args.…`
    /// names are searches inside args), `cursor` and `limit`; any other
    /// name is refused.
    fn from_pairs(pairs: Vec<(String, String)>) -> Result<ListQuery, ApiError> {
        let mut q = ListQuery {
            filter: FilterInput::default(),
            cursor: None,
            limit: None,
        };
        for (name, value) in pairs {
            match name.as_str() {
                "cursor" => q.cursor = Some(value),
                "limit" => {
                    q.limit = Some(value.parse().map_err(|_| {
                        ApiError::invalid(
                            "limit",
                            format!(
                                "limit: {value:?} is not a number; accepted: 1 to the page limit"
                            ),
                        )
                    })?)
                }
                n => {
                    if !q.filter.take_pair(n, value) {
                        return Err(ApiError::invalid(
                            "query",
                            format!(
                                "query: unknown parameter {n:?}; accepted: {}, cursor, limit",
                                super::filter::FIELDS
                            ),
                        ));
                    }
                }
            }
        }
        Ok(q)
    }
}

/// One page of jobs, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct JobList {
    /// The jobs.
    pub jobs: Vec<JobView>,
    /// Pass as `cursor` for the next page; null on the last page.
    pub next: Option<String>,
}

/// How many store pages one list request reads at most while skipping jobs
/// of queues the token may not see; past that the page is short and `next`
/// continues where the scan stopped.
const MAX_SCAN_PAGES: usize = 10;

/// Lists jobs, newest first, by keyset cursor, filtered in the store by
/// state, queue, kind, tag, created range and searches inside args
/// (`?args.user=42&args.a.b="x"`; `read_args` scope). A token limited to queues
/// sees only its queues' jobs (a page may then be short; follow `next`).
/// A search inside args (no index serves it) reads at most the 20,000
/// newest jobs below the cursor per request and returns the matches among
/// them: a page may be short or empty while `next` is set, its cursor
/// just past the jobs searched; follow `next` until it is null to search
/// them all. No match is skipped or repeated.
#[utoipa::path(get, path = "/v1/jobs", tag = "jobs", params(ListParams),
    responses((status = 200, body = JobList), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn list_jobs(
    State(shared): State<Shared>,
    caller: Caller,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Result<Json<JobList>, ApiError> {
    let q = ListQuery::from_pairs(pairs)?;
    let limit = q.limit.unwrap_or(100);
    if limit == 0 || limit > shared.options.max_page {
        return Err(ApiError::invalid(
            "limit",
            format!("limit: {limit}; accepted: 1 to {}", shared.options.max_page),
        ));
    }
    let before = match q.cursor {
        None => None,
        Some(c) => Some(c.parse::<JobId>().ok().filter(|c| *c > 0).ok_or_else(|| {
            ApiError::invalid(
                "cursor",
                format!("cursor: {c:?} is not a cursor; accepted: the `next` of a previous page"),
            )
        })?),
    };
    let mut filter = JobFilter {
        before,
        limit,
        ..q.filter.parse(&caller, "")?
    };
    let mut jobs = Vec::new();
    let mut next = None;
    'scan: for _ in 0..MAX_SCAN_PAGES {
        let page = shared.kyu.list(&filter).await?;
        let n = page.jobs.len();
        for (i, job) in page.jobs.into_iter().enumerate() {
            let id = job.id;
            if caller.sees(&job.queue) {
                jobs.push(JobView::of(job, &caller));
            }
            if jobs.len() == limit {
                next = (i + 1 < n || page.next.is_some()).then_some(id);
                break 'scan;
            }
        }
        next = page.next;
        // A search inside args that read its window stops here: one
        // request reads one window.
        match page.next {
            Some(c) if page.searched.is_none() => filter.before = Some(c),
            _ => break,
        }
    }
    Ok(Json(JobList {
        jobs,
        next: next.map(|n| n.to_string()),
    }))
}

/// The recorded output of one attempt of a command job.
#[derive(Debug, Serialize, ToSchema)]
pub struct AttemptLogsView {
    /// The attempt.
    pub attempt: u32,
    /// The kept end of stdout.
    pub stdout: String,
    /// The kept end of stderr.
    pub stderr: String,
    /// Bytes of stdout in all.
    pub stdout_bytes: u64,
    /// Bytes of stderr in all.
    pub stderr_bytes: u64,
}

/// A job's command output, one entry per attempt (needs `read_args`: output
/// is as sensitive as args).
#[utoipa::path(get, path = "/v1/jobs/{id}/logs", tag = "jobs", params(("id" = i64, Path, description = "The job id")),
    responses((status = 200, body = [AttemptLogsView]), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn job_logs(
    State(shared): State<Shared>,
    caller: Caller,
    JobIdPath(id): JobIdPath,
) -> Result<Json<Vec<AttemptLogsView>>, ApiError> {
    caller.visible_job(&shared.kyu, id).await?;
    let logs = shared.kyu.logs(id).await?;
    Ok(Json(
        logs.into_iter()
            .map(|l| AttemptLogsView {
                attempt: l.attempt,
                stdout: l.stdout,
                stderr: l.stderr,
                stdout_bytes: l.stdout_bytes,
                stderr_bytes: l.stderr_bytes,
            })
            .collect(),
    ))
}

/// Job ids to act on.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"ids": [41, 42]}))]
pub struct IdsRequest {
    /// The jobs (1 to the page limit).
    pub ids: Vec<JobId>,
}

/// What an action did to each job, by id.
#[derive(Debug, Serialize, ToSchema)]
pub struct ActionReply {
    /// Per id: `cancelled`, `requested`, `retried`, `already_finished`,
    /// `not_retryable`, `key_held` or `not_found`.
    #[schema(value_type = Object)]
    pub results: BTreeMap<String, String>,
}

/// Checks the ids and keeps those the caller may see; the others answer `not_found`.
pub(crate) async fn visible_ids(
    shared: &Shared,
    caller: &Caller,
    ids: &[JobId],
) -> Result<(Vec<JobId>, BTreeMap<String, String>), ApiError> {
    if ids.is_empty() || ids.len() > shared.options.max_page {
        return Err(ApiError::invalid(
            "ids",
            format!(
                "ids: {} ids; accepted: 1 to {}",
                ids.len(),
                shared.options.max_page
            ),
        ));
    }
    let mut seen = Vec::new();
    let mut results = BTreeMap::new();
    for &id in ids {
        match shared.kyu.store().get(id).await? {
            Some(j) if caller.sees(&j.queue) => seen.push(id),
            _ => {
                results.insert(id.to_string(), "not_found".to_string());
            }
        }
    }
    Ok((seen, results))
}

/// Cancels jobs by id: a waiting job is cancelled, a running one asked to stop.
#[utoipa::path(post, path = "/v1/jobs/cancel", tag = "operate", request_body = IdsRequest,
    responses((status = 200, body = ActionReply), (status = 400, body = ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn cancel(
    State(shared): State<Shared>,
    caller: Caller,
    JsonBody(req): JsonBody<IdsRequest>,
) -> Result<Json<ActionReply>, ApiError> {
    let (ids, mut results) = visible_ids(&shared, &caller, &req.ids).await?;
    if !ids.is_empty() {
        for (id, r) in ids.iter().zip(shared.kyu.cancel(&ids).await?) {
            let word = match r {
                kyu::CancelResult::Cancelled => "cancelled",
                kyu::CancelResult::Requested => "requested",
                kyu::CancelResult::AlreadyFinished(_) => "already_finished",
                kyu::CancelResult::NotFound => "not_found",
                _ => "unknown",
            };
            results.insert(id.to_string(), word.into());
        }
    }
    Ok(Json(ActionReply { results }))
}

/// Retries failed or cancelled jobs by id.
#[utoipa::path(post, path = "/v1/jobs/retry", tag = "operate", request_body = IdsRequest,
    responses((status = 200, body = ActionReply), (status = 400, body = ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn retry(
    State(shared): State<Shared>,
    caller: Caller,
    JsonBody(req): JsonBody<IdsRequest>,
) -> Result<Json<ActionReply>, ApiError> {
    let (ids, mut results) = visible_ids(&shared, &caller, &req.ids).await?;
    if !ids.is_empty() {
        for (id, r) in ids.iter().zip(shared.kyu.retry(&ids).await?) {
            let word = match r {
                kyu::RetryResult::Retried => "retried",
                kyu::RetryResult::NotRetryable(_) => "not_retryable",
                kyu::RetryResult::KeyHeld { .. } => "key_held",
                kyu::RetryResult::NotFound => "not_found",
                _ => "unknown",
            };
            results.insert(id.to_string(), word.into());
        }
    }
    Ok(Json(ActionReply { results }))
}
