//! Jobs: tabs by state, filters by queue, kind, tag and id, keyset paging
//! (newest first, `before` the last id shown), and retry / cancel of the
//! selected rows (scope `operate`). Every query is the store's indexed,
//! bounded page; the tab counts come from the shared counts cache.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Redirect, Response};
use kyu::{JobFilter, JobId, JobRecord, JobState};
use maud::html;
use serde::Deserialize;

use super::layout;
use super::session::{flash, local_path, FormPairs, PageError, Viewer};
use super::DashState;
use crate::api::error::ApiError;
use crate::api::jobs::parse_state;

/// Rows per page.
pub const PAGE: usize = 50;

/// How many store pages one view reads at most while skipping jobs of
/// queues the viewer may not see (as the API's list does).
const MAX_SCAN_PAGES: usize = 10;

/// The Jobs page's query.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct JobsQuery {
    state: Option<String>,
    queue: Option<String>,
    kind: Option<String>,
    tag: Option<String>,
    id: Option<String>,
    before: Option<String>,
}

fn blank(s: &Option<String>) -> Option<&str> {
    s.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

impl JobsQuery {
    /// This query as a link, with `state` and `before` replaced.
    fn link(&self, state: Option<&str>, before: Option<JobId>) -> String {
        let before = before.map(|b| b.to_string());
        let mut pairs: Vec<(&str, &str)> = Vec::new();
        if let Some(s) = state {
            pairs.push(("state", s));
        }
        for (k, v) in [
            ("queue", &self.queue),
            ("kind", &self.kind),
            ("tag", &self.tag),
        ] {
            if let Some(v) = blank(v) {
                pairs.push((k, v));
            }
        }
        if let Some(b) = &before {
            pairs.push(("before", b));
        }
        format!(
            "/jobs?{}",
            serde_urlencoded::to_string(pairs).unwrap_or_default()
        )
    }
}

fn parse_id(field: &str, s: &str) -> Result<JobId, ApiError> {
    s.trim()
        .parse::<JobId>()
        .ok()
        .filter(|id| *id > 0)
        .ok_or_else(|| {
            ApiError::invalid(
                field,
                format!("{field}: {s:?} is not a job id; accepted: a positive integer"),
            )
        })
}

/// `GET /jobs`.
pub(crate) async fn page(
    State(dash): State<DashState>,
    viewer: Viewer,
    axum::extract::Query(q): axum::extract::Query<JobsQuery>,
) -> Result<Response, PageError> {
    let caller = &viewer.caller;
    if let Some(id) = blank(&q.id) {
        // A job by id: its page (404 alike for another tenant's).
        let id = parse_id("id", id)?;
        caller.visible_job(&dash.shared.kyu, id).await?;
        return Ok(Redirect::to(&format!("/jobs/{id}")).into_response());
    }
    let state = blank(&q.state).map(parse_state).transpose()?;
    let queue = blank(&q.queue).map(str::to_string);
    if let Some(name) = &queue {
        caller.check_queue("queue", name)?;
    }
    let after = dash.shared.kyu.last_event_id().await?;
    let before = blank(&q.before)
        .map(|b| parse_id("before", b))
        .transpose()?;
    let mut filter = JobFilter {
        states: state.into_iter().collect(),
        queue: queue.clone(),
        kind: blank(&q.kind).map(str::to_string),
        tag: blank(&q.tag).map(str::to_string),
        before,
        limit: PAGE,
        ..JobFilter::default()
    };
    let mut jobs: Vec<JobRecord> = Vec::new();
    let mut next = None;
    'scan: for _ in 0..MAX_SCAN_PAGES {
        let page = dash.shared.kyu.list(&filter).await?;
        let n = page.jobs.len();
        for (i, job) in page.jobs.into_iter().enumerate() {
            let id = job.id;
            if caller.sees(&job.queue) {
                jobs.push(job);
            }
            if jobs.len() == PAGE {
                next = (i + 1 < n || page.next.is_some()).then_some(id);
                break 'scan;
            }
        }
        next = page.next;
        match page.next {
            None => break,
            Some(c) => filter.before = Some(c),
        }
    }
    // Tab counts: the shared counts of the viewer's queues (the queue
    // filter's only, if one is given).
    let snap = dash.counts.get().await?;
    let mut counts: BTreeMap<JobState, u64> = BTreeMap::new();
    for qs in snap
        .queues
        .iter()
        .filter(|s| caller.sees(&s.queue) && queue.as_ref().map_or(true, |n| *n == s.queue))
    {
        for (s, n) in &qs.counts {
            *counts.entry(*s).or_default() += n;
        }
    }
    let operate = viewer.operates();
    let here = q.link(state.map(|s| s.as_str()), before);
    let rows = html! {
        div.scroll { table.jobs {
            thead { tr {
                @if operate { th scope="col" { span.sr { "Select" } } }
                th scope="col" class="num" { "Id" }
                th scope="col" { "State" }
                th scope="col" { "Queue" }
                th scope="col" { "Kind" }
                th scope="col" { "Attempt" }
                th scope="col" { "Created" }
                th scope="col" { "Run at / finished" }
                th scope="col" { "Last error" }
            } }
            tbody {
                @for j in &jobs {
                    tr data-job=(j.id) {
                        @if operate {
                            td { input type="checkbox" name="ids" value=(j.id) aria-label=(format!("select job {}", j.id)); }
                        }
                        td.num { a href=(format!("/jobs/{}", j.id)) { (j.id) } }
                        td { (layout::state(j.state)) }
                        td { (j.queue) }
                        td { (j.kind) }
                        td { (j.attempt) "/" (j.max_attempts) }
                        td { (layout::time(j.created_at)) }
                        td { @match j.finished_at { Some(t) => (layout::time(t)), None => (layout::time(j.run_at)) } }
                        td.error { @if let Some(e) = j.errors.last() { (truncate(&e.message, 120)) } }
                    }
                }
            }
        } }
    };
    let body = html! {
        h1 { "Jobs" }
        (super::live::marker(None, after))
        nav.tabs aria-label="States" {
            @if state.is_none() {
                a href=(q.link(None, None)) aria-current="page" { "all" }
            } @else {
                a href=(q.link(None, None)) { "all" }
            }
            @for s in JobState::ALL {
                @let label = html! { (s.as_str()) " " span.n { (counts.get(&s).copied().unwrap_or(0)) } };
                @if state == Some(s) {
                    a href=(q.link(Some(s.as_str()), None)) aria-current="page" { (label) }
                } @else {
                    a href=(q.link(Some(s.as_str()), None)) { (label) }
                }
            }
        }
        form.filters method="get" action="/jobs" {
            @if let Some(s) = state { input type="hidden" name="state" value=(s.as_str()); }
            label { "Queue " input type="text" name="queue" value=(blank(&q.queue).unwrap_or("")); }
            label { "Kind " input type="text" name="kind" value=(blank(&q.kind).unwrap_or("")); }
            label { "Tag " input type="text" name="tag" value=(blank(&q.tag).unwrap_or("")); }
            label { "Id " input type="text" name="id" inputmode="numeric" size="8"; }
            button type="submit" { "Filter" }
        }
        @if jobs.is_empty() {
            p { "No job matches." }
        } @else {
            @if operate {
                form #jobs-form method="post" action="/jobs/retry" {
                    (layout::csrf(&viewer))
                    input type="hidden" name="back" value=(here);
                    div.bulk {
                        "Selected: "
                        button type="submit" formaction="/jobs/retry" { "Retry" }
                        " "
                        button type="submit" formaction="/jobs/cancel" { "Cancel" }
                    }
                    (rows)
                }
            } @else {
                (rows)
            }
        }
        nav.pager aria-label="Pages" {
            @if before.is_some() { a href=(q.link(state.map(|s| s.as_str()), None)) { "« Newest" } }
            @if let Some(n) = next { a href=(q.link(state.map(|s| s.as_str()), Some(n))) rel="next" { "Older »" } }
        }
    };
    Ok(layout::page(&viewer, "Jobs", "/jobs", body).into_response())
}

