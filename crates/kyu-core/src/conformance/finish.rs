//! Finish: what each way an attempt ends (completed, errored, snoozed,
//! cancelled, released) does to its job, and that a stale finish changes nothing.

use super::{completed, errored, job, secs, Ctx, Harness};
use crate::{Finish, FinishOutcome, FinishResult, JobState, LeaseRef};

/// Completed: the result is stored and the job is finished.
pub async fn finish_completed(h: &dyn Harness) {
    let c = Ctx::new(h).await;
    let id = c.add(job("k")).await;
    let cl = c.claim_one("default").await;
    c.advance(2);
    let r = c
        .finish(
            cl.lease(),
            FinishOutcome::Completed {
                result: Some(r#"{"ok":true}"#.into()),
            },
        )
        .await;
    assert_eq!(r, FinishResult::Applied(JobState::Completed));
    let j = c.job(id).await;
    assert_eq!(j.state, JobState::Completed);
    assert_eq!(j.result.as_deref(), Some(r#"{"ok":true}"#));
    assert_eq!(j.finished_at, Some(c.now()));
    assert_eq!(j.attempt, 1);
    assert!(j.errors.is_empty());
    assert!(c.claim(&["default"], 10).await.is_empty());
}

/// Errored with attempts left: scheduled at retry_at (available if that is not
/// in the future), with the error recorded.
pub async fn finish_errored_retries(h: &dyn Harness) {
    let c = Ctx::new(h).await;
    let id = c.add(job("k").max_attempts(3)).await;
    let cl = c.claim_one("default").await;
    c.advance(1);
    let retry_at = c.now() + secs(10);
    assert_eq!(
        c.finish(cl.lease(), errored(retry_at)).await,
        FinishResult::Applied(JobState::Scheduled)
    );
    let j = c.job(id).await;
    assert_eq!(j.state, JobState::Scheduled);
    assert_eq!(j.run_at, retry_at);
    assert_eq!(j.finished_at, None);
    assert_eq!(j.errors.len(), 1);
    let e = &j.errors[0];
    assert_eq!(e.at, c.now());
    assert_eq!(e.attempt, 1);
    assert_eq!(e.message, "boom");
    assert_eq!(e.worker, "w1");
    assert!(
        c.claim(&["default"], 1).await.is_empty(),
        "not before retry_at"
    );
    c.advance(10);
    let cl2 = c.claim_one("default").await;
    assert_eq!(cl2.attempt, 2);
    // retry_at not in the future: available at once.
    assert_eq!(
        c.finish(cl2.lease(), errored(c.now())).await,
        FinishResult::Applied(JobState::Available)
    );
    assert_eq!(c.state(id).await, JobState::Available);
    let cl3 = c.claim_one("default").await;
    assert_eq!(cl3.attempt, 3);
    assert_eq!(c.job(id).await.errors.len(), 2);
}

/// Errored on the last attempt, or permanently: failed.
pub async fn finish_errored_fails(h: &dyn Harness) {
    let c = Ctx::new(h).await;
    let last = c.add(job("k").max_attempts(1)).await;
    let cl = c.claim_one("default").await;
    assert_eq!(cl.id, last);
    assert_eq!(
        c.finish(cl.lease(), errored(c.now() + secs(5))).await,
        FinishResult::Applied(JobState::Failed)
    );
    let j = c.job(last).await;
    assert_eq!(j.state, JobState::Failed);
    assert_eq!(j.finished_at, Some(c.now()));
    assert_eq!(j.errors.len(), 1);

    let perm = c.add(job("k").max_attempts(5)).await;
    let cl = c.claim_one("default").await;
    assert_eq!(cl.id, perm);
    let r = c
        .finish(
            cl.lease(),
            FinishOutcome::Errored {
                message: "bad input".into(),
                retry_at: c.now(),
                permanent: true,
            },
        )
        .await;
    assert_eq!(r, FinishResult::Applied(JobState::Failed));
    let j = c.job(perm).await;
    assert_eq!(j.state, JobState::Failed);
    assert_eq!(j.errors[0].message, "bad input");
    assert!(c.claim(&["default"], 10).await.is_empty());
}

/// Snoozed: scheduled at `until`, the attempt not used.
pub async fn finish_snoozed(h: &dyn Harness) {
    let c = Ctx::new(h).await;
    let id = c.add(job("k").max_attempts(1)).await;
    let cl = c.claim_one("default").await;
    let until = c.now() + secs(60);
    assert_eq!(
        c.finish(cl.lease(), FinishOutcome::Snoozed { until }).await,
        FinishResult::Applied(JobState::Scheduled)
    );
    let j = c.job(id).await;
    assert_eq!(j.state, JobState::Scheduled);
    assert_eq!(j.run_at, until);
    assert_eq!(j.attempt, 0, "a snooze gives the attempt back");
    assert!(c.claim(&["default"], 1).await.is_empty());
    c.advance(60);
    let cl = c.claim_one("default").await;
    assert_eq!(cl.attempt, 1, "still the first attempt");
    // Snoozing again and again never exhausts the single attempt.
    let until = c.now() + secs(1);
    c.finish(cl.lease(), FinishOutcome::Snoozed { until }).await;
    c.advance(1);
    let cl = c.claim_one("default").await;
    assert_eq!(cl.attempt, 1);
    assert_eq!(
        c.finish(cl.lease(), completed()).await,
        FinishResult::Applied(JobState::Completed)
    );
}

/// Cancelled by the handler: cancelled.
pub async fn finish_cancelled(h: &dyn Harness) {
    let c = Ctx::new(h).await;
    let id = c.add(job("k")).await;
    let cl = c.claim_one("default").await;
    let r = c
        .finish(
            cl.lease(),
            FinishOutcome::Cancelled {
                message: "cancelled by operator".into(),
            },
        )
        .await;
    assert_eq!(r, FinishResult::Applied(JobState::Cancelled));
    let j = c.job(id).await;
    assert_eq!(j.state, JobState::Cancelled);
    assert_eq!(j.finished_at, Some(c.now()));
    assert!(c.claim(&["default"], 10).await.is_empty());
}

/// Released (worker shutting down): available now, the attempt not counted,
/// the interruption recorded.
pub async fn finish_released(h: &dyn Harness) {
    let c = Ctx::new(h).await;
    let id = c
        .add(job("k").max_attempts(1).run_at(c.now() - secs(100)))
        .await;
    let cl = c.claim_one("default").await;
    c.advance(3);
    let r = c
        .finish(
            cl.lease(),
            FinishOutcome::Released {
                message: "worker shut down".into(),
            },
        )
        .await;
    assert_eq!(r, FinishResult::Applied(JobState::Available));
    let j = c.job(id).await;
    assert_eq!(j.state, JobState::Available);
    assert_eq!(j.attempt, 0, "a released attempt is not counted");
    assert_eq!(j.finished_at, None);
    assert!(j.run_at <= c.now());
    let e = j.errors.last().expect("the interruption is recorded");
    assert_eq!(e.message, "worker shut down");
    assert_eq!(e.attempt, 1);
    assert_eq!(e.at, c.now());
    let cl = c.claim_one("default").await;
    assert_eq!(cl.attempt, 1, "the single attempt is still there");
}

/// A finish for an attempt that is not running any more is Stale and changes nothing.
pub async fn finish_stale(h: &dyn Harness) {
    let c = Ctx::new(h).await;
    let id = c.add(job("k")).await;
    let cl = c.claim_one("default").await;
    let before = c.job(id).await;
    let wrong = LeaseRef { id, attempt: 2 };
    assert_eq!(c.finish(wrong, completed()).await, FinishResult::Stale);
    assert_eq!(c.finish(wrong, errored(c.now())).await, FinishResult::Stale);
    assert_eq!(c.job(id).await, before, "a stale finish changes nothing");
    let unknown = LeaseRef {
        id: id + 1000,
        attempt: 1,
    };
    assert_eq!(c.finish(unknown, completed()).await, FinishResult::Stale);

    // Mixed batch: results in order.
    let other = c.add(job("k2")).await;
    let cl2 = c.claim_one("default").await;
    assert_eq!(cl2.id, other);
    let out = c
        .store
        .finish(vec![
            Finish {
                lease: cl.lease(),
                worker: "w1".into(),
                outcome: completed(),
            },
            Finish {
                lease: wrong,
                worker: "w1".into(),
                outcome: completed(),
            },
            Finish {
                lease: cl2.lease(),
                worker: "w1".into(),
                outcome: FinishOutcome::Cancelled {
                    message: "stop".into(),
                },
            },
        ])
        .await
        .expect("finish");
    assert_eq!(
        out,
        vec![
            FinishResult::Applied(JobState::Completed),
            FinishResult::Stale,
            FinishResult::Applied(JobState::Cancelled)
        ]
    );
    // The job is no longer running: every outcome is stale now.
    let done = c.job(id).await;
    for o in [
        completed(),
        errored(c.now()),
        FinishOutcome::Snoozed { until: c.now() },
        FinishOutcome::Released {
            message: "x".into(),
        },
        FinishOutcome::Cancelled {
            message: "x".into(),
        },
    ] {
        assert_eq!(c.finish(cl.lease(), o).await, FinishResult::Stale);
    }
    assert_eq!(c.job(id).await, done);
}
