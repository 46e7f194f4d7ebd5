//! The actions on ticked rows (and on one job from its page): retry,
//! cancel, delete and run now, by ids (scope `operate`). Each runs the
//! API's action ([`crate::api::bulk::act`]) on the ids the viewer may see
//! and goes back to the page the form names, with a notice saying what
//! happened to how many jobs.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Redirect, Response};
use kyu::JobId;

use super::jobs_query::parse_id;
use super::session::{flash, local_path, FormPairs, PageError, Viewer};
use super::DashState;
use crate::api::bulk::{act, BulkAction};
use crate::api::error::ApiError;

/// An API result word in an operator's words.
pub(crate) fn human(word: &str) -> &'static str {
    match word {
        "cancelled" => "cancelled",
        "requested" => "asked to stop (running)",
        "already_finished" => "already finished",
        "retried" => "retried",
        "not_retryable" => "not retryable (not failed or cancelled)",
        "key_held" => "not retried (unique key held)",
        "deleted" => "deleted",
        "running" => "not deleted (running: cancel it first)",
        "made_available" => "made available",
        "not_scheduled" => "not scheduled",
        _ => "not found",
    }
}

/// The action's name in a notice.
pub(crate) fn title(action: BulkAction) -> &'static str {
    match action {
        BulkAction::Cancel => "Cancel",
        BulkAction::Retry => "Retry",
        BulkAction::Delete => "Delete",
        BulkAction::RunNow => "Run now",
    }
}

/// Says what an action did, e.g. "Retry: 2 retried, 1 not retryable".
pub(crate) fn summary<'a>(
    action: BulkAction,
    counts: impl IntoIterator<Item = (&'a str, u64)>,
) -> String {
    let mut by: BTreeMap<&str, u64> = BTreeMap::new();
    for (w, n) in counts {
        *by.entry(human(w)).or_default() += n;
    }
    let parts: Vec<String> = by.iter().map(|(w, n)| format!("{n} {w}")).collect();
    if parts.is_empty() {
        return format!("{}: no job.", title(action));
    }
    format!("{}: {}.", title(action), parts.join(", "))
}

/// The ids of the form that the viewer may see, and how many it may not
/// (they count as not found).
async fn visible_ids(
    dash: &DashState,
    viewer: &Viewer,
    form: &FormPairs,
) -> Result<(Vec<JobId>, u64), PageError> {
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

/// Back to the form's `back` page with `text` as its notice.
pub(crate) fn back(form: &FormPairs, text: &str) -> Response {
    let mut resp = Redirect::to(&local_path(form.get("back"))).into_response();
    resp.headers_mut().append(header::SET_COOKIE, flash(text));
    resp
}

async fn by_ids(
    dash: DashState,
    viewer: Viewer,
    form: FormPairs,
    action: BulkAction,
) -> Result<Response, PageError> {
    let (ids, hidden) = visible_ids(&dash, &viewer, &form).await?;
    let words = act(&dash.shared, action, &ids).await?;
    let counts = words
        .into_iter()
        .map(|w| (w, 1))
        .chain((hidden > 0).then_some(("not_found", hidden)));
    let text = summary(action, counts);
    dash.counts.forget().await;
    Ok(back(&form, &text))
}

/// `POST /jobs/retry`: retries the selected failed or cancelled jobs.
pub(crate) async fn retry(
    State(dash): State<DashState>,
    viewer: Viewer,
    form: FormPairs,
) -> Result<Response, PageError> {
    by_ids(dash, viewer, form, BulkAction::Retry).await
}

/// `POST /jobs/cancel`: cancels the selected unfinished jobs (a running one
/// is asked to stop).
pub(crate) async fn cancel(
    State(dash): State<DashState>,
    viewer: Viewer,
    form: FormPairs,
) -> Result<Response, PageError> {
    by_ids(dash, viewer, form, BulkAction::Cancel).await
}

/// `POST /jobs/delete`: deletes the selected jobs that are not running.
pub(crate) async fn delete(
    State(dash): State<DashState>,
    viewer: Viewer,
    form: FormPairs,
) -> Result<Response, PageError> {
    by_ids(dash, viewer, form, BulkAction::Delete).await
}

/// `POST /jobs/run-now`: makes the selected scheduled jobs available now.
pub(crate) async fn run_now(
    State(dash): State<DashState>,
    viewer: Viewer,
    form: FormPairs,
) -> Result<Response, PageError> {
    by_ids(dash, viewer, form, BulkAction::RunNow).await
}
