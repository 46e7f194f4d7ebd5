//! # kyu-server
//!
//! kyu's network face, on one HTTP listener that `kyu serve` (and `kyu
//! worker --http ADDR`) opens. For now it serves:
//!
//! - `GET /metrics`: Prometheus text format: the counters and histograms
//!   the `kyu` library records through the `metrics` facade (see
//!   [`kyu::metrics`]), and the gauges read from the store at scrape time
//!   (`kyu_jobs{queue,state}`, `kyu_queue_paused{queue}`,
//!   `kyu_schedule_next_fire_timestamp_seconds{schedule}`, `kyu_store_up`,
//!   `kyu_build_info{version}`), cached for a few seconds so that many
//!   scrapers cost one query (module `metrics`);
//! - `GET /healthz`: the process is alive (no database call), and
//!   `GET /readyz`: the database answers (module `health`).
//!
//! - the JSON API under `/v1` (module [`api`]): producers and operators,
//!   every route a row of one table with its required token scope, behind
//!   one authorization middleware; `GET /openapi.json` describes it;
//! - remote workers over HTTP under `/v1/workers` (module [`api::workers`]):
//!   register, claim with a long poll, heartbeat, finish fenced by lease
//!   tokens, leave.
//!
//! Every route but `/healthz` and `/readyz` needs `Authorization: Bearer
//! TOKEN` (see `kyu::tokens`); `/metrics` needs the `metrics` scope.
//!
//! - `GET /v1/events`: the event log as Server-Sent Events (module
//!   `api::events`), resumable with `Last-Event-ID`.
//! - the web dashboard at `/` (module [`dashboard`]): server-rendered
//!   pages for operators, logged in with the same tokens, scopes and queue
//!   patterns as the API, its assets embedded in the binary.
//!
//! This crate depends on `kyu`
//! only, never on a backend.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let kyu = kyu::Kyu::connect("sqlite://kyu.db").await?;
//! let metrics = kyu_server::install_recorder()?; // before workers start
//! let app = kyu_server::router(kyu, kyu_server::Options::default().metrics(metrics));
//! let addr = kyu_server::parse_addr("listen", "127.0.0.1:7070")?;
//! let listener = kyu_server::bind(addr).await?;
//! kyu_server::serve(listener, app, std::future::pending()).await?;
//! # Ok(()) }
//! ```

#![warn(missing_docs)]

pub mod api;
pub mod dashboard;
mod exposition;
mod health;
mod kind_defaults;
mod listen;
mod metrics;
mod store_gauges;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use kyu::Kyu;

pub use kind_defaults::KindDefaults;
pub use listen::{bind, parse_addr, serve};
pub use metrics::{install_recorder, PrometheusHandle};

/// What the server needs to know besides the store. Every field has a
/// default; see each.
#[derive(Clone)]
pub struct Options {
    /// The recorder whose counters and histograms `/metrics` renders (from
    /// [`install_recorder`]). Default none: `/metrics` gives only the gauges
    /// read from the store, for an application that exports the library's
    /// metrics through a recorder of its own.
    pub metrics: Option<PrometheusHandle>,
    /// How long the gauges read from the store are reused before the next
    /// scrape reads them again. Default 5 s.
    pub store_gauges_ttl: Duration,
    /// How long `/readyz` waits for the database. Default 2 s.
    pub ready_timeout: Duration,
    /// Largest request body, in bytes; a larger one is refused with 413.
    /// Default 2 MiB (the library's 1 MiB args limit and room for the rest).
    pub body_limit: usize,
    /// Largest page of a list, batch or action by ids. Default 1000.
    pub max_page: usize,
    /// Longest long poll (`?wait=`, a worker claim's `wait_ms`). Default 30 s.
    pub max_wait: Duration,
    /// Event streams (`GET /v1/events`) one token may hold open at once;
    /// one more is refused with 429. Default 8.
    pub sse_streams_per_token: usize,
    /// Long polls (`?wait=`) one token may hold open at once; one more is
    /// refused with 429. Default 64.
    pub long_polls_per_token: usize,
    /// How often an idle event stream gets a keep-alive comment. Default 15 s.
    pub sse_keep_alive: Duration,
    /// How many jobs a bulk action by filter reads and acts on per store
    /// call (one transaction each). Default 500.
    pub bulk_batch: usize,
    /// The lease of a remote worker that registers without `lease_ms`
    /// (`POST /v1/workers`). Default 30 s, as a local worker's.
    pub worker_lease: Duration,
    /// What remote workers are told to do (run, quiet, stop): `kyu serve`
    /// says quiet when it starts shutting down. Default run.
    pub worker_control: api::workers::WorkerControl,
    /// Each job kind's defaults (`[jobs.KIND]` in kyu.toml): a job enqueued
    /// over HTTP (single, batch, batch member or callback, schedule
    /// template) gets what its request does not give, as `kyu enqueue`
    /// does. Default none.
    pub kind_defaults: HashMap<String, KindDefaults>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            metrics: None,
            store_gauges_ttl: Duration::from_secs(5),
            ready_timeout: Duration::from_secs(2),
            body_limit: 2 * 1024 * 1024,
            max_page: 1000,
            max_wait: Duration::from_secs(30),
            sse_streams_per_token: 8,
            long_polls_per_token: 64,
            sse_keep_alive: Duration::from_secs(15),
            bulk_batch: 500,
            worker_lease: Duration::from_secs(30),
            worker_control: api::workers::WorkerControl::default(),
            kind_defaults: HashMap::new(),
        }
    }
}

