//! The OpenAPI 3.1 document, generated from the handlers' types (utoipa),
//! served at `GET /openapi.json` and checked in as `docs/openapi.json`.

use axum::Json;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::{batches, bulk, events, jobs, progress, queues, schedules, workers};

/// The document's definition: every route of the table.
#[derive(OpenApi)]
#[openapi(
    info(title = "kyu", description = "kyu's HTTP API: producers, operators and remote workers. Every route but /healthz and /readyz needs `Authorization: Bearer TOKEN` (a token from `kyu tokens create`; a command job's KYU_JOB_TOKEN is taken only by GET /v1/jobs/{id} and POST /v1/jobs/{id}/progress of its own job, while its attempt runs). Errors are {\"error\": {\"code\", \"message\", \"field\"}}: 400 bad input (422 never), 401 no or bad token, 403 scope or queue not allowed (or a job token off its own job), 404 not found (or not visible to the token), 409 conflict, 413 body over the limit, 429 too many open streams or long polls for the token, 503 database unavailable."),
    paths(
        jobs::enqueue, jobs::enqueue_batch, jobs::list_jobs, jobs::get_job, jobs::job_logs,
        jobs::cancel, jobs::retry, progress::report,
        batches::create, batches::add_jobs, batches::seal, batches::get,
        queues::list, queues::pause, queues::resume, queues::update,
        schedules::list, schedules::delete, schedules::enable, schedules::disable,
        schedules::trigger, schedules::preview,
        workers::register, workers::leave, workers::claim, workers::heartbeat, workers::ack,
        workers::complete, workers::fail, workers::snooze, workers::progress,
        crate::metrics::scrape, serve,
        events::stream,
        bulk::delete_one, bulk::delete_ids, bulk::run_now_ids, bulk::bulk,
        schedules::upsert, schedules::update,
    ),
    modifiers(&Bearer),
)]
pub struct ApiDoc;

struct Bearer;

impl Modify for Bearer {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The document as JSON text, pretty-printed, ending in a newline (as checked in).
pub fn document() -> String {
    let mut text = ApiDoc::openapi()
        .to_pretty_json()
        .expect("the OpenAPI document serializes");
    text.push('\n');
    text
}

/// The API's OpenAPI 3.1 document.
#[utoipa::path(get, path = "/openapi.json", tag = "meta",
    responses((status = 200, description = "The OpenAPI document", body = Object)),
    security(("bearer" = [])))]
pub(crate) async fn serve() -> Json<serde_json::Value> {
    Json(serde_json::to_value(ApiDoc::openapi()).expect("the OpenAPI document serializes"))
}
