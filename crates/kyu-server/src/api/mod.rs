//! The JSON API under `/v1`, `/metrics` and `/openapi.json`: every route is a
//! row of one table ([`table`]) naming its method, path, required scope and
//! whether it filters by the token's queues. The router is built from the
//! table with the authorization middleware ([`auth::authorize`]) around each
//! route, so no route can be added without its rule; the authorization
//! matrix test and the OpenAPI test walk the same table. A few rows also take
//! a command's job token (`job_token`), for its own job only.

pub mod auth;
pub mod batches;
pub mod bulk;
pub mod error;
pub mod events;
pub mod extract;
pub(crate) mod filter;
pub mod jobs;
pub mod openapi;
pub mod permits;
pub mod progress;
pub mod queues;
pub mod schedules;
pub(crate) mod worker_sessions;
pub mod workers;

use std::collections::BTreeMap;

use axum::handler::Handler;
use axum::http::Method;
use axum::routing::{on, MethodFilter, MethodRouter};
use axum::Router;
use kyu::Scope;

use crate::State as Shared;
use auth::Rule;

/// One route of the API, as the table states it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteInfo {
    /// The method.
    pub method: Method,
    /// The path, with `{param}` placeholders.
    pub path: &'static str,
    /// The scope a token needs.
    pub scope: Scope,
    /// Whether the route filters by the token's queue patterns (a route that
    /// does not refuses tokens limited to queues).
    pub queue_scoped: bool,
    /// Whether a command's job token (`KYU_JOB_TOKEN`) may call it, aimed at
    /// its own job (the path's `{id}`); every other route refuses job tokens.
    pub job_token: bool,
}

/// A table row: what it is and its handler.
pub(crate) struct Route {
    pub(crate) info: RouteInfo,
    pub(crate) handler: MethodRouter<Shared>,
}

/// Filters by the token's queues.
const QUEUES: bool = true;
/// Shows every queue: refused to tokens limited to queues.
const ALL: bool = false;

