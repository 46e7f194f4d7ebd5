//! The counts every page shows (jobs by queue and state, paused queues,
//! live workers, runnable jobs no worker claims), read from the store once
//! for every viewer and tab, never once per page view.
//!
//! A reading is fresh for [`TTL`], or for [`COST_FACTOR`] times as long as it
//! took to read if that is longer (at a million jobs the store's counts take
//! seconds: the database then spends at most a fifth of its time on them).
//! A stale reading is still shown while one background task reads anew, so
//! a viewer never waits for a recount. Only the very first reading, or one
//! after an action when counting is cheap ([`Counts::forget`]), is waited
//! for, and only up to [`FIRST_WAIT`]: at a million jobs the first count
//! takes seconds, so the page is shown at once without counts
//! ([`Snapshot::counting`], [`counting_notice`]) and reloads itself until
//! they are in. Each viewer then sees only its queues' rows.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kyu::{Kyu, LiveWorker, QueueStats, WaitingKind};

/// How long one reading is shown to every viewer at least.
pub const TTL: Duration = Duration::from_secs(2);

/// A reading stays fresh for this many times its own cost, if longer than [`TTL`].
pub const COST_FACTOR: u32 = 5;

/// Below this cost an action's change is waited for (the next page reads anew).
const CHEAP: Duration = Duration::from_secs(1);

/// The longest a page waits for a reading when there is none yet.
pub const FIRST_WAIT: Duration = Duration::from_millis(250);

/// The longest a page waits for the reading after an action, before it
/// shows the one from before the action. Only cheap counts are waited for
/// after an action ([`Counts::forget`]), so this is a backstop: a loaded
/// machine took over a second.
const AFTER_ACTION_WAIT: Duration = Duration::from_secs(30);

/// One reading of the store's counts.
#[derive(Debug)]
pub(crate) struct Snapshot {
    /// Every queue, its paused flag and its counts by state.
    pub(crate) queues: Vec<QueueStats>,
    /// The workers alive now.
    pub(crate) workers: Vec<LiveWorker>,
    /// Runnable jobs no live worker claims, by queue and kind.
    pub(crate) unhandled: Vec<WaitingKind>,
    /// When it was read.
    pub(crate) at: chrono::DateTime<chrono::Utc>,
    /// How long it took to read.
    pub(crate) cost: Duration,
    /// No reading yet: the first is under way and took longer than
    /// [`FIRST_WAIT`]; every list is empty.
    pub(crate) counting: bool,
}

impl Snapshot {
    /// The stand-in while the first reading is under way.
    fn counting(at: chrono::DateTime<chrono::Utc>) -> Snapshot {
        Snapshot {
            queues: Vec::new(),
            workers: Vec::new(),
            unhandled: Vec::new(),
            at,
            cost: Duration::ZERO,
            counting: true,
        }
    }
}

/// What a page shows instead of counts while the first reading is under way.
pub(crate) fn counting_notice() -> maud::Markup {
    // A hint, not a `.notice`: that class is the flash of an operator's
    // action (dashboard.js holds live reloads while one is fresh).
    maud::html! {
        p.hint role="status" {
            "Counting the jobs in the store for the first time (a large store takes a few seconds). "
            "This page reloads itself when the counts are in."
        }
    }
}

/// The `Refresh` header a page without counts carries, so it reloads
/// (without script) until the first reading is in.
pub(crate) fn reload_while_counting(snap: &Snapshot, resp: &mut axum::response::Response) {
    if snap.counting {
        resp.headers_mut().insert(
            axum::http::header::REFRESH,
            axum::http::HeaderValue::from_static("2"),
        );
    }
}

#[derive(Default)]
struct Inner {
    /// The last reading, when it was read, and the [`Inner::generation`]
    /// it started in (None: read before showing).
    snap: Option<(Instant, Arc<Snapshot>, u64)>,
    /// Bumped by every action ([`Counts::forget`]): a reading that started
    /// in an older generation may not show the action's change.
    generation: u64,
    /// Whether it must be read anew whatever its age.
    stale: bool,
    /// When the background reading under way started, and in which
    /// generation, if one is under way.
    reading: Option<(Instant, u64)>,
    /// The reading an action set aside ([`Counts::forget`]), shown if the
    /// new one is slow.
    previous: Option<Arc<Snapshot>>,
    /// Whether the last reading failed (a page then stops waiting).
    failed: bool,
}

/// How a reading is made: [`read`], or a stand-in in tests.
type Reader = Arc<
    dyn Fn(Kyu) -> futures_util::future::BoxFuture<'static, Result<Snapshot, kyu::Error>>
        + Send
        + Sync,
