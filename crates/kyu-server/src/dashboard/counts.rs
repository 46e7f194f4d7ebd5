//! The counts every page shows (jobs by queue and state, paused queues,
//! live workers, runnable jobs no worker claims), read from the store at
//! most once per [`TTL`] whatever the number of viewers and tabs: the first
//! request after the TTL reads while the others wait for its answer, and
//! all get the same figures. Each viewer then sees only its queues' rows.

use std::sync::Arc;
use std::time::{Duration, Instant};

use kyu::{Kyu, LiveWorker, QueueStats, WaitingKind};
use tokio::sync::Mutex;

/// How long one reading of the counts is shown to every viewer.
pub const TTL: Duration = Duration::from_secs(2);

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
}

pub(crate) struct Counts {
    kyu: Kyu,
    cached: Mutex<Option<(Instant, Arc<Snapshot>)>>,
}

impl Counts {
    pub(crate) fn new(kyu: Kyu) -> Counts {
        Counts {
            kyu,
            cached: Mutex::new(None),
        }
    }

    /// The counts: the cached reading while it is fresh, else a new one.
    pub(crate) async fn get(&self) -> Result<Arc<Snapshot>, kyu::Error> {
        let mut cached = self.cached.lock().await;
        if let Some((at, snap)) = cached.as_ref() {
            if at.elapsed() < TTL {
                return Ok(snap.clone());
            }
        }
        let (queues, workers, unhandled) =
            tokio::try_join!(self.kyu.queues(), self.kyu.workers(), self.kyu.unhandled())?;
        let snap = Arc::new(Snapshot {
            queues,
            workers,
            unhandled,
            at: self.kyu.store().clock().now(),
        });
        *cached = Some((Instant::now(), snap.clone()));
        Ok(snap)
    }

    /// Forgets the cached reading (after an action that changed counts, so
    /// that the page the operator is sent back to shows the change).
    pub(crate) async fn forget(&self) {
        *self.cached.lock().await = None;
    }
}
