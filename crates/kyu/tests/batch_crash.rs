//! Batches with real processes: a batch of 1,000 jobs run by 3 worker
//! processes, one SIGKILLed mid-batch. The on_complete callback is enqueued
//! and runs exactly once with the right counts; on_success is never enqueued
//! because one job failed for good. And 1,000 batches of 10 jobs run by 3
//! worker processes, one SIGKILLed mid-run: exactly 1,000 on_complete
//! callbacks, one per batch, each with its batch's counts, and on_success
//! only for the batches where every job succeeded.
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

on_each_backend!(
    batch_callback_once_across_processes_with_one_sigkilled(flavor = "multi_thread"),
    thousand_batches_one_callback_each_with_one_worker_sigkilled(flavor = "multi_thread"),
);

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
        .handle("cell", |ctx| async move {
            let args: Value = serde_json::from_str(ctx.args()).unwrap();
            let (b, i) = (args["b"].as_u64().unwrap(), args["i"].as_u64().unwrap());
            tokio::time::sleep(Duration::from_millis(4)).await;
            if cell_fails(b, i) {
                return Err(JobError::permanent(format!("cell {b}/{i} is broken")));
            }
            Ok(Outcome::Done)
        })
        .queue("default", 4)
        .queue("cells", 12)
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

/// Batches of the many-batches test.
const BATCHES: u64 = 1000;
/// Jobs per batch.
const CELLS: u64 = 10;

/// Whether job `i` of batch `b` fails for good: none in every fifth batch,
/// else the ones where `b + i` is a multiple of 7 (so 1 or 2 per batch).
fn cell_fails(b: u64, i: u64) -> bool {
    b % 5 != 0 && (b + i) % 7 == 0
}

/// Whether job `i` of batch `b` is enqueued for an hour from now and
/// cancelled by the test: the last job of every eleventh batch.
fn cell_cancelled(b: u64, i: u64) -> bool {
    b % 11 == 0 && i == CELLS - 1
}

