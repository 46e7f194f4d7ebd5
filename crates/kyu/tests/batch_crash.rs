//! Batches with real processes: a batch of 1,000 jobs run by 3 worker
//! processes, one SIGKILLed mid-batch. The on_complete callback is enqueued
//! and runs exactly once with the right counts; on_success is never enqueued
//! because one job failed for good.
//!
//! The worker processes are this test binary run again with
//! `KYU_BATCH_CHILD` set: the `child_worker` test then runs a worker until it
//! is killed. Each test runs on SQLite and, when `KYU_TEST_POSTGRES_URL` is
//! set, PostgreSQL.

mod common;

use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{eventually, on_each_backend, quick, Backend};
use kyu::{JobError, JobFilter, Kyu, NewJob, Outcome, Worker};
use serde_json::{json, Value};

on_each_backend!(batch_callback_once_across_processes_with_one_sigkilled(
    flavor = "multi_thread"
));

const LEASE: Duration = Duration::from_secs(2);
const JOBS: u64 = 1000;
/// The one row that fails for good.
const BAD_ROW: u64 = 500;

/// The worker run in a child process: rows take a few milliseconds; the bad
/// row fails with a permanent error.
#[tokio::test]
async fn child_worker() {
    let Ok(url) = std::env::var("KYU_BATCH_CHILD") else {
        return; // not a child: nothing to do
    };
    let name = std::env::var("KYU_BATCH_NAME").unwrap();
    let kyu = Kyu::connect(&url).await.unwrap();
    let _worker = Worker::new(&kyu)
        .handle("row", |ctx| async move {
            let args: Value = serde_json::from_str(ctx.args()).unwrap();
            tokio::time::sleep(Duration::from_millis(15)).await;
            if args["row"] == BAD_ROW {
                return Err(JobError::permanent("row 500 cannot be imported"));
            }
            Ok(Outcome::Done)
        })
        .queue("default", 4)
        .configure(|c| {
            quick(c);
            c.id = name;
            c.lease = LEASE;
            c.heartbeat_every = Duration::from_millis(500);
            let m = c.maintenance.as_mut().unwrap();
            m.reap_every = Duration::from_millis(200);
        })
        .start();
    // Run until killed.
    tokio::time::sleep(Duration::from_secs(3600)).await;
}

fn spawn_child(url: &str, name: &str) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args(["child_worker", "--exact", "--nocapture", "--test-threads=1"])
        .env("KYU_BATCH_CHILD", url)
        .env("KYU_BATCH_NAME", name)
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn a worker process")
}

fn sigkill(child: &mut Child) {
    // SAFETY: sending a signal to a process id we own.
    let rc = unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
    assert_eq!(rc, 0, "kill failed");
    let status = child.wait().unwrap();
    assert!(!status.success(), "the child died of SIGKILL");
}

/// Kills the children still alive when the test ends, pass or fail.
struct Children(Vec<Child>);

