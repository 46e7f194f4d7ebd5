//! Live updates without polling load: one task per server follows the
//! event log ([`kyu::Kyu::events`]) from now on and hands each event to
//! every open page through a broadcast channel; each page holds one
//! Server-Sent Events stream (`GET /live/events`) that carries only the
//! events the viewer may see (the API's visibility: its queues' events, its
//! schedules' fires, worker events for a token of every queue), as
//! `{"type", "queue", "kind", "job"}` (queue null for a worker's or a
//! schedule's event; no args, no error text). The page's script reloads it when something it shows
//! changed (a job's page within 1 s, a list at most every 5 s; never while
//! the operator is selecting rows or typing). A running job's page also
//! gets `output` events on the same stream ([`super::tail`]).

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use futures_util::{Stream, StreamExt};
use kyu::events::EventItem;
use kyu::{Event, EventFilter};
use maud::{html, Markup};
use tokio::sync::broadcast;

use super::session::{PageError, Viewer};
use super::DashState;
use crate::api::events::Visibility;

/// How many events the channel holds for a slow page; past that the page
/// is told to reload (it missed some).
const BUFFER: usize = 1024;

/// The shared follower of the event log, started by the first page that listens.
pub(crate) struct Live {
    tx: tokio::sync::OnceCell<broadcast::Sender<Arc<Event>>>,
}

impl Live {
    pub(crate) fn new() -> Live {
        Live {
            tx: tokio::sync::OnceCell::new(),
        }
    }

    async fn subscribe(
        &self,
        kyu: &kyu::Kyu,
    ) -> Result<broadcast::Receiver<Arc<Event>>, kyu::Error> {
        let tx = self
            .tx
            .get_or_try_init(|| async {
                let since = kyu.last_event_id().await?;
                let (tx, _) = broadcast::channel(BUFFER);
                let sender = tx.clone();
                let events = kyu.events(Some(since), EventFilter::default());
                tokio::spawn(async move {
                    let mut events = std::pin::pin!(events);
                    while let Some(item) = events.next().await {
                        if let Ok(EventItem::Event(e)) = item {
                            // No receiver now is fine: nobody is looking.
                            let _ = sender.send(Arc::from(e));
                        }
                    }
                });
                Ok::<_, kyu::Error>(tx)
            })
            .await?;
        Ok(tx.subscribe())
    }
}

/// How many events past the page's own a new stream reads from the log to
/// tell the page what changed while it loaded; more than this: "reload".
const CATCH_UP: usize = 200;

/// The marker a live page carries: the script listens when it finds it.
/// `after` is the last event id read before the page read its data, so
/// that a change made while the page was on its way is not missed.
pub(crate) fn marker(job: Option<kyu::JobId>, after: kyu::EventId) -> Markup {
    html! {
        div #live hidden data-job=[job] data-after=(after) {}
        p.live { "Live: this page reloads when its jobs change (with JavaScript)." }
    }
}

/// Where the page's stream starts.
#[derive(Debug, Default, serde::Deserialize)]
pub(crate) struct LiveQuery {
    /// The page's `data-after`: events after it are the page's news.
    after: Option<kyu::EventId>,
}

fn change(e: &Event) -> SseEvent {
    SseEvent::default().event("change").data(
        serde_json::json!({
            "type": e.event_type.as_str(),
            "queue": e.queue,
            "kind": e.kind,
            "job": e.job_id,
        })
        .to_string(),
    )
}

/// `GET /live/events?after=ID`: the viewer's events as Server-Sent Events:
/// first those after `after` that the log holds (what changed while the
/// page loaded), then the live ones.
pub(crate) async fn events(
    State(dash): State<DashState>,
    viewer: Viewer,
    axum::extract::Query(q): axum::extract::Query<LiveQuery>,
    axum::extract::Query(tail): axum::extract::Query<super::tail::TailQuery>,
) -> Result<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>, PageError> {
    // A job's page also gets its command output as it is written.
    let output = super::tail::stream(dash.clone(), viewer.caller.clone(), tail);
    // Subscribe first, then read the log: nothing falls between the two.
    let rx = dash.live.subscribe(&dash.shared.kyu).await?;
    // The API's visibility: a tenant sees its queues' events and its
    // schedules' fires, and no worker events (they name every tenant's workers).
    let mut vis = Visibility::new(viewer.caller, dash.shared.kyu.clone());
    let mut first = Vec::new();
    if let Some(after) = q.after {
        let read = dash.shared.kyu.store().read_events(after, CATCH_UP).await?;
        if read.gap.is_some() || read.events.len() == CATCH_UP {
            first.push(SseEvent::default().event("change").data("{}"));
        }
        for e in &read.events {
            if vis.sees(e).await {
                first.push(change(e));
            }
        }
    }
    let stream = futures_util::stream::unfold((rx, vis), |(mut rx, mut vis)| async move {
        loop {
            let out = match rx.recv().await {
                Ok(e) if vis.sees(&e).await => change(&e),
                Ok(_) => continue,
                // Missed events: tell the page to reload.
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    SseEvent::default().event("change").data("{}")
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            };
            return Some((Ok(out), (rx, vis)));
        }
    });
    let stream = futures_util::stream::iter(first.into_iter().map(Ok)).chain(stream);
    let stream = futures_util::stream::select(stream, futures_util::stream::iter(output).flatten());
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}
