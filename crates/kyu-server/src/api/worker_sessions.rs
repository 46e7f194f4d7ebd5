//! The remote workers this server registered (`POST /v1/workers`), their
//! leases, and the lease tokens that fence their writes.
//!
//! A session lives in this process: its worker's name, queues, kinds,
//! capacity and lease length, when it was last heard from, and the leases it
//! was given (so `DELETE /v1/workers/{worker}` can release them). The store
//! knows the worker too, through its worker registry
//! ([`kyu::store::WorkerRegistry`]), so `kyu queues ls` counts it like a
//! local worker. A session that is not heard from for three lease periods
//! expires, as a local worker's registration does; its jobs' leases ran out
//! long before and the reaper rescued them.
//!
//! A **lease token** is HMAC-SHA256 over (job id, attempt, worker id), keyed
//! by the database's secret `http_worker_lease` ([`kyu::Kyu::secret`], the
//! same for every server on the database). It proves that this worker was
//! given this attempt by a claim; the store's fence (job id + attempt) proves
//! that the attempt still holds. A write needs both.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use kyu::{JobId, RetryPolicy, WorkerInfo};
use sha2::Sha256;

use super::auth::Caller;
use super::error::ApiError;
use crate::Shared;

/// The name of the database secret lease tokens are keyed by.
const SECRET_NAME: &str = "http_worker_lease";

/// How many lease periods a silent worker stays registered.
const TTL_LEASES: u32 = 3;

/// What the server keeps about one registered worker.
#[derive(Debug, Clone)]
pub(crate) struct Session {
    /// Its id, queues and kinds, as the store's registry records them.
    pub(crate) info: WorkerInfo,
    /// Most jobs it takes in one claim.
    pub(crate) capacity: usize,
    /// Its lease length.
    pub(crate) lease: Duration,
    /// When it last called (store clock).
    seen_at: DateTime<Utc>,
    /// When its registration was last written to the store.
    recorded_at: DateTime<Utc>,
}

impl Session {
    /// How often it should heartbeat: a third of the lease.
    pub(crate) fn heartbeat_interval(&self) -> Duration {
        self.lease / 3
    }

    /// How long it stays registered without a call.
    pub(crate) fn ttl(&self) -> Duration {
        self.lease * TTL_LEASES
    }
}

/// One lease handed out by a claim, kept until it is finished or lost.
#[derive(Debug, Clone)]
pub(crate) struct Held {
    /// The attempt.
    pub(crate) attempt: u32,
    /// The job's retry policy, for a failure without `retry_after_ms`.
    pub(crate) retry: RetryPolicy,
}

#[derive(Default)]
struct Entry {
    session: Option<Session>,
    held: HashMap<JobId, Held>,
}

/// Every session of this server, and the lease-token key.
#[derive(Default)]
pub(crate) struct Sessions {
    entries: Mutex<HashMap<String, Entry>>,
    key: tokio::sync::OnceCell<Vec<u8>>,
}

impl Sessions {
    /// Adds a session, dropping the expired ones.
    pub(crate) fn insert(
        &self,
        info: WorkerInfo,
        capacity: usize,
        lease: Duration,
        now: DateTime<Utc>,
    ) -> Session {
        let session = Session {
            info,
            capacity,
            lease,
            seen_at: now,
            recorded_at: now,
        };
        let mut entries = self.entries.lock().expect("sessions lock");
        entries.retain(|_, e| e.session.as_ref().is_some_and(|s| !expired(s, now)));
        entries.insert(
            session.info.id.clone(),
            Entry {
                session: Some(session.clone()),
                held: HashMap::new(),
            },
        );
        session
    }

    /// The session of worker `id` if it is registered, not expired, and the
    /// caller's token may touch every queue it works; 404 `unknown_worker`
    /// alike otherwise (a tenant cannot learn another's worker exists).
    /// Marks it seen, and rewrites its registration in the store once per
    /// heartbeat interval.
    pub(crate) async fn touch(
        &self,
        shared: &Shared,
        caller: &Caller,
        id: &str,
    ) -> Result<Session, ApiError> {
        let now = shared.kyu.store().clock().now();
        let (session, record) = {
            let mut entries = self.entries.lock().expect("sessions lock");
            let found = entries
                .get_mut(id)
                .and_then(|e| e.session.as_mut())
                .filter(|s| !expired(s, now))
                .filter(|s| s.info.queues.iter().all(|q| caller.sees(q)));
            let Some(s) = found else {
                return Err(unknown_worker(id));
            };
            s.seen_at = now;
            let record = now - s.recorded_at >= chrono_of(s.heartbeat_interval());
            if record {
                s.recorded_at = now;
            }
            (s.clone(), record)
        };
        if record {
            shared
                .kyu
                .store()
                .worker_seen(&session.info, session.ttl())
                .await?;
        }
        Ok(session)
    }