impl Drop for Children {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

async fn batch_callback_once_across_processes_with_one_sigkilled(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let url = backend.fresh_url(dir.path());
    let kyu = Kyu::connect(&url).await.unwrap();

    // The callbacks run here, in their own queue, so the kill cannot touch
    // them: every run is seen.
    let reports: Arc<Mutex<Vec<Value>>> = Arc::default();
    let celebrations = Arc::new(AtomicU32::new(0));
    let seen = reports.clone();
    let cheers = celebrations.clone();
    let callbacks = Worker::new(&kyu)
        .handle("report", move |ctx| {
            let seen = seen.clone();
            async move {
                seen.lock()
                    .unwrap()
                    .push(serde_json::from_str(ctx.args()).unwrap());
                Ok(Outcome::Done)
            }
        })
        .handle("celebrate", move |_ctx| {
            let cheers = cheers.clone();
            async move {
                cheers.fetch_add(1, Ordering::SeqCst);
                Ok(Outcome::Done)
            }
        })
        .queue("callbacks", 2)
        .configure(|c| {
            quick(c);
            c.id = "callbacks".into();
        })
        .start();

    // Built in appends of 250 while the workers already run, then sealed.
    let batch = kyu
        .batch()
        .on_complete(NewJob::new("report", json!({"import": "users"})).queue("callbacks"))
        .on_success(NewJob::new("celebrate", json!({})).queue("callbacks"))
        .create()
        .await
        .unwrap();
    let row = |n: u64| NewJob::new("row", json!({ "row": n })).max_attempts(5);
    batch.add((1..=250).map(row).collect()).await.unwrap();
    let mut children = Children(
        ["w1", "w2", "doomed"]
            .iter()
            .map(|n| spawn_child(&url, n))
            .collect(),
    );
    for chunk in 1..4 {
        let from = chunk * 250 + 1;
        batch
            .add((from..from + 250).map(row).collect())
            .await
            .unwrap();
    }
    let sealed = batch.seal().await.unwrap();
    assert_eq!(sealed.total, JOBS);

    // Mid-batch, while "doomed" holds running jobs: SIGKILL it.
    eventually(
        Duration::from_secs(120),
        "about a third of the batch is done and the doomed worker runs jobs",
        || async {
            let s = batch.status().await.unwrap();
            let running = kyu
                .list(&JobFilter {
                    states: vec![kyu::JobState::Running],
                    limit: 100,
                    ..JobFilter::default()
                })
                .await
                .unwrap();
            s.succeeded >= 300
                && running
                    .jobs
                    .iter()
                    .any(|j| j.worker.as_deref() == Some("doomed"))
        },
    )
    .await;
    sigkill(&mut children.0[2]);
    let at_kill = batch.status().await.unwrap();
    assert!(
        at_kill.finished() < JOBS,
        "the kill came mid-batch: {at_kill:?}"
    );

    eventually(Duration::from_secs(180), "the batch is done", || async {
        batch.status().await.unwrap().is_done()
    })
    .await;
    eventually(Duration::from_secs(30), "the report ran", || async {
        !reports.lock().unwrap().is_empty()
    })
    .await;
    // Give a second callback (there must be none) time to show.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    drop(children);

    let status = batch.status().await.unwrap();
    assert_eq!(
        (
            status.total,
            status.pending,
            status.running,
            status.succeeded,
            status.failed,
            status.cancelled
        ),
        (JOBS, 0, 0, JOBS - 1, 1, 0),
        "{status:?}"
    );
    let reports = reports.lock().unwrap().clone();
    assert_eq!(
        reports.len(),
        1,
        "on_complete ran exactly once: {reports:?}"
    );
    let b = &reports[0]["batch"];
    assert_eq!(reports[0]["import"], "users");
    assert_eq!(b["id"], batch.id());
    assert_eq!(
        (&b["total"], &b["succeeded"], &b["failed"], &b["cancelled"]),
        (&json!(JOBS), &json!(JOBS - 1), &json!(1), &json!(0))
    );
    assert_eq!(celebrations.load(Ordering::SeqCst), 0);
    let enqueued = |kind: &'static str| {
        let kyu = kyu.clone();
        async move {
            kyu.list(&JobFilter {
                kind: Some(kind.into()),
                limit: 100,
                ..JobFilter::default()
            })
            .await
            .unwrap()
            .jobs
            .len()
        }
    };
    assert_eq!(enqueued("report").await, 1, "on_complete enqueued once");
    assert_eq!(enqueued("celebrate").await, 0, "on_success never enqueued");
    assert_eq!(status.callback_jobs.len(), 1);

    // The kill really happened mid-batch: the doomed worker's jobs were
    // rescued, its started ones with the lost attempt recorded, the ones it
    // held unstarted (its prefetch) given back uncharged (`released`).
    let mut rescued = 0;
    let mut after = 0;
    loop {
        let read = kyu.store().read_events(after, 1000).await.unwrap();
        rescued += read
            .events
            .iter()
            .filter(|e| {
                matches!(
                    e.event_type,
                    kyu::EventType::LeaseExpired | kyu::EventType::Released
                ) && e.facts.worker.as_deref() == Some("doomed")
            })
            .count();
        if read.events.is_empty() {
            break;
        }
        after = read.next;
    }
    assert!(rescued >= 1, "some job of the killed worker was rescued");
    callbacks.shutdown().await;
}
