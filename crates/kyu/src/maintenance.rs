//! Maintenance: the lease reaper and retention.
//!
//! Every process that runs it does the same idempotent work; no leader is
//! needed. The reaper makes jobs whose worker died runnable again; retention
//! deletes finished jobs after their age, and events after theirs.

use std::sync::Arc;
use std::time::Duration;

use kyu_core::Store;
use tokio_util::sync::CancellationToken;

/// How often maintenance runs and how long finished jobs are kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MaintenanceConfig {
    /// How often expired leases are reaped. Default 5 s: a job whose worker
    /// died runs again at most lease + 5 s after its last heartbeat.
    pub reap_every: Duration,
    /// How long completed jobs are kept. Default 24 h.
    pub keep_completed: Duration,
    /// How long failed and cancelled jobs are kept. Default 7 days.
    pub keep_failed: Duration,
    /// How long events are kept in the event log. Default 24 h; a reader
    /// asking for older ids gets a gap marker.
    pub keep_events: Duration,
    /// How often retention runs. Default 1 min.
    pub retention_every: Duration,
    /// Whether this process runs retention at all. Default true; `kyu worker`
    /// leaves it to `kyu serve`.
    pub retention: bool,
}

impl Default for MaintenanceConfig {
    fn default() -> Self {
        MaintenanceConfig {
            reap_every: Duration::from_secs(5),
            keep_completed: Duration::from_secs(24 * 3600),
            keep_failed: Duration::from_secs(7 * 24 * 3600),
            keep_events: kyu_core::event::DEFAULT_EVENT_RETENTION,
            retention_every: Duration::from_secs(60),
            retention: true,
        }
    }
}

/// Reaps expired leases until nothing is left to reap. Returns how many.
pub async fn reap_once(store: &dyn Store) -> Result<usize, kyu_core::StoreError> {
    let mut total = 0;
    loop {
        let reaped = store.reap_expired(1000).await?;
        for r in &reaped {
            tracing::warn!(job_id = r.id, attempt = r.attempt, state = %r.state, "lease expired; job rescued");
            count_reaped(store, r).await;
        }
        total += reaped.len();
        if reaped.len() < 1000 {
            return Ok(total);
        }
    }
}

/// Counts a recovered lease in `kyu_leases_expired_total{queue}` (and the
/// job in `kyu_jobs_dead_total` if it had no attempt left). The reaper's
/// answer has no queue or kind, so each rescued job is read once: leases
/// expire only when a worker dies or stalls, so this is rare.
async fn count_reaped(store: &dyn Store, r: &kyu_core::store::Reaped) {
    match store.get(r.id).await {
        Ok(Some(job)) => {
            crate::metrics::lease_expired(&job.queue);
            if r.state == kyu_core::JobState::Failed {
                crate::metrics::reaped_dead(&job.queue, &job.kind);
            }
        }
        // Deleted meanwhile (retention) or unreadable: counted without its queue.
        Ok(None) => crate::metrics::lease_expired(""),
        Err(e) => {
            tracing::debug!(job_id = r.id, error = %e, "could not read a rescued job to count it");
            crate::metrics::lease_expired("");
        }
    }
}

/// Deletes finished jobs older than the config keeps, except those whose
/// `unique_for` window is still open (see [`Store::delete_finished`]), and
/// events older than `keep_events`. Returns how many jobs.
pub async fn retention_once(
    store: &dyn Store,
    config: &MaintenanceConfig,
) -> Result<u64, kyu_core::StoreError> {
    let now = store.clock().now();
    let age = |d: Duration| now - chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX);
    let n = store
        .delete_finished(age(config.keep_completed), age(config.keep_failed))
        .await?;
    if n > 0 {
        tracing::info!(deleted = n, "retention deleted finished jobs");
    }
    let events = store.prune_events(age(config.keep_events)).await?;
    if events > 0 {
        tracing::debug!(deleted = events, "retention pruned the event log");
    }
    Ok(n)
}

/// Runs the reaper and retention until `stop`; calls `on_reaped` when jobs
/// were made runnable, so local workers can claim them at once.
pub async fn run(
    store: Arc<dyn Store>,
    config: MaintenanceConfig,
    stop: CancellationToken,
    on_reaped: impl Fn(),
) {
    let mut reap = tokio::time::interval(config.reap_every);
    let mut retention = tokio::time::interval(config.retention_every);
    reap.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    retention.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = reap.tick() => match reap_once(store.as_ref()).await {
                Ok(0) => {}
                Ok(_) => on_reaped(),
                Err(e) => tracing::warn!(error = %e, "lease reaper failed; will retry"),
            },
            _ = retention.tick(), if config.retention => {
                if let Err(e) = retention_once(store.as_ref(), &config).await {
                    tracing::warn!(error = %e, "retention failed; will retry");
                }
            }
        }
    }
}
