//! Claim: which runnable jobs a claim takes (queues, kinds, order, limit),
//! never one twice, and the attempt and lease it records.

use std::collections::{BTreeSet, HashSet};
use std::time::Duration;

use super::{claim_kinds, claim_of, completed, job, secs, Ctx, Harness, LEASE};
use crate::{ClaimedJob, FinishResult, JobId, JobState, LeaseRef, NewJob, RetryPolicy};

/// Claims come in priority, then run_at, then id order, at most `limit` at a time.
pub async fn claim_order_and_limit(h: &dyn Harness) {
    let c = Ctx::new(h).await;
    let now = c.now();
    let low = c.add(job("low").priority(5)).await;
    let c1 = c.add(job("c1")).await;
    let c2 = c.add(job("c2")).await;
    let early = c.add(job("early").run_at(now - secs(10))).await;
    let urgent = c.add(job("urgent").priority(-1)).await;
    let late = c.add(job("late").run_at(now + secs(5))).await;
    c.advance(5);
    let first = c.claim_ids(&["default"], 2).await;
    assert_eq!(first, vec![urgent, early], "priority first, then run_at");
    let second = c.claim_ids(&["default"], 3).await;
    assert_eq!(second, vec![c1, c2, late], "then run_at, then id");
    let third = c.claim_ids(&["default"], 3).await;
    assert_eq!(third, vec![low]);
    assert!(c.claim(&["default"], 3).await.is_empty());
    assert!(
        c.claim(&["default"], 0).await.is_empty(),
        "limit 0 claims nothing"
    );
}

/// A claim takes only from the queues it names.
pub async fn claim_only_listed_queues(h: &dyn Harness) {
    let c = Ctx::new(h).await;
    let a = c.add(job("x").queue("a")).await;
    let b = c.add(job("x").queue("b")).await;
    let other = c.add(job("x").queue("c")).await;
    let mut got = c.claim_ids(&["a", "b"], 10).await;
    got.sort();
    assert_eq!(got, vec![a, b]);
    assert_eq!(c.state(other).await, JobState::Available);
    assert!(c.claim(&["nope"], 10).await.is_empty());
    assert!(c.claim(&[], 10).await.is_empty());
    assert_eq!(c.claim_ids(&["c"], 10).await, vec![other]);
}

/// Claims from several tasks at once never hand out one job twice.
pub async fn concurrent_claims_are_disjoint(h: &dyn Harness) {
    let c = Ctx::new(h).await;
    let jobs: Vec<NewJob> = (0..300).map(|i| job(&format!("k{i}"))).collect();
    let ids: BTreeSet<JobId> = c
        .store
        .enqueue(jobs)
        .await
        .expect("enqueue")
        .iter()
        .map(|e| e.id)
        .collect();
    let mut tasks = Vec::new();
    for w in 0..6 {
        let store = c.store.clone();
        tasks.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            loop {
                let got = store
                    .claim(claim_of(&format!("w{w}"), &["default"], 7))
                    .await
                    .expect("claim");
                if got.is_empty() {
                    break;
                }
                mine.extend(got.into_iter().map(|j| j.id));
                tokio::task::yield_now().await;
            }
            mine
        }));
    }
    let mut seen = HashSet::new();
    for t in tasks {
        for id in t.await.expect("task") {
            assert!(seen.insert(id), "job {id} was claimed twice");
        }
    }
    assert_eq!(
        seen.into_iter().collect::<BTreeSet<_>>(),
        ids,
        "every job claimed once"
    );
}

/// A claim takes only the kinds it names, in claim order across queues and
/// kinds; jobs of other kinds are left as they are (available, attempt 0),
/// even when they are first in line. `Some(empty)` claims nothing; `None`
/// claims every kind. A due scheduled job of another kind does not stay
/// due-and-scheduled (an idle worker would wake for it at once, forever).
pub async fn claim_only_listed_kinds(h: &dyn Harness) {
    let c = Ctx::new(h).await;
    let b = c.add(job("b").priority(-5)).await;
    let a = c.add(job("a")).await;
    let x = c.add(job("x").queue("q2").priority(-1)).await;
    let a2 = c.add(job("a").queue("q2")).await;
    let late_b = c.add(job("b").run_at(c.now() + secs(10))).await;
    let claim = |kinds: &[&str], limit| claim_kinds("w1", &["default", "q2"], kinds, limit);
    assert!(c
        .store
        .claim(claim(&[], 10))
        .await
        .expect("claim")
        .is_empty());
    let got: Vec<JobId> = c
        .store
        .claim(claim(&["a", "x"], 2))
        .await
        .expect("claim")
        .iter()
        .map(|j| j.id)
        .collect();
    assert_eq!(got, vec![x, a], "claim order across queues and kinds");
    c.advance(20);
    let got: Vec<JobId> = c
        .store
        .claim(claim(&["a", "zzz"], 10))
        .await
        .expect("claim")
        .iter()
        .map(|j| j.id)
        .collect();
    assert_eq!(got, vec![a2]);
    for id in [b, late_b] {
        let j = c.job(id).await;
        assert_eq!(j.attempt, 0, "never claimed: {j:?}");
        assert!(
            matches!(j.state, JobState::Available | JobState::Scheduled),
            "{j:?}"
        );
    }
    assert_eq!(
        c.store
            .next_scheduled(&["default".into()])
            .await
            .expect("next"),
        None,
        "no due job is left scheduled for a worker to wake for"
    );
    // More kinds than the claim walks one by one.
    let many: Vec<String> = (0..50).map(|i| format!("k{i:02}")).collect();
    let mut kinds: Vec<&str> = many.iter().map(String::as_str).collect();
    kinds.push("b");
    let got: Vec<JobId> = c
        .store
        .claim(claim(&kinds, 10))
        .await
        .expect("claim")
        .iter()
        .map(|j| j.id)
        .collect();
    assert_eq!(got, vec![b, late_b]);
    // Every kind.
    let other = c.add(job("other")).await;
    assert_eq!(c.claim_ids(&["default"], 10).await, vec![other]);
}

