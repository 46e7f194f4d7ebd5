//! Handles: one call shuts down a worker and the scheduler it runs.

mod common;

use std::time::Duration;

use common::{eventually, fresh, on_each_backend, quick, Backend};
use kyu::{JobFilter, NewJob, Outcome, ScheduleSpec, Scheduler, Worker};

on_each_backend!(one_shutdown_stops_the_scheduler_and_then_the_worker);

async fn one_shutdown_stops_the_scheduler_and_then_the_worker(backend: Backend) {
    let (kyu, _dir) = fresh(backend).await;
    let every_second = "* * * * * *";
    kyu.schedule(ScheduleSpec::new(
        "tick",
        every_second,
        NewJob::new("tick", serde_json::json!({})),
    ))
    .await
    .unwrap();
    let running = Worker::new(&kyu)
        .handle("tick", |_ctx| async { Ok(Outcome::Done) })
        .scheduler(Scheduler::new(&kyu))
        .configure(quick)
        .start();
    let ticks = || async { kyu.list(&JobFilter::default()).await.unwrap().jobs.len() };
    eventually(Duration::from_secs(10), "the scheduler fires", || async {
        ticks().await >= 1
    })
    .await;
    running.shutdown().await;

    let after = ticks().await;
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(ticks().await, after, "no fire after the shutdown");
}

#[test]
fn delay_runs_the_job_later_by_the_system_clock() {
    let before = chrono::Utc::now();
    let job = NewJob::new("t", serde_json::json!({})).delay(Duration::from_secs(600));
    let at = job.run_at.expect("a delayed job has a run_at");
    assert!(at >= before + chrono::Duration::seconds(600));
    assert!(at <= chrono::Utc::now() + chrono::Duration::seconds(600));
}
