//! Extractors that answer bad input with the API's error shape (400, or 413
//! for a body over the limit), never with axum's plain-text rejections.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::StatusCode;
use serde::de::DeserializeOwned;

use super::error::ApiError;

/// The largest request body the server takes ([`crate::Options::body_limit`]),
/// put in every request's extensions so a refusal can state it.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimit(pub usize);

/// A JSON request body of type `T`.
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let limit = req.extensions().get::<BodyLimit>().map(|l| l.0);
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                let accepted = match limit {
                    Some(n) => format!("up to {n} bytes ([http] body_limit)"),
                    None => "up to [http] body_limit bytes".to_string(),
                };
                ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "body_too_large",
                    format!("the request body is over the limit; accepted: {accepted}"),
                )
            } else {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "bad_body",
                    format!("the request body could not be read: {e}"),
                )
            }
        })?;
        serde_json::from_slice(&bytes).map(JsonBody).map_err(|e| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "bad_json",
                format!("body: {e}; accepted: a JSON document as the API's schema describes (GET /openapi.json)"),
            )
            .field("body")
        })
    }
}

/// A query string of type `T`.
pub struct Query<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let q = parts.uri.query().unwrap_or("");
        serde_urlencoded_from_str(q).map(Query)
    }
}

fn serde_urlencoded_from_str<T: DeserializeOwned>(q: &str) -> Result<T, ApiError> {
    axum::extract::Query::<T>::try_from_uri(&format!("/?{q}").parse().map_err(|_| {
        ApiError::invalid(
            "query",
            "the query string is not valid; accepted: name=value pairs joined by &",
        )
    })?)
    .map(|axum::extract::Query(t)| t)
    .map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid",
            format!("query: {}", e.body_text()),
        )
        .field("query")
    })
}

/// A job id from the path.
pub struct JobIdPath(pub kyu::JobId);

impl<S: Send + Sync> FromRequestParts<S> for JobIdPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let axum::extract::Path(raw) =
            axum::extract::Path::<String>::from_request_parts(parts, state)
                .await
                .map_err(|e| ApiError::invalid("id", format!("id: {}", e.body_text())))?;
        raw.parse::<kyu::JobId>()
            .ok()
            .filter(|id| *id > 0)
            .map(JobIdPath)
            .ok_or_else(|| {
                ApiError::invalid(
                    "id",
                    format!("id: {raw:?} is not a job id; accepted: a positive integer"),
                )
            })
    }
}

/// A name (of a queue or schedule) from the path.
pub struct NamePath(pub String);

impl<S: Send + Sync> FromRequestParts<S> for NamePath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Path::<String>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(n)| NamePath(n))
            .map_err(|e| ApiError::invalid("name", format!("name: {}", e.body_text())))
    }
}

/// Parses a duration such as `30s`, `5m`, `90d` given in `field`.
pub fn duration(field: &str, s: &str) -> Result<std::time::Duration, ApiError> {
    humantime::parse_duration(s).map_err(|e| {
        ApiError::invalid(
            field,
            format!(
                "{field}: {s:?} is not a duration ({e}); accepted: e.g. 500ms, 30s, 5m, 2h, 7d"
            ),
        )
    })
}
