//! Leases: heartbeats, cancel requests and progress of running attempts, and
//! reaping the jobs whose lease expired.

use std::collections::BTreeSet;
use std::time::Duration;

use super::{completed, job, secs, Ctx, Harness, LEASE};
use crate::{CancelResult, FinishResult, JobId, JobState, LeaseRef, Progress};

/// A heartbeat extends held leases and reports lost leases and cancel requests.
pub async fn heartbeat_extends_and_reports(h: &dyn Harness) {
    let c = Ctx::new(h).await;
    let a = c.add(job("a")).await;
    let b = c.add(job("b")).await;
    let done = c.add(job("c")).await;
    let got = c.claim(&["default"], 3).await;
    assert_eq!(got.len(), 3);
    let lease_of = |id: JobId| got.iter().find(|j| j.id == id).expect("claimed").lease();
    c.finish(lease_of(done), completed()).await;
    c.store.cancel(&[b]).await.expect("cancel");
    c.advance(20);
    let leases = [
        lease_of(a),
        lease_of(b),
        lease_of(done),
        LeaseRef { id: a, attempt: 7 },
    ];
    let reply = c
        .store
        .heartbeat("w1", &leases, Duration::from_secs(60))
        .await
        .expect("heartbeat");
    let lost: BTreeSet<JobId> = reply.lost.iter().copied().collect();
    assert_eq!(
        lost,
        BTreeSet::from([done, a]),
        "the finished job and the wrong attempt"
    );
    assert_eq!(reply.cancel_requested, vec![b]);
    let j = c.job(a).await;
    assert_eq!(j.lease_expires_at, Some(c.now() + secs(60)));
    // The extended lease is not reaped at the old expiry.
    c.advance(30);
    assert!(c.store.reap_expired(100).await.expect("reap").is_empty());
    assert_eq!(c.state(a).await, JobState::Running);
    let empty = c
        .store
        .heartbeat("w1", &[], LEASE)
        .await
        .expect("empty heartbeat");
    assert!(empty.lost.is_empty() && empty.cancel_requested.is_empty());
}

/// cancel_requests lists held jobs whose cancel was asked for.
pub async fn cancel_requests_lists_requested(h: &dyn Harness) {
    let c = Ctx::new(h).await;
    let a = c.add(job("a")).await;
    let b = c.add(job("b")).await;
    let got = c.claim(&["default"], 2).await;
    let leases: Vec<LeaseRef> = got.iter().map(|j| j.lease()).collect();
    assert!(c
        .store
        .cancel_requests(&leases)
        .await
        .expect("read")
        .is_empty());
    assert_eq!(
        c.store.cancel(&[b]).await.expect("cancel"),
        vec![CancelResult::Requested]
    );
    assert_eq!(
        c.store.cancel_requests(&leases).await.expect("read"),
        vec![b]
    );
    let wrong = LeaseRef { id: b, attempt: 9 };
    assert!(c
        .store
        .cancel_requests(&[wrong])
        .await
        .expect("read")
        .is_empty());
    assert!(c.job(b).await.cancel_requested);
    assert!(!c.job(a).await.cancel_requested);
}

/// Progress is recorded for a running attempt; false once it is not running.
pub async fn set_progress_records(h: &dyn Harness) {
    let c = Ctx::new(h).await;
    let id = c.add(job("k")).await;
    let cl = c.claim_one("default").await;
    let p = Progress {
        percent: 40,
        message: "step 2 of 5".into(),
    };
    assert!(c
        .store
        .set_progress(cl.lease(), p.clone())
        .await
        .expect("progress"));
    assert_eq!(c.job(id).await.progress, Some(p.clone()));
    let wrong = LeaseRef { id, attempt: 2 };
    assert!(!c
        .store
        .set_progress(wrong, p.clone())
        .await
        .expect("progress"));
    c.finish(cl.lease(), completed()).await;
    let later = Progress {
        percent: 90,
        message: "late".into(),
    };
    assert!(!c
        .store
        .set_progress(cl.lease(), later)
        .await
        .expect("progress"));
    assert_eq!(
        c.job(id).await.progress,
        Some(p),
        "a stale progress changes nothing"
    );
}

