//! Retention: how long finished jobs are kept before they are deleted.
//!
//! By default completed jobs are kept 24 hours and failed or cancelled ones
//! (the dead-letter set) 7 days; every worker with maintenance on (the
//! default; `kyu serve` in the CLI) applies it once a minute. Here the times
//! are shortened so the example finishes quickly: completed jobs go after
//! 200 ms, failed ones are kept for a day, so the failure stays to be looked at.

use std::time::Duration;

use kyu::maintenance::MaintenanceConfig;
use kyu::{JobError, JobState, Kyu, NewJob, Outcome, Worker};

#[tokio::main]
async fn main() -> Result<(), kyu::Error> {
    // In memory, so the example leaves nothing behind; an application names
    // a file ("sqlite://kyu.db") or a PostgreSQL database ("postgres://…").
    let kyu = Kyu::connect("sqlite::memory:").await?;

    let worker = Worker::new(&kyu)
        .handle("ok", |_ctx| async { Ok(Outcome::Done) })
        .handle("broken", |_ctx| async {
            Err(JobError::permanent("bad input"))
        })
        .configure(|c| {
            c.maintenance = Some(MaintenanceConfig {
                keep_completed: Duration::from_millis(200),
                keep_failed: Duration::from_secs(24 * 3600),
                retention_every: Duration::from_millis(100),
                ..MaintenanceConfig::default()
            })
        })
        .start();

    let ok = kyu
        .enqueue(NewJob::new("ok", serde_json::json!({})))
        .await?;
    let broken = kyu
        .enqueue(NewJob::new("broken", serde_json::json!({})))
        .await?;
    assert_eq!(
        kyu.wait(ok.id)
            .timeout(Duration::from_secs(10))
            .await?
            .state,
        JobState::Completed
    );
    assert_eq!(
        kyu.wait(broken.id)
            .timeout(Duration::from_secs(10))
            .await?
            .state,
        JobState::Failed
    );

    // Within a second the completed job is gone; the failed one stays.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while kyu.job(ok.id).await.is_ok() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "retention did not delete job {}",
            ok.id
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    println!("completed job {} deleted by retention", ok.id);
    let kept = kyu.job(broken.id).await?;
    println!(
        "failed job {} kept: {} ({})",
        kept.id, kept.state, kept.errors[0].message
    );
    assert_eq!(kept.state, JobState::Failed);

    worker.shutdown().await;
    Ok(())
}
