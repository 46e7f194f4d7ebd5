//! The web dashboard at `/`: server-rendered HTML (maud templates, checked
//! at compile time, every value escaped), its CSS, script and icon embedded
//! in the binary (module [`assets`]), so it works offline from one binary.
//!
//! Every page and action is a row of one table ([`table`]) naming its
//! method, path and [`Access`]; the router is built from the table with the
//! session guard ([`session::guard`]) around each row, and the tests walk
//! the same table (every page × scope × tenant), so no page can be added
//! without its rule. The rules are the API's: the same tokens, the same
//! scopes (`read` to see, `read_args` to see args, results and output,
//! `operate` to act), the same queue patterns (a tenant's token never sees
//! another tenant's queues, jobs, counts or schedules on any page).
//!
//! A browser logs in with a token (the login form, or the link the first
//! `kyu serve` prints); the token is kept in an HttpOnly, SameSite=Strict
//! cookie. Every action is a POST form that carries the session's CSRF
//! token, and is refused when the browser says it came from another site
//! (`Origin`, `Sec-Fetch-Site`).

mod actions;
pub mod assets;
mod batches;
mod bulk;
mod chart;
mod counts;
mod fires;
mod job;
mod jobs;
mod jobs_query;
mod layout;
mod live;
mod live_page;
mod overview;
mod queues;
mod rates;
mod schedules;
pub mod session;
mod tail;
mod workers;

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::handler::Handler;
use axum::http::Method;
use axum::routing::{on, MethodFilter, MethodRouter};
use axum::Router;
use kyu::Scope;

use crate::State as Shared;

/// Who may open a page or run an action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone: the login page, the assets.
    Public,
    /// Any logged-in token, whatever its scopes (logging out).
    Session,
    /// A logged-in token with this scope (an `admin` token has every scope).
    Scope(Scope),
    /// A logged-in token with this scope and not limited to queues: a page
    /// that may show every queue's jobs (batches, as the API's batch routes).
    AllQueues(Scope),
}

/// One page or action of the dashboard, as the table states it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageInfo {
    /// The method: GET for a page, POST for an action.
    pub method: Method,
    /// The path, with `{param}` placeholders.
    pub path: &'static str,
    /// Who may call it.
    pub access: Access,
}

impl PageInfo {
    /// Whether it changes something (a POST: CSRF and origin checked).
    pub fn is_action(&self) -> bool {
        self.method == Method::POST
    }
}

/// What the dashboard's handlers share: the server's state and the counts
/// cache every viewer reads.
pub(crate) struct Dash {
    pub(crate) shared: Shared,
    pub(crate) counts: counts::Counts,
    pub(crate) live: live::Live,
    pub(crate) bulk: bulk::Runs,
    pub(crate) rates: rates::Rates,
}

/// The handle every dashboard handler gets.
pub(crate) type DashState = Arc<Dash>;

pub(crate) struct Page {
    info: PageInfo,
    handler: MethodRouter<DashState>,
}

fn page<H, T>(method: Method, path: &'static str, access: Access, h: H) -> Page
where
    H: Handler<T, DashState>,
    T: 'static,
{
    let filter = MethodFilter::try_from(method.clone()).expect("a standard method");
    Page {
        info: PageInfo {
            method,
            path,
            access,
        },
        handler: on(filter, h),
    }
}

/// The table: every page and action of the dashboard, with its rule.
pub(crate) fn table() -> Vec<Page> {
    use Access::{Public, Session};
    use Method as M;
    let read = Access::Scope(Scope::Read);
    let operate = Access::Scope(Scope::Operate);
    let all_read = Access::AllQueues(Scope::Read);
    vec![
        page(M::GET, "/login", Public, session::login_page),
        page(M::POST, "/login", Public, session::login),
        page(M::POST, "/logout", Session, session::logout),
        page(M::GET, "/assets/{file}", Public, assets::serve),
        page(M::GET, "/", read, overview::page),
        page(M::GET, "/queues", read, queues::page),
        page(M::POST, "/queues/{name}/pause", operate, queues::pause),
        page(M::POST, "/queues/{name}/resume", operate, queues::resume),
        page(M::GET, "/jobs", read, jobs::page),
        page(M::POST, "/jobs/retry", operate, actions::retry),
        page(M::POST, "/jobs/cancel", operate, actions::cancel),
        page(M::POST, "/jobs/delete", operate, actions::delete),
        page(M::POST, "/jobs/run-now", operate, actions::run_now),
        page(M::GET, "/jobs/bulk", operate, bulk::confirm),
        page(M::POST, "/jobs/bulk", operate, bulk::start),
        page(M::GET, "/jobs/bulk/{run}", operate, bulk::progress),
        page(M::GET, "/jobs/{id}", read, job::page),
        page(M::GET, "/schedules", read, schedules::page),
        page(M::GET, "/live", read, live_page::page),
        page(M::GET, "/live/events", read, live::events),
        page(
            M::POST,
            "/schedules/{name}/enable",
            operate,
            schedules::enable,
        ),
        page(
            M::POST,
            "/schedules/{name}/disable",
            operate,
            schedules::disable,
        ),
        page(
            M::POST,
            "/schedules/{name}/trigger",
            operate,
            schedules::trigger,
        ),
        page(
            M::POST,
            "/queues/{name}/concurrency",
            operate,
            queues::concurrency,
        ),
        page(M::GET, "/workers", read, workers::page),
        page(M::GET, "/batches", all_read, batches::list),
        page(M::GET, "/batches/{id}", all_read, batches::detail),
    ]
}

/// The table as data: method, path, access.
pub fn pages() -> Vec<PageInfo> {
    table().into_iter().map(|p| p.info).collect()
}

/// The dashboard's pages and actions, each behind the session guard with
/// its rule, and the security headers on every answer.
pub(crate) fn router(shared: Shared) -> Router<Shared> {
    let dash = Arc::new(Dash {
        counts: counts::Counts::new(shared.kyu.clone()),
        live: live::Live::new(),
        bulk: bulk::Runs::default(),
        rates: rates::Rates::new(shared.kyu.clone()),
        shared,
    });
    let mut by_path: BTreeMap<&'static str, MethodRouter<DashState>> = BTreeMap::new();
    for p in table() {
        let guarded = p.handler.layer(axum::middleware::from_fn_with_state(
            (dash.clone(), p.info.clone()),
            session::guard,
        ));
        let merged = match by_path.remove(p.info.path) {
            Some(m) => m.merge(guarded),
            None => guarded,
        };
        by_path.insert(p.info.path, merged);
    }
    by_path
        .into_iter()
        .fold(Router::new(), |router, (path, m)| router.route(path, m))
        .layer(axum::middleware::map_response(layout::security_headers))
        .with_state(dash)
}