/// A claim counts the attempt, sets the lease and records the worker.
pub async fn claim_counts_attempt_and_sets_lease(h: &dyn Harness) {
    let c = Ctx::new(h).await;
    let id = c
        .add(
            NewJob::from_json_text("k", r#"{"a":1}"#)
                .max_attempts(3)
                .timeout(Duration::from_secs(4))
                .retry(RetryPolicy::fixed(Duration::from_secs(2))),
        )
        .await;
    let cl = c
        .store
        .claim(claim_of("worker-9", &["default"], 1))
        .await
        .expect("claim")
        .remove(0);
    assert_eq!(cl.id, id);
    assert_eq!(cl.queue, "default");
    assert_eq!(cl.kind, "k");
    assert_eq!(cl.args, r#"{"a":1}"#);
    assert_eq!(cl.attempt, 1);
    assert_eq!(cl.max_attempts, 3);
    assert_eq!(cl.retry, RetryPolicy::fixed(Duration::from_secs(2)));
    assert_eq!(cl.timeout, Some(Duration::from_secs(4)));
    assert_eq!(cl.lease_expires_at, c.now() + secs(30));
    assert_eq!(cl.lease(), LeaseRef { id, attempt: 1 });
    let j = c.job(id).await;
    assert_eq!(j.state, JobState::Running);
    assert_eq!(j.attempt, 1);
    assert_eq!(j.worker.as_deref(), Some("worker-9"));
    assert_eq!(j.attempted_at, Some(c.now()));
    assert_eq!(j.lease_expires_at, Some(c.now() + secs(30)));
    assert!(
        c.claim(&["default"], 1).await.is_empty(),
        "a running job is not claimable"
    );
}

/// claim_job claims exactly the job it names, whatever its run_at, queue
/// pause or priority, as a claim would (attempt counted, lease set, fenced);
/// it leaves running, finished and unknown jobs as they are, and of two
/// claims of one job only one gets it.
pub async fn claim_job_takes_exactly_that_job(h: &dyn Harness) {
    let c = Ctx::new(h).await;
    let first = c.add(job("k").priority(-5)).await;
    let later = c
        .add(
            NewJob::from_json_text("k", r#"{"a":1}"#)
                .queue("paused")
                .priority(9)
                .max_attempts(3)
                .timeout(Duration::from_secs(4))
                .run_at(c.now() + secs(3600)),
        )
        .await;
    c.store.pause_queue("paused").await.expect("pause");
    assert_eq!(c.state(later).await, JobState::Scheduled);

    let cl = c
        .store
        .claim_job(later, "tester", LEASE)
        .await
        .expect("claim_job")
        .expect("a scheduled job in a paused queue is claimed by id");
    assert_eq!(cl.id, later);
    assert_eq!(
        (cl.queue.as_str(), cl.kind.as_str(), cl.args.as_str()),
        ("paused", "k", r#"{"a":1}"#)
    );
    assert_eq!((cl.attempt, cl.max_attempts), (1, 3));
    assert_eq!(cl.timeout, Some(Duration::from_secs(4)));
    assert_eq!(cl.lease_expires_at, c.now() + secs(30));
    let j = c.job(later).await;
    assert_eq!(j.state, JobState::Running);
    assert_eq!(j.worker.as_deref(), Some("tester"));
    assert_eq!(j.attempted_at, Some(c.now()));
    assert_eq!(j.lease_expires_at, Some(c.now() + secs(30)));
    assert_eq!(
        c.state(first).await,
        JobState::Available,
        "only the named job is claimed, not the one first in line"
    );

    // Running: not taken from its lease holder.
    assert_eq!(
        c.store
            .claim_job(later, "thief", LEASE)
            .await
            .expect("claim_job"),
        None
    );
    assert_eq!(c.job(later).await.worker.as_deref(), Some("tester"));
    // The claim is a real lease: the attempt finishes through it.
    assert_eq!(
        c.finish(cl.lease(), completed()).await,
        FinishResult::Applied(JobState::Completed)
    );
    // Finished and unknown jobs: nothing to claim.
    assert_eq!(
        c.store
            .claim_job(later, "tester", LEASE)
            .await
            .expect("claim_job"),
        None
    );
    assert_eq!(c.state(later).await, JobState::Completed);
    assert_eq!(
        c.store
            .claim_job(first + later + 1000, "tester", LEASE)
            .await
            .expect("claim_job"),
        None
    );

    // Two claims of one job at once: one gets it.
    let (a, b) = tokio::join!(
        c.store.claim_job(first, "a", LEASE),
        c.store.claim_job(first, "b", LEASE)
    );
    let got: Vec<ClaimedJob> = [a.expect("claim_job"), b.expect("claim_job")]
        .into_iter()
        .flatten()
        .collect();
    assert_eq!(got.len(), 1, "one of two claims of one job gets it");
    assert_eq!(got[0].attempt, 1);
    assert_eq!(c.state(first).await, JobState::Running);
}
