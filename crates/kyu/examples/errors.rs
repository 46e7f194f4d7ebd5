//! Errors in handlers: `?` on any error, permanent versus retryable, and
//! "come back later".
//!
//! - `?` on an `std::io::Error`, an `anyhow::Error`, a
//!   `Box<dyn Error + Send + Sync>` or a `String` fails the attempt; it is retried with backoff;
//! - `.permanent()?` fails the job at once (bad input: retrying cannot help);
//! - `JobError::retry_after(d, msg)` retries after `d` instead of the backoff,
//!   for an API that said when to come back.

use std::time::{Duration, Instant};

use anyhow::Context;
use kyu::{JobContext, JobError, JobResult, JobState, Kyu, NewJob, Outcome, ResultExt, Worker};

/// Reads a config file; an io::Error (here: the file is missing) is retried.
async fn read_config(ctx: JobContext) -> JobResult {
    let path = ctx.args_as::<serde_json::Value>()?["path"]
        .as_str()
        .unwrap_or("")
        .to_string();
    let text = std::fs::read_to_string(&path)?; // io::Error -> retryable
    Ok(Outcome::Result(serde_json::json!({ "bytes": text.len() })))
}

/// Parses an amount; an anyhow error with context is retried, a bad number is not.
async fn charge(ctx: JobContext) -> JobResult {
    let args: serde_json::Value = ctx.args_as()?;
    let cents: u64 = args["cents"]
        .as_str()
        .unwrap_or("")
        .parse()
        .context("the amount is not a whole number of cents")
        .permanent()?; // bad input: fail now
    call_payment_api(cents)?; // anyhow::Error -> retryable
    Ok(Outcome::Done)
}

fn call_payment_api(_cents: u64) -> anyhow::Result<()> {
    Err(anyhow::anyhow!("connection reset")).context("payment API unreachable")
}

/// A rate-limited API: the first call is told to come back in 200 ms.
async fn sync_profile(ctx: JobContext) -> JobResult {
    if ctx.attempt() == 1 {
        return Err(JobError::retry_after(
            Duration::from_millis(200),
            "429 Too Many Requests",
        ));
    }
    Ok(Outcome::Done)
}

#[tokio::main]
async fn main() -> Result<(), kyu::Error> {
    // In memory, so the example leaves nothing behind; an application names
    // a file ("sqlite://kyu.db") or a PostgreSQL database ("postgres://…").
    let kyu = Kyu::connect("sqlite::memory:").await?;
    let worker = Worker::new(&kyu)
        .handle("read_config", read_config)
        .handle("charge", charge)
        .handle("sync_profile", sync_profile)
        .start();

    let missing = NewJob::new(
        "read_config",
        serde_json::json!({ "path": "/no/such/kyu.toml" }),
    )
    .max_attempts(1);
    let job = kyu.enqueue(missing).await?;
    let done = kyu.wait(job.id).timeout(Duration::from_secs(10)).await?;
    println!("read_config: {} ({})", done.state, done.errors[0].message);
    assert_eq!(done.state, JobState::Failed);
    assert!(done.errors[0].message.contains("No such file"));

    let job = kyu
        .enqueue(NewJob::new(
            "charge",
            serde_json::json!({ "cents": "12.50" }),
        ))
        .await?;
    let done = kyu.wait(job.id).timeout(Duration::from_secs(10)).await?;
    println!(
        "charge 12.50: {} after {} attempt ({})",
        done.state, done.attempt, done.errors[0].message
    );
    assert_eq!(
        (done.state, done.attempt),
        (JobState::Failed, 1),
        "permanent: no retry"
    );
    assert!(done.errors[0]
        .message
        .starts_with("the amount is not a whole number of cents: invalid digit"));

    let job = kyu
        .enqueue(
            NewJob::new("charge", serde_json::json!({ "cents": "1250" }))
                .max_attempts(2)
                .retry(kyu::RetryPolicy::fixed(Duration::from_millis(10))),
        )
        .await?;
    let done = kyu.wait(job.id).timeout(Duration::from_secs(10)).await?;
    println!(
        "charge 1250: {} after {} attempts ({})",
        done.state, done.attempt, done.errors[0].message
    );
    assert_eq!(
        (done.state, done.attempt),
        (JobState::Failed, 2),
        "retryable: retried"
    );
    assert_eq!(
        done.errors[0].message,
        "payment API unreachable: connection reset"
    );

    let started = Instant::now();
    let job = kyu
        .enqueue(NewJob::new("sync_profile", serde_json::json!({})))
        .await?;
    let done = kyu.wait(job.id).timeout(Duration::from_secs(10)).await?;
    println!(
        "sync_profile: {} after {:?} ({})",
        done.state,
        started.elapsed(),
        done.errors[0].message
    );
    assert_eq!((done.state, done.attempt), (JobState::Completed, 2));
    assert!(
        started.elapsed() >= Duration::from_millis(200),
        "it waited as the API asked"
    );

    worker.shutdown().await;
    Ok(())
}
