//! Workers: every live worker (processes running `kyu worker` or the
//! library's `Worker`, and HTTP workers registered with this server), the
//! queues it works and kinds it runs, its slots in use, its last heartbeat
//! and the jobs it holds (running), linked to their pages.
//!
//! The workers come from the store's registry (a few rows, one per worker);
//! the jobs they hold from one bounded read of the running jobs
//! ([`HELD_LIMIT`]), so the page costs the same at a million jobs. A
//! viewer limited to queues sees a worker only if it works one of its
//! queues, and of it only those queues and the jobs of those queues.

use std::collections::BTreeMap;

use axum::extract::State;
use kyu::store::JobFilter;
use kyu::{JobRecord, JobState};
use maud::{html, Markup};

use super::layout;
use super::session::{PageError, Viewer};
use super::DashState;

/// Most running jobs read for the page (more are counted as "more").
pub(crate) const HELD_LIMIT: usize = 1_000;

/// `GET /workers`.
pub(crate) async fn page(
    State(dash): State<DashState>,
    viewer: Viewer,
) -> Result<Markup, PageError> {
    let kyu = &dash.shared.kyu;
    let after = kyu.last_event_id().await?;
    let now = kyu.store().clock().now();
    let filter = JobFilter {
        states: vec![JobState::Running],
        limit: HELD_LIMIT,
        ..Default::default()
    };
    let (live, running) = tokio::try_join!(kyu.workers(), async {
        Ok(kyu.store().list(&filter).await?)
    })?;
    let truncated = running.next.is_some();
    let caller = &viewer.caller;
    let sessions: BTreeMap<String, _> = dash
        .shared
        .workers
        .live(now)
        .into_iter()
        .map(|(s, seen)| (s.info.id.clone(), (s, seen)))
        .collect();
    // The jobs each worker holds, of the viewer's queues only, oldest first.
    let mut held: BTreeMap<String, Vec<&JobRecord>> = BTreeMap::new();
    for j in running.jobs.iter().rev().filter(|j| caller.sees(&j.queue)) {
        held.entry(j.worker.clone().unwrap_or_default())
            .or_default()
            .push(j);
    }
    let workers = seen_by(caller, &live);
    // Jobs still running under a worker that is no longer alive: their
    // leases run out and the reaper rescues them.
    let orphans: Vec<(&String, &Vec<&JobRecord>)> = held
        .iter()
        .filter(|(id, _)| !live.iter().any(|w| &w.info.id == *id))
        .collect();
    let no_jobs: Vec<&JobRecord> = Vec::new();
    let body = html! {
        h1 { "Workers" }
        (super::live::marker(None, after))
        @if workers.is_empty() {
            p { "No live worker works your queues. Start one with " code { "kyu worker" } ", the library's " code { "Worker" } ", or register one over HTTP (" code { "POST /v1/workers" } ")." }
        } @else {
            div.scroll { table.workers {
                thead { tr {
                    th scope="col" { "Worker" }
                    th scope="col" { "Type" }
                    th scope="col" { "Queues" }
                    th scope="col" { "Kinds" }
                    th scope="col" class="num" { "Slots in use" }
                    th scope="col" { "Last heartbeat" }
                    th scope="col" { "Jobs held" }
                } }
                tbody {
                    @for (w, qs) in &workers {
                        @let jobs = held.get(&w.info.id).unwrap_or(&no_jobs);
                        @let session = sessions.get(&w.info.id);
                        tr data-worker=(w.info.id) {
                            th scope="row" { code { (w.info.id) } }
                            td {
                                @match session {
                                    Some((s, _)) => { "HTTP, registered here" br; span.hint { "lease " (format!("{:?}", s.lease)) } }
                                    None => { "process" br; span.hint { "or another server's HTTP worker" } }
                                }
                            }
                            td { (qs.join(", ")) }
                            td { @match &w.info.kinds { Some(k) => (k.join(", ")), None => "every kind" } }
                            td.num {
                                (jobs.len())
                                @if let Some((s, _)) = session { " of " (s.capacity) }
                            }
                            td {
                                (layout::time(w.last_seen))
                                @if let Some((_, seen)) = session { br; span.hint { "last call " (layout::time(*seen)) } }
                            }
                            td { (held_list(jobs)) }
                        }
                    }
                }
            } }
        }
        @if !orphans.is_empty() {
            section {
                h2 { "Jobs held by workers no longer alive" }
                p.hint { "Their worker stopped without giving them back; when their lease runs out they are rescued (run again, or failed if it was their last attempt)." }
                table {
                    thead { tr { th scope="col" { "Worker" } th scope="col" { "Jobs held" } } }
                    tbody {
                        @for (id, jobs) in &orphans {
                            tr { th scope="row" { code { (id) } } td { (held_list(jobs)) } }
                        }
                    }
                }
            }
        }
        @if truncated {
            p.hint { "Only the newest " (HELD_LIMIT) " running jobs were read; workers may hold more." }
        }
        p.hint { "As of " (layout::time(now)) ". A worker counts as alive until its registration expires, a few lease periods after its last heartbeat." }
    };
    Ok(layout::page(&viewer, "Workers", "/workers", body))
}

/// A worker's jobs, as links to their pages.
fn held_list(jobs: &[&JobRecord]) -> Markup {
    html! {
        @if jobs.is_empty() {
            span.zero { "none" }
        } @else {
            ul.plain {
                @for j in jobs {
                    li {
                        a href=(format!("/jobs/{}", j.id)) { "job " (j.id) }
                        " " (j.kind) " · " (j.queue)
                        @if j.attempt > 1 { " · attempt " (j.attempt) }
                        @if let Some(t) = j.attempted_at { " · since " (layout::time(t)) }
                    }
                }
            }
        }
    }
}

/// The workers `caller` may see, each with the viewer's queues only: a
/// worker that works none of them is left out (overview and Workers page).
pub(crate) fn seen_by<'w>(
    caller: &crate::api::auth::Caller,
    workers: &'w [kyu::LiveWorker],
) -> Vec<(&'w kyu::LiveWorker, Vec<&'w str>)> {
    workers
        .iter()
        .filter_map(|w| {
            let qs: Vec<&str> = w
                .info
                .queues
                .iter()
                .filter(|q| caller.sees(q))
                .map(|q| q.as_str())
                .collect();
            (!qs.is_empty()).then_some((w, qs))
        })
        .collect()
}
