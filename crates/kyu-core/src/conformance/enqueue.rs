//! Enqueue: inserting jobs (one or many, all or none), refusing invalid ones,
//! future run_at, and unique keys (while unfinished, or within a window).

use std::time::Duration;

use super::{completed, job, secs, Ctx, Harness};
use crate::{JobState, Limits, NewJob, RetryPolicy, StoreError};

/// Enqueue one job with every option set; `get` returns it all, fresh.
pub async fn enqueue_and_get(h: &dyn Harness) {
    let c = Ctx::new(h).await;
    let new = NewJob::from_json_text("email", r#"{"to": "a@example.com", "n": [1, 2.5]}"#)
        .queue("mail")
        .priority(-3)
        .max_attempts(7)
        .retry(RetryPolicy::fixed(Duration::from_millis(1500)))
        .timeout(Duration::from_secs(9))
        .unique_key("k1")
        .tag("t1")
        .tag("t2");
    let id = c.add(new).await;
    let j = c.job(id).await;
    assert_eq!(j.id, id);
    assert_eq!(j.queue, "mail");
    assert_eq!(j.kind, "email");
    assert_eq!(
        j.args, r#"{"to": "a@example.com", "n": [1, 2.5]}"#,
        "args are kept as the exact JSON text"
    );
    assert_eq!(j.priority, -3);
    assert_eq!(j.state, JobState::Available);
    assert_eq!(j.attempt, 0);
    assert_eq!(j.max_attempts, 7);
    assert_eq!(j.retry, RetryPolicy::fixed(Duration::from_millis(1500)));
    assert_eq!(j.timeout, Some(Duration::from_secs(9)));
    assert_eq!(j.unique_key.as_deref(), Some("k1"));
    assert_eq!(j.tags, vec!["t1".to_string(), "t2".to_string()]);
    assert_eq!(j.created_at, c.now());
    assert_eq!(j.run_at, c.now(), "no run_at means now");
    assert_eq!(j.attempted_at, None);
    assert_eq!(j.finished_at, None);
    assert_eq!(j.worker, None);
    assert_eq!(j.lease_expires_at, None);
    assert!(!j.cancel_requested);
    assert_eq!(j.progress, None);
    assert_eq!(j.result, None);
    assert!(j.errors.is_empty());

    // Defaults.
    let id2 = c.add(job("plain")).await;
    assert!(id2 > id, "ids increase in enqueue order");
    let j2 = c.job(id2).await;
    assert_eq!(j2.queue, "default");
    assert_eq!(j2.priority, 0);
    assert_eq!(j2.max_attempts, 5);
    assert_eq!(j2.retry, RetryPolicy::default());
    assert_eq!(j2.timeout, None);
    assert_eq!(j2.unique_key, None);
    assert!(j2.tags.is_empty());
}

/// A bulk enqueue inserts every job, one reply per job in order, ids increasing.
pub async fn enqueue_bulk(h: &dyn Harness) {
    let c = Ctx::new(h).await;
    let out = c
        .store
        .enqueue(vec![job("a"), job("b").queue("q2"), job("c")])
        .await
        .expect("enqueue");
    assert_eq!(out.len(), 3);
    assert!(out.iter().all(|e| !e.duplicate));
    assert!(out[0].id < out[1].id && out[1].id < out[2].id, "{out:?}");
    for (e, kind) in out.iter().zip(["a", "b", "c"]) {
        assert_eq!(c.job(e.id).await.kind, kind, "reply order is request order");
    }
    assert_eq!(c.job(out[1].id).await.queue, "q2");
    assert!(c
        .store
        .enqueue(vec![])
        .await
        .expect("empty enqueue")
        .is_empty());
    assert_eq!(c.all().await.len(), 3);
}

/// Invalid jobs are refused with a typed error naming the field, and nothing
/// of the batch is written.
pub async fn enqueue_invalid_writes_nothing(h: &dyn Harness) {
    let c = Ctx::new(h).await;
    let big = format!("\"{}\"", "x".repeat(Limits::default().max_args_bytes));
    let cases: Vec<(NewJob, &str)> = vec![
        (NewJob::from_json_text("k", "{\"a\": "), "args"),
        (NewJob::from_json_text("k", "not json"), "args"),
        (NewJob::from_json_text("k", big), "args"),
        (job(""), "kind"),
        (job("k").queue(""), "queue"),
        (job("k").max_attempts(0), "max_attempts"),
    ];
    for (bad, field) in cases {
        // Alone.
        match c.store.enqueue(vec![bad.clone()]).await {
            Err(StoreError::Invalid(e)) => {
                assert!(e.field.contains(field), "field {field:?} expected in {e}")
            }
            other => panic!("invalid job ({field}) should be refused, got {other:?}"),
        }
        // Among valid jobs: the whole batch is refused.
        match c.store.enqueue(vec![job("ok1"), bad, job("ok2")]).await {
            Err(StoreError::Invalid(e)) => {
                assert!(e.field.contains(field), "field {field:?} expected in {e}")
            }
            other => panic!("batch with an invalid job ({field}) should be refused, got {other:?}"),
        }
    }
    assert!(c.all().await.is_empty(), "nothing may be written");
    assert!(c.claim(&["default"], 10).await.is_empty());
}

/// A job whose run_at is in the future is scheduled, and claimable only once
/// the clock reaches it. A run_at in the past is available at once.
pub async fn enqueue_future_is_scheduled(h: &dyn Harness) {
    let c = Ctx::new(h).await;
    let at = c.now() + secs(60);
    let id = c.add(job("later").run_at(at)).await;
    let j = c.job(id).await;
    assert_eq!(j.state, JobState::Scheduled);
    assert_eq!(j.run_at, at);
    assert!(c.claim(&["default"], 10).await.is_empty());
    c.advance(59);
    assert!(c.claim(&["default"], 10).await.is_empty(), "1 s early");
    c.advance(1);
    let got = c.claim_ids(&["default"], 10).await;
    assert_eq!(got, vec![id], "claimable when the clock reaches run_at");
    assert_eq!(c.state(id).await, JobState::Running);

    let past = c.add(job("past").run_at(c.now() - secs(3600))).await;
    assert_eq!(c.state(past).await, JobState::Available);
}

/// A unique key returns the first job while it is unfinished; after it
/// finishes a new job is inserted.
pub async fn unique_while_unfinished(h: &dyn Harness) {
    let c = Ctx::new(h).await;
    let first = c.add(job("k").unique_key("u1")).await;
    let dup = c
        .store
        .enqueue(vec![job("k").unique_key("u1")])
        .await
        .expect("enqueue");
    assert_eq!(dup[0].id, first);
    assert!(dup[0].duplicate);
    // In one batch: the second is a duplicate of the first.
    let batch = c
        .store
        .enqueue(vec![
            job("k").unique_key("u2"),
            job("k").unique_key("u2"),
            job("k"),
        ])
        .await
        .expect("enqueue");
    assert!(!batch[0].duplicate);
    assert!(batch[1].duplicate);
    assert_eq!(batch[1].id, batch[0].id);
    assert!(!batch[2].duplicate);
    assert_eq!(c.all().await.len(), 3, "duplicates insert nothing");
    // Still a duplicate while running.
    let cl = c.claim_one("default").await;
    assert_eq!(cl.id, first);
    let dup = c
        .store
        .enqueue(vec![job("k").unique_key("u1")])
        .await
        .expect("enqueue");
    assert_eq!((dup[0].id, dup[0].duplicate), (first, true));
    c.finish(cl.lease(), completed()).await;
    let again = c
        .store
        .enqueue(vec![job("k").unique_key("u1")])
        .await
        .expect("enqueue");
    assert!(
        !again[0].duplicate,
        "a finished job no longer holds the key"
    );
    assert!(again[0].id > first);
}

/// A key with a window holds for the window after the first enqueue,
/// whatever the first job's state.
pub async fn unique_within_window(h: &dyn Harness) {
    let c = Ctx::new(h).await;
    let w = Duration::from_secs(60);
    let first = c.add(job("k").unique_for("daily", w)).await;
    let cl = c.claim_one("default").await;
    c.finish(cl.lease(), completed()).await;
    c.advance(59);
    let dup = c
        .store
        .enqueue(vec![job("k").unique_for("daily", w)])
        .await
        .expect("enqueue");
    assert_eq!(
        (dup[0].id, dup[0].duplicate),
        (first, true),
        "finished but within the window"
    );
    c.advance(2);
    let fresh = c
        .store
        .enqueue(vec![job("k").unique_for("daily", w)])
        .await
        .expect("enqueue");
    assert!(
        !fresh[0].duplicate,
        "after the window a new job is inserted"
    );
    assert!(fresh[0].id > first);
}
