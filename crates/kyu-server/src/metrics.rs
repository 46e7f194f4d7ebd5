//! `GET /metrics`: the Prometheus text format.
//!
//! Three parts, in this order: the metrics the `kyu` library recorded in this
//! process (counters, histograms, worker slots: see [`kyu::metrics`]), from
//! the recorder [`install_recorder`] installed; the gauges read from the store
//! (module `store_gauges`, cached for a few seconds); and `kyu_build_info`.

use std::time::Duration;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};

use crate::exposition::Exposition;
use crate::{Error, State as Shared};

/// The recorder's handle: renders what was recorded (re-exported from
/// `metrics-exporter-prometheus`).
pub use metrics_exporter_prometheus::PrometheusHandle;

/// The content type of the Prometheus text format.
const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Installs a Prometheus recorder as this process's `metrics` recorder, with
/// kyu's help texts ([`kyu::metrics::describe`]) and explicit buckets for its
/// histograms ([`kyu::metrics::DURATION_BUCKETS`]). Call it before starting
/// workers. Within a tokio runtime it also starts the recorder's upkeep (every
/// 5 s), which keeps the memory of histograms bounded between scrapes.
///
/// Fails with [`Error::RecorderTaken`] if the process already has a recorder.
pub fn install_recorder() -> Result<PrometheusHandle, Error> {
    let recorder = PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Suffix("_seconds".into()),
            kyu::metrics::DURATION_BUCKETS,
        )
        .expect("the buckets are not empty")
        .build_recorder();
    let handle = recorder.handle();
    metrics::set_global_recorder(recorder).map_err(|_| Error::RecorderTaken)?;
    kyu::metrics::describe();
    if let Ok(rt) = tokio::runtime::Handle::try_current() {
        let upkeep = handle.clone();
        rt.spawn(async move {
            let mut every = tokio::time::interval(Duration::from_secs(5));
            loop {
                every.tick().await;
                upkeep.run_upkeep();
            }
        });
    }
    Ok(handle)
}

/// `GET /metrics`: a route of the API's table (scope `metrics`).
#[utoipa::path(get, path = "/metrics", tag = "metrics",
    responses((status = 200, description = "Prometheus text format", body = String, content_type = "text/plain")),
    security(("bearer" = [])))]
pub(crate) async fn scrape(State(shared): State<Shared>) -> impl IntoResponse {
    let mut text = match &shared.options.metrics {
        Some(handle) => handle.render(),
        None => String::new(),
    };
    text.push_str(&shared.store_gauges.text().await);
    let mut e = Exposition::default();
    e.gauge(
        "kyu_build_info",
        "Always 1; the kyu version serving these metrics is its label.",
    );
    e.sample(
        "kyu_build_info",
        &[("version", env!("CARGO_PKG_VERSION"))],
        1.0,
    );
    text.push_str(&e.into_string());
    ([(header::CONTENT_TYPE, CONTENT_TYPE)], text)
}
