//! `kyu::testing`, the helpers for applications' tests, on every backend:
//! assertions on what was enqueued (and what their failures say), and one
//! job run inline through the real store.

mod common;

use std::time::Duration;

use common::{fresh, on_each_backend, quick, Backend};
use kyu::store::{FinishOutcome, FinishResult};
use kyu::{testing, Job, JobContext, JobError, JobResult, JobState, Kyu, NewJob, Outcome, Worker};
use serde::{Deserialize, Serialize};
use serde_json::json;

on_each_backend!(
    assert_enqueued_finds_the_job_and_a_failure_lists_what_was_enqueued,
    assert_not_enqueued_fails_naming_the_matching_job,
    assert_enqueued_json_matches_a_subset_of_the_args,
    enqueued_lists_the_jobs_not_yet_run_oldest_first,
    work_runs_the_handler_with_a_real_context_and_writes_the_outcome,
    work_job_runs_a_delayed_job_in_a_paused_queue_behind_others,
    work_job_writes_a_retryable_error_as_a_real_worker_does,
    work_job_passes_a_cancel_request_to_the_handler,
    work_job_refuses_what_it_cannot_run_and_changes_nothing,
);

#[derive(Debug, Serialize, Deserialize)]
struct SendEmail {
    to: String,
}

impl Job for SendEmail {
    const KIND: &'static str = "send_email";
    const QUEUE: &'static str = "mail";
    async fn run(self, ctx: JobContext) -> JobResult {
        ctx.set_progress(100, "sent").await;
        if self.to.is_empty() {
            return Err(JobError::permanent("no recipient"));
        }
        Ok(Outcome::Result(json!({ "sent_to": self.to })))
    }
}

/// The panic message of `f`, which must panic.
async fn panic_of(f: impl std::future::Future<Output = ()> + Send + 'static) -> String {
    let err = tokio::spawn(f).await.expect_err("the assertion fails");
    let payload = err.into_panic();
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
        .expect("a text panic")
}

async fn email(kyu: &Kyu, to: &str) -> i64 {
    kyu.enqueue(SendEmail { to: to.into() }).await.unwrap().id
}

async fn assert_enqueued_finds_the_job_and_a_failure_lists_what_was_enqueued(backend: Backend) {
    let (kyu, _dir) = fresh(backend).await;
    let bob = email(&kyu, "bob@example.com").await;
    kyu.enqueue(NewJob::new("resize", json!({ "w": 64 })))
        .await
        .unwrap();
    let job = testing::assert_enqueued::<SendEmail>(&kyu, |e| e.to == "bob@example.com").await;
    assert_eq!((job.id, job.queue.as_str()), (bob, "mail"));

    let k = kyu.clone();
    let message = panic_of(async move {
        testing::assert_enqueued::<SendEmail>(&k, |e| e.to == "ada@example.com").await;
    })
    .await;
    assert!(
        message.starts_with(
            "expected an enqueued \"send_email\" job whose args satisfy the predicate; \
             none of the 2 enqueued jobs does:"
        ),
        "{message}"
    );
    assert!(
        message.contains(&format!(
            "job {bob} queue \"mail\" kind \"send_email\" available args {{\"to\":\"bob@example.com\"}}"
        )),
        "the failure shows what was enqueued: {message}"
    );
    assert!(message.contains("kind \"resize\""), "{message}");

    let (empty, _dir2) = fresh(backend).await;
    let message = panic_of(async move {
        testing::assert_enqueued::<SendEmail>(&empty, |_| true).await;
    })
    .await;
    assert!(message.ends_with("; no job is enqueued"), "{message}");
}

async fn assert_not_enqueued_fails_naming_the_matching_job(backend: Backend) {
    let (kyu, _dir) = fresh(backend).await;
    let ada = email(&kyu, "ada@example.com").await;
    testing::assert_not_enqueued::<SendEmail>(&kyu, |e| e.to == "bob@example.com").await;
    testing::assert_not_enqueued_json(&kyu, "resize", json!({})).await;
    let k = kyu.clone();
    let message = panic_of(async move {
        testing::assert_not_enqueued::<SendEmail>(&k, |e| e.to.starts_with("ada")).await;
    })
    .await;
    assert!(
        message.starts_with(
            "expected no enqueued \"send_email\" job whose args satisfy the predicate; 1 do:"
        ),
        "{message}"
    );
    assert!(message.contains(&format!("job {ada} ")), "{message}");
}

