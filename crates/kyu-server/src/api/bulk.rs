//! Operator actions on many jobs: delete and run now by ids, and bulk
//! actions (cancel, retry, delete, run now) by ids or by filter, with a dry
//! run and a snapshot bound.
//!
//! A bulk action by filter touches only the jobs that matched when the
//! operator looked: the dry run answers the count and a snapshot (`max_id`,
//! the highest job id then, and `at`, the time then); the action sent with
//! that snapshot acts on jobs with an id at or below `max_id` whose latest
//! change was at or before `at` ([`kyu::JobFilter::changed_by`]), so "retry
//! all failed" never touches a job that failed a second later, nor one
//! enqueued since. Without a snapshot the action takes one itself when it
//! starts. The server runs the action in batches of
//! [`crate::Options::bulk_batch`] jobs (each batch one store call, one
//! transaction), so a large action never holds the database for long.
//! A token limited to queues acts on (and counts) only its queues' jobs.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, Utc};
use kyu::{JobFilter, JobId};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::auth::Caller;
use super::error::{ApiError, ErrorBody};
use super::extract::{JobIdPath, JsonBody};
use super::filter::FilterInput;
use super::jobs::{visible_ids, ActionReply, IdsRequest};
use crate::State as Shared;

/// A bulk action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum BulkAction {
    /// Cancel: waiting jobs are cancelled, running ones asked to stop.
    Cancel,
    /// Retry failed or cancelled jobs.
    Retry,
    /// Delete jobs that are not running.
    Delete,
    /// Make scheduled jobs available now.
    RunNow,
}

/// Which jobs a bulk action by filter selects (every field that is set must match).
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"state": "failed", "queue": "mail", "kind": "send_email", "tag": "tenant:42", "created_after": "2030-01-01T00:00:00Z", "created_before": "2030-01-02T00:00:00Z", "args": ["args.user=42"]}))]
pub struct BulkFilter {
    /// The state: scheduled, available, running, completed, failed, cancelled.
    pub state: Option<String>,
    /// The queue.
    pub queue: Option<String>,
    /// The kind.
    pub kind: Option<String>,
    /// A tag.
    pub tag: Option<String>,
    /// Created at or after (RFC 3339).
    #[schema(value_type = Option<String>, format = DateTime)]
    pub created_after: Option<String>,
    /// Created before (RFC 3339).
    #[schema(value_type = Option<String>, format = DateTime)]
    pub created_before: Option<String>,
    /// Searches inside args, each `args.PATH=VALUE`, e.g. `args.user=42`
    /// (needs the `read_args` scope: 403 without).
    #[serde(default)]
    pub args: Vec<String>,
}

/// The moment an operator looked: the bound of a bulk action by filter.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"max_id": 1234, "at": "2030-01-01T12:00:00Z"}))]
pub struct Snapshot {
    /// The highest job id then: newer jobs are not touched.
    pub max_id: JobId,
    /// The time then: jobs changed after it are not touched.
    pub at: DateTime<Utc>,
}

/// A bulk action: `ids` or `filter` (one of the two).
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"action": "retry", "filter": {"state": "failed", "queue": "mail"}, "snapshot": {"max_id": 1234, "at": "2030-01-01T12:00:00Z"}, "dry_run": false}))]
pub struct BulkRequest {
    /// What to do.
    pub action: BulkAction,
    /// These jobs (1 to the page limit).
    pub ids: Option<Vec<JobId>>,
    /// Or the jobs matching this filter.
    pub filter: Option<BulkFilter>,
    /// The bound from a dry run (filter only). Default: taken when the action starts.
    pub snapshot: Option<Snapshot>,
    /// Count what the action would touch and return the snapshot; change nothing.
    #[serde(default)]
    pub dry_run: bool,
}

/// What a bulk action did (or, for a dry run, would select).
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"dry_run": false, "matched": 120, "counts": {"retried": 118, "key_held": 2}, "snapshot": {"max_id": 1234, "at": "2030-01-01T12:00:00Z"}, "results": null}))]
pub struct BulkReply {
    /// True for a dry run: nothing changed.
    pub dry_run: bool,
    /// Jobs selected (the token's queues only).
    pub matched: u64,
    /// Per result word (`cancelled`, `requested`, `already_finished`,
    /// `retried`, `not_retryable`, `key_held`, `deleted`, `running`,
    /// `made_available`, `not_scheduled`, `not_found`), how many; empty for a dry run.
    pub counts: BTreeMap<String, u64>,
    /// The bound used (filter only): send it back with the action.
    pub snapshot: Option<Snapshot>,
    /// By ids: the result per id.
    #[schema(value_type = Object)]
    pub results: Option<BTreeMap<String, String>>,
}

