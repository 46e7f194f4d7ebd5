//! Prefetch: jobs claimed ahead ([`Claim::unstarted`](crate::Claim::unstarted))
//! are running and leased but not started until
//! [`Store::mark_started`](crate::Store::mark_started). Only started attempts
//! count: a rescue (lease expired) or a release (shutdown) of a job that never
//! started gives its attempt back and records no error; a started one is
//! rescued as before, the lost attempt counted and recorded.

use super::events::all_events;
use super::{claim_ahead, completed, job, Ctx, Harness};
use crate::event::{Event, EventType};
use crate::{FinishOutcome, FinishResult, JobId, JobState, LeaseRef};

/// The events of job `id`, oldest first.
async fn events_of(c: &Ctx, id: JobId) -> Vec<Event> {
    all_events(c)
        .await
        .into_iter()
        .filter(|e| e.job_id == Some(id))
        .collect()
}

fn released() -> FinishOutcome {
    FinishOutcome::Released {
        message: "worker w1 shut down before the job started".into(),
    }
}

/// The worker died holding jobs it claimed ahead: the reaper gives back the
/// attempts of the ones that never started (available again, even on their
/// last attempt; no error; a `released` event saying why, no `lease_expired`)
/// and rescues the started ones as before (attempt lost, error recorded).
pub async fn prefetched_rescue_charges_no_attempt(h: &dyn Harness) {
    let c = Ctx::new(h).await;
    let started = c.add(job("started").max_attempts(2)).await;
    let held = c.add(job("held").max_attempts(2)).await;
    let last = c.add(job("last").max_attempts(1)).await;
    let cancel = c.add(job("cancel")).await;
    let marked = c.add(job("marked")).await;
    // The first claim starts its job; the rest are claimed ahead.
    let got = c.claim(&["default"], 1).await;
    assert_eq!(got[0].id, started);
    let ahead = c
        .store
        .claim(claim_ahead("w1", &["default"], 10))
        .await
        .expect("claim ahead");
    assert_eq!(
        ahead.iter().map(|j| j.id).collect::<Vec<_>>(),
        vec![held, last, cancel, marked]
    );
    assert!(
        ahead.iter().all(|j| j.attempt == 1),
        "claimed ahead: running, attempt 1"
    );
    for id in [held, last, cancel, marked] {
        assert_eq!(c.state(id).await, JobState::Running);
        // Its `started` event says it was claimed ahead.
        let ev = events_of(&c, id).await;
        let e = ev.last().expect("events");
        assert_eq!(e.event_type, EventType::Started);
        assert_eq!(
            e.facts.reason.as_deref(),
            Some(crate::lifecycle::CLAIMED_AHEAD_REASON)
        );
    }
    let ev = events_of(&c, started).await;
    assert_eq!(ev.last().map(|e| e.facts.reason.clone()), Some(None));
    let marked_lease = ahead.iter().find(|j| j.id == marked).unwrap().lease();
    let lost = c
        .store
        .mark_started(&[marked_lease])
        .await
        .expect("mark started");
    assert!(lost.is_empty(), "the lease is held: {lost:?}");
    c.store.cancel(&[cancel]).await.expect("cancel");
    c.advance(31);
    let mut reaped = c.store.reap_expired(100).await.expect("reap");
    reaped.sort_by_key(|r| r.id);
    let summary: Vec<(JobId, u32, JobState)> =
        reaped.iter().map(|r| (r.id, r.attempt, r.state)).collect();
    assert_eq!(
        summary,
        vec![
            (started, 1, JobState::Available),
            (held, 1, JobState::Available),
            (last, 1, JobState::Available),
            (cancel, 1, JobState::Cancelled),
            (marked, 1, JobState::Available),
        ]
    );

    // Started (by the claim, or marked): the lost attempt counts and is recorded.
    for id in [started, marked] {
        let j = c.job(id).await;
        assert_eq!(j.attempt, 1, "job {id}: the lost attempt counts");
        assert_eq!(j.errors.len(), 1, "job {id}: {:?}", j.errors);
        assert_eq!(j.errors[0].message, "lease expired");
        let ev = events_of(&c, id).await;
        assert_eq!(
            ev.last().map(|e| e.event_type),
            Some(EventType::LeaseExpired)
        );
    }
    // Never started: no attempt charged, no error, even on the last attempt.
    for id in [held, last] {
        let j = c.job(id).await;
        assert_eq!(j.state, JobState::Available, "job {id}");
        assert_eq!(
            j.attempt, 0,
            "job {id}: a never-started attempt is not counted"
        );
        assert!(j.errors.is_empty(), "job {id}: {:?}", j.errors);
        assert_eq!(j.lease_expires_at, None);
        assert_eq!(j.finished_at, None);
        let ev = events_of(&c, id).await;
        assert!(
            ev.iter().all(|e| e.event_type != EventType::LeaseExpired),
            "job {id}: no lease_expired event for a job that never started: {ev:?}"
        );
        let e = ev.last().expect("events");
        assert_eq!(e.event_type, EventType::Released, "job {id}");
        assert_eq!(e.facts.state, Some(JobState::Available));
        assert_eq!(e.facts.error, None, "job {id}: no error");
        assert_eq!(e.facts.worker.as_deref(), Some("w1"));
        let reason = e.facts.reason.as_deref().unwrap_or_default();
        assert!(reason.contains("never started"), "job {id}: {reason:?}");
    }
    // A cancel asked for meanwhile ends it, still without an attempt or error.
    let j = c.job(cancel).await;
    assert_eq!(j.state, JobState::Cancelled);
    assert_eq!(j.attempt, 0);
    assert!(j.errors.is_empty(), "{:?}", j.errors);
    assert_eq!(j.finished_at, Some(c.now()));

    // The old leases are stale; the given-back jobs run as attempt 1 again.
    let held_lease = ahead.iter().find(|j| j.id == held).unwrap().lease();
    assert_eq!(
        c.store.mark_started(&[held_lease]).await.expect("mark"),
        vec![held_lease],
        "a rescued job's old lease is reported lost"
    );
    assert_eq!(c.finish(held_lease, completed()).await, FinishResult::Stale);
    let mut again = c.claim(&["default"], 10).await;
    again.sort_by_key(|j| j.id);
    let attempts: Vec<(JobId, u32)> = again.iter().map(|j| (j.id, j.attempt)).collect();
    assert_eq!(
        attempts,
        vec![(started, 2), (held, 1), (last, 1), (marked, 2)]
    );
    let last_claim = again.iter().find(|j| j.id == last).unwrap();
    assert_eq!(
        c.finish(last_claim.lease(), completed()).await,
        FinishResult::Applied(JobState::Completed),
        "the single attempt of `last` was never used up"
    );
}

