//! Queues: depth by state and the paused flag of each of the viewer's
//! queues; pause and resume (scope `operate`).

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Redirect, Response};
use kyu::JobState;
use maud::{html, Markup};

use super::layout;
use super::overview::jobs_link;
use super::session::{flash, local_path, FormPairs, PageError, Viewer};
use super::DashState;
use crate::api::extract::NamePath;

/// `GET /queues`.
pub(crate) async fn page(
    State(dash): State<DashState>,
    viewer: Viewer,
) -> Result<Markup, PageError> {
    let after = dash.shared.kyu.last_event_id().await?;
    let snap = dash.counts.get().await?;
    let queues: Vec<_> = snap
        .queues
        .iter()
        .filter(|q| viewer.caller.sees(&q.queue))
        .collect();
    let operate = viewer.operates();
    let body = html! {
        h1 { "Queues" }
        (super::live::marker(None, after))
        @if queues.is_empty() {
            p { "No queue has jobs yet." }
        } @else {
            div.scroll { table {
                thead { tr {
                    th scope="col" { "Queue" }
                    @for s in JobState::ALL { th scope="col" class="num" { (s.as_str()) } }
                    th scope="col" { "State" }
                    @if operate { th scope="col" { "Action" } }
                } }
                tbody {
                    @for q in &queues {
                        tr {
                            th scope="row" { a href=(jobs_link(&q.queue, None)) { (q.queue) } }
                            @for s in JobState::ALL { td.num { (layout::count(q.count(s))) } }
                            td { @if q.paused { span.state.paused { "paused" } } @else { "running" } }
                            @if operate {
                                td {
                                    @let path = format!("/queues/{}/{}", path_segment(&q.queue), if q.paused { "resume" } else { "pause" });
                                    (layout::action(&viewer, &path, "/queues", if q.paused { "Resume" } else { "Pause" }))
                                }
                            }
                        }
                    }
                }
            } }
        }
    };
    Ok(layout::page(&viewer, "Queues", "/queues", body))
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
