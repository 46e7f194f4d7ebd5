//! The worker runtime on real stores (SQLite, and PostgreSQL when
//! `KYU_TEST_POSTGRES_URL` is set): every way a handler can end,
//! cancellation, shutdown, queues and concurrency.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{eventually, fresh, on_each_backend, quick, Backend};
use kyu::{
    CancelResult, Job, JobContext, JobError, JobResult, JobState, NewJob, Outcome, RetryPolicy,
    Worker,
};
use serde::{Deserialize, Serialize};

on_each_backend!(
    typed_job_completes_with_its_result_and_progress,
    retryable_errors_retry_until_success_and_each_error_is_kept,
    exhausted_attempts_fail_the_job,
    permanent_error_fails_at_once,
    a_panic_fails_the_attempt_and_the_worker_lives_on,
    a_timeout_fails_the_attempt_with_timed_out_after,
    snooze_runs_again_without_using_an_attempt,
    cancelling_a_running_job_signals_its_handler,
    a_handler_that_ignores_cancel_is_stopped_after_the_grace,
    a_cancelled_waiting_job_never_runs,
    shutdown_releases_running_jobs_to_another_worker_at_once,
    shutdown_lets_short_jobs_finish_within_the_grace,
    concurrency_per_queue_is_respected,
    a_paused_queue_starts_nothing_until_resumed,
    priority_decides_the_order,
    a_delayed_job_waits_for_its_time,
    unique_key_returns_the_first_job,
    bad_input_is_refused_and_changes_nothing,
    a_worker_that_opts_in_fails_unknown_kinds_with_a_clear_error,
    a_worker_never_claims_kinds_it_has_no_handler_for,
    retry_by_hand_runs_a_failed_job_again,
    prefetched_jobs_wait_their_turn_can_be_cancelled_and_are_released_unstarted,
);

const WAIT: Duration = Duration::from_secs(20);

#[derive(Serialize, Deserialize)]
struct Add {
    a: i64,
    b: i64,
}

impl Job for Add {
    const KIND: &'static str = "add";
    const QUEUE: &'static str = "math";
    async fn run(self, ctx: JobContext) -> JobResult {
        ctx.set_progress(100, "added").await;
        Ok(Outcome::Result(
            serde_json::json!({ "sum": self.a + self.b }),
        ))
    }
}

fn fast_retry(job: NewJob) -> NewJob {
    job.retry(RetryPolicy::fixed(Duration::from_millis(10)))
}

