//! `GET /v1/events`: the event log as Server-Sent Events, replayed from a
//! point and then followed live ([`kyu::Kyu::events`]).
//!
//! - Each event is an SSE message whose `id` is the event's id and whose
//!   `data` is the event as JSON (`{"id", "at", "type", "job_id", "queue",
//!   "kind", "attempt", …facts}`; never args nor results).
//! - Resume: a client that reconnects with `Last-Event-ID` (browsers send it
//!   by themselves) or `?since=ID` gets every event after that id, none
//!   twice. Without either the stream starts with the live events only.
//!   `?since=0` replays everything the log still holds.
//! - Events the client asked for but retention pruned first come as one
//!   message of type `gap` (`event: gap`, `data: {"after", "pruned_through"}`,
//!   `id: pruned_through`); the stream goes on after them.
//! - A comment line (`: keep-alive`) every [`crate::Options::sse_keep_alive`]
//!   keeps proxies from closing an idle stream.
//! - Filters: `queue`, `kind`, `job`, `types` (comma-separated event types).
//! - A token limited to queues sees only the events of its queues: job and
//!   queue events by their queue, schedule events by their schedule's queue;
//!   worker events (and events of a schedule since deleted) only to tokens
//!   that see every queue, as they would name other tenants' workers.
//! - Each token may hold [`crate::Options::sse_streams_per_token`] streams
//!   open at once; one more is refused with 429.

use std::collections::HashMap;
use std::convert::Infallible;
use std::pin::Pin;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use futures_util::{Stream, StreamExt};
use kyu::events::EventItem;
use kyu::{Event, EventFilter, EventId, EventType};
use serde::Deserialize;
use utoipa::IntoParams;

use super::auth::Caller;
use super::error::{ApiError, ErrorBody};
use super::extract::Query;
use super::permits::{Kind, Permit};
use crate::State as Shared;

/// Which events to stream.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct EventsParams {
    /// Start after this event id (the `Last-Event-ID` header wins if both
    /// are given); `0` replays all the log holds. Default: live events only.
    pub since: Option<String>,
    /// Only events of this queue.
    pub queue: Option<String>,
    /// Only events of jobs of this kind.
    pub kind: Option<String>,
    /// Only events of this job.
    pub job: Option<String>,
    /// Only these event types, comma-separated, e.g. `failed,completed`.
    pub types: Option<String>,
}

/// Reads an event id given in `field`.
fn event_id(field: &str, s: &str) -> Result<EventId, ApiError> {
    s.trim()
        .parse::<EventId>()
        .ok()
        .filter(|id| *id >= 0)
        .ok_or_else(|| {
            ApiError::invalid(
                field,
                format!("{field}: {s:?} is not an event id; accepted: a whole number from 0, the `id` of the last event received"),
            )
        })
}

/// The filter of the request, checked (also the dashboard's Live page's).
pub(crate) fn filter_of(caller: &Caller, p: &EventsParams) -> Result<EventFilter, ApiError> {
    if let Some(q) = &p.queue {
        kyu::validate::queue_name("queue", q)?;
        caller.check_queue("queue", q)?;
    }
    let job_id = match &p.job {
        None => None,
        Some(j) => Some(
            j.parse::<kyu::JobId>()
                .ok()
                .filter(|id| *id > 0)
                .ok_or_else(|| {
                    ApiError::invalid(
                        "job",
                        format!("job: {j:?} is not a job id; accepted: a positive integer"),
                    )
                })?,
        ),
    };
    let mut types = Vec::new();
    if let Some(t) = &p.types {
        for name in t.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            let ty = name
                .parse::<EventType>()
                .map_err(|e| ApiError::invalid("types", format!("types: {}", e.problem)))?;
            types.push(ty);
        }
    }
    Ok(EventFilter {
        queue: p.queue.clone(),
        kind: p.kind.clone(),
        job_id,
        types,
    })
}

/// Decides which events a caller may see; remembers schedules' queues.
pub(crate) struct Visibility {
    caller: Caller,
    kyu: kyu::Kyu,
    schedule_queues: HashMap<String, Option<String>>,
}

impl Visibility {
    /// What `caller` may see, schedules' queues looked up in `kyu`.
    pub(crate) fn new(caller: Caller, kyu: kyu::Kyu) -> Visibility {
        Visibility {
            caller,
            kyu,
            schedule_queues: HashMap::new(),
        }
    }

