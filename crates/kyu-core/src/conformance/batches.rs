//! Batches (`kyu_core::batch`): counts of a batch's jobs as they finish,
//! callbacks enqueued exactly once when the sealed batch is done.

use super::{claim_of, completed, job, Ctx, Harness, LEASE};
use crate::batch::{BatchCounts, BatchId, BatchStatus, NewBatch};
use crate::{FinishOutcome, JobRecord, JobState, NewJob, StoreError};

fn callbacks() -> NewBatch {
    NewBatch {
        on_complete: Some(
            NewJob::new("report", serde_json::json!({"to": "ops"}))
                .queue("cb")
                .priority(-3)
                .max_attempts(2)
                .retry(crate::RetryPolicy::fixed(std::time::Duration::from_secs(7)))
                .timeout(std::time::Duration::from_millis(1500))
                .tag("batch-report"),
        ),
        on_success: Some(NewJob::new("celebrate", serde_json::json!({}))),
    }
}

async fn status(c: &Ctx, id: BatchId) -> BatchStatus {
    c.store
        .batch(id)
        .await
        .expect("batch")
        .expect("the batch exists")
}

/// The jobs of kind `kind`.
async fn of_kind(c: &Ctx, kind: &str) -> Vec<JobRecord> {
    c.all()
        .await
        .into_iter()
        .filter(|j| j.kind == kind)
        .collect()
}

/// The counts under a callback's args' "batch" key.
fn counts_of(j: &JobRecord) -> BatchCounts {
    let v: serde_json::Value = serde_json::from_str(&j.args).expect("args are JSON");
    serde_json::from_value(v["batch"].clone()).expect("args have the batch counts")
}

fn failed_for_good(c: &Ctx) -> FinishOutcome {
    FinishOutcome::Errored {
        message: "boom".into(),
        retry_at: c.now(),
        permanent: true,
    }
}

async fn add(c: &Ctx, id: BatchId, jobs: Vec<NewJob>) -> Vec<i64> {
    c.store
        .add_to_batch(id, jobs)
        .await
        .expect("add to batch")
        .iter()
        .map(|e| e.id)
        .collect()
}

