//! Batches: the newest batches with their counts, and one batch's detail
//! (total, pending, running, succeeded, failed, cancelled, its callbacks and
//! their jobs, open / sealed / done).
//!
//! A batch may hold jobs of many queues, so, as the API's batch routes,
//! these pages are refused to tokens limited to queues (the table's
//! [`Access::AllQueues`](super::Access::AllQueues)). Each batch's counts are
//! read by the store from the batch's row and its running jobs (an indexed
//! read per batch), and the list is [`LIST_LIMIT`] batches long: the pages
//! cost the same at a million jobs.

use axum::extract::State;
use kyu::BatchStatus;
use maud::{html, Markup};

use super::layout;
use super::session::{PageError, Viewer};
use super::DashState;
use crate::api::error::ApiError;
use crate::api::extract::NamePath;

/// How many batches the list shows, newest first.
pub(crate) const LIST_LIMIT: usize = 50;

fn state_badge(b: &BatchStatus) -> Markup {
    let s = b.state();
    let class = match s {
        "done" => "state completed",
        "sealed" => "state running",
        _ => "state scheduled",
    };
    html! { span class=(class) title=(state_help(s)) { (s) } }
}

fn state_help(s: &str) -> &'static str {
    match s {
        "done" => "sealed, every job finished, callbacks enqueued",
        "sealed" => "no job can be added; callbacks run when every job has finished",
        _ => "jobs can still be added; callbacks run only after it is sealed",
    }
}

/// `GET /batches`.
pub(crate) async fn list(
    State(dash): State<DashState>,
    viewer: Viewer,
) -> Result<Markup, PageError> {
    let after = dash.shared.kyu.last_event_id().await?;
    let batches = dash.shared.kyu.batches(LIST_LIMIT).await?;
    let body = html! {
        h1 { "Batches" }
        (super::live::marker(None, after))
        @if batches.is_empty() {
            p { "No batch yet. Create one with " code { "kyu enqueue --batch" } ", " code { "kyu.batch()" } " or " code { "POST /v1/batches" } "." }
        } @else {
            p.hint { "The newest " (LIST_LIMIT) " batches." }
            div.scroll { table.batches {
                thead { tr {
                    th scope="col" { "Batch" }
                    th scope="col" { "State" }
                    @for h in ["Total", "Pending", "Running", "Succeeded", "Failed", "Cancelled"] {
                        th scope="col" class="num" { (h) }
                    }
                    th scope="col" { "Callbacks" }
                    th scope="col" { "Created" }
                    th scope="col" { "Done" }
                } }
                tbody {
                    @for b in &batches {
                        tr data-batch=(b.id) {
                            th scope="row" { a href=(format!("/batches/{}", b.id)) { "batch " (b.id) } }
                            td { (state_badge(b)) }
                            @for n in [b.total, b.pending, b.running, b.succeeded, b.failed, b.cancelled] {
                                td.num { (layout::count(n)) }
                            }
                            td { (callbacks(b)) }
                            td { (layout::time(b.created_at)) }
                            td { (layout::time_or_dash(b.done_at)) }
                        }
                    }
                }
            } }
        }
    };
    Ok(layout::page(&viewer, "Batches", "/batches", body))
}

fn callbacks(b: &BatchStatus) -> Markup {
    html! {
        @if b.on_complete.is_none() && b.on_success.is_none() { span.zero { "none" } }
        @if let Some(k) = &b.on_complete { "on_complete " code { (k) } }
        @if b.on_complete.is_some() && b.on_success.is_some() { br; }
        @if let Some(k) = &b.on_success { "on_success " code { (k) } }
    }
}

/// `GET /batches/{id}`.
pub(crate) async fn detail(
    State(dash): State<DashState>,
    viewer: Viewer,
    NamePath(raw): NamePath,
) -> Result<Markup, PageError> {
    let id: kyu::BatchId = raw.parse().ok().filter(|id| *id > 0).ok_or_else(|| {
        ApiError::invalid(
            "id",
            format!("id: {raw:?} is not a batch id; accepted: a positive integer"),
        )
    })?;
    let after = dash.shared.kyu.last_event_id().await?;
    let b = match dash.shared.kyu.store().batch(id).await? {
        Some(b) => b,
        None => return Err(ApiError::not_found(format!("batch {id} not found")).into()),
    };
    let finished = b.finished();
    let body = html! {
        h1 { "Batch " (b.id) " " (state_badge(&b)) }
        (super::live::marker(None, after))
        p.hint { (state_help(b.state())) "." }
        div.scroll { table.batch-counts {
            thead { tr {
                @for h in ["Total", "Pending", "Running", "Succeeded", "Failed", "Cancelled"] {
                    th scope="col" class="num" { (h) }
                }
            } }
            tbody { tr {
                @for (name, n) in [("total", b.total), ("pending", b.pending), ("running", b.running), ("succeeded", b.succeeded), ("failed", b.failed), ("cancelled", b.cancelled)] {
                    td.num data-count=(name) { (n) }
                }
            } }
        } }
        @if b.total > 0 {
            p { label for="batch-progress" { "Finished " (finished) " of " (b.total) } " "
                progress #batch-progress max=(b.total) value=(finished) { (finished) " of " (b.total) } }
        }
        dl.fields {
            dt { "State" } dd { (b.state()) }
            dt { "Created" } dd { (layout::time(b.created_at)) }
            dt { "Done" } dd { (layout::time_or_dash(b.done_at)) }
            dt { "on_complete" } dd { @match &b.on_complete { Some(k) => { code { (k) } }, None => { span.zero { "none" } } } }
            dt { "on_success" } dd { @match &b.on_success { Some(k) => { code { (k) } }, None => { span.zero { "none" } } } }
            dt { "Callback jobs" }
            dd {
                @if b.callback_jobs.is_empty() {
                    span.zero { @if b.is_done() { "none (no callback applied)" } @else { "not yet: enqueued when the batch is done" } }
                } @else {
                    @for (i, j) in b.callback_jobs.iter().enumerate() {
                        @if i > 0 { ", " }
                        a href=(format!("/jobs/{j}")) { "job " (j) }
                    }
                }
            }
        }
        p { a href="/batches" { "All batches" } }
    };
    Ok(layout::page(
        &viewer,
        &format!("Batch {id}"),
        "/batches",
        body,
    ))
}
