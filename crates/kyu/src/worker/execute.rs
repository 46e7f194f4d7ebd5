//! Runs one attempt: the handler under its timeout, with panics caught, the
//! cancel signal passed on, and the worker's shutdown respected. The result goes
//! to the completer; nothing here writes to the store.

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt;
use kyu_core::{ClaimedJob, Finish, FinishOutcome};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::start::{self, Started};
use super::{finish, RunningJob, Shared};
use crate::humanize::humanize;
use crate::metrics::{AttemptOutcome, KindMetrics, SlotGauges};
use crate::{JobContext, JobError, Outcome};

/// The metric handles an attempt records into, looked up once by the fetch loop.
pub(crate) struct Meters {
    /// Its (queue, kind)'s counters and duration histogram.
    pub(crate) kind: Arc<KindMetrics>,
    /// Its queue's `kyu_worker_slots`.
    pub(crate) slots: Arc<SlotGauges>,
}

/// Where an attempt waits for its turn to run.
pub(crate) struct RunSlot {
    /// The fetch loop's run slots: one is held while the handler runs.
    pub(crate) slots: Arc<Semaphore>,
    /// The fetch loop's count of jobs waiting for a run slot, this one
    /// included until it stops waiting.
    pub(crate) waiting: Arc<AtomicUsize>,
    /// The job was claimed ahead: it is marked started (module `start`)
    /// before its handler runs.
    pub(crate) unstarted: bool,
}

/// Starts the attempt on its own task once one of the run slots is free. `held`
/// (the fetch loop's slot) is kept until the handler ends.
pub(crate) fn spawn(
    shared: &Arc<Shared>,
    job: ClaimedJob,
    held: OwnedSemaphorePermit,
    run: RunSlot,
    meters: Meters,
) {
    let span = tracing::info_span!(
        "job",
        job_id = job.id,
        queue = %job.queue,
        kind = %job.kind,
        attempt = job.attempt
    );
    let shared2 = shared.clone();
    shared.executing.spawn(
        async move {
            let cancel = CancellationToken::new();
            // Registered before it starts, so a prefetched job's lease is
            // heartbeated and its cancel seen while it waits.
            shared2.running.lock().expect("running lock").insert(
                job.id,
                RunningJob {
                    attempt: job.attempt,
                    cancel: cancel.clone(),
                    ended: false,
                },
            );
            let RunSlot { slots: run_slots, waiting, unstarted } = run;
            let stop_waiting = || waiting.fetch_sub(1, Ordering::SeqCst);
            let ended = tokio::select! {
                biased;
                slot = run_slots.acquire_owned() => {
                    let slot = slot.expect("semaphore never closed");
                    stop_waiting();
                    let started = if unstarted {
                        start::mark(&shared2.start_tx, job.lease()).await
                    } else {
                        Started::Yes
                    };
                    match started {
                        Started::Yes => Some(attempt(&shared2, &job, cancel, &meters, slot).await),
                        // Rescued meanwhile: another worker has it now.
                        Started::Lost => None,
                        Started::Failed => Some((FinishOutcome::Released {
                            message: format!("worker {} could not mark the job started", shared2.config.id),
                        }, AttemptOutcome::NotCounted)),
                    }
                }
                _ = cancel.cancelled() => {
                    stop_waiting();
                    Some((FinishOutcome::Cancelled {
                        message: "cancelled before it started".into(),
                    }, AttemptOutcome::Cancelled))
                }
                _ = shared2.stop_claiming.cancelled() => {
                    stop_waiting();
                    Some((FinishOutcome::Released {
                        message: format!("worker {} shut down before the job started", shared2.config.id),
                    }, AttemptOutcome::NotCounted))
                }
            };
            drop(held);
            let Some((outcome, counted)) = ended else {
                tracing::warn!("the job claimed ahead was taken over before it started; not running it");
                let mut running = shared2.running.lock().expect("running lock");
                if running.get(&job.id).map(|r| r.attempt) == Some(job.attempt) {
                    running.remove(&job.id);
                }
                return;
            };
            if let Some(r) = shared2.running.lock().expect("running lock").get_mut(&job.id) {
                r.ended = true;
            }
            let _ = shared2.finish_tx.send(finish::Message::Finish(
                Finish {
                    lease: job.lease(),
                    worker: shared2.config.id.clone(),
                    outcome,
                },
                finish::Counted {
                    metrics: meters.kind,
                    outcome: counted,
                },
            ));
        }
        .instrument(span),
    );
}

/// Runs the handler in its run `slot`, recording its duration and the slot gauge.
async fn attempt(
    shared: &Arc<Shared>,
    job: &ClaimedJob,
    cancel: CancellationToken,
    meters: &Meters,
    slot: OwnedSemaphorePermit,
) -> (FinishOutcome, AttemptOutcome) {
    meters.slots.take();
    let started = std::time::Instant::now();
    let (outcome, counted) = run(shared, job, cancel).await;
    if counted != AttemptOutcome::NotCounted {
        meters.kind.duration(started.elapsed());
    }
    meters.slots.give_back();
    drop(slot);
    (outcome, counted)
}

/// How the handler's run ended, before it is turned into a store outcome.
enum Ended {
    Returned(Result<Outcome, JobError>),
    Panicked(String),
    TimedOut(Duration),
    StoppedAfterCancel,
    ShutDown,
}