impl std::fmt::Debug for Options {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Options")
            .field("metrics", &self.metrics.is_some())
            .field("store_gauges_ttl", &self.store_gauges_ttl)
            .field("ready_timeout", &self.ready_timeout)
            .field("body_limit", &self.body_limit)
            .field("max_page", &self.max_page)
            .field("max_wait", &self.max_wait)
            .field("sse_streams_per_token", &self.sse_streams_per_token)
            .field("long_polls_per_token", &self.long_polls_per_token)
            .field("sse_keep_alive", &self.sse_keep_alive)
            .field("bulk_batch", &self.bulk_batch)
            .field("worker_lease", &self.worker_lease)
            .field("worker_control", &self.worker_control.get())
            .field("kind_defaults", &self.kind_defaults)
            .finish()
    }
}

impl Options {
    /// Sets [`Options::metrics`].
    pub fn metrics(mut self, handle: PrometheusHandle) -> Options {
        self.metrics = Some(handle);
        self
    }
}

/// What every route shares.
pub(crate) struct Shared {
    pub(crate) kyu: Kyu,
    pub(crate) options: Options,
    pub(crate) store_gauges: store_gauges::StoreGauges,
    pub(crate) permits: api::permits::Permits,
    /// The remote workers registered here.
    pub(crate) workers: api::worker_sessions::Sessions,
}

/// The handle every route gets.
pub(crate) type State = Arc<Shared>;

/// The whole HTTP face over `kyu`: the API (`/v1`, `/openapi.json`),
/// the dashboard (`/`), `/metrics`, `/healthz`, `/readyz`. An unknown path answers 404 in the
/// API's error shape.
pub fn router(kyu: Kyu, options: Options) -> Router {
    let body_limit = options.body_limit;
    let shared = Arc::new(Shared {
        store_gauges: store_gauges::StoreGauges::new(kyu.clone(), options.store_gauges_ttl),
        kyu,
        options,
        permits: Default::default(),
        workers: Default::default(),
    });
    Router::new()
        .merge(health::routes())
        .merge(api::router(shared.clone()))
        .merge(dashboard::router(shared.clone()))
        .fallback(not_found)
        .layer(axum::extract::DefaultBodyLimit::max(body_limit))
        .layer(axum::Extension(api::extract::BodyLimit(body_limit)))
        .with_state(shared)
}

async fn not_found(uri: axum::http::Uri) -> api::error::ApiError {
    api::error::ApiError::not_found(format!(
        "no route {}; accepted: the routes of GET /openapi.json",
        uri.path()
    ))
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The listen address could not be understood.
    #[error("{field}: {value:?} is not a listen address; accepted: IP:PORT, e.g. 127.0.0.1:7070, 0.0.0.0:7070 or [::1]:7070")]
    BadAddress {
        /// Where it came from (e.g. `--http`, `[http] listen`).
        field: String,
        /// What was given.
        value: String,
    },
    /// The address could not be listened on (in use, not this host's, no permission).
    #[error("could not listen on {addr}: {reason}")]
    Bind {
        /// The address.
        addr: std::net::SocketAddr,
        /// Why, in words (e.g. "the address is already in use").
        reason: String,
        /// The system's error.
        #[source]
        source: std::io::Error,
    },
    /// A metrics recorder was already installed in this process.
    #[error("a metrics recorder is already installed in this process; kyu's /metrics needs its own (install_recorder), or pass none and export kyu's metrics through yours")]
    RecorderTaken,
    /// The server stopped with an I/O error.
    #[error("the HTTP server stopped: {0}")]
    Io(#[from] std::io::Error),
}
