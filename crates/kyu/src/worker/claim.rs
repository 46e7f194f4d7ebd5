//! The fetch loop: one per queue. Claims jobs of the kinds the worker has a
//! handler for (every kind if it opted in to failing unknown ones), as many
//! as the queue has free slots plus what its [prefetch](super::prefetch)
//! holds ahead, hands each to [`execute`](super::execute), and sleeps while
//! there is nothing to do.
//!
//! An idle loop wakes on the first of: the store's wake-up (a job enqueued here
//! or, where the backend can tell, in another process), the reaper making jobs
//! runnable, the run_at of the next scheduled job, or the poll interval. A
//! queue whose rate limit holds its jobs back sleeps until the store says
//! the window allows the next start.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use kyu_core::Claim;
use tokio::sync::Semaphore;

use super::prefetch::Pace;
use super::{execute, Shared};
use crate::metrics::{KindCache, SlotGauges};

pub(crate) async fn fetch_loop(
    shared: Arc<Shared>,
    queue: String,
    concurrency: usize,
    slot_gauges: Arc<SlotGauges>,
) {
    // Metric handles by kind, this loop's own: no lock, no allocation per job.
    let mut kind_metrics = KindCache::default();
    // `slots` bounds the jobs this loop holds (running or waiting to start);
    // `run_slots` bounds the ones running. They differ by the prefetch, whose
    // most is the semaphore's extra; `pace` says how much of it to use now.
    let prefetch = shared.config.prefetch;
    let total = concurrency + prefetch.max();
    let slots = Arc::new(Semaphore::new(total));
    let mut pace = Pace::default();
    let run_slots = Arc::new(Semaphore::new(concurrency));
    // Jobs this loop handed out that wait for a run slot: they take the
    // slots that free up before any job claimed later.
    let waiting = Arc::new(AtomicUsize::new(0));
    let mut wake = shared.store.subscribe();
    let queues = vec![queue.clone()];
    let kinds = shared.claim_kinds();
    if kinds.as_ref().is_some_and(Vec::is_empty) {
        // Nothing to claim: no handlers (warned at start).
        return;
    }
    let mut backoff = Duration::from_millis(100);
    loop {
        // Wait for one free slot, then take every other free one: one claim
        // round trip serves them all.
        let first = tokio::select! {
            biased;
            _ = shared.stop_claiming.cancelled() => return,
            p = slots.clone().acquire_owned() => p.expect("semaphore never closed"),
        };
        // Let handlers that are finishing right now free their slots too, so
        // one claim serves them all instead of one claim each.
        tokio::task::yield_now().await;
        // Hold up to the slots plus what the prefetch holds ahead now.
        let hold = concurrency + pace.ahead(prefetch);
        let mut permits = vec![first];
        while total - slots.available_permits() < hold {
            match slots.clone().try_acquire_owned() {
                Ok(p) => permits.push(p),
                Err(_) => break,
            }
        }
        // Mark the wake-up as seen before claiming: a job enqueued after this
        // point wakes the idle wait below.
        wake.borrow_and_update();
        let wanted = permits.len();
        // More jobs than free run slots: the claim takes them ahead, not
        // started, and each is marked started when it gets a slot (module
        // `start`), so a rescue or release of one that never started
        // charges no attempt. Without a prefetch every claimed job starts.
        let free_now = run_slots
            .available_permits()
            .saturating_sub(waiting.load(Ordering::SeqCst));
        let unstarted = prefetch.max() > 0 && wanted > free_now;
        let claim = Claim {
            worker: shared.config.id.clone(),
            queues: queues.clone(),
            kinds: kinds.clone(),
            limit: wanted,
            lease: shared.config.lease,
            unstarted,
        };
        let jobs = match shared.store.claim(claim).await {
            Ok(jobs) => {
                backoff = Duration::from_millis(100);
                jobs
            }
            Err(e) => {
                tracing::warn!(queue = %queue, error = %e, retry_in = ?backoff, "claim failed");
                drop(permits);
                tokio::select! {
                    _ = shared.stop_claiming.cancelled() => return,
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(5));
                continue;
            }
        };
        let got = jobs.len();
        pace.claimed(std::time::Instant::now(), got);
        for job in jobs {
            let permit = permits.pop().expect("one permit per claimed job");
            let metrics = kind_metrics.get(&job.queue, &job.kind);
            // The store's claim time is the lease's end less the lease asked for.
            let started = job.lease_expires_at
                - chrono::Duration::from_std(shared.config.lease).unwrap_or_default();
            metrics.wait((started - job.run_at).to_std().unwrap_or_default());
            waiting.fetch_add(1, Ordering::SeqCst);
            execute::spawn(
                &shared,
                job,
                permit,
                execute::RunSlot {
                    slots: run_slots.clone(),
                    waiting: waiting.clone(),
                    unstarted,
                },
                execute::Meters {
                    kind: metrics,
                    slots: slot_gauges.clone(),
                },
            );
        }
        drop(permits);
        if got == wanted {
            continue;
        }
        // Fewer jobs than free slots: the queue is drained for now.
        let sleep_for = idle_sleep(&shared, &queues).await;
        tokio::select! {
            _ = shared.stop_claiming.cancelled() => return,
            _ = wake.changed() => {}
            _ = shared.local_wake.notified() => {}
            _ = tokio::time::sleep(sleep_for) => {}
        }
    }
}

/// How long an idle queue may sleep: until its next scheduled job, at most the
/// poll interval; or, when the queue's rate limit holds its waiting jobs back,
/// until the rate window allows the next start (a wake-up ends it sooner).
async fn idle_sleep(shared: &Shared, queues: &[String]) -> Duration {
    let poll = shared.config.poll_interval;
    if let Ok(Some(at)) = shared.store.next_start(queues).await {
        let now = shared.store.clock().now();
        // At least a millisecond: never a busy loop, whatever the clocks say.
        return (at - now)
            .to_std()
            .unwrap_or(Duration::ZERO)
            .max(Duration::from_millis(1));
    }
    match shared.store.next_scheduled(queues).await {
        Ok(Some(at)) => {
            let now = shared.store.clock().now();
            (at - now).to_std().unwrap_or(Duration::ZERO).min(poll)
        }
        _ => poll,
    }
}