    /// The session of worker `id` if it is live and the caller may touch its
    /// queues; `None` otherwise (no error: writes are fenced by lease tokens
    /// whatever became of the session).
    pub(crate) fn peek(&self, caller: &Caller, id: &str, now: DateTime<Utc>) -> Option<Session> {
        let entries = self.entries.lock().expect("sessions lock");
        entries
            .get(id)
            .and_then(|e| e.session.as_ref())
            .filter(|s| !expired(s, now))
            .filter(|s| s.info.queues.iter().all(|q| caller.sees(q)))
            .cloned()
    }

    /// The sessions not expired at `now`, each with when it was last heard
    /// from (for the dashboard's Workers page).
    pub(crate) fn live(&self, now: DateTime<Utc>) -> Vec<(Session, DateTime<Utc>)> {
        let entries = self.entries.lock().expect("sessions lock");
        entries
            .values()
            .filter_map(|e| e.session.as_ref())
            .filter(|s| !expired(s, now))
            .map(|s| (s.clone(), s.seen_at))
            .collect()
    }

    /// Removes worker `id`'s session; its held leases, to release.
    pub(crate) fn remove(&self, id: &str) -> Vec<(JobId, Held)> {
        let mut entries = self.entries.lock().expect("sessions lock");
        entries
            .remove(id)
            .map(|e| e.held.into_iter().collect())
            .unwrap_or_default()
    }

    /// Records leases a claim gave worker `id`.
    pub(crate) fn hold(&self, id: &str, leases: impl IntoIterator<Item = (JobId, Held)>) {
        let mut entries = self.entries.lock().expect("sessions lock");
        let entry = entries.entry(id.to_string()).or_default();
        entry.held.extend(leases);
    }

    /// What the server knows of lease (`job`, `attempt`) of worker `id`.
    pub(crate) fn held(&self, id: &str, job: JobId, attempt: u32) -> Option<Held> {
        let entries = self.entries.lock().expect("sessions lock");
        entries
            .get(id)
            .and_then(|e| e.held.get(&job))
            .filter(|h| h.attempt == attempt)
            .cloned()
    }

    /// Forgets leases of worker `id` that were finished or lost.
    pub(crate) fn release(&self, id: &str, jobs: impl IntoIterator<Item = JobId>) {
        let mut entries = self.entries.lock().expect("sessions lock");
        if let Some(e) = entries.get_mut(id) {
            for job in jobs {
                e.held.remove(&job);
            }
            if e.session.is_none() && e.held.is_empty() {
                entries.remove(id);
            }
        }
    }

    /// The lease-token key: the database's secret, read once.
    pub(crate) async fn key(&self, shared: &Shared) -> Result<&[u8], ApiError> {
        self.key
            .get_or_try_init(|| async {
                let hex_key = shared.kyu.secret(SECRET_NAME).await?;
                Ok::<_, ApiError>(hex_key.into_bytes())
            })
            .await
            .map(Vec::as_slice)
    }
}

fn expired(s: &Session, now: DateTime<Utc>) -> bool {
    s.seen_at + chrono_of(s.ttl()) < now
}

fn chrono_of(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

/// 404 `unknown_worker`.
pub(crate) fn unknown_worker(id: &str) -> ApiError {
    ApiError::new(
        axum::http::StatusCode::NOT_FOUND,
        "unknown_worker",
        format!(
            "worker {id:?} is not registered here (never registered, left, or silent for three \
             lease periods so its registration expired); accepted: a worker_id from POST \
             /v1/workers: register again, and finish the jobs you hold with their lease tokens"
        ),
    )
    .field("worker")
}

/// The lease token of attempt `attempt` of job `job` given to `worker`.
pub(crate) fn lease_token(key: &[u8], worker: &str, job: JobId, attempt: u32) -> String {
    hex::encode(mac(key, worker, job, attempt).finalize().into_bytes())
}

/// Whether `token` is the lease token of (`worker`, `job`, `attempt`), in
/// constant time.
pub(crate) fn verify(key: &[u8], worker: &str, job: JobId, attempt: u32, token: &str) -> bool {
    match hex::decode(token) {
        Ok(bytes) => mac(key, worker, job, attempt).verify_slice(&bytes).is_ok(),
        Err(_) => false,
    }
}

fn mac(key: &[u8], worker: &str, job: JobId, attempt: u32) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes a key of any length");
    mac.update(format!("kyu lease\0{job}\0{attempt}\0{worker}").as_bytes());
    mac
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lease_token_verifies_only_for_its_job_attempt_worker_and_key() {
        let t = lease_token(b"k", "w", 7, 2);
        assert!(verify(b"k", "w", 7, 2, &t));
        assert!(!verify(b"k", "w", 7, 1, &t), "another attempt");
        assert!(!verify(b"k", "w", 8, 2, &t), "another job");
        assert!(!verify(b"k", "v", 7, 2, &t), "another worker");
        assert!(!verify(b"j", "w", 7, 2, &t), "another database");
        assert!(!verify(b"k", "w", 7, 2, "zz"), "not hex");
        assert!(!verify(b"k", "w", 7, 2, &t[..10]), "truncated");
    }
}
