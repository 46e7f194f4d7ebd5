//! Snoozing: a job that is not ready yet asks to run again later, without
//! using up an attempt.
//!
//! Here a report waits for an upstream export to appear. Each check that finds
//! nothing snoozes the job for a moment; the attempt count stays at 1, so the
//! job's `max_attempts` is kept for real errors.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use kyu::{JobState, Kyu, NewJob, Outcome, Worker};

#[tokio::main]
async fn main() -> Result<(), kyu::Error> {
    // In memory, so the example leaves nothing behind; an application names
    // a file ("sqlite://kyu.db") or a PostgreSQL database ("postgres://…").
    let kyu = Kyu::connect("sqlite::memory:").await?;

    // Stands in for "is the upstream export there yet?": ready on the 4th look.
    let looks = Arc::new(AtomicU32::new(0));
    let seen = looks.clone();
    let worker = Worker::new(&kyu)
        .handle("build_report", move |ctx| {
            let seen = seen.clone();
            async move {
                let look = seen.fetch_add(1, Ordering::SeqCst) + 1;
                if look < 4 {
                    println!(
                        "look {look} (attempt {}): export not ready, snoozing",
                        ctx.attempt()
                    );
                    return Ok(Outcome::Snooze(Duration::from_millis(50)));
                }
                println!(
                    "look {look} (attempt {}): building the report",
                    ctx.attempt()
                );
                Ok(Outcome::Done)
            }
        })
        .start();

    let job = kyu
        .enqueue(
            NewJob::new("build_report", serde_json::json!({"day": "2026-11-27"})).max_attempts(1),
        )
        .await?;
    let done = kyu.wait(job.id).timeout(Duration::from_secs(10)).await?;
    println!(
        "job {} is {} after {} look(s), attempt {}",
        done.id,
        done.state,
        looks.load(Ordering::SeqCst),
        done.attempt
    );

    // Three snoozes, one real attempt: max_attempts = 1 was enough.
    assert_eq!(done.state, JobState::Completed);
    assert_eq!(looks.load(Ordering::SeqCst), 4);
    assert_eq!(done.attempt, 1);
    assert!(done.errors.is_empty(), "a snooze is not an error");

    worker.shutdown().await;
    Ok(())
}
