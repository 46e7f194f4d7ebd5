//! The Live page (`GET /live`): the event log, newest first, filterable by
//! queue, kind, job and event type (the API's event filter, checked the
//! same way), limited to what the viewer may see (the API's visibility:
//! a tenant sees its queues' events and its schedules' fires, no worker
//! events). Each event shows its small facts (never args). Older events
//! page by cursor (`before`); with JavaScript the page's stream brings new
//! matching events, which the script fetches from this page (`after`) and
//! prepends, so every value is rendered (and escaped) here.
//!
//! The store reads the log forward only; a page reads it backward in
//! windows of ids, at most [`SCAN`] ids per page whatever the filter, so a
//! filter matching nothing costs a bounded read and offers "older".

use axum::extract::{Query, State};
use kyu::{Event, EventFilter, EventId};
use maud::{html, Markup};

use super::layout;
use super::session::{PageError, Viewer};
use super::DashState;
use crate::api::events::{filter_of, EventsParams, Visibility};

/// Events a page shows.
const SHOWN: usize = 100;
/// Ids read per store call when reading backward.
const WINDOW: i64 = 1_000;
/// Ids a page reads at most (then it offers "older" from where it stopped).
const SCAN: i64 = 10_000;

/// The page's query: the filter (empty fields are no filter) and a cursor.
#[derive(Debug, Default, serde::Deserialize)]
pub(crate) struct LivePageQuery {
    queue: Option<String>,
    kind: Option<String>,
    job: Option<String>,
    #[serde(rename = "type")]
    event_type: Option<String>,
    /// Only events with ids below this one (paging to older events).
    before: Option<String>,
    /// Only events with ids above this one (what the script fetches).
    after: Option<String>,
}