/// Three jobs, two succeed and one fails for good: on_complete is enqueued
/// once with the batch id and counts in its args (beside its own), in its
/// own queue; on_success is not. The status counts as the jobs move.
pub async fn batch_on_complete_once_with_counts(h: &dyn Harness) {
    let c = Ctx::new(h).await;
    let id = c.store.create_batch(callbacks()).await.expect("create");
    let ids = add(&c, id, vec![job("a"), job("b"), job("c")]).await;
    assert_eq!(ids.len(), 3);
    assert_eq!(
        c.job(ids[0]).await.batch_id,
        Some(id),
        "a job knows its batch"
    );
    let s = c.store.seal_batch(id).await.expect("seal");
    assert!(s.sealed);
    assert_eq!((s.total, s.pending, s.running), (3, 3, 0));
    let got = c.claim(&["default"], 3).await;
    assert_eq!(got.len(), 3);
    let s = status(&c, id).await;
    assert_eq!((s.pending, s.running, s.succeeded), (0, 3, 0));
    c.finish(got[0].lease(), completed()).await;
    c.finish(got[1].lease(), failed_for_good(&c)).await;
    assert!(of_kind(&c, "report").await.is_empty(), "not done yet");
    let s = status(&c, id).await;
    assert_eq!((s.running, s.succeeded, s.failed), (1, 1, 1));
    assert!(!s.is_done());
    c.finish(got[2].lease(), completed()).await;
    let reports = of_kind(&c, "report").await;
    assert_eq!(reports.len(), 1, "on_complete is enqueued once");
    let r = &reports[0];
    assert_eq!(r.batch_id, None, "a callback is not in the batch");
    assert_eq!(r.queue, "cb");
    assert_eq!(r.state, JobState::Available);
    // Every option of the callback is kept.
    assert_eq!((r.priority, r.max_attempts, r.attempt), (-3, 2, 0));
    assert_eq!(
        r.retry,
        crate::RetryPolicy::fixed(std::time::Duration::from_secs(7))
    );
    assert_eq!(r.timeout, Some(std::time::Duration::from_millis(1500)));
    assert_eq!(r.tags, vec!["batch-report".to_string()]);
    assert_eq!(r.run_at, c.now());
    let args: serde_json::Value = serde_json::from_str(&r.args).expect("json");
    assert_eq!(args["to"], "ops", "the callback's own args are kept");
    assert_eq!(
        counts_of(r),
        BatchCounts {
            id,
            total: 3,
            succeeded: 2,
            failed: 1,
            cancelled: 0
        }
    );
    assert!(
        of_kind(&c, "celebrate").await.is_empty(),
        "on_success does not run when a job failed"
    );
    let s = status(&c, id).await;
    assert_eq!(
        (
            s.total,
            s.pending,
            s.running,
            s.succeeded,
            s.failed,
            s.cancelled
        ),
        (3, 0, 0, 2, 1, 0)
    );
    // One batch_completed event, written with the callback.
    let events = c.store.read_events(0, 1000).await.expect("events").events;
    let done: Vec<_> = events
        .iter()
        .filter(|e| e.event_type == crate::EventType::BatchCompleted)
        .collect();
    assert_eq!(done.len(), 1, "one batch_completed event");
    assert_eq!(
        done[0].facts.message.as_deref(),
        Some(format!("batch {id}: total 3, succeeded 2, failed 1, cancelled 0").as_str())
    );
    assert!(s.is_done());
    assert_eq!(s.callback_jobs, vec![r.id]);
    assert_eq!(s.on_complete.as_deref(), Some("report"));
    // Running the callback (not in the batch) changes nothing of the batch.
    let cb = c.claim_one("cb").await;
    c.finish(cb.lease(), completed()).await;
    assert_eq!(of_kind(&c, "report").await.len(), 1);
    assert_eq!(status(&c, id).await, s);
}

/// When every job succeeds, both callbacks are enqueued, each once; a retry
/// that fails first counts only when the job ends.
pub async fn batch_on_success_when_all_succeed(h: &dyn Harness) {
    let c = Ctx::new(h).await;
    let id = c.store.create_batch(callbacks()).await.expect("create");
    add(&c, id, vec![job("a"), job("b").max_attempts(2)]).await;
    c.store.seal_batch(id).await.expect("seal");
    let a = c.claim_ids(&["default"], 1).await;
    let b = c.claim_one("default").await;
    let again = c
        .finish(
            b.lease(),
            FinishOutcome::Errored {
                message: "flaky".into(),
                retry_at: c.now(),
                permanent: false,
            },
        )
        .await;
    assert_eq!(again, crate::FinishResult::Applied(JobState::Available));
    let s = status(&c, id).await;
    assert_eq!(
        (s.pending, s.running, s.failed),
        (1, 1, 0),
        "a retry is not a failure"
    );
    c.finish(
        crate::LeaseRef {
            id: a[0],
            attempt: 1,
        },
        completed(),
    )
    .await;
    let b2 = c.claim_one("default").await;
    c.finish(b2.lease(), completed()).await;
    let reports = of_kind(&c, "report").await;
    let wins = of_kind(&c, "celebrate").await;
    assert_eq!((reports.len(), wins.len()), (1, 1));
    assert_eq!(counts_of(&wins[0]).succeeded, 2);
    let s = status(&c, id).await;
    assert_eq!((s.succeeded, s.failed, s.callback_jobs.len()), (2, 0, 2));
}