/// Runs the handler; returns how the attempt ended, for the store and as
/// `kyu_job_attempts_total` counts it.
pub(crate) async fn run(
    shared: &Arc<Shared>,
    job: &ClaimedJob,
    cancel: CancellationToken,
) -> (FinishOutcome, AttemptOutcome) {
    let now = || shared.store.clock().now();
    let Some(handler) = shared.handlers.get(&job.kind).cloned() else {
        tracing::warn!("no handler for this kind on this worker");
        let outcome = FinishOutcome::Errored {
            message: format!(
                "no handler registered for kind {:?} on worker {}",
                job.kind, shared.config.id
            ),
            retry_at: now() + to_chrono(job.retry.delay(job.attempt)),
            permanent: false,
        };
        return (outcome, AttemptOutcome::Failure);
    };

    let ctx = JobContext {
        store: shared.store.clone(),
        kyu: shared.kyu.clone(),
        state: shared.state.clone(),
        lease: job.lease(),
        queue: job.queue.as_str().into(),
        kind: job.kind.as_str().into(),
        args: job.args.as_str().into(),
        max_attempts: job.max_attempts,
        cancel: cancel.clone(),
        timeout: job.timeout,
        stopping: shared.hard_stop.clone(),
        run_at: job.run_at,
        tags: job.tags.as_slice().into(),
        unique_key: job.unique_key.as_deref().map(Into::into),
    };
    // A handler that stops by itself (a command: SIGTERM, then SIGKILL) gets
    // that long after its timeout, a cancel or a hard stop before it is dropped.
    let own_stop = handler.stop_grace();

    let handler_run = AssertUnwindSafe(handler.call(ctx)).catch_unwind();
    let timed = async {
        match job.timeout {
            Some(limit) => match tokio::time::timeout(limit + own_stop, handler_run).await {
                Ok(r) => r.map_err(Some),
                Err(_) => Err(None),
            },
            None => handler_run.await.map_err(Some),
        }
    };
    let cancel_deadline = async {
        cancel.cancelled().await;
        tokio::time::sleep(shared.config.cancel_grace.max(own_stop)).await;
    };
    let stop_deadline = async {
        shared.hard_stop.cancelled().await;
        tokio::time::sleep(own_stop).await;
    };
    let ended = tokio::select! {
        r = timed => match r {
            Ok(result) => Ended::Returned(result),
            Err(Some(panic)) => Ended::Panicked(panic_message(&panic)),
            Err(None) => Ended::TimedOut(job.timeout.unwrap_or_default()),
        },
        _ = cancel_deadline => Ended::StoppedAfterCancel,
        _ = stop_deadline => Ended::ShutDown,
    };

    let retry_at = || now() + to_chrono(job.retry.delay(job.attempt));
    let counted = match &ended {
        Ended::Returned(Ok(Outcome::Done | Outcome::Result(_))) => AttemptOutcome::Success,
        Ended::Returned(Ok(Outcome::Snooze(_))) => AttemptOutcome::NotCounted,
        Ended::Returned(Err(_)) if cancel.is_cancelled() => AttemptOutcome::Cancelled,
        Ended::Returned(Err(_)) if shared.hard_stop.is_cancelled() && own_stop > Duration::ZERO => {
            AttemptOutcome::NotCounted
        }
        Ended::Returned(Err(_)) | Ended::Panicked(_) => AttemptOutcome::Failure,
        Ended::TimedOut(_) => AttemptOutcome::Timeout,
        Ended::StoppedAfterCancel => AttemptOutcome::Cancelled,
        Ended::ShutDown => AttemptOutcome::NotCounted,
    };
    let outcome = match ended {
        Ended::Returned(Ok(Outcome::Done)) => FinishOutcome::Completed { result: None },
        Ended::Returned(Ok(Outcome::Result(v))) => FinishOutcome::Completed {
            result: Some(v.to_string()),
        },
        Ended::Returned(Ok(Outcome::Snooze(d))) => FinishOutcome::Snoozed {
            until: now() + to_chrono(d),
        },
        Ended::Returned(Err(e)) if cancel.is_cancelled() => FinishOutcome::Cancelled {
            message: format!("cancelled: {}", e.message),
        },
        // A handler that stopped itself for the shutdown: its job is released.
        Ended::Returned(Err(_)) if shared.hard_stop.is_cancelled() && own_stop > Duration::ZERO => {
            released(shared)
        }
        Ended::Returned(Err(e)) => {
            tracing::debug!(error = %e.message, permanent = e.permanent, "attempt failed");
            FinishOutcome::Errored {
                retry_at: e
                    .retry_after
                    .map_or_else(retry_at, |d| now() + to_chrono(d)),
                message: e.message,
                permanent: e.permanent,
            }
        }
        Ended::Panicked(msg) => {
            tracing::warn!(panic = %msg, "handler panicked");
            FinishOutcome::Errored {
                message: format!("handler panicked: {msg}"),
                retry_at: retry_at(),
                permanent: false,
            }
        }
        Ended::TimedOut(limit) => FinishOutcome::Errored {
            message: format!("timed out after {}", humanize(limit)),
            retry_at: retry_at(),
            permanent: false,
        },
        Ended::StoppedAfterCancel => FinishOutcome::Cancelled {
            message: format!(
                "cancelled: the handler was stopped {} after the cancel signal",
                humanize(shared.config.cancel_grace)
            ),
        },
        Ended::ShutDown => released(shared),
    };
    (outcome, counted)
}

fn released(shared: &Shared) -> FinishOutcome {
    FinishOutcome::Released {
        message: format!(
            "worker {} shut down; the handler was stopped after the {} grace period",
            shared.config.id,
            humanize(shared.config.shutdown_grace)
        ),
    }
}

fn to_chrono(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

fn panic_message(payload: &Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a non-string panic payload".to_string()
    }
}
