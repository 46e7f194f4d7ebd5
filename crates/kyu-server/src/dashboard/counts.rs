//! The counts every page shows (jobs by queue and state, paused queues,
//! live workers, runnable jobs no worker claims, the queues' limits), read from the store once
//! for every viewer and tab, never once per page view.
//!
//! A reading is fresh for [`TTL`], or for [`COST_FACTOR`] times as long as it
//! took to read if that is longer (at a million jobs the store's counts take
//! seconds: the database then spends at most a fifth of its time on them).
//! A stale reading is still shown while one background task reads anew, so
//! a viewer never waits for a recount; only the very first reading, or one
//! after an action when counting is cheap ([`Counts::forget`]), is waited for
//! (by every concurrent viewer together). Each viewer then sees only its
//! queues' rows.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kyu::{Kyu, LiveWorker, QueueLimitStatus, QueueStats, WaitingKind};

/// How long one reading is shown to every viewer at least.
pub const TTL: Duration = Duration::from_secs(2);

/// A reading stays fresh for this many times its own cost, if longer than [`TTL`].
pub const COST_FACTOR: u32 = 5;

/// Below this cost an action's change is waited for (the next page reads anew).
const CHEAP: Duration = Duration::from_millis(250);

/// One reading of the store's counts.
#[derive(Debug)]
pub(crate) struct Snapshot {
    /// Every queue, its paused flag and its counts by state.
    pub(crate) queues: Vec<QueueStats>,
    /// The workers alive now.
    pub(crate) workers: Vec<LiveWorker>,
    /// Runnable jobs no live worker claims, by queue and kind.
    pub(crate) unhandled: Vec<WaitingKind>,
    /// The limited queues' limits and their use (jobs running, rate window).
    pub(crate) limits: Vec<QueueLimitStatus>,
    /// When it was read.
    pub(crate) at: chrono::DateTime<chrono::Utc>,
    /// How long it took to read.
    pub(crate) cost: Duration,
}

#[derive(Default)]
struct Inner {
    /// The last reading and when it was read (None: read before showing).
    snap: Option<(Instant, Arc<Snapshot>)>,
    /// Whether it must be read anew whatever its age.
    stale: bool,
    /// Whether a background reading is under way.
    refreshing: bool,
}

pub(crate) struct Counts {
    kyu: Kyu,
    inner: Arc<Mutex<Inner>>,
    /// Held by the reading that every viewer waits for.
    first: tokio::sync::Mutex<()>,
}

async fn read(kyu: &Kyu) -> Result<Snapshot, kyu::Error> {
    let started = Instant::now();
    let (queues, workers, unhandled, limits) = tokio::try_join!(
        kyu.queues(),
        kyu.workers(),
        kyu.unhandled(),
        kyu.queue_limits()
    )?;
    Ok(Snapshot {
        queues,
        workers,
        unhandled,
        limits,
        at: kyu.store().clock().now(),
        cost: started.elapsed(),
    })
}

impl Counts {
    pub(crate) fn new(kyu: Kyu) -> Counts {
        Counts {
            kyu,
            inner: Arc::default(),
            first: tokio::sync::Mutex::new(()),
        }
    }

    /// The counts: the last reading (a background reading starts when it is
    /// stale), or a new one when there is none.
    pub(crate) async fn get(&self) -> Result<Arc<Snapshot>, kyu::Error> {
        if let Some(snap) = self.shown() {
            return Ok(snap);
        }
        let _one = self.first.lock().await;
        if let Some(snap) = self.shown() {
            return Ok(snap);
        }
        let snap = Arc::new(read(&self.kyu).await?);
        let mut inner = self.inner.lock().expect("not poisoned");
        inner.snap = Some((Instant::now(), snap.clone()));
        inner.stale = false;
        Ok(snap)
    }

    /// The reading to show now, if there is one; starts a background
    /// reading when it is stale.
    fn shown(&self) -> Option<Arc<Snapshot>> {
        let mut inner = self.inner.lock().expect("not poisoned");
        let (at, snap) = inner.snap.clone()?;
        let fresh_for = TTL.max(snap.cost * COST_FACTOR);
        if (inner.stale || at.elapsed() >= fresh_for) && !inner.refreshing {
            inner.refreshing = true;
            let (kyu, cell) = (self.kyu.clone(), self.inner.clone());
            tokio::spawn(async move {
                let new = read(&kyu).await;
                let mut inner = cell.lock().expect("not poisoned");
                inner.refreshing = false;
                match new {
                    Ok(s) => {
                        inner.snap = Some((Instant::now(), Arc::new(s)));
                        inner.stale = false;
                    }
                    Err(e) => tracing::warn!(error = %e, "dashboard: could not read the counts"),
                }
            });
        }
        Some(snap)
    }

    /// After an action that changed counts: when counting is cheap the next
    /// page reads anew (and shows the change); else the reading is marked
    /// stale and read again in the background.
    pub(crate) async fn forget(&self) {
        let mut inner = self.inner.lock().expect("not poisoned");
        let cheap = inner.snap.as_ref().map_or(true, |(_, s)| s.cost < CHEAP);
        if cheap && !inner.refreshing {
            inner.snap = None;
        } else {
            inner.stale = true;
        }
    }
}
