//! Retention bounds the database for schedules too: a schedule's job carries
//! a fire-time unique key (a guard behind the compare-and-set), and retention
//! keeps a job while its unique window is open. The window must not hold
//! every fired job for a day: an every-second schedule would keep 86,400
//! jobs whatever `keep_completed` says (seen in the soak: jobs of
//! `* * * * * *` outliving a 2-minute retention).

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{connect_with_clock, on_each_backend, Backend};
use kyu::maintenance::{retention_once, MaintenanceConfig};
use kyu::{JobState, JobTemplate, ManualClock, Outcome, ScheduleSpec, Scheduler, Worker};

on_each_backend!(retention_deletes_a_schedule_job_ten_minutes_after_its_fire_at_the_latest);

async fn retention_deletes_a_schedule_job_ten_minutes_after_its_fire_at_the_latest(
    backend: Backend,
) {
    let dir = tempfile::tempdir().unwrap();
    let url = backend.fresh_url(dir.path());
    let clock = ManualClock::new("2030-01-01T00:00:30Z".parse().unwrap());
    let kyu = connect_with_clock(&url, Arc::new(clock.clone())).await;
    kyu.schedule(ScheduleSpec::new(
        "tick",
        "* * * * *",
        JobTemplate::new("tick", serde_json::json!({})),
    ))
    .await
    .unwrap();
    clock.advance(Duration::from_secs(30));
    let report = Scheduler::new(&kyu).tick().await.unwrap();
    assert_eq!(report.fired.len(), 1, "{report:?}");
    let job = kyu.job(report.fired[0].2).await.unwrap();
    let worker = Worker::new(&kyu).handle("tick", |_| async { Ok(Outcome::Done) });
    let worked = kyu::testing::work_job(&worker, job.id).await.unwrap();
    assert_eq!(worked.job.state, JobState::Completed);

    let config = MaintenanceConfig {
        keep_completed: Duration::from_secs(120),
        ..MaintenanceConfig::default()
    };
    // Inside keep_completed: kept.
    clock.advance(Duration::from_secs(60));
    retention_once(kyu.store().as_ref(), &config).await.unwrap();
    assert!(kyu.job(job.id).await.is_ok(), "kept inside keep_completed");
    // Ten minutes after its fire time (and past keep_completed): deleted.
    clock.advance(Duration::from_secs(10 * 60));
    let deleted = retention_once(kyu.store().as_ref(), &config).await.unwrap();
    assert_eq!(
        deleted,
        1,
        "the schedule's job outlived retention: {:?}",
        kyu.job(job.id).await.map(|j| j.state)
    );
}
