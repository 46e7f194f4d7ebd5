//! Control: pausing and resuming queues, cancelling jobs, retrying failed or
//! cancelled jobs (unique keys hold across retries).

use super::{completed, errored, job, secs, Ctx, Harness};
use crate::{CancelResult, FinishOutcome, FinishResult, JobId, JobState, RetryResult, StoreError};

/// Paused queues are skipped; running jobs go on; resuming makes them claimable.
pub async fn paused_queue_is_skipped(h: &dyn Harness) {
    let c = Ctx::new(h).await;
    let running = c.add(job("x").queue("a")).await;
    let claimed = c.claim_one("a").await;
    assert_eq!(claimed.id, running);
    let a = c.add(job("x").queue("a")).await;
    let b = c.add(job("x").queue("b")).await;
    c.store.pause_queue("a").await.expect("pause");
    c.store
        .pause_queue("a")
        .await
        .expect("pausing twice is fine");
    c.store
        .pause_queue("empty")
        .await
        .expect("pause a queue with no jobs");
    assert_eq!(c.claim_ids(&["a", "b"], 10).await, vec![b]);
    assert!(c.claim(&["a"], 10).await.is_empty());
    let stats = c.store.queue_stats().await.expect("stats");
    let qa = stats
        .iter()
        .find(|s| s.queue == "a")
        .expect("queue a listed");
    assert!(qa.paused);
    assert!(stats.iter().any(|s| s.queue == "empty" && s.paused));
    assert!(
        !stats
            .iter()
            .find(|s| s.queue == "b")
            .expect("b listed")
            .paused
    );
    // A running job of a paused queue still finishes.
    assert_eq!(
        c.finish(claimed.lease(), completed()).await,
        FinishResult::Applied(JobState::Completed)
    );
    c.store.resume_queue("a").await.expect("resume");
    c.store
        .resume_queue("b")
        .await
        .expect("resuming an unpaused queue is fine");
    assert_eq!(c.claim_ids(&["a"], 10).await, vec![a]);
    let stats = c.store.queue_stats().await.expect("stats");
    assert!(!stats.iter().find(|s| s.queue == "a").expect("a").paused);
    assert!(matches!(
        c.store.pause_queue("").await,
        Err(StoreError::Invalid(_))
    ));
}

/// Cancel: scheduled and available jobs are cancelled and never run; running
/// jobs get a request; finished jobs and unknown ids are reported.
pub async fn cancel_each_state(h: &dyn Harness) {
    let c = Ctx::new(h).await;
    let done = c.add(job("done")).await;
    let cl = c.claim_one("default").await;
    c.finish(cl.lease(), completed()).await;
    let running = c.add(job("running")).await;
    let run_claim = c.claim_one("default").await;
    let sched = c.add(job("sched").run_at(c.now() + secs(30))).await;
    let avail = c.add(job("avail")).await;
    let out = c
        .store
        .cancel(&[sched, avail, running, done, 999_999])
        .await
        .expect("cancel");
    assert_eq!(
        out,
        vec![
            CancelResult::Cancelled,
            CancelResult::Cancelled,
            CancelResult::Requested,
            CancelResult::AlreadyFinished(JobState::Completed),
            CancelResult::NotFound
        ]
    );
    for id in [sched, avail] {
        let j = c.job(id).await;
        assert_eq!(j.state, JobState::Cancelled);
        assert_eq!(j.finished_at, Some(c.now()));
    }
    let r = c.job(running).await;
    assert_eq!(
        r.state,
        JobState::Running,
        "a running job runs on until its worker stops it"
    );
    assert!(r.cancel_requested);
    c.advance(60);
    assert!(
        c.claim(&["default"], 10).await.is_empty(),
        "cancelled jobs never run"
    );
    assert_eq!(
        c.store.cancel(&[sched]).await.expect("cancel"),
        vec![CancelResult::AlreadyFinished(JobState::Cancelled)]
    );
    assert_eq!(
        c.finish(run_claim.lease(), completed()).await,
        FinishResult::Applied(JobState::Completed),
        "work that finished is completed even if a cancel was asked for"
    );
}

