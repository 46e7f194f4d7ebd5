//! Says so when schedules are not being fired: a worker that finds an
//! enabled schedule overdue by more than the misfire grace concludes that no
//! [`Scheduler`](crate::Scheduler) runs anywhere on its database (one that
//! ran would have fired it), and warns, naming the schedule and what to
//! start. Without it, forgetting the scheduler is a silent hang: jobs that
//! should come never do.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::Shared;

/// The same schedule is warned about at most this often.
const REPEAT_AFTER: Duration = Duration::from_secs(3600);

/// Checks every `every` until `stop`; the first check comes one interval
/// after start, so a scheduler started with the worker has ticked by then.
pub(crate) async fn watch(shared: Arc<Shared>, every: Duration, stop: CancellationToken) {
    let mut warned: HashMap<String, Instant> = HashMap::new();
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
        let schedules = match shared.store.list_schedules().await {
            Ok(s) => s,
            Err(e) => {
                tracing::debug!(error = %e, "could not list schedules to check they are fired");
                continue;
            }
        };
        let now = shared.store.clock().now();
        // Later than the scheduler's default misfire grace: a scheduler
        // catching up after a restart is not mistaken for none.
        let grace = crate::SchedulerConfig::default().misfire_grace;
        let overdue_after = chrono::Duration::from_std(grace).unwrap_or(chrono::Duration::MAX);
        for s in schedules {
            let Some(due) = s.next_fire_at.filter(|_| s.spec.enabled) else {
                continue;
            };
            let late = now - due;
            if late <= overdue_after {
                continue;
            }
            if warned
                .get(&s.spec.name)
                .is_some_and(|at| at.elapsed() < REPEAT_AFTER)
            {
                continue;
            }
            warned.insert(s.spec.name.clone(), Instant::now());
            let late = crate::humanize::humanize(late.to_std().unwrap_or_default());
            tracing::warn!(
                worker = %shared.config.id,
                schedule = %s.spec.name,
                due = %due.to_rfc3339(),
                "schedule {} was due at {} ({late} ago) and has not fired: no scheduler is \
                 firing schedules on this database. Run one somewhere: \
                 Scheduler::new(&kyu).start(), Worker::scheduler(Scheduler::new(&kyu)), or \
                 `kyu serve` (said again in an hour while it stays overdue)",
                s.spec.name,
                due.to_rfc3339(),
            );
        }
    }
}
