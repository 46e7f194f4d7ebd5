//! Following the event log: [`Kyu::events`] replays the log after an id,
//! then follows it live, woken by the store's event wake-ups (in this
//! process at once; other processes through the wake-up sockets beside a
//! SQLite file or PostgreSQL notifications), with a poll as the fallback.
//!
//! The stream hands out what the store's
//! [`read_events`](kyu_core::EventLog::read_events) hands out: events in
//! strictly increasing id order, each once, only once its place in the order
//! is final. A subscriber that reconnects with the id of the last event it
//! saw misses nothing and sees nothing twice; one asking for ids the log no
//! longer holds (pruned by retention) gets [`EventItem::Gap`] first.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use futures_util::Stream;
use kyu_core::{Event, EventFilter, EventGap, EventId, Store};
use tokio::sync::watch;

use crate::{Kyu, Result};

/// How many events one read of the log takes.
const PAGE: usize = 500;

/// How long the stream waits for a wake-up before it reads again anyway.
const POLL: Duration = Duration::from_millis(500);

/// One item of [`Kyu::events`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventItem {
    /// An event that passed the filter (boxed: a gap is small).
    Event(Box<Event>),
    /// Events after the id asked for were pruned before they could be read:
    /// the subscriber missed them. The stream goes on after them.
    Gap(EventGap),
}

struct State {
    store: Arc<dyn Store>,
    filter: EventFilter,
    after: EventId,
    /// A gap at the very start is not news for a reader that asked for
    /// "whatever the log holds".
    quiet_gap: bool,
    wake: watch::Receiver<u64>,
    ready: VecDeque<EventItem>,
    failed: bool,
}

impl State {
    /// Reads the log once: false when nothing new was there.
    async fn fill(&mut self) -> Result<bool> {
        self.wake.borrow_and_update();
        let read = self.store.read_events(self.after, PAGE).await?;
        if let Some(gap) = read.gap {
            if !self.quiet_gap {
                self.ready.push_back(EventItem::Gap(gap));
            }
        }
        self.quiet_gap = false;
        let moved = read.next > self.after || !read.events.is_empty();
        for e in read.events {
            if self.filter.matches(&e) {
                self.ready.push_back(EventItem::Event(Box::new(e)));
            }
        }
        self.after = self.after.max(read.next);
        Ok(moved)
    }
}

impl Kyu {
    /// The events after `since` (`None`: everything the log still holds),
    /// then the live ones as they are written, that pass `filter`; the
    /// stream never ends by itself. Reconnect with the id of the last event
    /// seen to miss nothing and see nothing twice. A store error is yielded
    /// once and the stream goes on after a pause.
    ///
    /// ```no_run
    /// # async fn demo(kyu: kyu::Kyu) -> kyu::Result<()> {
    /// use futures_util::StreamExt;
    /// use kyu::events::EventItem;
    /// use kyu::{EventFilter, EventType};
    ///
    /// let filter = EventFilter { types: vec![EventType::Failed], ..EventFilter::default() };
    /// let mut events = std::pin::pin!(kyu.events(None, filter));
    /// while let Some(item) = events.next().await {
    ///     match item? {
    ///         EventItem::Event(e) => println!("{} job {:?} failed: {:?}", e.id, e.job_id, e.facts.error),
    ///         EventItem::Gap(g) => println!("missed events up to {}", g.pruned_through),
    ///     }
    /// }
    /// # Ok(()) }
    /// ```
    pub fn events(
        &self,
        since: Option<EventId>,
        filter: EventFilter,
    ) -> impl Stream<Item = Result<EventItem>> + Send + 'static {
        let store = self.store().clone();
        let state = State {
            wake: store.subscribe_events(),
            store,
            filter,
            after: since.unwrap_or(0),
            quiet_gap: since.is_none(),
            ready: VecDeque::new(),
            failed: false,
        };
        futures_util::stream::unfold(state, |mut s| async move {
            loop {
                if let Some(item) = s.ready.pop_front() {
                    return Some((Ok(item), s));
                }
                if s.failed {
                    s.failed = false;
                    tokio::time::sleep(POLL).await;
                }
                match s.fill().await {
                    Ok(true) => {}
                    Ok(false) => {
                        let _ = tokio::time::timeout(POLL, s.wake.changed()).await;
                    }
                    Err(e) => {
                        s.failed = true;
                        return Some((Err(e), s));
                    }
                }
            }
        })
    }

    /// The id after which only what happens from now on comes: give it to
    /// [`events`](Self::events) to follow the log live without its past.
    pub async fn last_event_id(&self) -> Result<EventId> {
        Ok(self.store().last_event_id().await?)
    }
}