/// A running job whose cancel was asked for ends cancelled when its attempt
/// errors or is released.
pub async fn cancel_running_then_finish(h: &dyn Harness) {
    let c = Ctx::new(h).await;
    let e = c.add(job("errors").max_attempts(5)).await;
    let r = c.add(job("released")).await;
    let got = c.claim(&["default"], 2).await;
    let lease_of = |id: JobId| got.iter().find(|j| j.id == id).expect("claimed").lease();
    c.store.cancel(&[e, r]).await.expect("cancel");
    assert_eq!(
        c.finish(lease_of(e), errored(c.now() + secs(5))).await,
        FinishResult::Applied(JobState::Cancelled)
    );
    assert_eq!(
        c.finish(
            lease_of(r),
            FinishOutcome::Released {
                message: "worker shut down".into()
            }
        )
        .await,
        FinishResult::Applied(JobState::Cancelled)
    );
    for id in [e, r] {
        let j = c.job(id).await;
        assert_eq!(j.state, JobState::Cancelled);
        assert_eq!(j.finished_at, Some(c.now()));
    }
    c.advance(10);
    assert!(c.claim(&["default"], 10).await.is_empty());
}

/// Retry: failed and cancelled jobs become available with an attempt left;
/// other states are not retryable.
pub async fn retry_each_state(h: &dyn Harness) {
    let c = Ctx::new(h).await;
    let failed = c.add(job("f").max_attempts(1)).await;
    let cl = c.claim_one("default").await;
    c.finish(cl.lease(), errored(c.now())).await;
    assert_eq!(c.state(failed).await, JobState::Failed);
    let cancelled = c.add(job("c")).await;
    c.store.cancel(&[cancelled]).await.expect("cancel");
    let done = c.add(job("d")).await;
    let cl = c.claim_one("default").await;
    c.finish(cl.lease(), completed()).await;
    let running = c.add(job("r")).await;
    let run_claim = c.claim_one("default").await;
    let avail = c.add(job("a")).await;
    c.advance(5);
    let out = c
        .store
        .retry(&[failed, cancelled, done, running, avail, 999_999])
        .await
        .expect("retry");
    assert_eq!(
        out,
        vec![
            RetryResult::Retried,
            RetryResult::Retried,
            RetryResult::NotRetryable(JobState::Completed),
            RetryResult::NotRetryable(JobState::Running),
            RetryResult::NotRetryable(JobState::Available),
            RetryResult::NotFound
        ]
    );
    let j = c.job(failed).await;
    assert_eq!(j.state, JobState::Available);
    assert_eq!(j.finished_at, None);
    assert!(
        j.max_attempts > j.attempt,
        "at least one attempt left: {j:?}"
    );
    assert_eq!(j.errors.len(), 1, "the history is kept");
    assert_eq!(c.state(cancelled).await, JobState::Available);
    assert_eq!(c.state(running).await, JobState::Running);
    let mut ids = c.claim_ids(&["default"], 10).await;
    ids.sort();
    assert_eq!(ids, vec![failed, cancelled, avail]);
    // The retried failed job gets a real attempt 2.
    let j = c.job(failed).await;
    assert_eq!(j.attempt, 2);
    drop(run_claim);
}

/// retry_failed retries failed jobs by queue, kind or all, and counts them.
pub async fn retry_failed_by_queue_and_kind(h: &dyn Harness) {
    let c = Ctx::new(h).await;
    let specs = [("a", "x"), ("a", "y"), ("b", "x"), ("b", "y"), ("b", "y")];
    for (q, k) in specs {
        c.add(job(k).queue(q).max_attempts(1)).await;
        let cl = c.claim_one(q).await;
        c.finish(cl.lease(), errored(c.now())).await;
    }
    let cancelled = c.add(job("x").queue("a")).await;
    c.store.cancel(&[cancelled]).await.expect("cancel");
    assert_eq!(
        c.store
            .retry_failed(Some("a"), Some("x"))
            .await
            .expect("retry")
            .retried,
        1
    );
    assert_eq!(
        c.store
            .retry_failed(Some("a"), None)
            .await
            .expect("retry")
            .retried,
        1
    );
    assert_eq!(
        c.store
            .retry_failed(None, Some("y"))
            .await
            .expect("retry")
            .retried,
        2
    );
    assert_eq!(
        c.store
            .retry_failed(None, None)
            .await
            .expect("retry")
            .retried,
        1
    );
    assert_eq!(
        c.store
            .retry_failed(None, None)
            .await
            .expect("retry")
            .retried,
        0
    );
    assert_eq!(
        c.state(cancelled).await,
        JobState::Cancelled,
        "only failed jobs"
    );
    assert_eq!(c.claim(&["a", "b"], 10).await.len(), 5);
}

/// Fails one attempt of the next claimable job of `default` for good.
async fn fail_next(c: &Ctx) -> JobId {
    let cl = c.claim_one("default").await;
    c.finish(
        cl.lease(),
        FinishOutcome::Errored {
            message: "boom".into(),
            retry_at: c.now(),
            permanent: true,
        },
    )
    .await;
    cl.id
}

