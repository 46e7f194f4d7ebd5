//! Queues: depth by state, latency, limits (global concurrency with the
//! jobs running against it, rate) and the paused flag of each of the
//! viewer's queues; pause, resume and change the global concurrency
//! (scope `operate`).

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Redirect, Response};
use kyu::{JobState, LimitsUpdate, QueueLimitStatus};
use maud::{html, Markup};

use super::layout;
use super::overview::jobs_link;
use super::session::{flash, local_path, FormPairs, PageError, Viewer};
use super::DashState;
use crate::api::error::ApiError;
use crate::api::extract::NamePath;

/// `GET /queues`.
pub(crate) async fn page(
    State(dash): State<DashState>,
    viewer: Viewer,
) -> Result<Response, PageError> {
    let after = dash.shared.kyu.last_event_id().await?;
    let snap = dash.counts.get().await?;
    let queues: Vec<_> = snap
        .queues
        .iter()
        .filter(|q| viewer.caller.sees(&q.queue))
        .collect();
    let operate = viewer.operates();
    // Read on every view, not from the shared counts: a handful of rows,
    // one per limited queue, and a page after "Set" must show the new limit
    // even when the counts from before the action are still shown.
    let limits = if snap.counting {
        Vec::new()
    } else {
        dash.shared.kyu.queue_limits().await?
    };
    let limits_of = |queue: &str| limits.iter().find(|l| l.queue == queue);
    let body = html! {
        h1 { "Queues" }
        (super::live::marker(None, after))
        @if snap.counting {
            (super::counts::counting_notice())
        } @else if queues.is_empty() {
            p { "No queue has jobs yet." }
        } @else {
            div.scroll { table {
                thead { tr {
                    th scope="col" { "Queue" }
                    @for s in JobState::ALL { th scope="col" class="num" { (s.as_str()) } }
                    th scope="col" class="num" title="how long the oldest runnable job has waited" { "Latency" }
                    th scope="col" title="jobs running at once across every worker, and starts per window" { "Concurrency, rate" }
                    th scope="col" { "State" }
                    @if operate { th scope="col" { "Action" } }
                } }
                tbody {
                    @for q in &queues {
                        tr {
                            th scope="row" { a href=(jobs_link(&q.queue, None)) { (q.queue) } }
                            @for s in JobState::ALL { td.num { (layout::count(q.count(s))) } }
                            td.num { (latency(q.latency(snap.at))) }
                            td { (limits_cell(limits_of(&q.queue))) }
                            td { @if q.paused { span.state.paused { "paused" } } @else { "running" } }
                            @if operate {
                                td {
                                    @let path = format!("/queues/{}/{}", path_segment(&q.queue), if q.paused { "resume" } else { "pause" });
                                    (layout::action(&viewer, &path, "/queues", if q.paused { "Resume" } else { "Pause" }))
                                    (concurrency_form(&viewer, &q.queue, limits_of(&q.queue)))
                                }
                            }
                        }
                    }
                }
            } }
        }
    };
    let mut resp = layout::page(&viewer, "Queues", "/queues", body).into_response();
    super::counts::reload_while_counting(&snap, &mut resp);
    Ok(resp)
}

/// A queue's limits and their use: `3 of 5 running` and `12 of 20/1s`, or a dash.
fn limits_cell(l: Option<&QueueLimitStatus>) -> Markup {
    let Some(l) = l.filter(|l| l.limits.is_limited()) else {
        return html! { span.zero { "no limit" } };
    };
    html! {
        @if let Some(n) = l.limits.global_concurrency {
            span.limit data-global-concurrency=(n) { (l.running) " of " (n) " running" }
        }
        @if l.limits.global_concurrency.is_some() && l.limits.rate.is_some() { br; }
        @if let Some(r) = l.limits.rate {
            span.limit { "rate " (l.rate_used) " of " (r.to_string()) }
            @if let Some(t) = l.next_start_at { br; span.hint { "next start " (layout::time(t)) } }
        }
    }
}