/// Runs `action` on `ids` (all visible to the caller): the word per id.
pub(crate) async fn act(
    shared: &Shared,
    action: BulkAction,
    ids: &[JobId],
) -> Result<Vec<&'static str>, ApiError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let kyu = &shared.kyu;
    Ok(match action {
        BulkAction::Cancel => kyu
            .cancel(ids)
            .await?
            .into_iter()
            .map(|r| match r {
                kyu::CancelResult::Cancelled => "cancelled",
                kyu::CancelResult::Requested => "requested",
                kyu::CancelResult::AlreadyFinished(_) => "already_finished",
                _ => "not_found",
            })
            .collect(),
        BulkAction::Retry => kyu
            .retry(ids)
            .await?
            .into_iter()
            .map(|r| match r {
                kyu::RetryResult::Retried => "retried",
                kyu::RetryResult::NotRetryable(_) => "not_retryable",
                kyu::RetryResult::KeyHeld { .. } => "key_held",
                _ => "not_found",
            })
            .collect(),
        BulkAction::Delete => kyu
            .delete(ids)
            .await?
            .into_iter()
            .map(|r| match r {
                kyu::DeleteResult::Deleted(_) => "deleted",
                kyu::DeleteResult::Running => "running",
                _ => "not_found",
            })
            .collect(),
        BulkAction::RunNow => kyu
            .run_now(ids)
            .await?
            .into_iter()
            .map(|r| match r {
                kyu::RunNowResult::MadeAvailable => "made_available",
                kyu::RunNowResult::NotScheduled(_) => "not_scheduled",
                _ => "not_found",
            })
            .collect(),
    })
}

/// Acts on ids, answering per id (ids the caller cannot see: `not_found`).
async fn by_ids(
    shared: &Shared,
    caller: &Caller,
    action: BulkAction,
    ids: &[JobId],
) -> Result<BTreeMap<String, String>, ApiError> {
    let (ids, mut results) = visible_ids(shared, caller, ids).await?;
    for (id, word) in ids.iter().zip(act(shared, action, &ids).await?) {
        results.insert(id.to_string(), word.to_string());
    }
    Ok(results)
}

impl BulkFilter {
    /// The filter's fields as the list's query gives them, so both are
    /// checked by one parser (same words; fields named `filter.…`).
    fn input(self) -> FilterInput {
        FilterInput {
            state: self.state,
            queue: self.queue,
            kind: self.kind,
            tag: self.tag,
            created_after: self.created_after,
            created_before: self.created_before,
            args: self
                .args
                .into_iter()
                .enumerate()
                .map(|(i, a)| (format!("args[{i}]"), a))
                .collect(),
        }
    }
}

/// The snapshot now: the highest job id and the store's time.
pub(crate) async fn snapshot_now(shared: &Shared) -> Result<Snapshot, ApiError> {
    let at = shared.kyu.store().clock().now();
    let newest = shared
        .kyu
        .list(&JobFilter {
            limit: 1,
            ..JobFilter::default()
        })
        .await?;
    Ok(Snapshot {
        max_id: newest.jobs.first().map_or(0, |j| j.id),
        at,
    })
}

/// The jobs a bulk action by filter selects so far, and what it did to them.
#[derive(Debug, Clone, Default)]
pub(crate) struct Tally {
    /// Jobs selected (the caller's queues only).
    pub(crate) matched: u64,
    /// Per result word, how many (empty for a count).
    pub(crate) counts: BTreeMap<String, u64>,
    /// True when a count stopped at its cap with more jobs left, or at
    /// [`COUNT_WINDOWS`] with older jobs not searched.
    pub(crate) more: bool,
    /// Set when a count with a search inside args stopped after
    /// [`COUNT_WINDOWS`] pages: the cursor past the jobs it searched (they
    /// and older jobs were not counted).
    pub(crate) searched_to: Option<JobId>,
}

