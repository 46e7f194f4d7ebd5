//! What the worker tells an operator in its logs: a warning only when
//! something is wrong.

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{connect_with_clock, fresh, quick, Backend};
use kyu::{
    Job, JobContext, JobResult, JobState, ManualClock, NewJob, Outcome, ScheduleSpec, Scheduler,
    Worker,
};

// By hand rather than with `on_each_backend!`: each test captures the logs
// of its own runtime (see `logged`), so the two can share the process.
mod sqlite {
    #[test]
    fn finished_jobs_are_not_reported_as_taken_over() {
        super::logged(|lines| {
            super::finished_jobs_are_not_reported_as_taken_over(super::Backend::Sqlite, lines)
        });
    }

    #[test]
    fn forgotten_scheduler_is_warned_about_naming_the_schedule_once() {
        super::logged(|lines| {
            super::forgotten_scheduler_is_warned_about_naming_the_schedule_once(
                super::Backend::Sqlite,
                lines,
            )
        });
    }

    #[test]
    fn schedules_a_scheduler_fires_are_not_warned_about() {
        super::logged(|lines| {
            super::schedules_a_scheduler_fires_are_not_warned_about(super::Backend::Sqlite, lines)
        });
    }

    #[test]
    fn unserved_kind_queue_is_warned_about_at_start() {
        super::logged(super::unserved_kind_queue_is_warned_about_at_start);
    }
}

mod postgres {
    #[test]
    fn finished_jobs_are_not_reported_as_taken_over() {
        if let Some(backend) = super::Backend::postgres() {
            super::logged(|lines| {
                super::finished_jobs_are_not_reported_as_taken_over(backend, lines)
            });
        }
    }

    #[test]
    fn forgotten_scheduler_is_warned_about_naming_the_schedule_once() {
        if let Some(backend) = super::Backend::postgres() {
            super::logged(|lines| {
                super::forgotten_scheduler_is_warned_about_naming_the_schedule_once(backend, lines)
            });
        }
    }
}

/// Every log line, kept for the test to read.
#[derive(Clone, Default)]
struct Lines(Arc<Mutex<Vec<u8>>>);