>;

pub(crate) struct Counts {
    kyu: Kyu,
    inner: Arc<Mutex<Inner>>,
    /// Told when a reading is in.
    read: Arc<tokio::sync::Notify>,
    reader: Reader,
}

async fn read(kyu: &Kyu) -> Result<Snapshot, kyu::Error> {
    let started = Instant::now();
    let (queues, workers, unhandled) =
        tokio::try_join!(kyu.queues(), kyu.workers(), kyu.unhandled())?;
    Ok(Snapshot {
        queues,
        workers,
        unhandled,
        at: kyu.store().clock().now(),
        cost: started.elapsed(),
        counting: false,
    })
}

impl Counts {
    /// The counts of `kyu`'s store, first read when a page asks (a reading
    /// made at start would show a page what the store held then).
    pub(crate) fn new(kyu: Kyu) -> Counts {
        Counts::with_reader(
            kyu,
            Arc::new(|kyu| Box::pin(async move { read(&kyu).await })),
        )
    }

    fn with_reader(kyu: Kyu, reader: Reader) -> Counts {
        Counts {
            kyu,
            inner: Arc::default(),
            read: Arc::default(),
            reader,
        }
    }

    /// The counts: the last reading (a background reading starts when it is
    /// stale), or, when there is none, a new one if it comes within
    /// [`FIRST_WAIT`] (after an action, [`AFTER_ACTION_WAIT`]), else the
    /// reading from before the action or a [`Snapshot::counting`] stand-in.
    pub(crate) async fn get(&self) -> Result<Arc<Snapshot>, kyu::Error> {
        let asked = Instant::now();
        loop {
            if let Some(snap) = self.shown() {
                return Ok(snap);
            }
            let previous = self.inner.lock().expect("not poisoned").previous.clone();
            let read = self.read.notified();
            tokio::pin!(read);
            // Registered before the reading starts, so its end is not missed.
            read.as_mut().enable();
            let since = self.start_reading();
            // The first wait is counted from the reading's start: while a
            // long first count goes on, later pages do not each wait again.
            let left = match &previous {
                Some(_) => AFTER_ACTION_WAIT.saturating_sub(asked.elapsed()),
                None => FIRST_WAIT.saturating_sub(since.elapsed()),
            };
            // Waited long enough, or the store failed to answer: show what
            // there is.
            let give_up = tokio::time::timeout(left, read).await.is_err()
                || self.inner.lock().expect("not poisoned").failed;
            if give_up {
                return Ok(self.shown().or(previous).unwrap_or_else(|| {
                    Arc::new(Snapshot::counting(self.kyu.store().clock().now()))
                }));
            }
            // A reading is in: shown if it started after the last action,
            // else another one is started.
        }
    }

