//! Marks jobs claimed ahead (the [prefetch](super::WorkerConfig::prefetch))
//! started, in batches: a held job whose handler has run for [`MARK_AFTER`]
//! sends its lease here, and every lease that arrives while one
//! [`Store::mark_started`](kyu_core::Store::mark_started) call is under way
//! goes into the next call, so one statement serves many jobs under load.
//! Until a job is marked, a rescue or release of it charges no attempt and
//! records no error; from then on its attempt counts. Jobs claimed into free
//! slots are started by the claim itself and never come here.
//!
//! The handler does not wait for the mark, and a job done within
//! [`MARK_AFTER`] (what a prefetch is for: many short jobs) needs none: a
//! held job starts as fast as without it, and a prefetch keeps most of its
//! throughput. The price is a window of [`MARK_AFTER`] plus the mark's round
//! trip: a worker that dies in it (its handler just started) has that job
//! given back uncharged, as if it had never started.

use std::sync::Arc;
use std::time::Duration;

use kyu_core::{LeaseRef, Store};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// How long a held job's handler runs before it is marked started.
pub(crate) const MARK_AFTER: Duration = Duration::from_millis(10);

/// Marks the leases it receives started until `stop`, one store call per batch.
pub(crate) async fn starter(
    store: Arc<dyn Store>,
    mut rx: mpsc::UnboundedReceiver<LeaseRef>,
    stop: CancellationToken,
) {
    loop {
        let first = tokio::select! {
            lease = rx.recv() => match lease {
                Some(lease) => lease,
                None => return,
            },
            _ = stop.cancelled() => return,
        };
        let mut batch = vec![first];
        while let Ok(lease) = rx.try_recv() {
            batch.push(lease);
        }
        match store.mark_started(&batch).await {
            Ok(lost) => {
                for l in lost {
                    // Taken over (rescued) or already finished: nothing to mark.
                    tracing::debug!(
                        job_id = l.id,
                        attempt = l.attempt,
                        "a job claimed ahead was no longer held when marked started"
                    );
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, jobs = batch.len(), "could not mark jobs claimed ahead started; if this worker dies now they are given back uncharged");
            }
        }
    }
}
