//! "All N matching this filter": retry, cancel or delete every job the Jobs
//! page's filter selects, not only the rows on screen, bounded to the jobs
//! that existed when the operator looked (scope `operate`).
//!
//! 1. `GET /jobs/bulk?action=…&<filter>`: the dry run. It takes the API's
//!    snapshot (the highest job id and the store's time now) and counts the
//!    matching jobs within it, up to [`COUNT_CAP`] ("10,000+" past that, so
//!    the page stays fast on a big table), and shows a confirmation naming
//!    the action, the count and the filter. Its form carries the filter and
//!    the snapshot.
//! 2. `POST /jobs/bulk`: runs the action server-side, in the API's bounded
//!    batches ([`crate::api::bulk::by_filter`]), on the jobs within the
//!    snapshot the confirmation carried: a job enqueued, or one that
//!    reached the filtered state, after the operator looked is not touched.
//!    It answers at once with a redirect to the run's page.
//! 3. `GET /jobs/bulk/{run}`: the run's progress (jobs done so far and what
//!    happened to them), refreshing itself every second until the run ends
//!    (a `Refresh` header: no script needed). Runs live in the server's
//!    memory (the last [`KEPT_RUNS`]); only the token that started one sees it.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};

use axum::extract::{Path, State};
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Redirect, Response};
use chrono::{DateTime, Utc};
use kyu::{JobFilter, JobId};
use maud::{html, Markup};

use super::actions::{summary, title};
use super::jobs_query::JobsQuery;
use super::layout;
use super::session::{FormPairs, PageError, Viewer};
use super::DashState;
use crate::api::bulk::{by_filter, count_by_filter, snapshot_now, BulkAction, Snapshot, Tally};
use crate::api::error::ApiError;
use crate::api::filter::parse_time;

/// The dry run counts up to this many jobs; past it the page says "10,000+".
pub const COUNT_CAP: u64 = 10_000;

/// How many runs the server remembers (the oldest finished ones go first).
pub const KEPT_RUNS: usize = 100;

/// The form fields of the confirmation besides the filter's.
const FORM_FIELDS: [&str; 6] = ["csrf", "action", "max_id", "at", "expected", "more"];

/// One bulk action started from the dashboard.
pub(crate) struct Run {
    id: u64,
    /// The name of the token that started it: only it sees the run.
    token: String,
    action: BulkAction,
    query: JobsQuery,
    filter: JobFilter,
    snap: Snapshot,
    /// The dry run's count (and whether it stopped at the cap).
    expected: (u64, bool),
    progress: Mutex<Progress>,
}

#[derive(Default, Clone)]
struct Progress {
    tally: Tally,
    done: bool,
    error: Option<String>,
}

/// The runs the server remembers.
#[derive(Default)]
pub(crate) struct Runs {
    inner: Mutex<(u64, VecDeque<Arc<Run>>)>,
}

impl Runs {
    fn add(&self, make: impl FnOnce(u64) -> Run) -> Arc<Run> {
        let mut g = self.inner.lock().expect("runs lock");
        g.0 += 1;
        let run = Arc::new(make(g.0));
        g.1.push_back(run.clone());
        while g.1.len() > KEPT_RUNS {
            // The oldest finished run goes; runs still going are kept.
            match g.1.iter().position(|r| r.progress().done) {
                Some(i) => {
                    g.1.remove(i);
                }
                None => break,
            }
        }
        run
    }

    fn get(&self, id: u64, token: &str) -> Option<Arc<Run>> {
        let g = self.inner.lock().expect("runs lock");
        g.1.iter().find(|r| r.id == id && r.token == token).cloned()
    }
}

impl Run {
    fn progress(&self) -> Progress {
        self.progress.lock().expect("progress lock").clone()
    }

    fn update(&self, f: impl FnOnce(&mut Progress)) {
        f(&mut self.progress.lock().expect("progress lock"));
    }
}

/// "1,234", or "10,000+" for a count that stopped at its cap.
pub(crate) fn count_text(n: u64, more: bool) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    if more {
        out.push('+');
    }
    out
}

fn parse_action(s: Option<&str>) -> Result<BulkAction, ApiError> {
    let s = s.unwrap_or("");
    serde_json::from_value(serde_json::Value::String(s.to_string())).map_err(|_| {
        ApiError::invalid(
            "action",
            format!("action: {s:?} is not a bulk action; accepted: retry, cancel, delete, run_now"),
        )
    })
}