    /// Starts a background reading unless one is under way; returns when
    /// the reading under way started.
    fn start_reading(&self) -> Instant {
        let mut inner = self.inner.lock().expect("not poisoned");
        if let Some((since, _)) = inner.reading {
            return since;
        }
        let since = Instant::now();
        let generation = inner.generation;
        inner.reading = Some((since, generation));
        let (cell, told) = (self.inner.clone(), self.read.clone());
        let reading = (self.reader)(self.kyu.clone());
        tokio::spawn(async move {
            let new = reading.await;
            {
                let mut inner = cell.lock().expect("not poisoned");
                inner.reading = None;
                inner.failed = new.is_err();
                match new {
                    Ok(s) => {
                        let s = Arc::new(s);
                        if generation == inner.generation {
                            inner.snap = Some((Instant::now(), s, generation));
                            inner.stale = false;
                            inner.previous = None;
                        } else if inner.previous.is_some() {
                            // Read before the action: not shown while a
                            // page waits for the action's change.
                            inner.previous = Some(s);
                        } else {
                            inner.snap = Some((Instant::now(), s, generation));
                            inner.stale = true;
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "dashboard: could not read the counts"),
                }
            }
            told.notify_waiters();
        });
        since
    }

    /// The reading to show now, if there is one; starts a background
    /// reading when it is stale.
    fn shown(&self) -> Option<Arc<Snapshot>> {
        let (stale, snap) = {
            let inner = self.inner.lock().expect("not poisoned");
            let (at, snap, _) = inner.snap.clone()?;
            let fresh_for = TTL.max(snap.cost * COST_FACTOR);
            (inner.stale || at.elapsed() >= fresh_for, snap)
        };
        if stale {
            let _ = self.start_reading();
        }
        Some(snap)
    }

    /// After an action that changed counts: when counting is cheap the next
    /// page waits for a reading that started after the action (the reading
    /// from before is shown only if that takes over [`AFTER_ACTION_WAIT`]);
    /// else the reading is marked stale and read again in the background.
    pub(crate) async fn forget(&self) {
        let mut inner = self.inner.lock().expect("not poisoned");
        inner.generation += 1;
        let cheap = inner.snap.as_ref().map_or(true, |(_, s, _)| s.cost < CHEAP);
        if cheap {
            if let Some((_, s, _)) = inner.snap.take() {
                inner.previous = Some(s);
            }
        } else {
            inner.stale = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reader that takes `took` and reports the count of queue "q" it
    /// reads from `n` (bumped by the test to tell readings apart).
    fn slow_reader(took: Duration, n: Arc<std::sync::atomic::AtomicU64>) -> Reader {
        Arc::new(move |kyu: Kyu| {
            // Read when the reading starts, as a store would.
            let n = n.load(std::sync::atomic::Ordering::SeqCst);
            Box::pin(async move {
                tokio::time::sleep(took).await;
                let q = QueueStats {
                    queue: "q".into(),
                    paused: false,
                    counts: [(kyu::JobState::Available, n)].into(),
                    oldest_runnable_at: None,
                };
                Ok(Snapshot {
                    queues: vec![q],
                    workers: Vec::new(),
                    unhandled: Vec::new(),
                    at: kyu.store().clock().now(),
                    cost: took,
                    counting: false,
                })
            })
        })
    }

    fn available(s: &Snapshot) -> u64 {
        s.queues[0].count(kyu::JobState::Available)
    }

    #[tokio::test]
    async fn a_slow_first_count_is_not_waited_for_and_a_slow_recount_keeps_the_old_counts() {
        let kyu = Kyu::connect("sqlite::memory:").await.unwrap();
        let n = Arc::new(std::sync::atomic::AtomicU64::new(1));
        let counts = Counts::with_reader(kyu, slow_reader(Duration::from_millis(1200), n.clone()));
        let t = Instant::now();
        let first = counts.get().await.unwrap();
        assert!(
            first.counting,
            "shown without counts while the first is read"
        );
        assert!(
            t.elapsed() < Duration::from_millis(600),
            "{:?}",
            t.elapsed()
        );
        // Later pages during the same long count do not wait again.
        let t = Instant::now();
        assert!(counts.get().await.unwrap().counting);
        assert!(
            t.elapsed() < Duration::from_millis(100),
            "{:?}",
            t.elapsed()
        );
        // Pages asking meanwhile do not start another reading; once in, it is shown.
        tokio::time::sleep(Duration::from_millis(1400)).await;
        let second = counts.get().await.unwrap();
        assert!(!second.counting);
        assert_eq!(available(&second), 1);
        // A slow store: an action marks the counts stale, the old ones stay shown.
        n.store(2, std::sync::atomic::Ordering::SeqCst);
        counts.forget().await;
        assert_eq!(available(&counts.get().await.unwrap()), 1);
    }

    #[tokio::test]
    async fn after_an_action_a_cheap_count_is_waited_for() {
        let kyu = Kyu::connect("sqlite::memory:").await.unwrap();
        let n = Arc::new(std::sync::atomic::AtomicU64::new(1));
        let counts = Counts::with_reader(kyu, slow_reader(Duration::from_millis(20), n.clone()));
        assert_eq!(available(&counts.get().await.unwrap()), 1);
        n.store(2, std::sync::atomic::Ordering::SeqCst);
        counts.forget().await;
        assert_eq!(
            available(&counts.get().await.unwrap()),
            2,
            "the action's change is shown"
        );
    }

    #[tokio::test]
    async fn a_reading_under_way_during_an_action_is_not_shown_as_its_result() {
        let kyu = Kyu::connect("sqlite::memory:").await.unwrap();
        let n = Arc::new(std::sync::atomic::AtomicU64::new(1));
        let counts = Counts::with_reader(kyu, slow_reader(Duration::from_millis(50), n.clone()));
        assert_eq!(available(&counts.get().await.unwrap()), 1);
        // A reading starts (a page found the counts old), then an action
        // changes the store before that reading is in.
        counts.start_reading();
        n.store(2, std::sync::atomic::Ordering::SeqCst);
        counts.forget().await;
        assert_eq!(
            available(&counts.get().await.unwrap()),
            2,
            "the page waits for a reading that started after the action"
        );
    }
}
