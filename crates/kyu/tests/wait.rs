//! `kyu.wait(id)`: one form, with an optional deadline, so a wait on a job
//! nobody runs need not hang.

mod common;

use std::time::Duration;

use common::{fresh, on_each_backend, quick, Backend};
use kyu::{Error, JobState, NewJob, Outcome, Worker};

on_each_backend!(
    wait_with_a_deadline_gives_up_naming_the_job,
    wait_without_a_deadline_returns_the_finished_job
);

async fn wait_with_a_deadline_gives_up_naming_the_job(backend: Backend) {
    let (kyu, _dir) = fresh(backend).await;
    // No worker runs "nobody": without a deadline this wait would never end.
    let job = kyu
        .enqueue(NewJob::new("nobody", serde_json::json!({})))
        .await
        .unwrap();
    let err = kyu
        .wait(job.id)
        .timeout(Duration::from_millis(100))
        .await
        .expect_err("a job nobody runs does not finish");
    match &err {
        Error::WaitTimedOut { id, waited } => {
            assert_eq!(*id, job.id);
            assert_eq!(*waited, Duration::from_millis(100));
        }
        other => panic!("expected WaitTimedOut, got {other:?}"),
    }
    assert_eq!(
        err.to_string(),
        format!("job {} did not finish within 100ms", job.id)
    );
    assert_eq!(kyu.job(job.id).await.unwrap().state, JobState::Available);
}

async fn wait_without_a_deadline_returns_the_finished_job(backend: Backend) {
    let (kyu, _dir) = fresh(backend).await;
    let worker = Worker::new(&kyu)
        .handle("t", |_ctx| async { Ok(Outcome::Done) })
        .configure(quick)
        .start();
    let job = kyu
        .enqueue(NewJob::new("t", serde_json::json!({})))
        .await
        .unwrap();
    // The main form: a future with no deadline (bounded here by the test).
    let done = tokio::time::timeout(Duration::from_secs(20), kyu.wait(job.id))
        .await
        .expect("the job finishes")
        .unwrap();
    assert_eq!(done.state, JobState::Completed);
    worker.shutdown().await;
}
