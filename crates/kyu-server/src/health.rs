//! `/healthz` and `/readyz`.
//!
//! `/healthz` answers as long as the process serves requests: it touches
//! nothing else, so a slow database never makes an orchestrator restart a
//! healthy process. `/readyz` asks the database one cheap question (one job
//! by its primary key) within [`Options::ready_timeout`](crate::Options):
//! 200 when it answers, 503 with the reason when it does not.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;

use crate::State as Shared;

pub(crate) fn routes() -> Router<Shared> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(shared): State<Shared>) -> (StatusCode, String) {
    let probe = shared.kyu.store().get(0);
    match tokio::time::timeout(shared.options.ready_timeout, probe).await {
        Ok(Ok(_)) => (StatusCode::OK, "ok\n".into()),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "readyz: the database did not answer");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                format!("not ready: the database did not answer: {e}\n"),
            )
        }
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "not ready: the database did not answer within {:?}\n",
                shared.options.ready_timeout
            ),
        ),
    }
}