fn route<H, T>(method: Method, path: &'static str, scope: Scope, queue_scoped: bool, h: H) -> Route
where
    H: Handler<T, Shared>,
    T: 'static,
{
    let filter = MethodFilter::try_from(method.clone()).expect("a standard method");
    Route {
        info: RouteInfo {
            method,
            path,
            scope,
            queue_scoped,
            job_token: false,
        },
        handler: on(filter, h),
    }
}

impl Route {
    /// Also open to a job token, for its own job (the path's `{id}`).
    fn and_job_token(mut self) -> Route {
        assert!(
            self.info.path.contains("{id}"),
            "a route open to job tokens names its job as {{id}}: {}",
            self.info.path
        );
        self.info.job_token = true;
        self
    }
}

/// The route table: every route the API serves, with its rule.
pub(crate) fn table() -> Vec<Route> {
    use Method as M;
    use Scope as S;
    vec![
        route(M::POST, "/v1/jobs", S::Produce, QUEUES, jobs::enqueue),
        route(
            M::POST,
            "/v1/jobs/batch",
            S::Produce,
            QUEUES,
            jobs::enqueue_batch,
        ),
        route(M::GET, "/v1/jobs", S::Read, QUEUES, jobs::list_jobs),
        // A batch may span queues: refused to tokens limited to queues.
        route(M::POST, "/v1/batches", S::Produce, ALL, batches::create),
        route(
            M::POST,
            "/v1/batches/{id}/jobs",
            S::Produce,
            ALL,
            batches::add_jobs,
        ),
        route(
            M::POST,
            "/v1/batches/{id}/seal",
            S::Produce,
            ALL,
            batches::seal,
        ),
        route(M::GET, "/v1/batches/{id}", S::Read, ALL, batches::get),
        route(M::GET, "/v1/jobs/{id}", S::Read, QUEUES, jobs::get_job).and_job_token(),
        route(
            M::POST,
            "/v1/jobs/{id}/progress",
            S::Work,
            QUEUES,
            progress::report,
        )
        .and_job_token(),
        route(
            M::GET,
            "/v1/jobs/{id}/logs",
            S::ReadArgs,
            QUEUES,
            jobs::job_logs,
        ),
        route(M::POST, "/v1/jobs/cancel", S::Operate, QUEUES, jobs::cancel),
        route(M::POST, "/v1/jobs/retry", S::Operate, QUEUES, jobs::retry),
        route(M::GET, "/v1/queues", S::Read, QUEUES, queues::list),
        route(
            M::POST,
            "/v1/queues/{name}/pause",
            S::Operate,
            QUEUES,
            queues::pause,
        ),
        route(
            M::POST,
            "/v1/queues/{name}/resume",
            S::Operate,
            QUEUES,
            queues::resume,
        ),
        route(
            M::PATCH,
            "/v1/queues/{name}",
            S::Operate,
            QUEUES,
            queues::update,
        ),
        route(M::GET, "/v1/schedules", S::Read, QUEUES, schedules::list),
        route(
            M::DELETE,
            "/v1/schedules/{name}",
            S::Operate,
            QUEUES,
            schedules::delete,
        ),
        route(
            M::POST,
            "/v1/schedules/{name}/enable",
            S::Operate,
            QUEUES,
            schedules::enable,
        ),
        route(
            M::POST,
            "/v1/schedules/{name}/disable",
            S::Operate,
            QUEUES,
            schedules::disable,
        ),
        route(
            M::POST,
            "/v1/schedules/{name}/trigger",
            S::Operate,
            QUEUES,
            schedules::trigger,
        ),
        route(
            M::GET,
            "/v1/schedules/{name}/preview",
            S::Read,
            QUEUES,
            schedules::preview,
        ),
        route(M::POST, "/v1/workers", S::Work, QUEUES, workers::register),
        route(
            M::DELETE,
            "/v1/workers/{worker}",
            S::Work,
            QUEUES,
            workers::leave,
        ),
        route(
            M::POST,
            "/v1/workers/{worker}/claim",
            S::Work,
            QUEUES,
            workers::claim,
        ),
        route(
            M::POST,
            "/v1/workers/{worker}/heartbeat",
            S::Work,
            QUEUES,
            workers::heartbeat,
        ),
        route(
            M::POST,
            "/v1/workers/{worker}/ack",
            S::Work,
            QUEUES,
            workers::ack,
        ),
        route(
            M::POST,
            "/v1/workers/{worker}/jobs/{id}/complete",
            S::Work,
            QUEUES,
            workers::complete,
        ),
        route(
            M::POST,
            "/v1/workers/{worker}/jobs/{id}/fail",
            S::Work,
            QUEUES,
            workers::fail,
        ),
        route(
            M::POST,
            "/v1/workers/{worker}/jobs/{id}/snooze",
            S::Work,
            QUEUES,
            workers::snooze,
        ),
        route(
            M::POST,
            "/v1/workers/{worker}/jobs/{id}/progress",
            S::Work,
            QUEUES,
            workers::progress,
        ),
        route(M::GET, "/metrics", S::Metrics, ALL, crate::metrics::scrape),
        route(M::GET, "/openapi.json", S::Read, QUEUES, openapi::serve),
        route(M::GET, "/v1/events", S::Read, QUEUES, events::stream),
        route(
            M::DELETE,
            "/v1/jobs/{id}",
            S::Operate,
            QUEUES,
            bulk::delete_one,
        ),
        route(
            M::POST,
            "/v1/jobs/delete",
            S::Operate,
            QUEUES,
            bulk::delete_ids,
        ),
        route(
            M::POST,
            "/v1/jobs/run_now",
            S::Operate,
            QUEUES,
            bulk::run_now_ids,
        ),
        route(M::POST, "/v1/jobs/bulk", S::Operate, QUEUES, bulk::bulk),
        route(
            M::PUT,
            "/v1/schedules/{name}",
            S::Operate,
            QUEUES,
            schedules::upsert,
        ),
        route(
            M::PATCH,
            "/v1/schedules/{name}",
            S::Operate,
            QUEUES,
            schedules::update,
        ),
    ]
}

/// The route table as data: method, path, scope, queue filtering.
pub fn routes() -> Vec<RouteInfo> {
    table().into_iter().map(|r| r.info).collect()
}

/// The table's routes, each behind the authorization middleware with its rule.
pub(crate) fn router(shared: Shared) -> Router<Shared> {
    let mut by_path: BTreeMap<&'static str, MethodRouter<Shared>> = BTreeMap::new();
    for r in table() {
        let rule = Rule {
            scope: r.info.scope,
            queue_scoped: r.info.queue_scoped,
        };
        let guarded = r.handler.layer(axum::middleware::from_fn_with_state(
            (shared.clone(), rule, auth::JobTokens(r.info.job_token)),
            auth::authorize,
        ));
        let merged = match by_path.remove(r.info.path) {
            Some(m) => m.merge(guarded),
            None => guarded,
        };
        by_path.insert(r.info.path, merged);
    }
    by_path
        .into_iter()
        .fold(Router::new(), |router, (path, m)| router.route(path, m))
}