/// The form that sets (or, empty, lifts) a queue's global concurrency.
fn concurrency_form(viewer: &Viewer, queue: &str, l: Option<&QueueLimitStatus>) -> Markup {
    let now = l.and_then(|l| l.limits.global_concurrency);
    let field = format!("gc-{}", path_segment(queue));
    html! {
        form.inline.concurrency method="post" action=(format!("/queues/{}/concurrency", path_segment(queue))) {
            (layout::csrf(viewer))
            input type="hidden" name="back" value="/queues";
            label for=(field) { "Global concurrency" }
            " "
            input id=(field) type="number" name="global_concurrency" min="1" step="1" inputmode="numeric"
                value=[now] placeholder="no limit";
            " "
            button type="submit" { "Set" }
        }
    }
}

/// A queue's latency in words: `0 s`, `42 s`, `3 min 5 s`, `2 h 4 min`.
pub(crate) fn latency(d: std::time::Duration) -> String {
    let s = d.as_secs();
    match s {
        0..=59 => format!("{s} s"),
        60..=3599 => format!("{} min {} s", s / 60, s % 60),
        _ => format!("{} h {} min", s / 3600, s % 3600 / 60),
    }
}

/// A name as one path segment (percent-encoded).
pub(crate) fn path_segment(name: &str) -> String {
    let mut out = String::new();
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

async fn set_paused(
    dash: &DashState,
    viewer: &Viewer,
    name: &str,
    form: &FormPairs,
    pause: bool,
) -> Result<Response, PageError> {
    kyu::validate::queue_name("queue", name)?;
    viewer.caller.check_queue("queue", name)?;
    if pause {
        dash.shared.kyu.pause(name).await?;
    } else {
        dash.shared.kyu.resume(name).await?;
    }
    dash.counts.forget().await;
    let mut resp = Redirect::to(&local_path(form.get("back"))).into_response();
    resp.headers_mut().append(
        header::SET_COOKIE,
        flash(&format!(
            "Queue {name} {}.",
            if pause { "paused" } else { "resumed" }
        )),
    );
    Ok(resp)
}

/// `POST /queues/{name}/pause`.
pub(crate) async fn pause(
    State(dash): State<DashState>,
    viewer: Viewer,
    NamePath(name): NamePath,
    form: FormPairs,
) -> Result<Response, PageError> {
    set_paused(&dash, &viewer, &name, &form, true).await
}

/// `POST /queues/{name}/resume`.
pub(crate) async fn resume(
    State(dash): State<DashState>,
    viewer: Viewer,
    NamePath(name): NamePath,
    form: FormPairs,
) -> Result<Response, PageError> {
    set_paused(&dash, &viewer, &name, &form, false).await
}

/// `POST /queues/{name}/concurrency`: sets the queue's global concurrency
/// (`global_concurrency`, 1 or more), or lifts it (empty). Its rate stays.
pub(crate) async fn concurrency(
    State(dash): State<DashState>,
    viewer: Viewer,
    NamePath(name): NamePath,
    form: FormPairs,
) -> Result<Response, PageError> {
    kyu::validate::queue_name("queue", &name)?;
    viewer.caller.check_queue("queue", &name)?;
    let text = form.get("global_concurrency").unwrap_or("").trim();
    let value = if text.is_empty() {
        None
    } else {
        Some(text.parse::<u32>().map_err(|_| {
            ApiError::invalid(
                "global_concurrency",
                format!(
                    "global_concurrency: {text:?} is not a whole number; accepted: 1 or more \
                     (jobs of queue {name} running at once across every worker), or empty to lift the limit"
                ),
            )
        })?)
    };
    let now = dash
        .shared
        .kyu
        .set_queue_limits(
            &name,
            LimitsUpdate {
                global_concurrency: Some(value),
                ..LimitsUpdate::default()
            },
        )
        .await?;
    dash.counts.forget().await;
    let mut resp = Redirect::to(&local_path(form.get("back"))).into_response();
    resp.headers_mut().append(
        header::SET_COOKIE,
        flash(&format!("Queue {name}: {}.", kyu::limits::describe(&now))),
    );
    Ok(resp)
}
