//! Cron schedules: seed 000's "every 15 minutes in Asia/Tokyo", declared in
//! Rust, fired exactly once however many schedulers run.
//!
//! The demo also adds an every-second schedule so it has something to show
//! within a couple of seconds.

use std::time::Duration;

use kyu::{JobState, Kyu, NewJob, Outcome, ScheduleSpec, Scheduler, Worker};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // In memory, so the example leaves nothing behind; an application names
    // a file ("sqlite://kyu.db") or a PostgreSQL database ("postgres://…").
    let kyu = Kyu::connect("sqlite::memory:").await?;

    // Upsert by name: declaring it again at every start is safe (seed 004's registerJob).
    // A bad expression or zone name is refused here, by `schedule`, naming it.
    kyu.schedule(
        ScheduleSpec::new(
            "sync-steps",
            "0,15,30,45 * * * *",
            NewJob::new("sync_steps", serde_json::json!({ "batch": 5 })).max_attempts(3),
        )
        .zone("Asia/Tokyo"),
    )
    .await?;
    kyu.schedule(ScheduleSpec::new(
        "heartbeat",
        "* * * * * *",
        NewJob::new("heartbeat", serde_json::json!({})),
    ))
    .await?;

    for s in kyu.schedules().await? {
        println!("{}: next fire {:?}", s.spec.name, s.next_fire_at);
    }

    // Two schedulers, as two `kyu serve` processes would run: no leader needed.
    let a = Scheduler::new(&kyu).start();
    let b = Scheduler::new(&kyu).start();
    let worker = Worker::new(&kyu)
        .handle("heartbeat", |ctx| async move {
            println!("heartbeat job {}", ctx.id());
            Ok(Outcome::Done)
        })
        .start();

    tokio::time::sleep(Duration::from_millis(3200)).await;
    a.shutdown().await;
    b.shutdown().await;
    worker.shutdown().await;

    let jobs = kyu
        .list(&kyu::JobFilter {
            kind: Some("heartbeat".into()),
            ..Default::default()
        })
        .await?
        .jobs;
    // One job per second, not two: each fire time yields exactly one job.
    let mut fire_times: Vec<_> = jobs.iter().map(|j| j.run_at).collect();
    fire_times.dedup();
    assert_eq!(fire_times.len(), jobs.len(), "no fire time enqueued twice");
    assert!(
        (2..=5).contains(&jobs.len()),
        "{} heartbeat jobs in ~3 s",
        jobs.len()
    );
    assert!(jobs.iter().all(|j| j.state == JobState::Completed));
    Ok(())
}