fn nonempty(s: &Option<String>) -> Option<String> {
    s.as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

impl LivePageQuery {
    fn params(&self) -> EventsParams {
        EventsParams {
            since: None,
            queue: nonempty(&self.queue),
            kind: nonempty(&self.kind),
            job: nonempty(&self.job),
            types: nonempty(&self.event_type),
        }
    }

    /// The link to this filter's page, with a cursor.
    fn link(&self, cursor: Option<(&str, EventId)>) -> String {
        let mut pairs: Vec<(&str, String)> = [
            ("queue", &self.queue),
            ("kind", &self.kind),
            ("job", &self.job),
            ("type", &self.event_type),
        ]
        .into_iter()
        .filter_map(|(k, v)| nonempty(v).map(|v| (k, v)))
        .collect();
        if let Some((k, id)) = cursor {
            pairs.push((k, id.to_string()));
        }
        if pairs.is_empty() {
            return "/live".to_string();
        }
        format!(
            "/live?{}",
            serde_urlencoded::to_string(pairs).unwrap_or_default()
        )
    }
}

/// Reads a cursor given in `field`.
fn cursor(field: &str, s: &Option<String>) -> Result<Option<EventId>, PageError> {
    match nonempty(s) {
        None => Ok(None),
        Some(v) => v
            .parse::<EventId>()
            .ok()
            .filter(|id| *id >= 0)
            .map(Some)
            .ok_or_else(|| {
                crate::api::error::ApiError::invalid(
                    field,
                    format!("{field}: {v:?} is not an event id; accepted: a whole number from 0"),
                )
                .into()
            }),
    }
}

/// What one page found: the events (newest first) and where "older" starts.
struct Found {
    events: Vec<Event>,
    older: Option<EventId>,
}

/// The newest matching events with ids up to `top`, reading backward.
async fn backward(
    dash: &DashState,
    vis: &mut Visibility,
    filter: &EventFilter,
    mut top: EventId,
) -> Result<Found, PageError> {
    let store = dash.shared.kyu.store();
    let floor = (top - SCAN).max(0);
    let mut events = Vec::new();
    while top > floor {
        let lo = (top - WINDOW).max(floor);
        let read = store.read_committed_events(lo, WINDOW as usize).await?;
        let mut window: Vec<Event> = read
            .events
            .into_iter()
            .filter(|e| e.id > lo && e.id <= top && filter.matches(e))
            .collect();
        window.reverse();
        for e in window {
            if vis.sees(&e).await {
                events.push(e);
                if events.len() == SHOWN {
                    let older = events.last().map(|e| e.id);
                    return Ok(Found { events, older });
                }
            }
        }
        top = lo;
    }
    // Stopped at the scan bound: older ids are still to read.
    let older = (top > 0).then_some(top + 1);
    Ok(Found { events, older })
}

/// The matching events after `after` (the script's fetch), newest first.
async fn forward(
    dash: &DashState,
    vis: &mut Visibility,
    filter: &EventFilter,
    after: EventId,
) -> Result<Found, PageError> {
    // Only final events: the script goes on from the newest it shows.
    let read = dash
        .shared
        .kyu
        .store()
        .read_events(after, SCAN as usize)
        .await?;
    let mut events = Vec::new();
    for e in read.events.into_iter().rev() {
        if filter.matches(&e) && vis.sees(&e).await {
            events.push(e);
            if events.len() == SHOWN {
                break;
            }
        }
    }
    Ok(Found {
        events,
        older: None,
    })
}

/// `GET /live`.
pub(crate) async fn page(
    State(dash): State<DashState>,
    viewer: Viewer,
    Query(q): Query<LivePageQuery>,
) -> Result<Markup, PageError> {
    let filter = filter_of(&viewer.caller, &q.params())?;
    let before = cursor("before", &q.before)?;
    let after = cursor("after", &q.after)?;
    let mut vis = Visibility::new(viewer.caller.clone(), dash.shared.kyu.clone());
    let newest = dash.shared.kyu.store().committed_event_id().await?;
    let found = match (after, before) {
        (Some(after), _) => forward(&dash, &mut vis, &filter, after).await?,
        (None, Some(b)) => backward(&dash, &mut vis, &filter, (b - 1).min(newest)).await?,
        (None, None) => backward(&dash, &mut vis, &filter, newest).await?,
    };
    // The stream starts after the newest event shown (or the log's end).
    let live_after = found.events.first().map_or(newest, |e| e.id);
    let types: Vec<&str> = kyu::EventType::ALL.iter().map(|t| t.as_str()).collect();
    let chosen = nonempty(&q.event_type).unwrap_or_default();
    let body = html! {
        h1 { "Live" }
        form.filters method="get" action="/live" {
            label { "Queue " input type="text" name="queue" value=[nonempty(&q.queue)]; }
            " "
            label { "Kind " input type="text" name="kind" value=[nonempty(&q.kind)]; }
            " "
            label { "Job id " input type="text" name="job" inputmode="numeric" value=[nonempty(&q.job)]; }
            " "
            label { "Type "
                select name="type" {
                    option value="" selected[chosen.is_empty()] { "any" }
                    @for t in &types {
                        option value=(t) selected[chosen == *t] { (t) }
                    }
                }
            }
            " "
            button type="submit" { "Filter" }
        }
        div #live hidden data-after=(live_after) data-events="1"
            data-filter-queue=[filter.queue.as_deref()] data-filter-kind=[filter.kind.as_deref()]
            data-filter-job=[filter.job_id] data-filter-type=[filter.types.first().map(|t| t.as_str())] {}
        p.live {
            "Newest first. With JavaScript, new events matching the filter appear at the top; without, "
            a href=(q.link(None)) { "show the newest" } "."
        }
        div.scroll { table {
            thead { tr {
                th scope="col" { "Id" }
                th scope="col" { "Time" }
                th scope="col" { "Type" }
                th scope="col" { "Queue" }
                th scope="col" { "Kind" }
                th scope="col" { "Job" }
                th scope="col" { "Attempt" }
                th scope="col" { "Facts" }
            } }
            tbody #events {
                @for e in &found.events { (row(e)) }
            }
        } }
        @if found.events.is_empty() {
            p.empty { "No event matches among those read." }
        }
        @if let Some(older) = found.older {
            p { a rel="next" href=(q.link(Some(("before", older)))) { "Older events" } }
        }
    };
    Ok(layout::page(&viewer, "Live", "/live", body))
}

/// One event as a table row (every value escaped by maud).
fn row(e: &Event) -> Markup {
    let f = &e.facts;
    html! {
        tr data-event=(e.id) {
            td { (e.id) }
            td { (layout::time(e.at)) }
            td { span class=(format!("event {}", e.event_type.as_str())) { (e.event_type.as_str()) } }
            td { (e.queue.as_deref().unwrap_or("–")) }
            td { (e.kind.as_deref().unwrap_or("–")) }
            td { @if let Some(id) = e.job_id { a href=(format!("/jobs/{id}")) { (id) } } @else { "–" } }
            td { @if let Some(a) = e.attempt { (a) } @else { "–" } }
            td.facts {
                @if let Some(s) = f.state { (layout::state(s)) " " }
                @if let Some(w) = &f.worker { span { "worker " code { (w) } } " " }
                @if let Some(p) = f.progress { span { (p) "%" } " " }
                @if let Some(m) = &f.message { span { (m) } " " }
                @if let Some(d) = f.duration_ms { span { "ran " (d) " ms" } " " }
                @if let Some(w) = f.wait_ms { span { "waited " (w) " ms" } " " }
                @if let Some(t) = f.run_at { span { "runs at " (layout::time(t)) } " " }
                @if f.duplicate == Some(true) { span { "duplicate" } " " }
                @if let Some(s) = &f.schedule { span { "schedule " (s) } " " }
                @if let Some(t) = f.fire_time { span { "fire time " (layout::time(t)) } " " }
                @if let Some(r) = &f.reason { span { "reason " (r) } " " }
                @if let Some(err) = &f.error { span.error { (err) } }
            }
        }
    }
}