    /// Whether the caller may see `e`.
    pub(crate) async fn sees(&mut self, e: &Event) -> bool {
        if self.caller.token.queues.is_empty() {
            return true;
        }
        if let Some(q) = &e.queue {
            return self.caller.sees(q);
        }
        let Some(name) = &e.facts.schedule else {
            // Worker events: they name workers of every tenant.
            return false;
        };
        if !self.schedule_queues.contains_key(name) {
            let queue = match self.kyu.store().get_schedule(name).await {
                Ok(s) => s.map(|s| s.spec.job.queue),
                // Not known now: hidden, and asked again next time.
                Err(_) => return false,
            };
            self.schedule_queues.insert(name.clone(), queue);
        }
        self.schedule_queues
            .get(name)
            .and_then(|q| q.as_deref())
            .is_some_and(|q| self.caller.sees(q))
    }
}

/// What the stream carries between items.
struct Follow {
    items: Pin<Box<dyn Stream<Item = kyu::Result<EventItem>> + Send>>,
    visibility: Visibility,
    _permit: Permit,
}

/// The SSE message of one event.
fn message(e: &Event) -> SseEvent {
    SseEvent::default()
        .id(e.id.to_string())
        .data(serde_json::to_string(e).unwrap_or_else(|_| "{}".into()))
}

/// The stream of events as Server-Sent Events: each message's `id` is the
/// event id and its `data` the event as JSON; a `gap` message says events
/// were pruned before they could be sent; `: keep-alive` comments keep an
/// idle stream open. Resume with `Last-Event-ID` (or `?since=`).
#[utoipa::path(get, path = "/v1/events", tag = "events", params(EventsParams,
        ("Last-Event-ID" = Option<String>, Header, description = "Resume after this event id (sent by EventSource on reconnect)")),
    responses(
        (status = 200, description = "A stream of Server-Sent Events", content_type = "text/event-stream", body = String,
            example = json!("id: 42\ndata: {\"id\":42,\"at\":\"2030-01-01T00:00:00Z\",\"type\":\"completed\",\"job_id\":7,\"queue\":\"mail\",\"kind\":\"send_email\",\"attempt\":1,\"duration_ms\":12}\n\nevent: gap\nid: 90\ndata: {\"after\":42,\"pruned_through\":90}\n\n: keep-alive\n\n")),
        (status = 400, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 429, description = "The token has its cap of open streams", body = ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn stream(
    State(shared): State<Shared>,
    caller: Caller,
    headers: HeaderMap,
    Query(p): Query<EventsParams>,
) -> Result<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>, ApiError> {
    let since = match headers.get("last-event-id") {
        Some(v) => Some(event_id(
            "Last-Event-ID",
            v.to_str().map_err(|_| {
                ApiError::invalid(
                    "Last-Event-ID",
                    "Last-Event-ID: not text; accepted: a whole number from 0",
                )
            })?,
        )?),
        None => p
            .since
            .as_deref()
            .map(|s| event_id("since", s))
            .transpose()?,
    };
    let filter = filter_of(&caller, &p)?;
    let permit = shared.permits.take(
        &caller.token.name,
        Kind::Stream,
        shared.options.sse_streams_per_token,
    )?;
    // Without a starting point: live events only (what the log holds now is
    // past). From 0: all the log holds, without a gap for what retention pruned.
    let since = match since {
        Some(0) => None,
        Some(s) => Some(s),
        None => Some(shared.kyu.last_event_id().await?),
    };
    let state = Follow {
        items: Box::pin(shared.kyu.events(since, filter)),
        visibility: Visibility::new(caller, shared.kyu.clone()),
        _permit: permit,
    };
    let events = futures_util::stream::unfold(state, |mut s| async move {
        loop {
            let item = s.items.next().await?;
            let message = match item {
                Ok(EventItem::Event(e)) => {
                    if !s.visibility.sees(&e).await {
                        continue;
                    }
                    message(&e)
                }
                Ok(EventItem::Gap(g)) => SseEvent::default()
                    .event("gap")
                    .id(g.pruned_through.to_string())
                    .data(serde_json::to_string(&g).unwrap_or_else(|_| "{}".into())),
                Err(e) => {
                    tracing::warn!(error = %e, "events stream: the store failed; retrying");
                    SseEvent::default().event("error").data(
                        serde_json::json!({"error": {"code": "unavailable", "message": format!("the database did not answer: {e}; the stream goes on"), "field": null}})
                            .to_string(),
                    )
                }
            };
            return Some((Ok(message), s));
        }
    });
    Ok(Sse::new(events).keep_alive(
        KeepAlive::new()
            .interval(shared.options.sse_keep_alive)
            .text("keep-alive"),
    ))
}
