//! One job: its fields, args and result (redacted without `read_args`),
//! progress, the attempt timeline with each error, the command output of
//! each attempt (`read_args`: output is as sensitive as args), and retry /
//! cancel (`operate`).

use axum::extract::State;
use kyu::JobState;
use maud::{html, Markup};

use super::layout;
use super::session::{PageError, Viewer};
use super::DashState;
use crate::api::extract::JobIdPath;

/// JSON text pretty-printed (text that is not JSON as it is).
fn pretty(text: &str) -> String {
    serde_json::from_str::<serde_json::Value>(text)
        .ok()
        .and_then(|v| serde_json::to_string_pretty(&v).ok())
        .unwrap_or_else(|| text.to_string())
}

/// `GET /jobs/{id}`.
pub(crate) async fn page(
    State(dash): State<DashState>,
    viewer: Viewer,
    JobIdPath(id): JobIdPath,
) -> Result<Markup, PageError> {
    let after = dash.shared.kyu.last_event_id().await?;
    let job = viewer.caller.visible_job(&dash.shared.kyu, id).await?;
    let show = viewer.caller.reads_args();
    let logs = if show {
        dash.shared.kyu.logs(id).await?
    } else {
        Vec::new()
    };
    let here = format!("/jobs/{id}");
    let redacted =
        html! { p.redacted { "Hidden: your token lacks the " code { "read_args" } " scope." } };
    let body = html! {
        h1 { "Job " (job.id) " " (layout::state(job.state)) }
        (super::live::marker(Some(job.id), after))
        @if viewer.operates() {
            div.actions {
                @if matches!(job.state, JobState::Failed | JobState::Cancelled) {
                    form.inline method="post" action="/jobs/retry" {
                        (layout::csrf(&viewer))
                        input type="hidden" name="ids" value=(job.id);
                        input type="hidden" name="back" value=(here);
                        button type="submit" { "Retry" }
                    }
                }
                @if !job.state.is_finished() {
                    form.inline method="post" action="/jobs/cancel" {
                        (layout::csrf(&viewer))
                        input type="hidden" name="ids" value=(job.id);
                        input type="hidden" name="back" value=(here);
                        button type="submit" { "Cancel" }
                    }
                }
            }
        }
        dl.fields {
            dt { "Queue" } dd { a href=(super::overview::jobs_link(&job.queue, None)) { (job.queue) } }
            dt { "Kind" } dd { (job.kind) }
            dt { "Attempt" } dd { (job.attempt) " of " (job.max_attempts) }
            dt { "Priority" } dd { (job.priority) }
            @if !job.tags.is_empty() { dt { "Tags" } dd { (job.tags.join(", ")) } }
            @if let Some(k) = &job.unique_key { dt { "Unique key" } dd { code { (k) } } }
            dt { "Created" } dd { (layout::time(job.created_at)) }
            dt { "Run at" } dd { (layout::time(job.run_at)) }
            dt { "Last attempt started" } dd { (layout::time_or_dash(job.attempted_at)) }
            dt { "Finished" } dd { (layout::time_or_dash(job.finished_at)) }
            @if let Some(w) = &job.worker { dt { "Worker" } dd { code { (w) } } }
            @if job.cancel_requested { dt { "Cancel" } dd { "requested" } }
        }
        @if let Some(p) = &job.progress {
            section {
                h2 { "Progress" }
                p { progress max="100" value=(p.percent) { (p.percent) "%" } " " (p.percent) "% " (p.message) }
            }
        }
        section {
            h2 { "Args" }
            @if show { pre.json { (pretty(&job.args)) } } @else { (redacted) }
        }
        @if job.result.is_some() || !show {
            section {
                h2 { "Result" }
                @if show { @if let Some(r) = &job.result { pre.json { (pretty(r)) } } } @else { (redacted) }
            }
        }
        section {
            h2 { "Attempts" }
            @if job.errors.is_empty() {
                p { @if job.attempt == 0 { "Not run yet." } @else { "No failed attempt." } }
            } @else {
                ol.timeline {
                    @for e in &job.errors {
                        li {
                            strong { "Attempt " (e.attempt) } " failed at " (layout::time(e.at)) " on " code { (e.worker) }
                            pre.error { (e.message) }
                        }
                    }
                }
            }
        }
        @if show && !logs.is_empty() {
            section {
                h2 { "Command output" }
                @for l in &logs {
                    h3 { "Attempt " (l.attempt) }
                    @if !l.stdout.is_empty() {
                        p.hint { "stdout (" (l.stdout_bytes) " bytes in all)" }
                        pre.output { (l.stdout) }
                    }
                    @if !l.stderr.is_empty() {
                        p.hint { "stderr (" (l.stderr_bytes) " bytes in all)" }
                        pre.output.stderr { (l.stderr) }
                    }
                }
            }
        }
    };
    Ok(layout::page(&viewer, &format!("Job {id}"), "/jobs", body))
}