fn action_name(a: BulkAction) -> &'static str {
    match a {
        BulkAction::Cancel => "cancel",
        BulkAction::Retry => "retry",
        BulkAction::Delete => "delete",
        BulkAction::RunNow => "run_now",
    }
}

/// The Jobs page's "all matching this filter" form (a GET: it only counts).
pub(crate) fn all_matching_form(q: &JobsQuery) -> Markup {
    html! {
        form.bulk-all method="get" action="/jobs/bulk" {
            (q.hidden())
            "All jobs matching this filter: "
            button type="submit" name="action" value="retry" { "Retry all…" }
            " "
            button type="submit" name="action" value="cancel" { "Cancel all…" }
            " "
            button type="submit" name="action" value="delete" { "Delete all…" }
            " "
            span.hint { "(counts them first and asks you to confirm)" }
        }
    }
}

fn pairs_of(form: &[(String, String)], name: &str) -> Option<String> {
    form.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone())
}

/// `GET /jobs/bulk?action=…&<filter>`: the dry run and the confirmation.
pub(crate) async fn confirm(
    State(dash): State<DashState>,
    viewer: Viewer,
    axum::extract::Query(pairs): axum::extract::Query<Vec<(String, String)>>,
) -> Result<Markup, PageError> {
    let action = parse_action(pairs_of(&pairs, "action").as_deref())?;
    let mut q = JobsQuery::from_pairs(&pairs, &["action"])?;
    // The paging cursor and an id jump are the list's, not the filter's.
    q.before = None;
    q.id = None;
    let filter = q.filter(&viewer.caller)?;
    let snap = snapshot_now(&dash.shared).await?;
    let tally = count_by_filter(
        &dash.shared,
        &viewer.caller,
        filter.clone(),
        snap,
        Some(COUNT_CAP),
    )
    .await?;
    let n = count_text(tally.matched, tally.more);
    let verb = title(action);
    let body = html! {
        h1 { (verb) " all matching" }
        @if tally.matched == 0 {
            p { "No job matches " (q.describe(&filter)) ": nothing to do." }
        } @else {
            p.confirm {
                (verb) " " strong.count { (n) } @if tally.matched == 1 { " job" } @else { " jobs" }
                " matching " (q.describe(&filter)) "."
            }
            p.hint {
                "Counted at " (layout::time(snap.at)) " (jobs up to id " (snap.max_id) "). "
                "Only these are touched: a job enqueued since, or one that changed after that time, is not. "
                @if let Some(to) = tally.searched_to {
                    "A search inside args counts in the newest jobs only: these were found in jobs down to id "
                    (count_text(to.unsigned_abs(), false)) "; older matching jobs are acted on too. "
                } @else if tally.more { "There are more than " (count_text(COUNT_CAP, false)) "; every one of them is acted on. " }
                @match action {
                    BulkAction::Retry => "Only failed or cancelled jobs are retried.",
                    BulkAction::Cancel => "Running jobs are asked to stop; finished ones are left as they are.",
                    BulkAction::Delete => "Running jobs are not deleted (cancel them first).",
                    BulkAction::RunNow => "Only scheduled jobs are made available.",
                }
            }
            form method="post" action="/jobs/bulk" {
                (layout::csrf(&viewer))
                input type="hidden" name="action" value=(action_name(action));
                (q.hidden())
                input type="hidden" name="max_id" value=(snap.max_id);
                input type="hidden" name="at" value=(snap.at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true));
                input type="hidden" name="expected" value=(tally.matched);
                @if tally.more { input type="hidden" name="more" value="1"; }
                button type="submit" { (verb) " " (n) @if tally.matched == 1 { " job" } @else { " jobs" } }
            }
        }
        p { a href=(q.link(None, None)) { "Back to the jobs" } }
    };
    Ok(layout::page(
        &viewer,
        &format!("{verb} all matching"),
        "/jobs",
        body,
    ))
}