/// A graceful shutdown releases a job claimed ahead and never started
/// silently: available at once, attempt not counted, no error recorded, a
/// `released` event without an error. A started one is released as before
/// (attempt not counted, the interruption recorded).
pub async fn prefetched_release_is_silent(h: &dyn Harness) {
    let c = Ctx::new(h).await;
    let held = c.add(job("held").max_attempts(1)).await;
    let cancel = c.add(job("cancel")).await;
    let marked = c.add(job("marked")).await;
    let ahead = c
        .store
        .claim(claim_ahead("w1", &["default"], 10))
        .await
        .expect("claim ahead");
    assert_eq!(ahead.len(), 3);
    let lease_of = |id: JobId| ahead.iter().find(|j| j.id == id).unwrap().lease();
    assert!(c
        .store
        .mark_started(&[lease_of(marked)])
        .await
        .expect("mark")
        .is_empty());
    c.store.cancel(&[cancel]).await.expect("cancel");
    c.advance(3);

    assert_eq!(
        c.finish(lease_of(held), released()).await,
        FinishResult::Applied(JobState::Available)
    );
    let j = c.job(held).await;
    assert_eq!(j.attempt, 0, "not counted");
    assert!(j.errors.is_empty(), "released silently: {:?}", j.errors);
    assert!(j.run_at <= c.now());
    let ev = events_of(&c, held).await;
    let e = ev.last().expect("events");
    assert_eq!(e.event_type, EventType::Released);
    assert_eq!(e.facts.error, None);
    assert_eq!(
        e.facts.reason.as_deref(),
        Some("worker w1 shut down before the job started")
    );

    assert_eq!(
        c.finish(lease_of(cancel), released()).await,
        FinishResult::Applied(JobState::Cancelled)
    );
    let j = c.job(cancel).await;
    assert_eq!(j.attempt, 0, "a never-started attempt does not count");
    assert!(j.errors.is_empty(), "{:?}", j.errors);

    assert_eq!(
        c.finish(lease_of(marked), released()).await,
        FinishResult::Applied(JobState::Available)
    );
    let j = c.job(marked).await;
    assert_eq!(j.attempt, 0, "a released attempt is not counted");
    assert_eq!(
        j.errors.len(),
        1,
        "a started attempt's interruption is recorded"
    );

    // The single attempt of `held` is still there.
    let again = c.claim(&["default"], 10).await;
    let h2 = again
        .iter()
        .find(|j| j.id == held)
        .expect("claimable again");
    assert_eq!(h2.attempt, 1);
    assert_eq!(
        c.finish(h2.lease(), completed()).await,
        FinishResult::Applied(JobState::Completed)
    );
}

/// mark_started reports the leases no longer held and changes nothing for
/// them; marking an already started attempt, or none, is harmless.
pub async fn mark_started_reports_lost_leases(h: &dyn Harness) {
    let c = Ctx::new(h).await;
    let a = c.add(job("a")).await;
    let b = c.add(job("b")).await;
    let plain = c.claim_one("default").await;
    assert_eq!(plain.id, a);
    let ahead = c
        .store
        .claim(claim_ahead("w1", &["default"], 10))
        .await
        .expect("claim ahead");
    assert_eq!(ahead.len(), 1);
    assert!(c.store.mark_started(&[]).await.expect("none").is_empty());
    let wrong = LeaseRef { id: b, attempt: 7 };
    let unknown = LeaseRef {
        id: b + 1000,
        attempt: 1,
    };
    let lost = c
        .store
        .mark_started(&[plain.lease(), wrong, ahead[0].lease(), unknown])
        .await
        .expect("mark");
    assert_eq!(lost, vec![wrong, unknown], "in the order given");
    assert_eq!(c.state(b).await, JobState::Running);
    // Marked: its rescue now counts the attempt.
    c.advance(31);
    c.store.reap_expired(100).await.expect("reap");
    let j = c.job(b).await;
    assert_eq!((j.state, j.attempt), (JobState::Available, 1));
    assert_eq!(j.errors.len(), 1);
}
