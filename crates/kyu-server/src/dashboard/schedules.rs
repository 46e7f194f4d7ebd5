//! Schedules: cron, zone, the next fire times in the schedule's zone (and
//! UTC; the script adds the viewer's local time), the last fires with their
//! jobs' states ([`super::fires`]); enable, disable and trigger now
//! (`operate`). A schedule belongs to the queue of its job template: a
//! viewer limited to queues sees only the schedules of its queues.

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Redirect, Response};
use chrono::{DateTime, Utc};
use kyu::{JobRecord, ScheduleRecord};
use maud::{html, Markup};

use super::layout;
use super::queues::path_segment;
use super::session::{flash, local_path, FormPairs, PageError, Viewer};
use super::DashState;
use crate::api::error::ApiError;
use crate::api::extract::NamePath;

/// How many next fire times each schedule shows.
const NEXT_FIRES: usize = 3;

/// `GET /schedules`.
pub(crate) async fn page(
    State(dash): State<DashState>,
    viewer: Viewer,
) -> Result<Markup, PageError> {
    let all = dash.shared.kyu.schedules().await?;
    let now = dash.shared.kyu.store().clock().now();
    let mut rows = Vec::new();
    for s in all
        .into_iter()
        .filter(|s| viewer.caller.sees(&s.spec.job.queue))
    {
        // A few indexed reads per schedule (their number is the operator's, not the jobs').
        let fires = super::fires::last_fires(&dash.shared.kyu, &s).await?;
        rows.push((s, fires));
    }
    let operate = viewer.operates();
    let body = html! {
        h1 { "Schedules" }
        @if rows.is_empty() {
            p { "No schedule sends jobs to your queues." }
        } @else {
            div.scroll { table {
                thead { tr {
                    th scope="col" { "Name" }
                    th scope="col" { "Cron" }
                    th scope="col" { "Job" }
                    th scope="col" { "Enabled" }
                    th scope="col" { "Next fires (schedule's zone; UTC)" }
                    th scope="col" { "Last fires (schedule's zone)" }
                    @if operate { th scope="col" { "Action" } }
                } }
                tbody {
                    @for (s, fires) in &rows {
                        tr {
                            th scope="row" { (s.spec.name) }
                            td { code { (s.spec.cron.as_str()) } br; span.hint { (s.spec.zone.name()) } }
                            td { (s.spec.job.kind) " → " (s.spec.job.queue) }
                            td { @if s.spec.enabled { "yes" } @else { span.state.paused { "disabled" } } }
                            td { (next_fires(s, now)) }
                            td { (last_fires(s, fires)) }
                            @if operate {
                                td.actions {
                                    @let base = format!("/schedules/{}", path_segment(&s.spec.name));
                                    @if s.spec.enabled {
                                        (layout::action(&viewer, &format!("{base}/disable"), "/schedules", "Disable"))
                                    } @else {
                                        (layout::action(&viewer, &format!("{base}/enable"), "/schedules", "Enable"))
                                    }
                                    (layout::action(&viewer, &format!("{base}/trigger"), "/schedules", "Trigger now"))
                                }
                            }
                        }
                    }
                }
            } }
        }
    };
    Ok(layout::page(&viewer, "Schedules", "/schedules", body))
}

fn next_fires(s: &ScheduleRecord, now: chrono::DateTime<chrono::Utc>) -> Markup {
    if !s.spec.enabled {
        return html! { "–" };
    }
    html! {
        ul.plain {
            @for t in s.spec.cron.fire_times(now, s.spec.zone).take(NEXT_FIRES) {
                li {
                    time datetime=(t.to_rfc3339()) data-local { (t.with_timezone(&s.spec.zone).format("%Y-%m-%d %H:%M %Z")) }
                    span.hint { " (" (t.format("%H:%M UTC")) ")" }
                }
            }
        }
    }
}

fn last_fires(s: &ScheduleRecord, fires: &[(DateTime<Utc>, Option<JobRecord>)]) -> Markup {
    if fires.is_empty() {
        return html! { "–" };
    }
    html! {
        ul.plain.fires {
            @for (t, job) in fires {
                li {
                    time datetime=(t.to_rfc3339()) { (t.with_timezone(&s.spec.zone).format("%Y-%m-%d %H:%M %Z")) }
                    " "
                    @match job {
                        Some(j) => { a href=(format!("/jobs/{}", j.id)) { "job " (j.id) } " " (layout::state(j.state)) }
                        None => { span.hint { "no job (skipped, or deleted)" } }
                    }
                }
            }
        }
    }
}

/// The schedule if it exists and its queue is the viewer's; 404 alike otherwise.
async fn visible(
    dash: &DashState,
    viewer: &Viewer,
    name: &str,
) -> Result<ScheduleRecord, PageError> {
    match dash.shared.kyu.store().get_schedule(name).await? {
        Some(s) if viewer.caller.sees(&s.spec.job.queue) => Ok(s),
        _ => Err(ApiError::not_found(format!("schedule {name:?} not found")).into()),
    }
}

fn back(form: &FormPairs, text: &str) -> Response {
    let mut resp = Redirect::to(&local_path(form.get("back"))).into_response();
    resp.headers_mut().append(header::SET_COOKIE, flash(text));
    resp
}

/// `POST /schedules/{name}/enable`.
pub(crate) async fn enable(
    State(dash): State<DashState>,
    viewer: Viewer,
    NamePath(name): NamePath,
    form: FormPairs,
) -> Result<Response, PageError> {
    visible(&dash, &viewer, &name).await?;
    dash.shared.kyu.enable_schedule(&name).await?;
    Ok(back(&form, &format!("Schedule {name} enabled.")))
}

/// `POST /schedules/{name}/disable`.
pub(crate) async fn disable(
    State(dash): State<DashState>,
    viewer: Viewer,
    NamePath(name): NamePath,
    form: FormPairs,
) -> Result<Response, PageError> {
    visible(&dash, &viewer, &name).await?;
    dash.shared.kyu.disable_schedule(&name).await?;
    Ok(back(&form, &format!("Schedule {name} disabled.")))
}

/// `POST /schedules/{name}/trigger`.
pub(crate) async fn trigger(
    State(dash): State<DashState>,
    viewer: Viewer,
    NamePath(name): NamePath,
    form: FormPairs,
) -> Result<Response, PageError> {
    visible(&dash, &viewer, &name).await?;
    let id = dash.shared.kyu.trigger(&name).await?;
    dash.counts.forget().await;
    Ok(back(
        &form,
        &format!("Schedule {name} triggered: job {id}."),
    ))
}
