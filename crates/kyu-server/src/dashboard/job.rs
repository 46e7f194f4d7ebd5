//! One job: its fields, args and result (redacted without `read_args`),
//! progress, the attempt timeline with each error, the command output of
//! each attempt (`read_args`: output is as sensitive as args; the running
//! attempt's grows live, [`super::tail`]), and retry / cancel / delete /
//! run now (`operate`). A bad or unknown id answers an HTML page saying
//! what is accepted (400 / 404), in the dashboard's layout.

use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use kyu::{JobId, JobState};
use maud::{html, Markup};

use super::layout;
use super::session::{PageError, Viewer};
use super::DashState;
use crate::api::error::ApiError;
use crate::api::extract::JobIdPath;

/// A job id from the path, refused as an error page (the API's words).
pub(crate) struct JobPath(pub(crate) JobId);

impl<S: Send + Sync> FromRequestParts<S> for JobPath {
    type Rejection = PageError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, PageError> {
        let JobIdPath(id) = JobIdPath::from_request_parts(parts, state).await?;
        Ok(JobPath(id))
    }
}

/// A one-button form acting on this job by id, back to `back` afterwards.
fn job_action(viewer: &Viewer, id: JobId, action: &str, back: &str, label: &str) -> Markup {
    html! {
        form.inline method="post" action=(action) {
            (layout::csrf(viewer))
            input type="hidden" name="ids" value=(id);
            input type="hidden" name="back" value=(back);
            button type="submit" { (label) }
        }
    }
}

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
    JobPath(id): JobPath,
) -> Result<Markup, PageError> {
    let after = dash.shared.kyu.last_event_id().await?;
    let job = viewer
        .caller
        .visible_job(&dash.shared.kyu, id)
        .await
        .map_err(|_| {
            ApiError::not_found(format!(
                "job {id} not found: no job has this id in the queues your token may see \
                 (it may have been deleted, or removed by retention); accepted: the id of a job listed on the Jobs page"
            ))
        })?;
    let show = viewer.caller.reads_args();
    let logs = if show {
        dash.shared.kyu.logs(id).await?
    } else {
        Vec::new()
    };
    let here = format!("/jobs/{id}");
    // After a delete the job's page is gone: back to its queue's jobs.
    let queue_jobs = super::overview::jobs_link(&job.queue, None);
    // The running attempt's output grows live: its boxes are shown (empty
    // at first) and carry their byte counts for the page's stream.
    let running = job.state == JobState::Running && show;
    let redacted =
        html! { p.redacted { "Hidden: your token lacks the " code { "read_args" } " scope." } };
    let body = html! {
        h1 { "Job " (job.id) " " (layout::state(job.state)) }
        (super::live::marker(Some(job.id), after))
        @if viewer.operates() {
            div.actions {
                @if matches!(job.state, JobState::Failed | JobState::Cancelled) {
                    (job_action(&viewer, id, "/jobs/retry", &here, "Retry"))
                }
                @if !job.state.is_finished() {
                    (job_action(&viewer, id, "/jobs/cancel", &here, "Cancel"))
                }
                @if job.state == JobState::Scheduled {
                    (job_action(&viewer, id, "/jobs/run-now", &here, "Run now"))
                }
                @if job.state != JobState::Running {
                    (job_action(&viewer, id, "/jobs/delete", &queue_jobs, "Delete"))
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
        @if show && (!logs.is_empty() || running) {
            section #output {
                h2 { "Command output" }
                @if running && logs.last().map_or(true, |l| l.attempt != job.attempt) {
                    (output(job.attempt, &kyu::AttemptLogs { attempt: job.attempt, stdout: String::new(), stderr: String::new(), stdout_bytes: 0, stderr_bytes: 0 }, true))
                }
                @for l in &logs {
                    (output(l.attempt, l, running && l.attempt == job.attempt))
                }
            }
        }
    };
    Ok(layout::page(&viewer, &format!("Job {id}"), "/jobs", body))
}

/// One attempt's output; `live` marks the boxes the page's stream appends to.
fn output(attempt: u32, l: &kyu::AttemptLogs, live: bool) -> Markup {
    html! {
        h3 { "Attempt " (attempt) @if live { " " span.hint { "(running: output appears as it is written)" } } }
        @if live {
            div.tail data-attempt=(attempt) data-stdout=(l.stdout_bytes) data-stderr=(l.stderr_bytes) {
                p.hint { "stdout" }
                pre.output data-stream="stdout" { (l.stdout) }
                p.hint { "stderr" }
                pre.output.stderr data-stream="stderr" { (l.stderr) }
            }
        } @else {
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