/// At most `n` characters of `s`, with an ellipsis when cut.
pub(crate) fn truncate(s: &str, n: usize) -> String {
    match s.char_indices().nth(n) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

/// The ids of the form that the viewer may see; the others count as not found.
async fn visible_ids(
    dash: &DashState,
    viewer: &Viewer,
    form: &FormPairs,
) -> Result<(Vec<JobId>, usize), PageError> {
    let ids = form
        .all("ids")
        .map(|s| parse_id("ids", s))
        .collect::<Result<Vec<_>, _>>()?;
    let max = dash.shared.options.max_page;
    if ids.is_empty() || ids.len() > max {
        return Err(ApiError::invalid(
            "ids",
            format!(
                "ids: {} jobs selected; accepted: 1 to {max} (tick the rows to act on)",
                ids.len()
            ),
        )
        .into());
    }
    let mut seen = Vec::new();
    let mut hidden = 0;
    for id in ids {
        match dash.shared.kyu.store().get(id).await? {
            Some(j) if viewer.caller.sees(&j.queue) => seen.push(id),
            _ => hidden += 1,
        }
    }
    Ok((seen, hidden))
}

/// Says what an action did, e.g. "Retry: 2 retried, 1 not retryable".
fn summary(action: &str, words: impl IntoIterator<Item = &'static str>) -> String {
    let mut by: BTreeMap<&str, usize> = BTreeMap::new();
    for w in words {
        *by.entry(w).or_default() += 1;
    }
    let parts: Vec<String> = by.iter().map(|(w, n)| format!("{n} {w}")).collect();
    format!("{action}: {}.", parts.join(", "))
}

fn back(form: &FormPairs, text: &str) -> Response {
    let mut resp = Redirect::to(&local_path(form.get("back"))).into_response();
    resp.headers_mut().append(header::SET_COOKIE, flash(text));
    resp
}

/// `POST /jobs/retry`: retries the selected failed or cancelled jobs.
pub(crate) async fn retry(
    State(dash): State<DashState>,
    viewer: Viewer,
    form: FormPairs,
) -> Result<Response, PageError> {
    let (ids, hidden) = visible_ids(&dash, &viewer, &form).await?;
    let mut words: Vec<&'static str> = vec!["not found"; hidden];
    if !ids.is_empty() {
        for r in dash.shared.kyu.retry(&ids).await? {
            words.push(match r {
                kyu::RetryResult::Retried => "retried",
                kyu::RetryResult::NotRetryable(_) => "not retryable (not failed or cancelled)",
                kyu::RetryResult::KeyHeld { .. } => "not retried (unique key held)",
                kyu::RetryResult::NotFound => "not found",
                _ => "unchanged",
            });
        }
    }
    dash.counts.forget().await;
    Ok(back(&form, &summary("Retry", words)))
}

/// `POST /jobs/cancel`: cancels the selected unfinished jobs (a running one
/// is asked to stop).
pub(crate) async fn cancel(
    State(dash): State<DashState>,
    viewer: Viewer,
    form: FormPairs,
) -> Result<Response, PageError> {
    let (ids, hidden) = visible_ids(&dash, &viewer, &form).await?;
    let mut words: Vec<&'static str> = vec!["not found"; hidden];
    if !ids.is_empty() {
        for r in dash.shared.kyu.cancel(&ids).await? {
            words.push(match r {
                kyu::CancelResult::Cancelled => "cancelled",
                kyu::CancelResult::Requested => "asked to stop (running)",
                kyu::CancelResult::AlreadyFinished(_) => "already finished",
                kyu::CancelResult::NotFound => "not found",
                _ => "unchanged",
            });
        }
    }
    dash.counts.forget().await;
    Ok(back(&form, &summary("Cancel", words)))
}
