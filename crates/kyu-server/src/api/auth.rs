//! Authorization, decided here and nowhere else: every API route is built
//! from the route table ([`super::table`]) with this middleware around it,
//! carrying the route's [`Rule`]. The middleware checks the bearer token
//! (401), the route's scope (403 `forbidden_scope`) and, for routes that do
//! not filter by queue, that the token is not limited to queues (403
//! `forbidden_queue`): such a route (e.g. `/metrics`, token admin) shows
//! every queue, so a tenant's token may not call it. Routes that filter by
//! queue get the token as a [`Caller`] and see jobs only through its
//! queue checks.

use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use kyu::{JobRecord, Scope, TokenRecord};

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

/// The middleware every table route runs behind.
pub(crate) async fn authorize(
    State((shared, rule)): State<(Shared, Rule)>,
    mut req: Request,
    next: Next,
) -> Response {
    let (method, path) = (req.method().clone(), req.uri().path().to_string());
    let header = req.headers().get(header::AUTHORIZATION).cloned();
    match check(&shared, rule, header, &method, &path).await {
        Ok(caller) => {
            req.extensions_mut().insert(caller);
            next.run(req).await
        }
        Err(e) => e.into_response(),
    }
}

async fn check(
    shared: &Shared,
    rule: Rule,
    header: Option<axum::http::HeaderValue>,
    method: &axum::http::Method,
    path: &str,
) -> Result<Caller, ApiError> {
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
    check_secret(shared, rule, secret, method, path)
        .await
        .map_err(|e| match e.status {
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