/// The counts batch `b` must end with: (succeeded, failed, cancelled).
fn expected_counts(b: u64) -> (u64, u64, u64) {
    let mut c = (0, 0, 0);
    for i in 0..CELLS {
        if cell_cancelled(b, i) {
            c.2 += 1;
        } else if cell_fails(b, i) {
            c.1 += 1;
        } else {
            c.0 += 1;
        }
    }
    c
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

async fn thousand_batches_one_callback_each_with_one_worker_sigkilled(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let url = backend.fresh_url(dir.path());
    let kyu = Kyu::connect(&url).await.unwrap();

    // The callbacks run here, in their own queue, so the kill cannot touch
    // them: every run is seen.
    let tallies: Arc<Mutex<Vec<Value>>> = Arc::default();
    let cheers: Arc<Mutex<Vec<Value>>> = Arc::default();
    let (seen, cheered) = (tallies.clone(), cheers.clone());
    let callbacks = Worker::new(&kyu)
        .handle("tally", move |ctx| {
            let seen = seen.clone();
            async move {
                seen.lock()
                    .unwrap()
                    .push(serde_json::from_str(ctx.args()).unwrap());
                Ok(Outcome::Done)
            }
        })
        .handle("cheer", move |ctx| {
            let cheered = cheered.clone();
            async move {
                cheered
                    .lock()
                    .unwrap()
                    .push(serde_json::from_str(ctx.args()).unwrap());
                Ok(Outcome::Done)
            }
        })
        .queue("callbacks", 4)
        .configure(|c| {
            quick(c);
            c.id = "callbacks".into();
        })
        .start();

    let mut children = Children(
        ["w1", "w2", "doomed"]
            .iter()
            .map(|n| spawn_child(&url, n))
            .collect(),
    );

    // 1,000 batches of 10, created by 8 tasks while the workers run. Each
    // batch: created with its jobs, sealed.
    let began = std::time::Instant::now();
    let later = chrono::Utc::now() + chrono::Duration::hours(1);
    let makers: Vec<_> = (0..8u64)
        .map(|k| {
            let kyu = kyu.clone();
            tokio::spawn(async move {
                let mut made = Vec::new();
                for b in (k..BATCHES).step_by(8) {
                    let cells: Vec<NewJob> = (0..CELLS)
                        .map(|i| {
                            let job = NewJob::new("cell", json!({ "b": b, "i": i }))
                                .queue("cells")
                                .max_attempts(5);
                            if cell_cancelled(b, i) {
                                job.run_at(later)
                            } else {
                                job
                            }
                        })
                        .collect();
                    let batch = kyu
                        .batch()
                        .on_complete(NewJob::new("tally", json!({ "b": b })).queue("callbacks"))
                        .on_success(NewJob::new("cheer", json!({ "b": b })).queue("callbacks"))
                        .add(cells)
                        .await
                        .unwrap();
                    let sealed = batch.seal().await.unwrap();
                    assert_eq!(sealed.total, CELLS);
                    made.push((b, batch.id()));
                }
                made
            })
        })
        .collect();

    // Mid-run, while "doomed" holds running jobs: SIGKILL it.
    eventually(
        Duration::from_secs(120),
        "a tenth of the batches are done and the doomed worker runs jobs",
        || async {
            let running = kyu
                .list(&JobFilter {
                    states: vec![kyu::JobState::Running],
                    kind: Some("cell".into()),
                    limit: 100,
                    ..JobFilter::default()
                })
                .await
                .unwrap();
            tallies.lock().unwrap().len() >= 100
                && running
                    .jobs
                    .iter()
                    .any(|j| j.worker.as_deref() == Some("doomed"))
        },
    )
    .await;
    sigkill(&mut children.0[2]);
    let at_kill = tallies.lock().unwrap().len();
    eprintln!(
        "{backend:?}: killed at {:?}, {at_kill} batches reported",
        began.elapsed()
    );
    assert!(
        (at_kill as u64) < BATCHES,
        "the kill came mid-run: {at_kill} callbacks ran"
    );

    let mut ids = std::collections::BTreeMap::new();
    for m in makers {
        ids.extend(m.await.unwrap());
    }
    assert_eq!(ids.len() as u64, BATCHES);
    eprintln!(
        "{backend:?}: 1,000 batches enqueued in {:?}",
        began.elapsed()
    );

    // The delayed last job of every eleventh batch is cancelled.
    let delayed: Vec<kyu::JobId> = kyu
        .list(&JobFilter {
            kind: Some("cell".into()),
            states: vec![kyu::JobState::Scheduled],
            limit: 1000,
            ..JobFilter::default()
        })
        .await
        .unwrap()
        .jobs
        .iter()
        .map(|j| j.id)
        .collect();
    assert_eq!(delayed.len(), (0..BATCHES).filter(|b| b % 11 == 0).count());
    kyu.cancel(&delayed).await.unwrap();

    eventually(Duration::from_secs(180), "every batch reported", || async {
        tallies.lock().unwrap().len() as u64 >= BATCHES
    })
    .await;
    eprintln!("{backend:?}: every batch reported at {:?}", began.elapsed());
    // Give a second callback (there must be none) time to show.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    drop(children);
    callbacks.shutdown().await;

    // Exactly one on_complete run per batch, with that batch's counts.
    let tallies = tallies.lock().unwrap().clone();
    assert_eq!(tallies.len() as u64, BATCHES, "one on_complete per batch");
    let mut reported = std::collections::BTreeMap::new();
    for t in &tallies {
        let b = t["b"].as_u64().unwrap();
        assert!(
            reported.insert(b, t.clone()).is_none(),
            "batch {b} reported twice"
        );
        let c = &t["batch"];
        assert_eq!(c["id"], json!(ids[&b]), "batch {b}'s callback names it");
        let (succeeded, failed, cancelled) = expected_counts(b);
        assert_eq!(
            (&c["total"], &c["succeeded"], &c["failed"], &c["cancelled"]),
            (
                &json!(CELLS),
                &json!(succeeded),
                &json!(failed),
                &json!(cancelled)
            ),
            "batch {b}'s counts"
        );
    }
    assert_eq!(reported.len() as u64, BATCHES);

    // on_success ran once for each batch where every job succeeded, and
    // only for those.
    let cheers = cheers.lock().unwrap().clone();
    let mut cheered: Vec<u64> = cheers.iter().map(|c| c["b"].as_u64().unwrap()).collect();
    cheered.sort_unstable();
    let all_good: Vec<u64> = (0..BATCHES)
        .filter(|&b| expected_counts(b) == (CELLS, 0, 0))
        .collect();
    assert!(!all_good.is_empty() && all_good.len() < BATCHES as usize);
    assert_eq!(cheered, all_good, "on_success only where all succeeded");
    for c in &cheers {
        let b = c["b"].as_u64().unwrap();
        assert_eq!(c["batch"]["succeeded"], json!(CELLS));
        assert_eq!(c["batch"]["id"], json!(ids[&b]));
    }

    // The stores agree: 1,000 tally jobs, each completed on its first
    // attempt; every batch done with those counts.
    let jobs_of = |kind: &'static str| {
        let kyu = kyu.clone();
        async move {
            kyu.list(&JobFilter {
                kind: Some(kind.into()),
                limit: 20_000,
                ..JobFilter::default()
            })
            .await
            .unwrap()
            .jobs
        }
    };
    let tally_jobs = jobs_of("tally").await;
    assert_eq!(
        tally_jobs.len() as u64,
        BATCHES,
        "on_complete enqueued once each"
    );
    for j in &tally_jobs {
        assert_eq!(
            (j.state, j.attempt),
            (kyu::JobState::Completed, 1),
            "tally job {} ran once",
            j.id
        );
    }
    assert_eq!(jobs_of("cheer").await.len(), all_good.len());
    for (b, id) in &ids {
        let s = kyu.batch_status(*id).await.unwrap();
        assert!(s.is_done(), "batch {b}: {s:?}");
        assert_eq!(
            (s.succeeded, s.failed, s.cancelled),
            expected_counts(*b),
            "batch {b}"
        );
        assert_eq!(s.callback_jobs.len(), 1 + usize::from(s.succeeded == CELLS));
    }

    // The kill really cost attempts: the doomed worker's jobs were rescued.
    let rescued = jobs_of("cell")
        .await
        .iter()
        .filter(|j| j.errors.iter().any(|e| e.worker == "doomed"))
        .count();
    assert!(rescued >= 1, "some job of the killed worker was rescued");
}
