//! Authorization, decided here and nowhere else: every API route is built
//! from the route table ([`super::table`]) with this middleware around it,
//! carrying the route's [`Rule`]. The middleware checks the bearer token
//! (401), the route's scope (403 `forbidden_scope`) and, for routes that do
//! not filter by queue, that the token is not limited to queues (403
//! `forbidden_queue`): such a route (e.g. `/metrics`, token admin) shows
//! every queue, so a tenant's token may not call it. Routes that filter by
//! queue get the token as a [`Caller`] and see jobs only through its
//! queue checks.
//!
//! A **job token** (`KYU_JOB_TOKEN`, see [`kyu::job_token`]) is the other
//! kind of caller: it is valid while its job runs the attempt it was made
//! for (401 once that attempt ended), and it is let through only to the
//! routes the table marks for it (`job_token`), aimed at its own job
//! (`{id}`); every other route, and its routes aimed at another job, answer
//! 403 `forbidden_job_token`.

use axum::extract::{FromRequestParts, RawPathParams, Request, State};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use kyu::job_token::{is_job_token, JobGrant};
use kyu::{JobRecord, JobState, QueuePattern, Scope, TokenRecord};

use super::error::ApiError;
use crate::State as Shared;

/// What a route requires: read from the route table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    /// The scope a token needs (an `admin` token has every scope).
    pub scope: Scope,
    /// Whether the route filters what it shows and does by the token's
    /// queue patterns. A route that does not refuses a token limited to queues.
    pub queue_scoped: bool,
}

/// The authenticated caller of a route, put in the request by [`authorize`].
#[derive(Debug, Clone)]
pub struct Caller {
    /// The token.
    pub token: TokenRecord,
}

impl Caller {
    /// Ok if the token may touch `queue`; 403 `forbidden_queue` naming `field` if not.
    pub fn check_queue(&self, field: &str, queue: &str) -> Result<(), ApiError> {
        if self.token.allows_queue(queue) {
            Ok(())
        } else {
            Err(ApiError::forbidden_queue(field, queue))
        }
    }

    /// Whether the token may see `queue`.
    pub fn sees(&self, queue: &str) -> bool {
        self.token.allows_queue(queue)
    }

    /// Whether the token sees every queue (it is not limited to queues).
    pub fn sees_every_queue(&self) -> bool {
        self.token.queues.is_empty()
    }

    /// The job if it exists and the token may see its queue: 404 alike
    /// otherwise, so a tenant cannot learn that another tenant's job exists.
    pub async fn visible_job(&self, kyu: &kyu::Kyu, id: kyu::JobId) -> Result<JobRecord, ApiError> {
        match kyu.store().get(id).await? {
            Some(job) if self.sees(&job.queue) => Ok(job),
            _ => Err(ApiError::not_found(format!("job {id} not found"))),
        }
    }

    /// Whether the token may see job args and results.
    pub fn reads_args(&self) -> bool {
        self.token.has(Scope::ReadArgs)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        // Only a route built from the table has a caller; a handler reached
        // any other way is refused rather than served unauthenticated.
        parts.extensions.get::<Caller>().cloned().ok_or_else(|| {
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "this route is not in the route table; nothing is served without a token",
            )
        })
    }
}

/// Whether a route takes job tokens (the table's `job_token`): for its own
/// job only, named by the route's `{id}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct JobTokens(pub(crate) bool);

/// The middleware every table route runs behind.
pub(crate) async fn authorize(
    State((shared, rule, job_tokens)): State<(Shared, Rule, JobTokens)>,
    req: Request,
    next: Next,
) -> Response {
    let (method, path) = (req.method().clone(), req.uri().path().to_string());
    let header = req.headers().get(header::AUTHORIZATION).cloned();
    let (mut parts, body) = req.into_parts();
    // The job a job token's route is aimed at: the route's `{id}`.
    let aimed_at = RawPathParams::from_request_parts(&mut parts, &())
        .await
        .ok()
        .and_then(|p| {
            p.iter()
                .find(|(name, _)| *name == "id")
                .map(|(_, v)| v.to_string())
        });
    let mut req = Request::from_parts(parts, body);
    let target = Target {
        method: &method,
        path: &path,
        job_tokens,
        aimed_at: aimed_at.as_deref(),
    };
    match check(&shared, rule, header, target).await {
        Ok((caller, grant)) => {
            req.extensions_mut().insert(caller);
            if let Some(grant) = grant {
                req.extensions_mut().insert(grant);
            }
            next.run(req).await
        }
        Err(e) => e.into_response(),
    }
}

/// What a request is aimed at, as far as authorization cares.
struct Target<'a> {
    method: &'a axum::http::Method,
    path: &'a str,
    job_tokens: JobTokens,
    aimed_at: Option<&'a str>,
}