/// How many windows of a search inside args a count reads at most (each is
/// [`kyu::ARG_SEARCH_WINDOW`] jobs: no index serves the search, so an
/// exact count of a rare match would read every job).
pub(crate) const COUNT_WINDOWS: usize = 2;

/// Selects by filter within the snapshot, batch by batch, and either
/// counts (no action; at most `cap` jobs, then [`Tally::more`], and with a
/// search inside args at most [`COUNT_WINDOWS`] windows, then
/// [`Tally::searched_to`]) or acts on
/// each batch; `progress` sees the tally after each batch.
pub(crate) async fn by_filter(
    shared: &Shared,
    caller: &Caller,
    action: Option<BulkAction>,
    mut filter: JobFilter,
    snap: Snapshot,
    cap: Option<u64>,
    mut progress: impl FnMut(&Tally),
) -> Result<Tally, ApiError> {
    filter.changed_by = Some(snap.at);
    filter.before = Some(snap.max_id.saturating_add(1));
    filter.limit = shared.options.bulk_batch.max(1);
    let mut tally = Tally::default();
    let mut windows = 0;
    loop {
        let page = shared.kyu.list(&filter).await?;
        // Each page of a search inside args reads up to a window of jobs,
        // whether it ends full or at the window's end.
        windows += usize::from(!filter.args.is_empty());
        let ids: Vec<JobId> = page
            .jobs
            .iter()
            .filter(|j| caller.sees(&j.queue))
            .map(|j| j.id)
            .collect();
        tally.matched += ids.len() as u64;
        if let Some(action) = action {
            for word in act(shared, action, &ids).await? {
                *tally.counts.entry(word.to_string()).or_insert(0) += 1;
            }
        }
        progress(&tally);
        if let Some(cap) = cap.filter(|c| tally.matched >= *c) {
            tally.more = tally.matched > cap || page.next.is_some();
            tally.matched = tally.matched.min(cap);
            return Ok(tally);
        }
        if cap.is_some() && windows >= COUNT_WINDOWS {
            if let Some(next) = page.next {
                tally.more = true;
                tally.searched_to = Some(next);
                return Ok(tally);
            }
        }
        match page.next {
            Some(n) => filter.before = Some(n),
            None => return Ok(tally),
        }
    }
}

/// Counts the jobs a bulk action by filter would select within the
/// snapshot (a dry run), at most `cap` (then [`Tally::more`]); `None`
/// counts them all. When the store's count selects exactly the jobs the
/// action would, it answers in one bounded statement that reads no job
/// whole ([`kyu::Kyu::count_jobs`]): no search inside args, and a token
/// that sees every queue or a filter on one queue (which the filter's
/// parser checked the token sees). Otherwise it counts as the action
/// selects, page by page ([`by_filter`]): a search inside args within
/// [`COUNT_WINDOWS`] windows, and a token limited to queues skipping the
/// jobs of the others.
pub(crate) async fn count_by_filter(
    shared: &Shared,
    caller: &Caller,
    mut filter: JobFilter,
    snap: Snapshot,
    cap: Option<u64>,
) -> Result<Tally, ApiError> {
    let all_visible = caller.sees_every_queue() || filter.queue.is_some();
    if !filter.args.is_empty() || !all_visible {
        return by_filter(shared, caller, None, filter, snap, cap, |_| {}).await;
    }
    // The bound by_filter sets: the same jobs as the action's batches.
    filter.changed_by = Some(snap.at);
    filter.before = Some(snap.max_id.saturating_add(1));
    let count = shared
        .kyu
        .count_jobs(&filter, cap.unwrap_or(u64::MAX))
        .await?;
    Ok(Tally {
        matched: count.n,
        more: count.more,
        ..Tally::default()
    })
}