/// `POST /jobs/bulk`: starts the action on the confirmation's snapshot.
pub(crate) async fn start(
    State(dash): State<DashState>,
    viewer: Viewer,
    form: FormPairs,
) -> Result<Response, PageError> {
    let action = parse_action(form.get("action"))?;
    let q = JobsQuery::from_pairs(&form.0, &FORM_FIELDS)?;
    let filter = q.filter(&viewer.caller)?;
    let missing = |f: &str| {
        ApiError::invalid(
            f,
            format!("{f}: missing; accepted: the confirmation page's form (it carries max_id and at, the moment you looked)"),
        )
    };
    let max_id = form.get("max_id").ok_or_else(|| missing("max_id"))?;
    let max_id: JobId = max_id
        .trim()
        .parse()
        .ok()
        .filter(|n: &JobId| *n >= 0)
        .ok_or_else(|| {
            ApiError::invalid(
                "max_id",
                format!("max_id: {max_id:?} is not a job id; accepted: 0 or a positive integer"),
            )
        })?;
    let at: DateTime<Utc> = parse_time("at", form.get("at").ok_or_else(|| missing("at"))?)?;
    let expected = (
        form.get("expected")
            .and_then(|e| e.parse().ok())
            .unwrap_or(0),
        form.get("more").is_some(),
    );
    let snap = Snapshot { max_id, at };
    let run = dash.bulk.add(|id| Run {
        id,
        token: viewer.caller.token.name.clone(),
        action,
        query: q,
        filter: filter.clone(),
        snap,
        expected,
        progress: Mutex::new(Progress::default()),
    });
    tracing::info!(token = %viewer.caller.token.name, run = run.id, action = action_name(action), "dashboard: bulk action by filter started");
    let (task_dash, task_run, caller) = (dash.clone(), run.clone(), viewer.caller.clone());
    tokio::spawn(async move {
        let out = by_filter(
            &task_dash.shared,
            &caller,
            Some(action),
            filter,
            snap,
            None,
            |t| task_run.update(|p| p.tally = t.clone()),
        )
        .await;
        task_run.update(|p| {
            p.done = true;
            match out {
                Ok(t) => p.tally = t,
                Err(e) => p.error = Some(e.body.message),
            }
        });
        task_dash.counts.forget().await;
    });
    Ok(Redirect::to(&format!("/jobs/bulk/{}", run.id)).into_response())
}

/// `GET /jobs/bulk/{run}`: a run's progress.
pub(crate) async fn progress(
    State(dash): State<DashState>,
    viewer: Viewer,
    Path(raw): Path<String>,
) -> Result<Response, PageError> {
    let id: u64 = raw.parse().ok().filter(|n| *n > 0).ok_or_else(|| {
        ApiError::invalid(
            "run",
            format!("run: {raw:?} is not a bulk action's number; accepted: a positive integer, as the page a bulk action sent you to shows"),
        )
    })?;
    let run = dash
        .bulk
        .get(id, &viewer.caller.token.name)
        .ok_or_else(|| {
            ApiError::not_found(format!(
                "bulk action {id} not found; accepted: the number of a bulk action this token started since the server started (the last {KEPT_RUNS} are kept)"
            ))
        })?;
    let p = run.progress();
    let verb = title(run.action);
    let counts: BTreeMap<&str, u64> = p
        .tally
        .counts
        .iter()
        .map(|(w, n)| (w.as_str(), *n))
        .collect();
    let text = summary(run.action, counts.iter().map(|(w, n)| (*w, *n)));
    let body = html! {
        h1 { (verb) " all matching" }
        p { "Jobs matching " (run.query.describe(&run.filter)) ", as they were at " (layout::time(run.snap.at))
            " (up to id " (run.snap.max_id) "); counted then: " (count_text(run.expected.0, run.expected.1)) "." }
        @if let Some(e) = &p.error {
            p.error role="alert" { "Stopped: " (e) }
        } @else if p.done {
            p.notice role="status" { "Done: " span.bulk-result { (text) } }
        } @else {
            p role="status" { "Running: " (count_text(p.tally.matched, false)) " jobs done so far. This page refreshes itself every second." }
            @if run.expected.0 > 0 && !run.expected.1 {
                progress max=(run.expected.0) value=(p.tally.matched.min(run.expected.0)) {}
            }
            p { (text) }
        }
        p { "Jobs acted on: " strong.bulk-done { (p.tally.matched) } }
        p { a href=(run.query.link(None, None)) { "Back to the jobs" } }
    };
    let mut resp =
        layout::page(&viewer, &format!("{verb} all matching"), "/jobs", body).into_response();
    if !p.done {
        resp.headers_mut()
            .insert(header::REFRESH, HeaderValue::from_static("1"));
    }
    Ok(resp)
}
