//! What a handler sees of its job: queue, run_at, tags and, for a job a
//! schedule fired, the fire time.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use common::{fresh, on_each_backend, quick, Backend};
use kyu::{testing, JobContext, JobState, NewJob, Outcome, ScheduleSpec, Scheduler, Worker};

on_each_backend!(
    context_gives_the_jobs_run_at_tags_and_queue,
    context_gives_a_scheduled_jobs_fire_time
);

/// What one handler saw.
#[derive(Debug, Clone, PartialEq)]
struct Seen {
    queue: String,
    run_at: DateTime<Utc>,
    tags: Vec<String>,
    fire_time: Option<DateTime<Utc>>,
}

fn seen(ctx: &JobContext) -> Seen {
    Seen {
        queue: ctx.queue().to_string(),
        run_at: ctx.run_at(),
        tags: ctx.tags().to_vec(),
        fire_time: ctx.fire_time(),
    }
}

/// A worker whose handler for `kind` records what it saw.
fn recording(kyu: &kyu::Kyu, kind: &str, into: Arc<Mutex<Vec<Seen>>>) -> Worker {
    Worker::new(kyu).handle(kind, move |ctx| {
        let into = into.clone();
        async move {
            into.lock().unwrap().push(seen(&ctx));
            Ok(Outcome::Done)
        }
    })
}

async fn context_gives_the_jobs_run_at_tags_and_queue(backend: Backend) {
    let (kyu, _dir) = fresh(backend).await;
    let got = Arc::new(Mutex::new(Vec::new()));
    let worker = recording(&kyu, "report", got.clone())
        .queue("reports", 1)
        .configure(quick)
        .start();
    // Whole microseconds: what both stores keep.
    let run_at =
        DateTime::from_timestamp_micros(Utc::now().timestamp_micros() - 5_000_000).unwrap();
    let job = kyu
        .enqueue(
            NewJob::new("report", serde_json::json!({}))
                .queue("reports")
                .run_at(run_at)
                .tag("monthly")
                .tag("team:billing"),
        )
        .await
        .unwrap();
    let done = kyu
        .wait(job.id)
        .timeout(Duration::from_secs(20))
        .await
        .unwrap();
    assert_eq!(done.state, JobState::Completed);
    worker.shutdown().await;

    let got = got.lock().unwrap().clone();
    assert_eq!(
        got,
        vec![Seen {
            queue: "reports".into(),
            run_at,
            tags: vec!["monthly".into(), "team:billing".into()],
            fire_time: None,
        }]
    );
}

async fn context_gives_a_scheduled_jobs_fire_time(backend: Backend) {
    let (kyu, _dir) = fresh(backend).await;
    // A name with a colon: the fire time is read after the name, not at a colon.
    let name = "nightly:eu";
    let rec = kyu
        .schedule(ScheduleSpec::new(
            name,
            "0 3 * * *",
            NewJob::new("report", serde_json::json!({})).tag("ops"),
        ))
        .await
        .unwrap();
    let fire_time = rec
        .next_fire_at
        .expect("a daily schedule has a next fire time");
    let report = Scheduler::new(&kyu).run_once(fire_time).await.unwrap();
    let (_, fired_at, id) = report.fired[0].clone();
    assert_eq!(fired_at, fire_time);

    let got = Arc::new(Mutex::new(Vec::new()));
    let worked = testing::work_job(&recording(&kyu, "report", got.clone()), id)
        .await
        .unwrap();
    assert_eq!(worked.job.state, JobState::Completed);
    let got = got.lock().unwrap().clone();
    assert_eq!(
        got,
        vec![Seen {
            queue: "default".into(),
            run_at: fire_time,
            tags: vec!["ops".into(), format!("schedule:{name}")],
            fire_time: Some(fire_time),
        }]
    );
}