/// A bulk action (cancel, retry, delete, run_now) on `ids` or on the jobs
/// matching `filter`. With `dry_run` nothing changes: the answer counts the
/// jobs the filter selects and gives the `snapshot` to send with the
/// action, which then touches only jobs that were in that state when the
/// dry run looked (not one that failed a second later, nor a newer job).
/// Runs server-side in bounded batches.
#[utoipa::path(post, path = "/v1/jobs/bulk", tag = "operate", request_body = BulkRequest,
    responses((status = 200, body = BulkReply), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn bulk(
    State(shared): State<Shared>,
    caller: Caller,
    JsonBody(req): JsonBody<BulkRequest>,
) -> Result<Json<BulkReply>, ApiError> {
    match (req.ids, req.filter) {
        (Some(ids), None) => {
            if req.snapshot.is_some() {
                return Err(ApiError::invalid(
                    "snapshot",
                    "snapshot: given with ids; accepted: a snapshot with a filter only",
                ));
            }
            if req.dry_run {
                let (seen, _) = visible_ids(&shared, &caller, &ids).await?;
                return Ok(Json(BulkReply {
                    dry_run: true,
                    matched: seen.len() as u64,
                    counts: BTreeMap::new(),
                    snapshot: None,
                    results: None,
                }));
            }
            let results = by_ids(&shared, &caller, req.action, &ids).await?;
            let mut counts = BTreeMap::new();
            for w in results.values() {
                *counts.entry(w.clone()).or_insert(0) += 1;
            }
            Ok(Json(BulkReply {
                dry_run: false,
                matched: results.values().filter(|w| *w != "not_found").count() as u64,
                counts,
                snapshot: None,
                results: Some(results),
            }))
        }
        (None, Some(filter)) => {
            let filter = filter.input().parse(&caller, "filter.")?;
            let snap = match req.snapshot {
                Some(s) => s,
                None => snapshot_now(&shared).await?,
            };
            let tally = if req.dry_run {
                count_by_filter(&shared, &caller, filter, snap, None).await?
            } else {
                by_filter(
                    &shared,
                    &caller,
                    Some(req.action),
                    filter,
                    snap,
                    None,
                    |_| {},
                )
                .await?
            };
            Ok(Json(BulkReply {
                dry_run: req.dry_run,
                matched: tally.matched,
                counts: tally.counts,
                snapshot: Some(snap),
                results: None,
            }))
        }
        _ => Err(ApiError::invalid(
            "ids",
            "ids and filter: give one; accepted: {\"ids\": [..]} or {\"filter\": {..}}",
        )),
    }
}

/// Deletes jobs by id (not running ones: cancel first).
#[utoipa::path(post, path = "/v1/jobs/delete", tag = "operate", request_body = IdsRequest,
    responses((status = 200, body = ActionReply), (status = 400, body = ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn delete_ids(
    State(shared): State<Shared>,
    caller: Caller,
    JsonBody(req): JsonBody<IdsRequest>,
) -> Result<Json<ActionReply>, ApiError> {
    let results = by_ids(&shared, &caller, BulkAction::Delete, &req.ids).await?;
    Ok(Json(ActionReply { results }))
}

/// Makes scheduled jobs available now, by id.
#[utoipa::path(post, path = "/v1/jobs/run_now", tag = "operate", request_body = IdsRequest,
    responses((status = 200, body = ActionReply), (status = 400, body = ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn run_now_ids(
    State(shared): State<Shared>,
    caller: Caller,
    JsonBody(req): JsonBody<IdsRequest>,
) -> Result<Json<ActionReply>, ApiError> {
    let results = by_ids(&shared, &caller, BulkAction::RunNow, &req.ids).await?;
    Ok(Json(ActionReply { results }))
}

/// Deletes one job (204); 409 `running` for a running job (cancel it first).
#[utoipa::path(delete, path = "/v1/jobs/{id}", tag = "operate", params(("id" = i64, Path, description = "The job id")),
    responses((status = 204, description = "Deleted"), (status = 404, body = ErrorBody),
        (status = 409, description = "The job is running", body = ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn delete_one(
    State(shared): State<Shared>,
    caller: Caller,
    JobIdPath(id): JobIdPath,
) -> Result<StatusCode, ApiError> {
    caller.visible_job(&shared.kyu, id).await?;
    match act(&shared, BulkAction::Delete, &[id]).await?.first() {
        Some(&"deleted") => Ok(StatusCode::NO_CONTENT),
        Some(&"running") => Err(ApiError::new(
            StatusCode::CONFLICT,
            "running",
            format!("job {id} is running; accepted: a job that is not running (cancel it first)"),
        )),
        _ => Err(ApiError::not_found(format!("job {id} not found"))),
    }
}
