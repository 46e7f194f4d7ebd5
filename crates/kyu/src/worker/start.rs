//! Marks jobs claimed ahead (the [prefetch](super::WorkerConfig::prefetch))
//! started, in batches: a held job that gets a run slot asks here before its
//! handler runs, and every ask that arrives while one
//! [`Store::mark_started`](kyu_core::Store::mark_started) call is under way
//! goes into the next call, so one statement serves many jobs under load.
//! Until a job is marked, a rescue or release of it charges no attempt and
//! records no error; from then on its handler's attempt counts. Jobs claimed
//! into free slots are started by the claim itself and never come here.

use std::sync::Arc;

use kyu_core::{LeaseRef, Store};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

/// What became of one ask.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Started {
    /// Marked: the handler may run.
    Yes,
    /// The job no longer runs this attempt (rescued after a long stall):
    /// its handler must not run.
    Lost,
    /// The store could not be reached: the job is released, still unstarted.
    Failed,
}

/// One job's ask, with where to answer.
pub(crate) type Ask = (LeaseRef, oneshot::Sender<Started>);

/// Answers asks until `stop`, one store call per batch.
pub(crate) async fn starter(
    store: Arc<dyn Store>,
    mut rx: mpsc::UnboundedReceiver<Ask>,
    stop: CancellationToken,
) {
    loop {
        let first = tokio::select! {
            ask = rx.recv() => match ask {
                Some(ask) => ask,
                None => return,
            },
            _ = stop.cancelled() => return,
        };
        let mut batch = vec![first];
        while let Ok(ask) = rx.try_recv() {
            batch.push(ask);
        }
        let leases: Vec<LeaseRef> = batch.iter().map(|(l, _)| *l).collect();
        match store.mark_started(&leases).await {
            Ok(lost) => {
                for (lease, reply) in batch {
                    let _ = reply.send(if lost.contains(&lease) {
                        Started::Lost
                    } else {
                        Started::Yes
                    });
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, jobs = batch.len(), "could not mark jobs claimed ahead started; releasing them unstarted");
                for (_, reply) in batch {
                    let _ = reply.send(Started::Failed);
                }
            }
        }
    }
}

/// Asks the starter to mark `lease` started and waits for the answer.
pub(crate) async fn mark(tx: &mpsc::UnboundedSender<Ask>, lease: LeaseRef) -> Started {
    let (reply, answer) = oneshot::channel();
    if tx.send((lease, reply)).is_err() {
        return Started::Failed;
    }
    answer.await.unwrap_or(Started::Failed)
}
