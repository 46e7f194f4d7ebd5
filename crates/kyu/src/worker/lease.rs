//! Keeps running jobs' leases fresh and passes cancel requests to handlers,
//! and keeps the worker's registration (queues, kinds) alive in the store.
//!
//! Every `heartbeat_every` the leases of all running jobs are extended in one
//! store call; every `cancel_poll` the store is asked (a read) which of them
//! were cancelled. A job whose lease was lost (it expired and the job was
//! taken over) is signalled like a cancel: its result would be discarded.
//! Only jobs whose handler is still going are heartbeated; a "not running"
//! answer for a job that ended meanwhile is its own result being written,
//! not a take-over, and is not reported as one.

use std::sync::Arc;
use std::time::Duration;

use kyu_core::{LeaseRef, WorkerInfo};
use tokio_util::sync::CancellationToken;

use super::Shared;

/// How long a worker's registration lasts without a heartbeat: a few lease
/// periods (and heartbeat periods), after which the worker counts as dead.
fn registration_ttl(shared: &Shared) -> Duration {
    (shared.config.lease * 3).max(shared.config.heartbeat_every * 3)
}

pub(crate) async fn lease_loop(
    shared: Arc<Shared>,
    registration: WorkerInfo,
    stop: CancellationToken,
) {
    let ttl = registration_ttl(&shared);
    let mut heartbeat = tokio::time::interval(shared.config.heartbeat_every);
    let mut cancel_poll = tokio::time::interval(shared.config.cancel_poll);
    heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    cancel_poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = heartbeat.tick() => {
                // The first tick is at once: the worker is known as soon as it starts.
                if let Err(e) = shared.store.worker_seen(&registration, ttl).await {
                    tracing::warn!(error = %e, "could not record this worker as alive; will retry");
                }
                let leases = running_leases(&shared);
                if leases.is_empty() { continue; }
                match shared.store.heartbeat(&shared.config.id, &leases, shared.config.lease).await {
                    Ok(reply) => {
                        let taken_over = taken_over(&shared, &leases, &reply.lost);
                        for id in &taken_over {
                            tracing::warn!(job_id = id, "lease lost: the job was taken over; stopping its handler");
                        }
                        signal(&shared, taken_over.iter().chain(&reply.cancel_requested));
                    }
                    Err(e) => tracing::warn!(error = %e, jobs = leases.len(), "heartbeat failed; will retry"),
                }
            }
            _ = cancel_poll.tick() => {
                let leases = running_leases(&shared);
                if leases.is_empty() { continue; }
                match shared.store.cancel_requests(&leases).await {
                    Ok(ids) => signal(&shared, ids.iter()),
                    Err(e) => tracing::debug!(error = %e, "cancel poll failed"),
                }
            }
        }
    }
}

/// The leases of jobs whose handler has not ended (held jobs included): a job
/// whose result is being written needs no longer lease.
fn running_leases(shared: &Shared) -> Vec<LeaseRef> {
    shared
        .running
        .lock()
        .expect("running lock")
        .iter()
        .filter(|(_, r)| !r.ended)
        .map(|(id, r)| LeaseRef {
            id: *id,
            attempt: r.attempt,
        })
        .collect()
}

/// Of the `lost` jobs the store no longer has running, those still running
/// here: their lease expired and the job was rescued. The others ended while
/// the heartbeat was on its way and their result was written meanwhile.
fn taken_over(shared: &Shared, sent: &[LeaseRef], lost: &[i64]) -> Vec<i64> {
    let running = shared.running.lock().expect("running lock");
    lost.iter()
        .copied()
        .filter(|id| {
            let attempt = sent.iter().find(|l| l.id == *id).map(|l| l.attempt);
            match running.get(id) {
                Some(r) if Some(r.attempt) == attempt && !r.ended => true,
                _ => {
                    tracing::debug!(job_id = id, "heartbeat found the job finished meanwhile");
                    false
                }
            }
        })
        .collect()
}

fn signal<'a>(shared: &Shared, ids: impl Iterator<Item = &'a i64>) {
    let running = shared.running.lock().expect("running lock");
    for id in ids {
        if let Some(r) = running.get(id) {
            if !r.cancel.is_cancelled() {
                tracing::info!(job_id = id, "cancel requested; signalling the handler");
                r.cancel.cancel();
            }
        }
    }
}