async fn check(
    shared: &Shared,
    rule: Rule,
    header: Option<axum::http::HeaderValue>,
    target: Target<'_>,
) -> Result<(Caller, Option<JobGrant>), ApiError> {
    let Target { method, path, .. } = target;
    let unauthorized = |m: &str| {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            format!("{m}; accepted: a header `Authorization: Bearer kyu_…` with a token from `kyu tokens create` (or the admin token the first `kyu serve` printed)"),
        )
        .field("authorization")
    };
    let value = header
        .as_ref()
        .ok_or_else(|| unauthorized("no Authorization header"))?;
    let secret = value
        .to_str()
        .ok()
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| unauthorized("the Authorization header is not `Bearer TOKEN`"))?;
    let checked = if is_job_token(secret) {
        check_job_token(shared, secret, &target)
            .await
            .map(|(caller, grant)| (caller, Some(grant)))
    } else {
        check_secret(shared, rule, secret, method, path)
            .await
            .map(|caller| (caller, None))
    };
    checked.map_err(|e| match e.status {
        StatusCode::UNAUTHORIZED => e.field("authorization"),
        _ => e,
    })
}

/// The API's rule applied to a token's secret however it came (the
/// `Authorization` header of the API, the dashboard's session cookie):
/// 401 for an unknown, revoked or expired token, 403 `forbidden_scope`
/// without the rule's scope, 403 `forbidden_queue` for a token limited to
/// queues on a route that shows every queue.
pub(crate) async fn check_secret(
    shared: &Shared,
    rule: Rule,
    secret: &str,
    method: &axum::http::Method,
    path: &str,
) -> Result<Caller, ApiError> {
    let token = shared.kyu.authenticate(secret).await?.ok_or_else(|| {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "the token is unknown, revoked or expired; accepted: a token from `kyu tokens create` (or the admin token the first `kyu serve` printed)",
        )
    })?;
    if !token.has(rule.scope) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden_scope",
            format!(
                "{} {} needs a token with scope {}; this token ({:?}) has: {}",
                method,
                path,
                rule.scope,
                token.name,
                token
                    .scopes
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ));
    }
    if !rule.queue_scoped && !token.queues.is_empty() {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden_queue",
            format!(
                "{} {} shows every queue, and this token ({:?}) is limited to queues {}; accepted: a token without --queues",
                method,
                path,
                token.name,
                token.queues.iter().map(|q| q.as_str()).collect::<Vec<_>>().join(", ")
            ),
        ));
    }
    Ok(Caller { token })
}

/// A job token's check: 401 unless it is signed for this database and its
/// job runs the attempt it was made for; 403 `forbidden_job_token` unless
/// the route takes job tokens and is aimed at the token's job. The caller
/// it makes sees that one job (its args too: the command has them already).
async fn check_job_token(
    shared: &Shared,
    secret: &str,
    target: &Target<'_>,
) -> Result<(Caller, JobGrant), ApiError> {
    let Some(grant) = shared.kyu.job_grant(secret).await? else {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "the job token is not valid here (altered, or made by a kyu on another database); \
             accepted: the KYU_JOB_TOKEN kyu gave the command, unchanged, sent to a kyu serve \
             on the same database",
        ));
    };
    let job = shared.kyu.store().get(grant.job).await?;
    let live = job
        .as_ref()
        .filter(|j| j.state == JobState::Running && j.attempt == grant.attempt);
    let Some(job) = live else {
        let now = match &job {
            Some(j) => format!("the job is now {} at attempt {}", j.state, j.attempt),
            None => "the job no longer exists".to_string(),
        };
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            format!(
                "the job token of job {} expired with its attempt {}: {now}; accepted: a job \
                 token is good only while the attempt it was given to runs",
                grant.job, grant.attempt
            ),
        ));
    };
    let only = format!(
        "a job token (KYU_JOB_TOKEN of job {id}) may only read its job (GET /v1/jobs/{id}) and \
         report its progress (POST /v1/jobs/{id}/progress); accepted: an API token from `kyu \
         tokens create` for anything else",
        id = grant.job
    );
    if !target.job_tokens.0 {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden_job_token",
            format!("{} {} is refused: {only}", target.method, target.path),
        ));
    }
    if target.aimed_at != Some(grant.job.to_string().as_str()) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden_job_token",
            format!(
                "{} {} is aimed at another job: {only}",
                target.method, target.path
            ),
        ));
    }
    let token = TokenRecord {
        name: format!("job {} attempt {}", grant.job, grant.attempt),
        hash: String::new(),
        scopes: vec![Scope::Read, Scope::ReadArgs],
        queues: vec![only_queue(&job.queue)],
        created_at: job.attempted_at.unwrap_or(job.created_at),
        expires_at: None,
    };
    Ok((Caller { token }, grant))
}

/// A queue pattern that matches `queue` (itself, unless its name has a `*`:
/// then the prefix before it; the job token's routes are confined to its job
/// by id in any case).
fn only_queue(queue: &str) -> QueuePattern {
    queue.parse().unwrap_or_else(|_| {
        let prefix = queue.split('*').next().unwrap_or_default();
        format!("{prefix}*")
            .parse()
            .unwrap_or_else(|_| "*".parse().expect("* is a pattern"))
    })
}
