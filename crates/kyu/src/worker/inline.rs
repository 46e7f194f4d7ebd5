//! Runs one chosen job inline, without starting the worker: claims exactly
//! that job ([`Store::claim_job`](kyu_core::Store::claim_job)), runs its
//! handler as a started worker would ([`execute::run`](super::execute::run):
//! a real [`JobContext`](crate::JobContext), the timeout, panics caught,
//! cancel requests passed on), keeps its lease alive meanwhile, and writes
//! how it ended through [`Store::finish`](kyu_core::Store::finish). What
//! [`crate::testing::work`] is made of.

use std::sync::Arc;

use kyu_core::{ClaimedJob, Finish, JobId, LeaseRef, Store};
use tokio_util::sync::CancellationToken;

use super::{execute, RunningJob, Shared, Worker};
use crate::testing::Worked;
use crate::Error;

/// Runs job `id` once with `worker`'s handlers and config.
pub(crate) async fn work_one(worker: &Worker, id: JobId) -> crate::Result<Worked> {
    worker.config.validate()?;
    let store = worker.kyu.store().clone();
    let config = &worker.config;
    let job = store.get(id).await?.ok_or(Error::NotFound(id))?;
    if !config.fail_unknown_kinds && !worker.handlers.contains_key(&job.kind) {
        // Checked before the claim: a job a worker cannot run keeps its attempts.
        let mut kinds: Vec<&str> = worker.handlers.keys().map(String::as_str).collect();
        kinds.sort_unstable();
        return Err(kyu_core::InvalidInput::new(
            "kind",
            format!(
                "job {id} is of kind {:?}, which this worker has no handler for; accepted: \
                 a job of a kind it registers ({kinds:?})",
                job.kind
            ),
        )
        .into());
    }
    let Some(claimed) = store.claim_job(id, &config.id, config.lease).await? else {
        let state = store.get(id).await?.ok_or(Error::NotFound(id))?.state;
        return Err(Error::NotRunnable { id, state });
    };

    let (shared, _finish_rx) = Shared::new(
        worker.kyu.clone(),
        Arc::new(worker.state.clone()),
        worker.handlers.clone(),
        config.clone(),
    );
    let cancel = CancellationToken::new();
    shared.running.lock().expect("running lock").insert(
        id,
        RunningJob {
            attempt: claimed.attempt,
            cancel: cancel.clone(),
            ended: false,
        },
    );
    let done = CancellationToken::new();
    let keeper = tokio::spawn(keep_lease(
        shared.clone(),
        claimed.lease(),
        cancel.clone(),
        done.clone(),
    ));
    let outcome = run(&shared, &claimed, cancel).await;
    done.cancel();
    let _ = keeper.await;

    let result = store
        .finish(vec![Finish {
            lease: claimed.lease(),
            worker: config.id.clone(),
            outcome: outcome.clone(),
        }])
        .await?
        .remove(0);
    let job = store.get(id).await?.ok_or(Error::NotFound(id))?;
    Ok(Worked {
        outcome,
        result,
        job,
    })
}

async fn run(
    shared: &Arc<Shared>,
    job: &ClaimedJob,
    cancel: CancellationToken,
) -> kyu_core::FinishOutcome {
    let span = tracing::info_span!(
        "job",
        job_id = job.id,
        queue = %job.queue,
        kind = %job.kind,
        attempt = job.attempt
    );
    tracing::Instrument::instrument(execute::run(shared, job, cancel), span)
        .await
        .0
}

/// Heartbeats the one lease and polls for its cancel request, as a started
/// worker's lease loop does, until `done`. A cancel request, or the lease
/// lost, signals the handler.
async fn keep_lease(
    shared: Arc<Shared>,
    lease: LeaseRef,
    cancel: CancellationToken,
    done: CancellationToken,
) {
    let store: &Arc<dyn Store> = &shared.store;
    let config = &shared.config;
    let mut heartbeat = tokio::time::interval(config.heartbeat_every);
    let mut cancel_poll = tokio::time::interval(config.cancel_poll);
    // The first ticks are at once; the lease was just taken.
    heartbeat.tick().await;
    cancel_poll.tick().await;
    loop {
        tokio::select! {
            _ = done.cancelled() => return,
            _ = heartbeat.tick() => {
                match store.heartbeat(&config.id, &[lease], config.lease).await {
                    Ok(reply) if !reply.lost.is_empty() || !reply.cancel_requested.is_empty() => {
                        cancel.cancel();
                    }
                    Ok(_) => {}
                    Err(e) => tracing::warn!(job_id = lease.id, error = %e, "heartbeat failed; will retry"),
                }
            }
            _ = cancel_poll.tick() => {
                if let Ok(ids) = store.cancel_requests(&[lease]).await {
                    if ids.contains(&lease.id) {
                        cancel.cancel();
                    }
                }
            }
        }
    }
}