/// The unfinished jobs holding each unique key, by key.
async fn unfinished_by_key(c: &Ctx) -> std::collections::BTreeMap<String, Vec<JobId>> {
    let mut by_key = std::collections::BTreeMap::<String, Vec<JobId>>::new();
    for j in c.all().await {
        if let (Some(k), false) = (j.unique_key, j.state.is_finished()) {
            by_key.entry(k).or_default().push(j.id);
        }
    }
    by_key
}

/// A retry never makes two unfinished jobs with one key: a failed job whose
/// key another unfinished job holds is refused, naming the holder, and left
/// failed; once the holder finishes it can be retried. In one call, the
/// first of two jobs with one key is retried and the second refused.
pub async fn retry_refuses_while_another_job_holds_the_key(h: &dyn Harness) {
    let c = Ctx::new(h).await;
    let first = c.add(job("k").unique_key("U1").max_attempts(1)).await;
    assert_eq!(fail_next(&c).await, first);
    let second = c.add(job("k").unique_key("U1")).await;
    let out = c.store.retry(&[first]).await.expect("retry");
    assert_eq!(
        out,
        vec![RetryResult::KeyHeld {
            key: "U1".into(),
            holder: second
        }]
    );
    assert_eq!(c.state(first).await, JobState::Failed, "left as it was");
    assert_eq!(unfinished_by_key(&c).await["U1"], vec![second]);
    // The holder finishes: the key is free, the retry goes through.
    let cl = c.claim_one("default").await;
    assert_eq!(cl.id, second);
    c.finish(cl.lease(), completed()).await;
    assert_eq!(
        c.store.retry(&[first]).await.expect("retry"),
        vec![RetryResult::Retried]
    );
    let dup = c
        .store
        .enqueue(vec![job("k").unique_key("U1")])
        .await
        .expect("enqueue");
    assert_eq!(
        (dup[0].id, dup[0].duplicate),
        (first, true),
        "the retried job holds its key again"
    );
    // Two failed jobs with one key, retried in one call.
    let a = c.add(job("k").unique_key("U3").max_attempts(1)).await;
    c.claim_one("default").await; // `first`, now running, out of the way
    assert_eq!(fail_next(&c).await, a);
    let b = c.add(job("k").unique_key("U3").max_attempts(1)).await;
    assert_eq!(fail_next(&c).await, b);
    let out = c.store.retry(&[a, b]).await.expect("retry");
    assert_eq!(
        out,
        vec![
            RetryResult::Retried,
            RetryResult::KeyHeld {
                key: "U3".into(),
                holder: a
            }
        ]
    );
    assert_eq!(c.state(b).await, JobState::Failed);
    for (key, ids) in unfinished_by_key(&c).await {
        assert_eq!(ids.len(), 1, "one unfinished job per key {key}: {ids:?}");
    }
}

/// retry_failed keeps one unfinished job per key: of failed jobs sharing a
/// key only the lowest id is retried, none when an unfinished job holds the
/// key, and those left failed are reported with their holder.
pub async fn retry_failed_keeps_one_unfinished_job_per_key(h: &dyn Harness) {
    let c = Ctx::new(h).await;
    let mut failed = Vec::new();
    for key in [Some("U1"), Some("U1"), Some("U2"), None] {
        let mut j = job("k").max_attempts(1);
        if let Some(k) = key {
            j = j.unique_key(k);
        }
        let id = c.add(j).await;
        assert_eq!(fail_next(&c).await, id);
        failed.push(id);
    }
    let holder = c.add(job("k").unique_key("U2")).await;
    let out = c.store.retry_failed(None, None).await.expect("retry");
    assert_eq!(out.retried, 2, "{out:?}");
    assert_eq!(
        out.key_held,
        vec![
            crate::KeyHeld {
                id: failed[1],
                key: "U1".into(),
                holder: failed[0]
            },
            crate::KeyHeld {
                id: failed[2],
                key: "U2".into(),
                holder
            },
        ]
    );
    assert_eq!(c.state(failed[0]).await, JobState::Available);
    assert_eq!(c.state(failed[1]).await, JobState::Failed);
    assert_eq!(c.state(failed[2]).await, JobState::Failed);
    assert_eq!(c.state(failed[3]).await, JobState::Available);
    for (key, ids) in unfinished_by_key(&c).await {
        assert_eq!(ids.len(), 1, "one unfinished job per key {key}: {ids:?}");
    }
    // Nothing changes on a second call: the same two are still held.
    let again = c.store.retry_failed(None, None).await.expect("retry");
    assert_eq!((again.retried, again.key_held.len()), (0, 2));
}
