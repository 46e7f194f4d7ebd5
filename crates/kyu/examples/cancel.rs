//! Cancelling jobs: a waiting job never runs; a running job's handler sees the
//! signal and the job ends `cancelled`.

use std::time::Duration;

use kyu::{CancelResult, JobError, JobState, Kyu, NewJob, Outcome, Worker};

#[tokio::main]
async fn main() -> Result<(), kyu::Error> {
    // In memory, so the example leaves nothing behind; an application names
    // a file ("sqlite://kyu.db") or a PostgreSQL database ("postgres://…").
    let kyu = Kyu::connect("sqlite::memory:").await?;

    // A job scheduled for later, cancelled before it runs.
    let later = kyu
        .enqueue(
            NewJob::new("export", serde_json::json!({}))
                .run_at(chrono::Utc::now() + chrono::Duration::hours(1)),
        )
        .await?;
    assert_eq!(
        kyu.cancel(&[later.id]).await?,
        vec![CancelResult::Cancelled]
    );

    // A long job that checks for cancellation between steps.
    let worker = Worker::new(&kyu)
        .handle("export", |ctx| async move {
            for step in 1..=100 {
                tokio::select! {
                    _ = ctx.cancelled() => return Err(JobError::retryable(format!("stopped at step {step}"))),
                    _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                }
                ctx.set_progress(step, format!("step {step} of 100")).await;
            }
            Ok(Outcome::Done)
        })
        .configure(|c| c.cancel_poll = Duration::from_millis(100))
        .start();
    let running = kyu
        .enqueue(NewJob::new("export", serde_json::json!({})))
        .await?;
    while kyu.job(running.id).await?.state != JobState::Running {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        kyu.cancel(&[running.id]).await?,
        vec![CancelResult::Requested]
    );
    let job = kyu
        .wait(running.id)
        .timeout(Duration::from_secs(10))
        .await?;
    println!(
        "job {}: {} ({:?})",
        job.id,
        job.state,
        job.errors.last().map(|e| &e.message)
    );
    assert_eq!(job.state, JobState::Cancelled);
    assert_eq!(kyu.job(later.id).await?.state, JobState::Cancelled);

    worker.shutdown().await;
    Ok(())
}
