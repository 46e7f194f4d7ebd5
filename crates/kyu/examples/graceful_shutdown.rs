//! Graceful shutdown: stop claiming, let running jobs finish within the
//! grace period, release the rest so another worker starts them at once.
//!
//! In a service, `worker.run_until_signal().await` does this on SIGTERM or Ctrl-C.

use std::time::Duration;

use kyu::{JobState, Kyu, NewJob, Outcome, Worker};

#[tokio::main]
async fn main() -> Result<(), kyu::Error> {
    // In memory, so the example leaves nothing behind; an application names
    // a file ("sqlite://kyu.db") or a PostgreSQL database ("postgres://…").
    let kyu = Kyu::connect("sqlite::memory:").await?;

    let quick = kyu
        .enqueue(NewJob::new("sleep", serde_json::json!({"ms": 200})))
        .await?;
    let slow = kyu
        .enqueue(NewJob::new("sleep", serde_json::json!({"ms": 60_000})))
        .await?;

    let worker = Worker::new(&kyu)
        .handle("sleep", |ctx| async move {
            let ms = ctx.args_as::<serde_json::Value>()?["ms"]
                .as_u64()
                .unwrap_or(0);
            tokio::time::sleep(Duration::from_millis(ms)).await;
            Ok(Outcome::Done)
        })
        .configure(|c| c.shutdown_grace = Duration::from_secs(1))
        .start();
    while worker.running() < 2 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    worker.shutdown().await; // as on SIGTERM

    let quick = kyu.job(quick.id).await?;
    let slow = kyu.job(slow.id).await?;
    println!(
        "quick job: {}; slow job: {} (attempt {})",
        quick.state, slow.state, slow.attempt
    );
    assert_eq!(
        quick.state,
        JobState::Completed,
        "finished within the grace"
    );
    assert_eq!(
        slow.state,
        JobState::Available,
        "released for another worker"
    );
    assert_eq!(slow.attempt, 0, "the interrupted attempt does not count");
    Ok(())
}
