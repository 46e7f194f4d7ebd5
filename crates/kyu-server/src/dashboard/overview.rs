//! The overview: throughput and failed attempts over the last hour and day
//! (charts of the event log's rollup, module `rates`), jobs by state and
//! latency per queue (the viewer's queues only), the runnable jobs no live
//! worker claims, and the live workers.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use kyu::JobState;
use maud::html;

use super::layout;
use super::session::{PageError, Viewer};
use super::DashState;

/// `GET /`.
pub(crate) async fn page(
    State(dash): State<DashState>,
    viewer: Viewer,
) -> Result<Response, PageError> {
    let after = dash.shared.kyu.last_event_id().await?;
    let caller = &viewer.caller;
    // Both may wait a little for a first reading: side by side, so a first
    // view at a million jobs waits for the longer of the two, not their sum.
    let (snap, charts) = tokio::join!(dash.counts.get(), dash.rates.charts(|q| caller.sees(q)));
    let snap = snap?;
    let queues: Vec<_> = snap
        .queues
        .iter()
        .filter(|q| caller.sees(&q.queue))
        .collect();
    let unhandled: Vec<_> = snap
        .unhandled
        .iter()
        .filter(|w| caller.sees(&w.queue))
        .collect();
    let workers = super::workers::seen_by(caller, &snap.workers);
    let total = |s: JobState| queues.iter().map(|q| q.count(s)).sum::<u64>();
    let body = html! {
        h1 { "Overview" }
        (super::live::marker(None, after))
        @if snap.counting {
            (super::counts::counting_notice())
        } @else {
            p.hint { "Counts as of " (layout::time(snap.at)) " (read in " (format!("{:.0?}", snap.cost))
                "), shared by every viewer and read anew at most every "
                (super::counts::TTL.max(snap.cost * super::counts::COST_FACTOR).as_secs()) " s." }
        }
        @if !unhandled.is_empty() {
            section.warning role="alert" {
                h2 { "Jobs waiting but no worker" }
                p { "These jobs are runnable, but no live worker claims their kind on their queue: they wait until one starts." }
                table {
                    thead { tr { th scope="col" { "Queue" } th scope="col" { "Kind" } th scope="col" class="num" { "Waiting" } } }
                    tbody {
                        @for w in &unhandled {
                            tr {
                                td { a href=(jobs_link(&w.queue, Some(&w.kind))) { (w.queue) } }
                                td { (w.kind) }
                                td.num { (w.count) }
                            }
                        }
                    }
                }
            }
        }
        section.charts {
            h2 { "Throughput" }
            @if let Some(through) = charts.catching_up {
                p.hint role="status" { "The charts are still reading the event log this server found"
                    @if let Some(t) = through { " (read through " (layout::time(t)) ")" }
                    ": they are complete from the next reload or two." }
            }
            h3 { "Last hour, per minute" }
            (super::chart::bars("chart-hour", "Last hour, per minute", &charts.hour, 10))
            h3 { "Last day, per 15 minutes" }
            (super::chart::bars("chart-day", "Last day, per 15 minutes", &charts.day, 16))
        }
        section {
            h2 { "Jobs by queue" }
            @if queues.is_empty() {
                p { "No queue has jobs yet." }
            } @else {
                div.scroll { table {
                    thead { tr {
                        th scope="col" { "Queue" }
                        @for s in JobState::ALL { th scope="col" class="num" { (s.as_str()) } }
                        th scope="col" class="num" title="how long the oldest runnable job has waited" { "Latency" }
                        th scope="col" { "Paused" }
                    } }
                    tbody {
                        @for q in &queues {
                            tr {
                                th scope="row" { a href=(jobs_link(&q.queue, None)) { (q.queue) } }
                                @for s in JobState::ALL {
                                    td.num { a href=(format!("{}&state={}", jobs_link(&q.queue, None), s.as_str())) { (layout::count(q.count(s))) } }
                                }
                                td.num { (super::queues::latency(q.latency(snap.at))) }
                                td { @if q.paused { span.state.paused { "paused" } } @else { "no" } }
                            }
                        }
                    }
                    tfoot { tr {
                        th scope="row" { "All" }
                        @for s in JobState::ALL { td.num { (layout::count(total(s))) } }
                        td {}
                        td {}
                    } }
                } }
            }
        }
        section {
            h2 { "Live workers" }
            p.hint { a href="/workers" { "Workers" } ": their slots in use and the jobs they hold." }
            @if workers.is_empty() {
                p { "No live worker works your queues." }
            } @else {
                table {
                    thead { tr { th scope="col" { "Worker" } th scope="col" { "Queues" } th scope="col" { "Kinds" } th scope="col" { "Last seen" } } }
                    tbody {
                        @for (w, qs) in &workers {
                            tr {
                                td { code { (w.info.id) } }
                                td { (qs.join(", ")) }
                                td { @match &w.info.kinds { Some(k) => (k.join(", ")), None => "every kind" } }
                                td { (layout::time(w.last_seen)) }
                            }
                        }
                    }
                }
            }
        }
    };
    let mut resp = layout::page(&viewer, "Overview", "/", body).into_response();
    super::counts::reload_while_counting(&snap, &mut resp);
    Ok(resp)
}

/// The Jobs page filtered by queue (and kind).
pub(crate) fn jobs_link(queue: &str, kind: Option<&str>) -> String {
    let mut pairs = vec![("queue", queue)];
    if let Some(k) = kind {
        pairs.push(("kind", k));
    }
    format!(
        "/jobs?{}",
        serde_urlencoded::to_string(pairs).unwrap_or_default()
    )
}
