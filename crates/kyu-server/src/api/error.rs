//! The API's one error shape, `{"error": {"code", "message", "field"}}`, and
//! its one status rule:
//!
//! | status | when |
//! | --- | --- |
//! | 400 | the request is wrong, whatever part of it: unreadable JSON, a missing or unknown field, a value the library refuses (the same words as the CLI: what, where, what is accepted). 422 is never used. |
//! | 401 | no token, or a token that is unknown, revoked or expired |
//! | 403 | the token lacks the route's scope, or names a queue it may not touch |
//! | 404 | no such job, schedule or route, or one in a queue the token may not see (indistinguishable, so nothing leaks) |
//! | 409 | a conflict with the stored state (a token name taken, a stale lease) |
//! | 413 | the body is over the limit |
//! | 429 | the token already holds its cap of open event streams or long polls (`[http] sse_streams_per_token`, `long_polls_per_token`) |
//! | 503 | the database did not answer (the only 5xx; never for bad input) |

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

/// An API error: a status and the body every error has.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// The HTTP status (see the module's rule).
    pub status: StatusCode,
    /// What the client shows.
    pub body: ErrorDetail,
}

/// The body of every error.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// What went wrong.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(example = json!({"code": "invalid", "message": "queue: \"\" is not accepted (empty); accepted: a queue name is 1 to 128 characters without control characters or leading or trailing whitespace", "field": "queue"}))]
pub struct ErrorDetail {
    /// A stable machine-readable code, e.g. `invalid`, `not_found`, `forbidden_scope`.
    pub code: String,
    /// What was wrong, where, and what is accepted.
    pub message: String,
    /// The request field at fault, if one is.
    pub field: Option<String>,
}

impl ApiError {
    /// An error with `status`, `code` and `message`, no field.
    pub fn new(status: StatusCode, code: &str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            body: ErrorDetail {
                code: code.into(),
                message: message.into(),
                field: None,
            },
        }
    }

    /// Names the field at fault.
    pub fn field(mut self, field: impl Into<String>) -> ApiError {
        self.body.field = Some(field.into());
        self
    }

    /// 400 `invalid`.
    pub fn invalid(field: &str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "invalid", message).field(field)
    }

    /// 404 `not_found`.
    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// 403 `forbidden_queue`: the token may not touch `queue`.
    pub fn forbidden_queue(field: &str, queue: &str) -> ApiError {
        ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden_queue",
            format!(
                "{field}: this token may not touch queue {queue:?}; accepted: a queue matching the token's queue patterns (see `kyu tokens ls`)"
            ),
        )
        .field(field)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(ErrorBody { error: self.body })).into_response()
    }
}

impl From<kyu::InvalidInput> for ApiError {
    fn from(e: kyu::InvalidInput) -> ApiError {
        ApiError::invalid(&e.field.clone(), e.to_string())
    }
}

impl From<kyu::Error> for ApiError {
    fn from(e: kyu::Error) -> ApiError {
        match e {
            kyu::Error::Invalid(i) => i.into(),
            kyu::Error::NotFound(id) => ApiError::not_found(format!("job {id} not found")),
            kyu::Error::ScheduleNotFound(n) => {
                ApiError::not_found(format!("schedule {n:?} not found"))
            }
            kyu::Error::TokenNameTaken(_) => {
                ApiError::new(StatusCode::CONFLICT, "conflict", e.to_string()).field("name")
            }
            other => {
                tracing::warn!(error = %other, "api: the store failed");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    format!("the database did not answer: {other}"),
                )
            }
        }
    }
}

impl From<kyu::StoreError> for ApiError {
    fn from(e: kyu::StoreError) -> ApiError {
        kyu::Error::from(e).into()
    }
}