async fn assert_enqueued_json_matches_a_subset_of_the_args(backend: Backend) {
    let (kyu, _dir) = fresh(backend).await;
    let id = kyu
        .enqueue(NewJob::new(
            "sync",
            json!({ "user": 42, "opts": { "full": true, "dry": false }, "ids": [1, 2] }),
        ))
        .await
        .unwrap()
        .id;
    let job =
        testing::assert_enqueued_json(&kyu, "sync", json!({ "opts": { "full": true } })).await;
    assert_eq!(job.id, id);
    testing::assert_enqueued_json(&kyu, "sync", json!({ "user": 42, "ids": [1, 2] })).await;
    testing::assert_not_enqueued_json(&kyu, "sync", json!({ "user": 43 })).await;
    testing::assert_not_enqueued_json(&kyu, "sync", json!({ "ids": [1] })).await;
    testing::assert_not_enqueued_json(&kyu, "other", json!({ "user": 42 })).await;
    let k = kyu.clone();
    let message = panic_of(async move {
        testing::assert_enqueued_json(&k, "sync", json!({ "user": 7 })).await;
    })
    .await;
    assert!(
        message.starts_with(
            "expected an enqueued \"sync\" job whose args contain {\"user\":7}; \
             none of the 1 enqueued jobs does:"
        ),
        "{message}"
    );
    assert!(message.contains("\"user\":42"), "{message}");
}

async fn enqueued_lists_the_jobs_not_yet_run_oldest_first(backend: Backend) {
    let (kyu, _dir) = fresh(backend).await;
    let a = email(&kyu, "a@example.com").await;
    let later = kyu
        .enqueue(
            NewJob::new("report", json!({}))
                .run_at(chrono::Utc::now() + chrono::Duration::hours(1)),
        )
        .await
        .unwrap()
        .id;
    let done = email(&kyu, "done@example.com").await;
    let c = email(&kyu, "c@example.com").await;
    testing::work_job(&Worker::new(&kyu).register::<SendEmail>(), done)
        .await
        .unwrap();
    let ids = |jobs: Vec<kyu::JobRecord>| jobs.iter().map(|j| j.id).collect::<Vec<_>>();
    assert_eq!(
        ids(testing::enqueued(&kyu).await.unwrap()),
        vec![a, later, c],
        "scheduled and available, not the one that ran, oldest first"
    );
    assert_eq!(
        ids(testing::enqueued_of(&kyu, "send_email").await.unwrap()),
        vec![a, c]
    );
    testing::assert_not_enqueued::<SendEmail>(&kyu, |e| e.to == "done@example.com").await;
}

