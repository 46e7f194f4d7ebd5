//! Retention: deleting finished jobs after a while, never unfinished ones, and
//! never while a unique window still needs the row.

use std::time::Duration;

use super::{completed, errored, job, secs, Ctx, Harness};

/// delete_finished deletes completed jobs finished before one time and failed
/// or cancelled jobs finished before another; unfinished jobs never.
pub async fn delete_finished_retention(h: &dyn Harness) {
    let c = Ctx::new(h).await;
    let t = c.now();
    let completed_id = c.add(job("c")).await;
    let cl = c.claim_one("default").await;
    c.finish(cl.lease(), completed()).await;
    let failed_id = c.add(job("f").max_attempts(1)).await;
    let cl = c.claim_one("default").await;
    c.finish(cl.lease(), errored(t)).await;
    let cancelled_id = c.add(job("x")).await;
    c.store.cancel(&[cancelled_id]).await.expect("cancel");
    let running = c.add(job("r")).await;
    let run_claim = c.claim_one("default").await;
    assert_eq!(run_claim.id, running);
    let avail = c.add(job("a")).await;
    let sched = c.add(job("s").run_at(t + secs(1_000_000))).await;
    c.advance(100);
    let later = c.now();
    // Finished exactly at t is not "before t".
    assert_eq!(c.store.delete_finished(t, t).await.expect("delete"), 0);
    assert_eq!(c.store.delete_finished(later, t).await.expect("delete"), 1);
    assert!(c.store.get(completed_id).await.expect("get").is_none());
    assert!(c.store.get(failed_id).await.expect("get").is_some());
    assert_eq!(
        c.store.delete_finished(later, later).await.expect("delete"),
        2
    );
    assert!(c.store.get(failed_id).await.expect("get").is_none());
    assert!(c.store.get(cancelled_id).await.expect("get").is_none());
    let far = later + chrono::Duration::days(10_000);
    assert_eq!(c.store.delete_finished(far, far).await.expect("delete"), 0);
    for id in [avail, sched, running] {
        assert!(
            c.store.get(id).await.expect("get").is_some(),
            "unfinished job {id} kept"
        );
    }
}

/// Retention keeps a finished job while its `unique_for` window is open, so
/// the key keeps holding: deleting it would let the same enqueue insert a
/// second job inside the window. Once the window closes it is deleted.
pub async fn retention_keeps_job_inside_unique_window(h: &dyn Harness) {
    let c = Ctx::new(h).await;
    let week = Duration::from_secs(7 * 24 * 3600);
    let first = c.add(job("ok").unique_for("wk", week)).await;
    let cl = c.claim_one("default").await;
    c.finish(cl.lease(), completed()).await;
    let failed = c
        .add(job("f").unique_for("wk-f", week).max_attempts(1))
        .await;
    let cl = c.claim_one("default").await;
    c.finish(cl.lease(), errored(c.now())).await;
    let plain = c.add(job("p")).await;
    let cl = c.claim_one("default").await;
    c.finish(cl.lease(), completed()).await;
    // Two days on: past the default keep of completed jobs (24 h); with
    // failed jobs kept for one day here, past theirs too.
    c.advance(2 * 24 * 3600);
    let day_ago = c.now() - secs(24 * 3600);
    assert_eq!(
        c.store
            .delete_finished(day_ago, day_ago)
            .await
            .expect("delete"),
        1,
        "only the job without a window is deleted"
    );
    assert!(c.store.get(plain).await.expect("get").is_none());
    for id in [first, failed] {
        assert!(
            c.store.get(id).await.expect("get").is_some(),
            "job {id} is kept while its unique window is open"
        );
    }
    let again = c
        .store
        .enqueue(vec![job("ok").unique_for("wk", week)])
        .await
        .expect("enqueue");
    assert_eq!(
        (again[0].id, again[0].duplicate),
        (first, true),
        "the key still holds inside the window"
    );
    // Past the window: deleted, and the key is free.
    c.advance(5 * 24 * 3600 + 1);
    let day_ago = c.now() - secs(24 * 3600);
    assert_eq!(
        c.store
            .delete_finished(day_ago, day_ago)
            .await
            .expect("delete"),
        2
    );
    let fresh = c
        .store
        .enqueue(vec![job("ok").unique_for("wk", week)])
        .await
        .expect("enqueue");
    assert!(!fresh[0].duplicate);
}