async fn typed_job_completes_with_its_result_and_progress(backend: Backend) {
    let (kyu, _dir) = fresh(backend).await;
    let worker = Worker::new(&kyu)
        .register::<Add>()
        .queue("math", 2)
        .configure(quick)
        .start();
    let e = kyu.enqueue(Add { a: 2, b: 3 }).await.unwrap();
    let job = kyu.wait(e.id).timeout(WAIT).await.unwrap();
    assert_eq!(job.state, JobState::Completed);
    assert_eq!(job.queue, "math", "the kind's default options apply");
    assert_eq!(job.result.as_deref(), Some(r#"{"sum":5}"#));
    assert_eq!(job.progress.unwrap().percent, 100);
    assert_eq!(job.attempt, 1);
    assert!(job.finished_at.is_some());
    worker.shutdown().await;
}

async fn retryable_errors_retry_until_success_and_each_error_is_kept(backend: Backend) {
    let (kyu, _dir) = fresh(backend).await;
    let worker = Worker::new(&kyu)
        .handle("flaky", |ctx| async move {
            if ctx.attempt() < 3 {
                return Err(JobError::retryable(format!("boom {}", ctx.attempt())));
            }
            Ok(Outcome::Done)
        })
        .configure(quick)
        .start();
    let e = kyu
        .enqueue(fast_retry(NewJob::new("flaky", serde_json::json!({}))))
        .await
        .unwrap();
    let job = kyu.wait(e.id).timeout(WAIT).await.unwrap();
    assert_eq!(job.state, JobState::Completed);
    assert_eq!(job.attempt, 3);
    let messages: Vec<_> = job.errors.iter().map(|e| e.message.as_str()).collect();
    assert_eq!(messages, vec!["boom 1", "boom 2"]);
    assert_eq!(job.errors[1].attempt, 2);
    assert_eq!(job.errors[0].worker, worker.id());
    worker.shutdown().await;
}

async fn exhausted_attempts_fail_the_job(backend: Backend) {
    let (kyu, _dir) = fresh(backend).await;
    let worker = Worker::new(&kyu)
        .handle("broken", |_| async { Err(JobError::retryable("always")) })
        .configure(quick)
        .start();
    let e = kyu
        .enqueue(fast_retry(NewJob::new("broken", serde_json::json!({}))).max_attempts(3))
        .await
        .unwrap();
    let job = kyu.wait(e.id).timeout(WAIT).await.unwrap();
    assert_eq!(job.state, JobState::Failed);
    assert_eq!(job.attempt, 3);
    assert_eq!(job.errors.len(), 3);
    worker.shutdown().await;
}

async fn permanent_error_fails_at_once(backend: Backend) {
    let (kyu, _dir) = fresh(backend).await;
    let worker = Worker::new(&kyu)
        .handle("business", |_| async {
            Err(JobError::permanent("card declined"))
        })
        .configure(quick)
        .start();
    let e = kyu
        .enqueue(NewJob::new("business", serde_json::json!({})).max_attempts(5))
        .await
        .unwrap();
    let job = kyu.wait(e.id).timeout(WAIT).await.unwrap();
    assert_eq!(job.state, JobState::Failed);
    assert_eq!(job.attempt, 1, "no retry after a permanent error");
    assert_eq!(job.errors[0].message, "card declined");
    worker.shutdown().await;
}

async fn a_panic_fails_the_attempt_and_the_worker_lives_on(backend: Backend) {
    let (kyu, _dir) = fresh(backend).await;
    let worker = Worker::new(&kyu)
        .handle("panics", |_| async { panic!("index out of bounds") })
        .handle("fine", |_| async { Ok(Outcome::Done) })
        .queue("default", 1)
        .configure(quick)
        .start();
    let bad = kyu
        .enqueue(NewJob::new("panics", serde_json::json!({})).max_attempts(1))
        .await
        .unwrap();
    let job = kyu.wait(bad.id).timeout(WAIT).await.unwrap();
    assert_eq!(job.state, JobState::Failed);
    assert!(
        job.errors[0]
            .message
            .contains("panicked: index out of bounds"),
        "{:?}",
        job.errors
    );
    let good = kyu
        .enqueue(NewJob::new("fine", serde_json::json!({})))
        .await
        .unwrap();
    assert_eq!(
        kyu.wait(good.id).timeout(WAIT).await.unwrap().state,
        JobState::Completed
    );
    worker.shutdown().await;
}

async fn a_timeout_fails_the_attempt_with_timed_out_after(backend: Backend) {
    let (kyu, _dir) = fresh(backend).await;
    let worker = Worker::new(&kyu)
        .handle("slow", |_| async {
            tokio::time::sleep(Duration::from_secs(60)).await;
            Ok(Outcome::Done)
        })
        .configure(quick)
        .start();
    let e = kyu
        .enqueue(
            NewJob::new("slow", serde_json::json!({}))
                .timeout(Duration::from_millis(100))
                .max_attempts(1),
        )
        .await
        .unwrap();
    let job = kyu.wait(e.id).timeout(WAIT).await.unwrap();
    assert_eq!(job.state, JobState::Failed);
    assert_eq!(job.errors[0].message, "timed out after 100ms");
    worker.shutdown().await;
}

async fn snooze_runs_again_without_using_an_attempt(backend: Backend) {
    let (kyu, _dir) = fresh(backend).await;
    let runs = Arc::new(AtomicUsize::new(0));
    let r = runs.clone();
    let worker = Worker::new(&kyu)
        .handle("later", move |ctx| {
            let r = r.clone();
            async move {
                if r.fetch_add(1, Ordering::SeqCst) < 2 {
                    return Ok(Outcome::Snooze(Duration::from_millis(20)));
                }
                assert_eq!(ctx.attempt(), 1, "snoozes do not use attempts");
                Ok(Outcome::Done)
            }
        })
        .configure(quick)
        .start();
    let e = kyu
        .enqueue(NewJob::new("later", serde_json::json!({})).max_attempts(1))
        .await
        .unwrap();
    let job = kyu.wait(e.id).timeout(WAIT).await.unwrap();
    assert_eq!(job.state, JobState::Completed);
    assert_eq!(runs.load(Ordering::SeqCst), 3);
    assert_eq!(job.attempt, 1);
    worker.shutdown().await;
}

async fn cancelling_a_running_job_signals_its_handler(backend: Backend) {
    let (kyu, _dir) = fresh(backend).await;
    let started = Arc::new(tokio::sync::Notify::new());
    let s = started.clone();
    let worker = Worker::new(&kyu)
        .handle("long", move |ctx| {
            let s = s.clone();
            async move {
                s.notify_one();
                ctx.cancelled().await;
                Err(JobError::retryable("stopped on request"))
            }
        })
        .configure(quick)
        .start();
    let e = kyu
        .enqueue(NewJob::new("long", serde_json::json!({})))
        .await
        .unwrap();
    tokio::time::timeout(WAIT, started.notified())
        .await
        .unwrap();
    assert_eq!(
        kyu.cancel(&[e.id]).await.unwrap(),
        vec![CancelResult::Requested]
    );
    let job = kyu.wait(e.id).timeout(WAIT).await.unwrap();
    assert_eq!(job.state, JobState::Cancelled);
    worker.shutdown().await;
}

async fn a_handler_that_ignores_cancel_is_stopped_after_the_grace(backend: Backend) {
    let (kyu, _dir) = fresh(backend).await;
    let started = Arc::new(tokio::sync::Notify::new());
    let s = started.clone();
    let worker = Worker::new(&kyu)
        .handle("stubborn", move |_| {
            let s = s.clone();
            async move {
                s.notify_one();
                tokio::time::sleep(Duration::from_secs(3600)).await;
                Ok(Outcome::Done)
            }
        })
        .configure(quick)
        .start();
    let e = kyu
        .enqueue(NewJob::new("stubborn", serde_json::json!({})))
        .await
        .unwrap();
    tokio::time::timeout(WAIT, started.notified())
        .await
        .unwrap();
    kyu.cancel(&[e.id]).await.unwrap();
    let job = kyu.wait(e.id).timeout(WAIT).await.unwrap();
    assert_eq!(job.state, JobState::Cancelled);
    worker.shutdown().await;
}

async fn a_cancelled_waiting_job_never_runs(backend: Backend) {
    let (kyu, _dir) = fresh(backend).await;
    let runs = Arc::new(AtomicUsize::new(0));
    let e = kyu
        .enqueue(NewJob::new("count", serde_json::json!({})))
        .await
        .unwrap();
    assert_eq!(
        kyu.cancel(&[e.id]).await.unwrap(),
        vec![CancelResult::Cancelled]
    );
    let r = runs.clone();
    let worker = Worker::new(&kyu)
        .handle("count", move |_| {
            let r = r.clone();
            async move {
                r.fetch_add(1, Ordering::SeqCst);
                Ok(Outcome::Done)
            }
        })
        .configure(quick)
        .start();
    // A job enqueued after it does run: proof the worker was working.
    let later = kyu
        .enqueue(NewJob::new("count", serde_json::json!({})))
        .await
        .unwrap();
    kyu.wait(later.id).timeout(WAIT).await.unwrap();
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    assert_eq!(kyu.job(e.id).await.unwrap().state, JobState::Cancelled);
    worker.shutdown().await;
}

async fn shutdown_releases_running_jobs_to_another_worker_at_once(backend: Backend) {
    let (kyu, _dir) = fresh(backend).await;
    let started = Arc::new(tokio::sync::Notify::new());
    let s = started.clone();
    let first = Worker::new(&kyu)
        .handle("work", move |_| {
            let s = s.clone();
            async move {
                s.notify_one();
                tokio::time::sleep(Duration::from_secs(3600)).await;
                Ok(Outcome::Done)
            }
        })
        .configure(quick)
        .start();
    let e = kyu
        .enqueue(NewJob::new("work", serde_json::json!({})))
        .await
        .unwrap();
    tokio::time::timeout(WAIT, started.notified())
        .await
        .unwrap();
    first.shutdown().await;
    let released = kyu.job(e.id).await.unwrap();
    assert_eq!(released.state, JobState::Available);
    assert_eq!(
        released.attempt, 0,
        "the interrupted attempt is not counted"
    );
    assert!(
        released.errors[0].message.contains("shut down"),
        "{:?}",
        released.errors
    );

    let second = Worker::new(&kyu)
        .handle("work", |_| async { Ok(Outcome::Done) })
        .configure(quick)
        .start();
    let job = kyu.wait(e.id).timeout(WAIT).await.unwrap();
    assert_eq!(job.state, JobState::Completed);
    second.shutdown().await;
}

async fn shutdown_lets_short_jobs_finish_within_the_grace(backend: Backend) {
    let (kyu, _dir) = fresh(backend).await;
    let started = Arc::new(tokio::sync::Notify::new());
    let s = started.clone();
    let worker = Worker::new(&kyu)
        .handle("short", move |_| {
            let s = s.clone();
            async move {
                s.notify_one();
                tokio::time::sleep(Duration::from_millis(150)).await;
                Ok(Outcome::Done)
            }
        })
        .configure(|c| {
            quick(c);
            c.shutdown_grace = Duration::from_secs(10);
        })
        .start();
    let e = kyu
        .enqueue(NewJob::new("short", serde_json::json!({})))
        .await
        .unwrap();
    tokio::time::timeout(WAIT, started.notified())
        .await
        .unwrap();
    worker.shutdown().await;
    assert_eq!(kyu.job(e.id).await.unwrap().state, JobState::Completed);
}

async fn concurrency_per_queue_is_respected(backend: Backend) {
    let (kyu, _dir) = fresh(backend).await;
    let now = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let (n, p) = (now.clone(), peak.clone());
    let worker = Worker::new(&kyu)
        .handle("busy", move |_| {
            let (n, p) = (n.clone(), p.clone());
            async move {
                let c = n.fetch_add(1, Ordering::SeqCst) + 1;
                p.fetch_max(c, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(20)).await;
                n.fetch_sub(1, Ordering::SeqCst);
                Ok(Outcome::Done)
            }
        })
        .queue("default", 3)
        .configure(quick)
        .start();
    let jobs = (0..30)
        .map(|i| NewJob::new("busy", serde_json::json!({ "i": i })))
        .collect();
    let ids = kyu.enqueue_many(jobs).await.unwrap();
    for e in ids {
        kyu.wait(e.id).timeout(WAIT).await.unwrap();
    }
    assert_eq!(peak.load(Ordering::SeqCst), 3);
    worker.shutdown().await;
}

async fn a_paused_queue_starts_nothing_until_resumed(backend: Backend) {
    let (kyu, _dir) = fresh(backend).await;
    kyu.pause("default").await.unwrap();
    let worker = Worker::new(&kyu)
        .handle("x", |_| async { Ok(Outcome::Done) })
        .configure(quick)
        .start();
    let e = kyu
        .enqueue(NewJob::new("x", serde_json::json!({})))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(kyu.job(e.id).await.unwrap().state, JobState::Available);
    kyu.resume("default").await.unwrap();
    assert_eq!(
        kyu.wait(e.id).timeout(WAIT).await.unwrap().state,
        JobState::Completed
    );
    worker.shutdown().await;
}

async fn priority_decides_the_order(backend: Backend) {
    let (kyu, _dir) = fresh(backend).await;
    let order = Arc::new(std::sync::Mutex::new(Vec::new()));
    let jobs = [5, -1, 3, 0]
        .iter()
        .map(|p| NewJob::new("p", serde_json::json!({ "p": p })).priority(*p))
        .collect();
    let ids = kyu.enqueue_many(jobs).await.unwrap();
    let o = order.clone();
    let worker = Worker::new(&kyu)
        .handle("p", move |ctx| {
            let o = o.clone();
            async move {
                let v: serde_json::Value = ctx.args_as()?;
                o.lock().unwrap().push(v["p"].as_i64().unwrap());
                Ok(Outcome::Done)
            }
        })
        .queue("default", 1)
        .configure(quick)
        .start();
    for e in ids {
        kyu.wait(e.id).timeout(WAIT).await.unwrap();
    }
    assert_eq!(*order.lock().unwrap(), vec![-1, 0, 3, 5]);
    worker.shutdown().await;
}

async fn a_delayed_job_waits_for_its_time(backend: Backend) {
    let (kyu, _dir) = fresh(backend).await;
    let worker = Worker::new(&kyu)
        .handle("d", |_| async { Ok(Outcome::Done) })
        .configure(quick)
        .start();
    let at = chrono::Utc::now() + chrono::Duration::milliseconds(1000);
    let e = kyu
        .enqueue(NewJob::new("d", serde_json::json!({})).run_at(at))
        .await
        .unwrap();
    let state = kyu.job(e.id).await.unwrap().state;
    // On a loaded machine the read may come after run_at; only before it
    // must the job still be waiting.
    if chrono::Utc::now() < at {
        assert_eq!(state, JobState::Scheduled);
    }
    let job = kyu.wait(e.id).timeout(WAIT).await.unwrap();
    assert_eq!(job.state, JobState::Completed);
    assert!(job.attempted_at.unwrap() >= at, "ran before its run_at");
    worker.shutdown().await;
}

async fn unique_key_returns_the_first_job(backend: Backend) {
    let (kyu, _dir) = fresh(backend).await;
    let a = kyu
        .enqueue(NewJob::new("u", serde_json::json!({})).unique_key("k"))
        .await
        .unwrap();
    let b = kyu
        .enqueue(NewJob::new("u", serde_json::json!({"other": 1})).unique_key("k"))
        .await
        .unwrap();
    assert!(!a.duplicate);
    assert!(b.duplicate);
    assert_eq!(a.id, b.id);
}

async fn bad_input_is_refused_and_changes_nothing(backend: Backend) {
    let (kyu, _dir) = fresh(backend).await;
    let jobs = vec![
        NewJob::new("ok", serde_json::json!({})),
        NewJob::from_json_text("ok", "{not json"),
    ];
    let err = kyu.enqueue_many(jobs).await.unwrap_err();
    assert!(
        err.to_string().contains("jobs[1].args"),
        "the error names the bad job and field: {err}"
    );
    assert!(
        kyu.queues().await.unwrap().is_empty(),
        "nothing was written"
    );
    let err = kyu
        .with_limits(kyu::Limits { max_args_bytes: 10 })
        .enqueue(NewJob::new("big", serde_json::json!({"x": "0123456789"})))
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("over the limit of 10 bytes"),
        "{err}"
    );
}

/// River's behaviour, opted in: the worker claims every kind and fails the
/// attempts of kinds it has no handler for, with a clear error.
async fn a_worker_that_opts_in_fails_unknown_kinds_with_a_clear_error(backend: Backend) {
    let (kyu, _dir) = fresh(backend).await;
    let worker = Worker::new(&kyu)
        .handle("known", |_| async { Ok(Outcome::Done) })
        .configure(|c| {
            quick(c);
            c.fail_unknown_kinds = true;
        })
        .start();
    let e = kyu
        .enqueue(NewJob::new("unknown", serde_json::json!({})).max_attempts(1))
        .await
        .unwrap();
    let job = kyu.wait(e.id).timeout(WAIT).await.unwrap();
    assert_eq!(job.state, JobState::Failed);
    assert!(
        job.errors[0]
            .message
            .contains("no handler registered for kind \"unknown\""),
        "{:?}",
        job.errors
    );
    worker.shutdown().await;
}

/// A job is never failed because the worker that took it lacks its handler:
/// a worker claims only the kinds it can run. Kind B waits, attempt 0, while
/// the worker runs kind A jobs queued behind it on the same queue.
async fn a_worker_never_claims_kinds_it_has_no_handler_for(backend: Backend) {
    let (kyu, _dir) = fresh(backend).await;
    let b = kyu
        .enqueue(NewJob::new("b", serde_json::json!({})).priority(-1))
        .await
        .unwrap();
    let worker = Worker::new(&kyu)
        .handle("a", |_| async { Ok(Outcome::Done) })
        .configure(quick)
        .start();
    for _ in 0..3 {
        let a = kyu
            .enqueue(NewJob::new("a", serde_json::json!({})))
            .await
            .unwrap();
        let done = kyu.wait(a.id).timeout(WAIT).await.unwrap();
        assert_eq!(done.state, JobState::Completed);
        // A few idle polls (50 ms each) with B first in line.
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let job = kyu.job(b.id).await.unwrap();
    assert_eq!(
        (job.state, job.attempt),
        (JobState::Available, 0),
        "never claimed: {:?}",
        job.errors
    );
    let live = kyu.store().live_workers().await.unwrap();
    assert_eq!(live.len(), 1, "the worker is registered: {live:?}");
    assert_eq!(live[0].info.kinds, Some(vec!["a".to_string()]));
    assert_eq!(
        kyu.unhandled().await.unwrap(),
        vec![kyu::WaitingKind {
            queue: "default".into(),
            kind: "b".into(),
            count: 1
        }]
    );
    worker.shutdown().await;
    assert!(
        kyu.store().live_workers().await.unwrap().is_empty(),
        "a worker that shut down is no longer registered"
    );
}

async fn retry_by_hand_runs_a_failed_job_again(backend: Backend) {
    let (kyu, _dir) = fresh(backend).await;
    let fail = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let f = fail.clone();
    let worker = Worker::new(&kyu)
        .handle("fix_me", move |_| {
            let f = f.clone();
            async move {
                if f.load(Ordering::SeqCst) {
                    Err(JobError::permanent("bad config"))
                } else {
                    Ok(Outcome::Done)
                }
            }
        })
        .configure(quick)
        .start();
    let e = kyu
        .enqueue(NewJob::new("fix_me", serde_json::json!({})))
        .await
        .unwrap();
    assert_eq!(
        kyu.wait(e.id).timeout(WAIT).await.unwrap().state,
        JobState::Failed
    );
    fail.store(false, Ordering::SeqCst);
    assert_eq!(
        kyu.retry_failed(None, Some("fix_me"))
            .await
            .unwrap()
            .retried,
        1
    );
    eventually(WAIT, "the retried job completes", || async {
        kyu.job(e.id).await.unwrap().state == JobState::Completed
    })
    .await;
    worker.shutdown().await;
}

async fn prefetched_jobs_wait_their_turn_can_be_cancelled_and_are_released_unstarted(
    backend: Backend,
) {
    let (kyu, _dir) = fresh(backend).await;
    let started = Arc::new(tokio::sync::Notify::new());
    let runs = Arc::new(AtomicUsize::new(0));
    let (s, r) = (started.clone(), runs.clone());
    let worker = Worker::new(&kyu)
        .handle("long", move |_| {
            let (s, r) = (s.clone(), r.clone());
            async move {
                r.fetch_add(1, Ordering::SeqCst);
                s.notify_one();
                tokio::time::sleep(Duration::from_secs(3600)).await;
                Ok(Outcome::Done)
            }
        })
        .queue("default", 1)
        .configure(|c| {
            quick(c);
            c.prefetch = kyu::Prefetch::Fixed(2);
        })
        .start();
    let ids: Vec<i64> = kyu
        .enqueue_many(
            (0..3)
                .map(|_| NewJob::new("long", serde_json::json!({})))
                .collect(),
        )
        .await
        .unwrap()
        .iter()
        .map(|e| e.id)
        .collect();
    tokio::time::timeout(WAIT, started.notified())
        .await
        .unwrap();
    // One runs; the other two are held by this worker, leased.
    eventually(WAIT, "all three are claimed", || async {
        let page = kyu
            .list(&kyu::JobFilter {
                states: vec![JobState::Running],
                ..Default::default()
            })
            .await
            .unwrap();
        page.jobs.len() == 3
    })
    .await;
    assert_eq!(
        runs.load(Ordering::SeqCst),
        1,
        "concurrency 1: one handler at a time"
    );

    // A held job cancelled before it starts never runs.
    kyu.cancel(&[ids[2]]).await.unwrap();
    let job = kyu.wait(ids[2]).timeout(WAIT).await.unwrap();
    assert_eq!(job.state, JobState::Cancelled);

    // Shutdown releases the running one after the grace, and the held one at once.
    worker.shutdown().await;
    for id in &ids[..2] {
        let job = kyu.job(*id).await.unwrap();
        assert_eq!(job.state, JobState::Available, "job {id}");
        assert_eq!(job.attempt, 0, "job {id}: the attempt is not counted");
    }
    assert_eq!(runs.load(Ordering::SeqCst), 1, "the held job never started");
    // The started one's interruption is recorded; the held one, which never
    // started, is released silently, and its cancelled neighbour has no
    // attempt counted either.
    assert_eq!(kyu.job(ids[0]).await.unwrap().errors.len(), 1);
    let held = kyu.job(ids[1]).await.unwrap();
    assert!(held.errors.is_empty(), "{:?}", held.errors);
    let cancelled = kyu.job(ids[2]).await.unwrap();
    assert_eq!(
        cancelled.attempt, 1,
        "a cancel before the start is recorded"
    );
}
