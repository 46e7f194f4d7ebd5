//! The worker registry: which workers are alive, which queues they work and
//! which kinds they run, so that a job no live worker can run is shown as
//! waiting for one (`kyu queues ls`, `kyu jobs show`) instead of looking stuck.
//!
//! A worker records itself with [`WorkerRegistry::worker_seen`](crate::WorkerRegistry::worker_seen)
//! when it starts and at every heartbeat, and removes itself with
//! [`WorkerRegistry::worker_gone`](crate::WorkerRegistry::worker_gone) on shutdown. A worker
//! that died without saying so stops counting once its registration
//! expires (a few lease periods after it was last seen).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// What a worker claims: its queues and the kinds it can run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerInfo {
    /// The worker's id (as recorded on the jobs it runs).
    pub id: String,
    /// The queues it works.
    pub queues: Vec<String>,
    /// The kinds it claims; `None`: every kind (a worker that opted in to
    /// failing the kinds it has no handler for).
    pub kinds: Option<Vec<String>>,
}

impl WorkerInfo {
    /// Whether this worker claims jobs of `kind` from `queue`.
    pub fn handles(&self, queue: &str, kind: &str) -> bool {
        self.queues.iter().any(|q| q == queue)
            && self
                .kinds
                .as_ref()
                .map_or(true, |ks| ks.iter().any(|k| k == kind))
    }
}

/// A worker the store counts as alive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LiveWorker {
    /// What it claims.
    #[serde(flatten)]
    pub info: WorkerInfo,
    /// When it last recorded itself.
    pub last_seen: DateTime<Utc>,
}

/// How many jobs of one kind in one queue are runnable now (available, or
/// scheduled with their run_at reached).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WaitingKind {
    /// The queue.
    pub queue: String,
    /// The kind.
    pub kind: String,
    /// Runnable jobs of this kind in this queue.
    pub count: u64,
}

/// Whether any of `workers` claims jobs of `kind` from `queue`.
pub fn handled(workers: &[LiveWorker], queue: &str, kind: &str) -> bool {
    workers.iter().any(|w| w.info.handles(queue, kind))
}

/// The entries of `waiting` that no worker of `workers` claims: jobs that
/// wait until a worker running their kind on their queue starts.
pub fn unhandled(waiting: Vec<WaitingKind>, workers: &[LiveWorker]) -> Vec<WaitingKind> {
    waiting
        .into_iter()
        .filter(|w| !handled(workers, &w.queue, &w.kind))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn live(queues: &[&str], kinds: Option<&[&str]>) -> LiveWorker {
        LiveWorker {
            info: WorkerInfo {
                id: "w".into(),
                queues: queues.iter().map(|q| q.to_string()).collect(),
                kinds: kinds.map(|ks| ks.iter().map(|k| k.to_string()).collect()),
            },
            last_seen: DateTime::<Utc>::MIN_UTC,
        }
    }

    #[test]
    fn a_job_is_handled_by_a_worker_of_its_queue_and_kind() {
        let workers = [live(&["default"], Some(&["a"])), live(&["mail"], None)];
        assert!(handled(&workers, "default", "a"));
        assert!(!handled(&workers, "default", "b"), "kind not run there");
        assert!(handled(&workers, "mail", "anything"), "an any-kind worker");
        assert!(!handled(&workers, "other", "a"), "queue not worked");
        assert!(!handled(&[], "default", "a"));
    }
}