/// A batch built in three appends fires only after it is sealed, even when
/// every job finished before: sealing a finished batch enqueues the
/// callbacks in the seal itself, once; sealing again changes nothing.
pub async fn batch_fires_only_after_seal(h: &dyn Harness) {
    let c = Ctx::new(h).await;
    let id = c.store.create_batch(callbacks()).await.expect("create");
    for k in ["a", "b", "c"] {
        add(&c, id, vec![job(k)]).await;
        let got = c.claim_one("default").await;
        c.finish(got.lease(), completed()).await;
    }
    let s = status(&c, id).await;
    assert_eq!((s.total, s.succeeded, s.sealed), (3, 3, false));
    assert!(
        of_kind(&c, "report").await.is_empty(),
        "an open batch never fires"
    );
    let s = c.store.seal_batch(id).await.expect("seal");
    assert!(s.sealed && s.is_done());
    assert_eq!(of_kind(&c, "report").await.len(), 1);
    assert_eq!(of_kind(&c, "celebrate").await.len(), 1);
    let again = c.store.seal_batch(id).await.expect("seal again");
    assert_eq!(again, s);
    assert_eq!(of_kind(&c, "report").await.len(), 1);
}

/// An empty batch sealed is done at once; adding to a sealed or unknown
/// batch is refused and writes nothing; invalid callbacks are refused.
pub async fn batch_add_refused_when_sealed_or_unknown(h: &dyn Harness) {
    let c = Ctx::new(h).await;
    let id = c.store.create_batch(callbacks()).await.expect("create");
    let s = c.store.seal_batch(id).await.expect("seal");
    assert!(s.is_done());
    assert_eq!(counts_of(&of_kind(&c, "report").await[0]).total, 0);
    assert!(matches!(
        c.store.add_to_batch(id, vec![job("late")]).await,
        Err(StoreError::Invalid(_))
    ));
    assert!(matches!(
        c.store.add_to_batch(id + 1000, vec![job("late")]).await,
        Err(StoreError::Invalid(_))
    ));
    assert!(matches!(
        c.store.seal_batch(id + 1000).await,
        Err(StoreError::Invalid(_))
    ));
    assert!(c.store.batch(id + 1000).await.expect("read").is_none());
    assert!(of_kind(&c, "late").await.is_empty());
    let bad = NewBatch {
        on_complete: Some(NewJob::new("report", serde_json::json!("text"))),
        on_success: None,
    };
    assert!(matches!(
        c.store.create_batch(bad).await,
        Err(StoreError::Invalid(_))
    ));
    let listed = c.store.list_batches(10).await.expect("list");
    assert_eq!(listed.len(), 1, "the refused batch was not created");
    assert_eq!(listed[0].id, id);
}

/// Jobs cancelled before they ran, cancelled while running, rescued with no
/// attempts left, or deleted before they finished are counted: the batch
/// still completes. A retried failed job is uncounted until it ends again.
pub async fn batch_counts_cancel_rescue_delete_and_retry(h: &dyn Harness) {
    let c = Ctx::new(h).await;
    let id = c.store.create_batch(callbacks()).await.expect("create");
    let ids = add(
        &c,
        id,
        vec![
            job("run").max_attempts(1),
            job("cancel_running"),
            job("lost").max_attempts(1),
            job("cancel"),
            job("delete"),
        ],
    )
    .await;
    c.store.seal_batch(id).await.expect("seal");
    let got = c.claim(&["default"], 3).await;
    assert_eq!(got.len(), 3);
    c.store.cancel(&[ids[3], ids[1]]).await.expect("cancel");
    c.store.delete_jobs(&[ids[4]]).await.expect("delete");
    let s = status(&c, id).await;
    assert_eq!((s.cancelled, s.pending, s.running), (2, 0, 3));
    c.finish(
        got[1].lease(),
        FinishOutcome::Cancelled {
            message: "stopped".into(),
        },
    )
    .await;
    c.finish(got[0].lease(), failed_for_good(&c)).await;
    // The retried job is pending again: the batch is not done.
    c.store.retry(&[ids[0]]).await.expect("retry");
    let s = status(&c, id).await;
    assert_eq!((s.failed, s.pending, s.cancelled), (0, 1, 3));
    let again = c.claim_one("default").await;
    c.finish(again.lease(), completed()).await;
    assert!(of_kind(&c, "report").await.is_empty());
    // The last job's worker dies; the rescue fails it for good.
    c.advance(LEASE.as_secs() + 1);
    let reaped = c.store.reap_expired(10).await.expect("reap");
    assert_eq!(reaped.len(), 1);
    assert_eq!(reaped[0].state, JobState::Failed);
    let reports = of_kind(&c, "report").await;
    assert_eq!(reports.len(), 1);
    assert_eq!(
        counts_of(&reports[0]),
        BatchCounts {
            id,
            total: 5,
            succeeded: 1,
            failed: 1,
            cancelled: 3
        }
    );
    assert!(of_kind(&c, "celebrate").await.is_empty());
}

