//! What the worker tells an operator in its logs: a warning only when
//! something is wrong.

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{fresh, quick};
use kyu::{JobState, NewJob, Outcome, Worker};

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finished_jobs_are_not_reported_as_taken_over() {
    let lines = Lines::default();
    let sink = lines.clone();
    tracing_subscriber::fmt()
        .with_writer(move || sink.clone())
        .with_max_level(tracing::Level::DEBUG)
        .with_ansi(false)
        .init();

    let (kyu, _dir) = fresh().await;
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
    let ids: Vec<_> = kyu.insert_many(jobs).await.unwrap();
    for e in &ids {
        let job = kyu
            .wait_timeout(e.id, Duration::from_secs(60))
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