/// Expired leases are reaped: available with the lost attempt recorded, failed
/// with no attempts left, cancelled when a cancel was asked for. Leases not yet
/// expired are left alone, and a late finish is stale (fencing).
pub async fn reap_expired_leases(h: &dyn Harness) {
    let c = Ctx::new(h).await;
    let again = c.add(job("again").max_attempts(2)).await;
    let last = c.add(job("last").max_attempts(1)).await;
    let cancel = c.add(job("cancel")).await;
    let got = c.claim(&["default"], 3).await;
    assert_eq!(got.len(), 3);
    let lease_of = |id: JobId| got.iter().find(|j| j.id == id).expect("claimed").lease();
    c.store.cancel(&[cancel]).await.expect("cancel");
    c.advance(10);
    let fresh = c.add(job("fresh")).await;
    let fresh_claim = c.claim_one("default").await;
    assert_eq!(fresh_claim.id, fresh);
    c.advance(19);
    assert!(
        c.store.reap_expired(100).await.expect("reap").is_empty(),
        "nothing expired 1 s before the lease ends"
    );
    c.advance(2);
    let mut reaped = c.store.reap_expired(100).await.expect("reap");
    reaped.sort_by_key(|r| r.id);
    let summary: Vec<(JobId, u32, JobState)> =
        reaped.iter().map(|r| (r.id, r.attempt, r.state)).collect();
    assert_eq!(
        summary,
        vec![
            (again, 1, JobState::Available),
            (last, 1, JobState::Failed),
            (cancel, 1, JobState::Cancelled)
        ]
    );
    assert_eq!(
        c.state(fresh).await,
        JobState::Running,
        "unexpired lease untouched"
    );
    let j = c.job(again).await;
    assert_eq!(j.state, JobState::Available);
    assert_eq!(j.attempt, 1, "the lost attempt counts");
    assert_eq!(j.lease_expires_at, None);
    let e = j.errors.last().expect("lost attempt recorded");
    assert_eq!(e.message, "lease expired");
    assert_eq!(e.attempt, 1);
    assert_eq!(e.worker, "w1");
    assert_eq!(e.at, c.now());
    let j = c.job(last).await;
    assert_eq!(j.finished_at, Some(c.now()));
    assert_eq!(j.errors.last().expect("recorded").message, "lease expired");
    assert_eq!(c.job(cancel).await.finished_at, Some(c.now()));

    // Fencing: the first worker's late finish is stale, before and after a re-claim.
    assert_eq!(
        c.finish(lease_of(again), completed()).await,
        FinishResult::Stale
    );
    let re = c.claim_one("default").await;
    assert_eq!((re.id, re.attempt), (again, 2));
    assert_eq!(
        c.finish(lease_of(again), completed()).await,
        FinishResult::Stale
    );
    assert_eq!(c.job(again).await.state, JobState::Running);
    assert_eq!(
        c.finish(re.lease(), completed()).await,
        FinishResult::Applied(JobState::Completed)
    );
    assert_eq!(
        c.finish(lease_of(last), completed()).await,
        FinishResult::Stale
    );
    assert_eq!(c.state(last).await, JobState::Failed);
}

/// reap_expired takes at most `limit` jobs per call.
pub async fn reap_expired_respects_limit(h: &dyn Harness) {
    let c = Ctx::new(h).await;
    for i in 0..5 {
        c.add(job(&format!("k{i}"))).await;
    }
    assert_eq!(c.claim(&["default"], 5).await.len(), 5);
    c.advance(31);
    assert_eq!(c.store.reap_expired(2).await.expect("reap").len(), 2);
    assert_eq!(c.store.reap_expired(2).await.expect("reap").len(), 2);
    assert_eq!(c.store.reap_expired(2).await.expect("reap").len(), 1);
    assert!(c.store.reap_expired(2).await.expect("reap").is_empty());
    assert_eq!(c.claim(&["default"], 10).await.len(), 5);
}
