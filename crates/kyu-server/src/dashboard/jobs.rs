//! Jobs: tabs by state; filters by queue, kind, tag, id, created range and
//! searches inside args (the API's one filter, [`super::jobs_query`]);
//! keyset paging (newest first, `before` the last id shown) that keeps the
//! filter (a search inside args reads one window of jobs per view, says
//! which ids it searched and links on to older ones); actions on the ticked rows ([`super::actions`]) and on every job
//! matching the filter ([`super::bulk`]), scope `operate`. Every query is
//! the store's indexed, bounded page; the tab counts come from the shared
//! counts cache (by queue and state: the other filters do not narrow them).

use std::collections::BTreeMap;

use axum::extract::State;
use axum::response::{IntoResponse, Redirect, Response};
use kyu::{JobFilter, JobRecord, JobState, Searched};
use maud::html;

use super::jobs_query::{parse_id, state_of, JobsQuery};
use super::layout;
use super::session::{PageError, Viewer};
use super::DashState;

/// Rows per page.
pub const PAGE: usize = 50;

/// How many store pages one view reads at most while skipping jobs of
/// queues the viewer may not see (as the API's list does).
const MAX_SCAN_PAGES: usize = 10;

/// `GET /jobs`.
pub(crate) async fn page(
    State(dash): State<DashState>,
    viewer: Viewer,
    axum::extract::Query(pairs): axum::extract::Query<Vec<(String, String)>>,
) -> Result<Response, PageError> {
    let caller = &viewer.caller;
    let q = JobsQuery::from_pairs(&pairs, &[])?;
    if let Some(id) = &q.id {
        // A job by id: its page (404 alike for another tenant's).
        let id = parse_id("id", id)?;
        caller.visible_job(&dash.shared.kyu, id).await?;
        return Ok(Redirect::to(&format!("/jobs/{id}")).into_response());
    }
    let state = state_of(&q)?;
    let parsed = q.filter(caller)?;
    let queue = parsed.queue.clone();
    let after = dash.shared.kyu.last_event_id().await?;
    let before = q.before()?;
    let mut filter = JobFilter {
        before,
        limit: PAGE,
        ..parsed.clone()
    };
    let mut jobs: Vec<JobRecord> = Vec::new();
    let mut next = None;
    // Set when a search inside args read its window of jobs before the
    // page was full: the page says which ids it searched.
    let mut searched: Option<Searched> = None;
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
        // One view reads one window of a search inside args.
        if page.searched.is_some() {
            searched = page.searched;
            break;
        }
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
        @if snap.counting {
            p.hint role="status" { "Counting the jobs in the store for the first time: the tab counts follow on the next reload." }
        }
        nav.tabs aria-label="States" {
            @if state.is_none() {
                a href=(q.link(None, None)) aria-current="page" { "all" }
            } @else {
                a href=(q.link(None, None)) { "all" }
            }
            @for s in JobState::ALL {
                // While the first count is under way the tabs say so, not 0.
                @let n = if snap.counting { "…".to_string() } else { counts.get(&s).copied().unwrap_or(0).to_string() };
                @let label = html! { (s.as_str()) " " span.n { (n) } };
                @if state == Some(s) {
                    a href=(q.link(Some(s.as_str()), None)) aria-current="page" { (label) }
                } @else {
                    a href=(q.link(Some(s.as_str()), None)) { (label) }
                }
            }
        }
        (filter_form(&q, state, caller.reads_args()))
        @if jobs.is_empty() {
            // A search that read its window says so below instead.
            @if searched.is_none() { p { "No job matches." } }
        } @else {
            @if operate {
                (super::bulk::all_matching_form(&q))
                form #jobs-form method="post" action="/jobs/retry" {
                    (layout::csrf(&viewer))
                    input type="hidden" name="back" value=(here);
                    div.bulk {
                        "Selected rows: "
                        button type="submit" formaction="/jobs/retry" { "Retry" }
                        " "
                        button type="submit" formaction="/jobs/cancel" { "Cancel" }
                        " "
                        button type="submit" formaction="/jobs/delete" { "Delete" }
                        " "
                        button type="submit" formaction="/jobs/run-now" { "Run now" }
                    }
                    (rows)
                }
            } @else {
                (rows)
            }
        }
        @if let Some(s) = searched {
            p.searched role="status" {
                "Searched jobs " (super::bulk::count_text(s.newest.unsigned_abs(), false))
                " → " (super::bulk::count_text(s.oldest.unsigned_abs(), false))
                @if jobs.is_empty() { "; no match there. " } @else { "; no more matches there. " }
                a href=(q.link(state.map(|st| st.as_str()), Some(s.oldest))) rel="next" { "Search older →" }
            }
        }
        nav.pager aria-label="Pages" {
            @if before.is_some() { a href=(q.link(state.map(|s| s.as_str()), None)) { "« Newest" } }
            @if let (Some(n), None) = (next, searched) { a href=(q.link(state.map(|s| s.as_str()), Some(n))) rel="next" { "Older »" } }
        }
    };
    Ok(layout::page(&viewer, "Jobs", "/jobs", body).into_response())
}

/// The filter form: queue, kind, tag, id, the created range (RFC 3339, as
/// the API takes it) and searches inside args (each box one
/// `args.PATH=VALUE`; a blank box for one more; only with `read_args`:
/// without it args are hidden, and a search would reveal them).
fn filter_form(q: &JobsQuery, state: Option<JobState>, reads_args: bool) -> maud::Markup {
    let time_hint =
        "RFC 3339 with its zone, e.g. 2030-01-01T00:00:00Z (UTC) or 2030-01-01T09:00:00+09:00";
    html! {
        form.filters method="get" action="/jobs" {
            @if let Some(s) = state { input type="hidden" name="state" value=(s.as_str()); }
            label { "Queue " input type="text" name="queue" value=(q.get("queue")); }
            label { "Kind " input type="text" name="kind" value=(q.get("kind")); }
            label { "Tag " input type="text" name="tag" value=(q.get("tag")); }
            label { "Id " input type="text" name="id" inputmode="numeric" size="8"; }
            label title=(time_hint) { "Created from " input type="text" name="created_after" size="22"
                placeholder="2030-01-01T00:00:00Z" value=(q.get("created_after")); }
            label title=(time_hint) { "Created before " input type="text" name="created_before" size="22"
                placeholder="2030-01-02T00:00:00Z" value=(q.get("created_before")); }
            @if reads_args {
                @for a in q.args() {
                    label { "Args " input type="text" name="args" value=(a); }
                }
                label { "Args " input type="text" name="args" placeholder="args.user=42"; }
            }
            button type="submit" { "Filter" }
            p.hint {
                "Times: " (time_hint) "."
                @if reads_args { " Args: " code { "args.PATH=VALUE" } ", e.g. " code { "args.user=42" } " or " code { "args.a.b=\"x\"" } "; every search must match." }
            }
        }
    }
}

/// At most `n` characters of `s`, with an ellipsis when cut.
pub(crate) fn truncate(s: &str, n: usize) -> String {
    match s.char_indices().nth(n) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}