async fn work_runs_the_handler_with_a_real_context_and_writes_the_outcome(backend: Backend) {
    let (kyu, _dir) = fresh(backend).await;
    let worked = testing::work(
        &kyu,
        SendEmail {
            to: "ada@example.com".into(),
        },
    )
    .await
    .unwrap();
    assert_eq!(
        worked.outcome,
        FinishOutcome::Completed {
            result: Some(r#"{"sent_to":"ada@example.com"}"#.into())
        }
    );
    assert_eq!(worked.result, FinishResult::Applied(JobState::Completed));
    let job = worked.job;
    assert_eq!((job.state, job.attempt), (JobState::Completed, 1));
    assert_eq!(job.queue, "mail", "the kind's options applied");
    assert_eq!(
        job.progress.map(|p| (p.percent, p.message)),
        Some((100, "sent".to_string())),
        "the context wrote progress through the store"
    );
    assert_eq!(kyu.job(job.id).await.unwrap().state, JobState::Completed);

    let failed = testing::work(&kyu, SendEmail { to: String::new() })
        .await
        .unwrap();
    assert_eq!(failed.job.state, JobState::Failed, "a permanent error");
    assert_eq!(failed.job.errors[0].message, "no recipient");
}

async fn work_job_runs_a_delayed_job_in_a_paused_queue_behind_others(backend: Backend) {
    let (kyu, _dir) = fresh(backend).await;
    let first = kyu
        .enqueue(NewJob::new("x", json!({})).queue("q").priority(-10))
        .await
        .unwrap()
        .id;
    let chosen = kyu
        .enqueue(
            NewJob::new("x", json!({ "n": 2 }))
                .queue("q")
                .run_at(chrono::Utc::now() + chrono::Duration::days(1)),
        )
        .await
        .unwrap()
        .id;
    kyu.pause("q").await.unwrap();
    let worker = Worker::new(&kyu)
        .handle("x", |ctx| async move {
            Ok(Outcome::Result(
                json!({ "id": ctx.id(), "args": ctx.args(), "q": ctx.queue() }),
            ))
        })
        .configure(|c| c.id = "test-worker".into());
    let worked = testing::work_job(&worker, chosen).await.unwrap();
    assert_eq!(worked.job.state, JobState::Completed);
    assert_eq!(worked.job.worker.as_deref(), Some("test-worker"));
    assert_eq!(
        worked.job.result,
        Some(json!({ "id": chosen, "args": "{\"n\":2}", "q": "q" }).to_string())
    );
    let untouched = kyu.job(first).await.unwrap();
    assert_eq!(
        (untouched.state, untouched.attempt),
        (JobState::Available, 0)
    );
}

async fn work_job_writes_a_retryable_error_as_a_real_worker_does(backend: Backend) {
    let (kyu, _dir) = fresh(backend).await;
    let id = kyu
        .enqueue(
            NewJob::new("flaky", json!({}))
                .max_attempts(2)
                .retry(kyu::RetryPolicy::fixed(Duration::from_secs(60))),
        )
        .await
        .unwrap()
        .id;
    let worker = Worker::new(&kyu).handle("flaky", |ctx| async move {
        Err(JobError::retryable(format!("boom {}", ctx.attempt())))
    });
    let first = testing::work_job(&worker, id).await.unwrap();
    assert!(
        matches!(&first.outcome, FinishOutcome::Errored { message, permanent: false, .. } if message == "boom 1"),
        "{:?}",
        first.outcome
    );
    assert_eq!(first.result, FinishResult::Applied(JobState::Scheduled));
    assert_eq!(first.job.errors[0].message, "boom 1");
    // The retry waits a minute; work_job runs it now, whatever its run_at.
    let second = testing::work_job(&worker, id).await.unwrap();
    assert_eq!(
        (second.job.state, second.job.attempt),
        (JobState::Failed, 2)
    );
}

async fn work_job_passes_a_cancel_request_to_the_handler(backend: Backend) {
    let (kyu, _dir) = fresh(backend).await;
    let id = kyu
        .enqueue(NewJob::new("long", json!({})))
        .await
        .unwrap()
        .id;
    let (started_tx, started) = tokio::sync::oneshot::channel::<()>();
    let started_tx = std::sync::Mutex::new(Some(started_tx));
    let worker = Worker::new(&kyu)
        .handle("long", move |ctx| {
            let tx = started_tx.lock().unwrap().take();
            async move {
                if let Some(tx) = tx {
                    let _ = tx.send(());
                }
                ctx.cancelled().await;
                Err(JobError::retryable("stopped on request"))
            }
        })
        .configure(quick);
    let k = kyu.clone();
    let canceller = tokio::spawn(async move {
        started.await.expect("the handler starts");
        k.cancel(&[id]).await.unwrap()
    });
    let worked = tokio::time::timeout(Duration::from_secs(20), testing::work_job(&worker, id))
        .await
        .expect("the handler saw the cancel")
        .unwrap();
    assert_eq!(canceller.await.unwrap(), vec![kyu::CancelResult::Requested]);
    assert_eq!(worked.job.state, JobState::Cancelled);
}

async fn work_job_refuses_what_it_cannot_run_and_changes_nothing(backend: Backend) {
    let (kyu, _dir) = fresh(backend).await;
    let worker = Worker::new(&kyu).register::<SendEmail>();
    let other = kyu
        .enqueue(NewJob::new("resize", json!({})))
        .await
        .unwrap()
        .id;
    match testing::work_job(&worker, other).await {
        Err(kyu::Error::Invalid(e)) => {
            assert_eq!(e.field, "kind");
            assert!(e.problem.contains("\"resize\""), "{e}");
            assert!(e.problem.contains("[\"send_email\"]"), "{e}");
        }
        other => panic!("expected an invalid-input error, got {other:?}"),
    }
    let job = kyu.job(other).await.unwrap();
    assert_eq!((job.state, job.attempt), (JobState::Available, 0));

    let done = testing::work(&kyu, SendEmail { to: "a@b.c".into() })
        .await
        .unwrap()
        .job
        .id;
    match testing::work_job(&worker, done).await {
        Err(e @ kyu::Error::NotRunnable { .. }) => assert_eq!(
            e.to_string(),
            format!("job {done} is completed; accepted: a scheduled or available job")
        ),
        other => panic!("expected not runnable, got {other:?}"),
    }
    assert!(matches!(
        testing::work_job(&worker, 999_999).await,
        Err(kyu::Error::NotFound(999_999))
    ));
}
