//! Retryable and permanent errors, backoff, and the dead-letter set.
//!
//! A flaky call is retried with exponential backoff until it succeeds; a
//! business error fails at once and waits in `failed` until retried by hand.

use std::time::Duration;

use kyu::{JobError, JobState, Kyu, NewJob, Outcome, RetryPolicy, Worker};

#[tokio::main]
async fn main() -> Result<(), kyu::Error> {
    // In memory, so the example leaves nothing behind; an application names
    // a file ("sqlite://kyu.db") or a PostgreSQL database ("postgres://…").
    let kyu = Kyu::connect("sqlite::memory:").await?;

    let worker = Worker::new(&kyu)
        .handle("call_api", |ctx| async move {
            if ctx.attempt() < 3 {
                // e.g. a timeout talking to GitHub: worth another try
                return Err(JobError::retryable("connection reset"));
            }
            Ok(Outcome::Done)
        })
        .handle("charge", |_ctx| async move {
            // retrying cannot fix a declined card
            Err(JobError::permanent("card declined"))
        })
        .start();

    let backoff = RetryPolicy::exponential(Duration::from_millis(20), Duration::from_millis(200));
    let flaky = kyu
        .enqueue(NewJob::new("call_api", serde_json::json!({})).retry(backoff))
        .await?;
    let charge = kyu
        .enqueue(NewJob::new("charge", serde_json::json!({"cents": 500})))
        .await?;

    let flaky = kyu.wait(flaky.id).timeout(Duration::from_secs(10)).await?;
    println!("call_api: {} after {} attempts", flaky.state, flaky.attempt);
    for e in &flaky.errors {
        println!("  attempt {}: {}", e.attempt, e.message);
    }
    assert_eq!(flaky.state, JobState::Completed);
    assert_eq!(flaky.errors.len(), 2);

    let charge = kyu.wait(charge.id).timeout(Duration::from_secs(10)).await?;
    println!("charge: {} ({})", charge.state, charge.errors[0].message);
    assert_eq!((charge.state, charge.attempt), (JobState::Failed, 1));

    // The dead-letter set: failed jobs, listed and retried in bulk.
    let failed = kyu
        .list(&kyu::JobFilter {
            states: vec![JobState::Failed],
            ..Default::default()
        })
        .await?;
    println!("{} job(s) in the dead-letter set", failed.jobs.len());
    assert_eq!(failed.jobs.len(), 1);

    worker.shutdown().await;
    Ok(())
}