impl Write for Lines {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Runs `test` on a two-thread runtime whose threads log into the `Lines`
/// it is given. The subscriber is each thread's default, not the process's
/// global one, which only one test of the process could set.
fn logged<F: std::future::Future<Output = ()>>(test: impl FnOnce(Lines) -> F) {
    let lines = Lines::default();
    let sink = lines.clone();
    let dispatch = tracing::Dispatch::new(
        tracing_subscriber::fmt()
            .with_writer(move || sink.clone())
            .with_max_level(tracing::Level::DEBUG)
            .with_ansi(false)
            .finish(),
    );
    let for_threads = dispatch.clone();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        // The runtime's threads end with it, and their default with them.
        .on_thread_start(move || std::mem::forget(tracing::dispatcher::set_default(&for_threads)))
        .build()
        .expect("a tokio runtime");
    let _here = tracing::dispatcher::set_default(&dispatch);
    runtime.block_on(test(lines));
}

async fn finished_jobs_are_not_reported_as_taken_over(backend: Backend, lines: Lines) {
    let (kyu, _dir) = fresh(backend).await;
    // Heartbeats as often as possible: every tick overlaps jobs whose handler
    // has just returned and whose result the completer is writing.
    let worker = Worker::new(&kyu)
        .handle("noop", |_ctx| async { Ok(Outcome::Done) })
        .configure(quick)
        .configure(|c| c.heartbeat_every = Duration::from_millis(1))
        .start();
    let jobs: Vec<NewJob> = (0..2000)
        .map(|i| NewJob::new("noop", serde_json::json!({ "i": i })))
        .collect();
    let ids: Vec<_> = kyu.enqueue_many(jobs).await.unwrap();
    for e in &ids {
        let job = kyu
            .wait(e.id)
            .timeout(Duration::from_secs(60))
            .await
            .unwrap();
        assert_eq!(job.state, JobState::Completed);
    }
    worker.shutdown().await;

    let text = String::from_utf8_lossy(&lines.0.lock().unwrap()).into_owned();
    assert!(text.contains("worker started"), "logs are captured: {text}");
    let warnings: Vec<&str> = text.lines().filter(|l| l.contains("WARN")).collect();
    assert!(
        warnings.is_empty(),
        "no lease can expire here, yet:\n{}",
        warnings.join("\n")
    );
}

/// The warnings logged so far.
fn warnings(lines: &Lines) -> Vec<String> {
    let text = String::from_utf8_lossy(&lines.0.lock().unwrap()).into_owned();
    text.lines()
        .filter(|l| l.contains("WARN"))
        .map(str::to_string)
        .collect()
}

/// A client whose store reads a manual clock set to now, on a fresh database.
async fn with_manual_clock(backend: Backend) -> (kyu::Kyu, ManualClock, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(chrono::Utc::now());
    let kyu = connect_with_clock(&backend.fresh_url(dir.path()), Arc::new(clock.clone())).await;
    (kyu, clock, dir)
}

async fn forgotten_scheduler_is_warned_about_naming_the_schedule_once(
    backend: Backend,
    lines: Lines,
) {
    let (kyu, clock, _dir) = with_manual_clock(backend).await;
    kyu.schedule(ScheduleSpec::new(
        "nightly-report",
        "* * * * *",
        NewJob::new("report", serde_json::json!({})),
    ))
    .await
    .unwrap();
    // Five minutes on and no scheduler has fired it: its next fire time is
    // overdue by far more than the misfire grace.
    clock.advance(Duration::from_secs(300));
    let worker = Worker::new(&kyu)
        .handle("report", |_ctx| async { Ok(Outcome::Done) })
        .configure(quick)
        .configure(|c| c.schedule_check = Some(Duration::from_millis(50)))
        .start();
    common::eventually(Duration::from_secs(10), "the warning", || async {
        !warnings(&lines).is_empty()
    })
    .await;
    // Several more checks: the warning is not repeated.
    tokio::time::sleep(Duration::from_millis(400)).await;
    worker.shutdown().await;

    let warned = warnings(&lines);
    assert_eq!(
        warned.len(),
        1,
        "one warning, not one per check: {warned:#?}"
    );
    let w = &warned[0];
    for part in [
        "schedule nightly-report",
        "no scheduler is firing schedules",
        "Scheduler::new(&kyu).start()",
        "Worker::scheduler",
        "kyu serve",
    ] {
        assert!(w.contains(part), "{part:?} in {w}");
    }
}

async fn schedules_a_scheduler_fires_are_not_warned_about(backend: Backend, lines: Lines) {
    let (kyu, _dir) = fresh(backend).await;
    kyu.schedule(ScheduleSpec::new(
        "every-second",
        "* * * * * *",
        NewJob::new("tick", serde_json::json!({})),
    ))
    .await
    .unwrap();
    let worker = Worker::new(&kyu)
        .handle("tick", |_ctx| async { Ok(Outcome::Done) })
        .scheduler(Scheduler::new(&kyu))
        .configure(quick)
        .configure(|c| c.schedule_check = Some(Duration::from_millis(50)))
        .start();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    worker.shutdown().await;
    let text = String::from_utf8_lossy(&lines.0.lock().unwrap()).into_owned();
    assert!(text.contains("schedule fired"), "the scheduler ran: {text}");
    assert_eq!(warnings(&lines), Vec::<String>::new());
}

#[derive(serde::Serialize, serde::Deserialize)]
struct SendEmail {
    to: String,
}

impl Job for SendEmail {
    const KIND: &'static str = "send_email";
    const QUEUE: &'static str = "mail";
    async fn run(self, _ctx: JobContext) -> JobResult {
        Ok(Outcome::Done)
    }
}

async fn unserved_kind_queue_is_warned_about_at_start(lines: Lines) {
    let (kyu, _dir) = fresh(Backend::Sqlite).await;
    // Its queue is "mail"; this worker serves only "default".
    let worker = Worker::new(&kyu)
        .register::<SendEmail>()
        .queue("default", 1)
        .configure(|c| c.serve_kind_queues = false)
        .start();
    worker.shutdown().await;
    let warned = warnings(&lines);
    assert_eq!(warned.len(), 1, "{warned:#?}");
    assert!(
        warned[0].contains("kind send_email is registered but its queue mail is not served"),
        "{}",
        warned[0]
    );
    assert!(warned[0].contains(".queue(\"mail\", N)"), "{}", warned[0]);
}
