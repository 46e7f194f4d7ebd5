//! Finish: writes finished attempts in batches (River calls this the completer). Every attempt that
//! ended while the previous batch was being written goes into the next one, so
//! one round trip serves many jobs under load and one job when idle.

use std::sync::Arc;
use std::time::Duration;

use kyu_core::store::FinishResult;
use kyu_core::{Finish, JobState};
use tokio::sync::{mpsc, oneshot};

use super::Shared;
use crate::metrics::{AttemptOutcome, KindMetrics};

pub(crate) enum Message {
    /// A finished attempt, and how to count it once written.
    Finish(Finish, Counted),
    /// Reply once everything sent before has been written.
    Flush(oneshot::Sender<()>),
}

/// How a finished attempt is counted once its write is answered.
pub(crate) struct Counted {
    pub(crate) metrics: Arc<KindMetrics>,
    pub(crate) outcome: AttemptOutcome,
}

pub(crate) async fn completer(shared: Arc<Shared>, mut rx: mpsc::UnboundedReceiver<Message>) {
    let mut batch = Vec::new();
    let mut counted = Vec::new();
    let mut flushes = Vec::new();
    while let Some(first) = rx.recv().await {
        let mut next = Some(first);
        while let Some(msg) = next {
            match msg {
                Message::Finish(f, c) => {
                    batch.push(f);
                    counted.push(c);
                }
                Message::Flush(tx) => flushes.push(tx),
            }
            next = if batch.len() < shared.config.finish_batch {
                rx.try_recv().ok()
            } else {
                None
            };
        }
        if !batch.is_empty() {
            write(
                &shared,
                std::mem::take(&mut batch),
                std::mem::take(&mut counted),
            )
            .await;
        }
        for tx in flushes.drain(..) {
            let _ = tx.send(());
        }
    }
}

/// Writes one batch, retrying while the store is unreachable: a result that
/// is never written is not lost (the lease runs out and the job runs again),
/// but writing it spares a duplicate run.
async fn write(shared: &Shared, batch: Vec<Finish>, counted: Vec<Counted>) {
    let mut pause = Duration::from_millis(50);
    let mut tries = 0;
    loop {
        match shared.store.finish(batch.clone()).await {
            Ok(results) => {
                for ((f, r), c) in batch.iter().zip(&results).zip(&counted) {
                    match r {
                        FinishResult::Stale => {
                            tracing::warn!(
                                job_id = f.lease.id,
                                attempt = f.lease.attempt,
                                "result discarded: the job's lease had expired and it was taken over"
                            );
                            c.metrics.lease_lost();
                        }
                        FinishResult::Applied(state) => {
                            c.metrics.attempt(c.outcome);
                            if *state == JobState::Failed {
                                c.metrics.dead();
                            }
                        }
                    }
                }
                // The finished jobs no longer hold slots of their queues'
                // global concurrency: idle fetch loops may claim again.
                shared.local_wake.notify_waiters();
                break;
            }
            Err(e) => {
                tries += 1;
                // During a hard stop, give up after a few tries: the leases
                // will expire and the jobs run again elsewhere.
                if shared.hard_stop.is_cancelled() && tries >= 5 {
                    tracing::error!(error = %e, jobs = batch.len(), "could not write results before stopping; their leases will expire and they will run again");
                    break;
                }
                tracing::warn!(error = %e, jobs = batch.len(), retry_in = ?pause, "could not write results; retrying");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(5));
            }
        }
    }
    let mut running = shared.running.lock().expect("running lock");
    for f in &batch {
        if running.get(&f.lease.id).map(|r| r.attempt) == Some(f.lease.attempt) {
            running.remove(&f.lease.id);
        }
    }
}

/// Waits until every result sent so far has been written.
pub(crate) async fn flush(shared: &Shared) {
    let (tx, rx) = oneshot::channel();
    if shared.finish_tx.send(Message::Flush(tx)).is_ok() {
        let _ = rx.await;
    }
}
