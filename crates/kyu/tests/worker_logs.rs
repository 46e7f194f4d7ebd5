//! What the worker tells an operator in its logs: a warning only when
//! something is wrong.

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{fresh, quick, Backend};
use kyu::{JobState, NewJob, Outcome, Worker};

// By hand rather than with `on_each_backend!`: each test captures the logs
// of its own runtime (see `logged`), so the two can share the process.
mod sqlite {
    #[test]
    fn finished_jobs_are_not_reported_as_taken_over() {
        super::logged(|lines| {
            super::finished_jobs_are_not_reported_as_taken_over(super::Backend::Sqlite, lines)
        });
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
            .wait(e.id).timeout(Duration::from_secs(60))
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