/// Many concurrent finishes of a batch's last jobs, from separate calls
/// (separate transactions), enqueue the callback exactly once.
pub async fn batch_concurrent_last_finishes_fire_once(h: &dyn Harness) {
    let c = Ctx::new(h).await;
    let id = c.store.create_batch(callbacks()).await.expect("create");
    let jobs: Vec<NewJob> = (0..8).map(|_| job("a")).collect();
    add(&c, id, jobs).await;
    c.store.seal_batch(id).await.expect("seal");
    let got = c
        .store
        .claim(claim_of("w1", &["default"], 8))
        .await
        .expect("claim");
    assert_eq!(got.len(), 8);
    let finishes = got.iter().map(|j| {
        let store = c.store.clone();
        let lease = j.lease();
        async move {
            store
                .finish(vec![crate::Finish {
                    lease,
                    worker: "w1".into(),
                    outcome: completed(),
                }])
                .await
                .expect("finish")
        }
    });
    futures_join_all(finishes).await;
    assert_eq!(of_kind(&c, "report").await.len(), 1);
    assert_eq!(of_kind(&c, "celebrate").await.len(), 1);
    assert_eq!(status(&c, id).await.succeeded, 8);
}

/// Runs the futures concurrently on this task.
async fn futures_join_all<F: std::future::Future>(
    fs: impl IntoIterator<Item = F>,
) -> Vec<F::Output> {
    let mut set = Vec::new();
    for f in fs {
        set.push(Box::pin(f));
    }
    let mut out = Vec::new();
    // tokio::join! needs a fixed count; poll them all together instead.
    let mut pending: Vec<_> = set.into_iter().map(Some).collect();
    let mut results: Vec<Option<F::Output>> = (0..pending.len()).map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut all = true;
        for (i, slot) in pending.iter_mut().enumerate() {
            if let Some(f) = slot {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => {
                        results[i] = Some(v);
                        *slot = None;
                    }
                    std::task::Poll::Pending => all = false,
                }
            }
        }
        if all {
            std::task::Poll::Ready(())
        } else {
            std::task::Poll::Pending
        }
    })
    .await;
    for r in results {
        out.push(r.expect("every future finished"));
    }
    out
}

/// Retrying every failed job (the dead-letter set) uncounts the batch's
/// failed jobs too; when they then succeed, the batch fires on_success.
pub async fn batch_retry_failed_uncounts(h: &dyn Harness) {
    let c = Ctx::new(h).await;
    let id = c.store.create_batch(callbacks()).await.expect("create");
    add(&c, id, vec![job("a").max_attempts(1), job("b")]).await;
    c.store.seal_batch(id).await.expect("seal");
    let a = c.claim_one("default").await;
    c.finish(a.lease(), failed_for_good(&c)).await;
    assert_eq!(status(&c, id).await.failed, 1);
    let r = c
        .store
        .retry_failed(None, None)
        .await
        .expect("retry failed");
    assert_eq!(r.retried, 1);
    let s = status(&c, id).await;
    assert_eq!((s.failed, s.pending), (0, 2));
    for _ in 0..2 {
        let j = c.claim_one("default").await;
        c.finish(j.lease(), completed()).await;
    }
    let s = status(&c, id).await;
    assert!(s.is_done());
    assert_eq!((s.succeeded, s.failed), (2, 0));
    assert_eq!(of_kind(&c, "celebrate").await.len(), 1);
}
