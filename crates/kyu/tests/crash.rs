//! Invariants 1 and 2 with real processes: a worker process is SIGKILLed in
//! the middle of its jobs; another worker picks them up once the leases
//! expire, every job completes, and the lost attempts are recorded.
//!
//! The worker process is this test binary run again with `KYU_CRASH_CHILD`
//! set: the `child_worker` test then runs a worker until it is killed. Each
//! test runs on SQLite and, when `KYU_TEST_POSTGRES_URL` is set, PostgreSQL.

mod common;

use std::io::Write;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{eventually, on_each_backend, quick, Backend};
use kyu::{JobState, Kyu, NewJob, Outcome, Worker};

on_each_backend!(
    sigkilled_worker_job_is_rescued_and_the_lost_attempt_recorded,
    nothing_is_lost_when_a_busy_worker_is_killed,
    prefetched_jobs_of_a_sigkilled_worker_are_rescued_without_an_attempt_charged,
);

const LEASE: Duration = Duration::from_secs(2);

/// Appends "id attempt" to the run log: the record of every handler start.
/// One write per line (`writeln!` may split a line into several writes, and
/// a reader between them saw half a line).
fn log_run(path: &str, id: i64, attempt: u32) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .expect("open run log");
    f.write_all(format!("{id} {attempt}\n").as_bytes())
        .expect("write run log");
}

/// The complete lines of the run log (a line being written is left out).
fn runs(path: &str) -> Vec<(i64, u32)> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let complete = &text[..text.rfind('\n').map_or(0, |i| i + 1)];
    complete
        .lines()
        .map(|l| {
            let mut p = l.split(' ');
            (
                p.next().unwrap().parse().unwrap(),
                p.next().unwrap().parse().unwrap(),
            )
        })
        .collect()
}

/// The worker run in the child process: each job logs its start, then works
/// for `KYU_CRASH_JOB_MS`. `KYU_CRASH_CONCURRENCY` (default 4) and
/// `KYU_CRASH_PREFETCH` (a fixed prefetch; default: the worker's default)
/// set its queue's slots.
#[tokio::test]
async fn child_worker() {
    let Ok(url) = std::env::var("KYU_CRASH_CHILD") else {
        return; // not a child: nothing to do
    };
    let log = std::env::var("KYU_CRASH_LOG").unwrap();
    let job_ms: u64 = std::env::var("KYU_CRASH_JOB_MS").unwrap().parse().unwrap();
    let number = |var: &str, default: usize| {
        std::env::var(var).map_or(default, |v| v.parse().expect("a number"))
    };
    let concurrency = number("KYU_CRASH_CONCURRENCY", 4);
    let prefetch = std::env::var("KYU_CRASH_PREFETCH")
        .ok()
        .map(|v| kyu::Prefetch::Fixed(v.parse().expect("a number")));
    let kyu = Kyu::connect(&url).await.unwrap();
    let _worker = Worker::new(&kyu)
        .handle("work", move |ctx| {
            let log = log.clone();
            async move {
                log_run(&log, ctx.id(), ctx.attempt());
                tokio::time::sleep(Duration::from_millis(job_ms)).await;
                Ok(Outcome::Done)
            }
        })
        .queue("default", concurrency)
        .configure(|c| {
            quick(c);
            if let Some(p) = prefetch {
                c.prefetch = p;
            }
            c.id = "doomed-worker".into();
            c.lease = LEASE;
            c.heartbeat_every = Duration::from_millis(500);
        })
        .start();
    // Run until killed.
    tokio::time::sleep(Duration::from_secs(3600)).await;
}

fn spawn_child(url: &str, log: &str, job_ms: u64) -> Child {
    spawn_child_with(url, log, job_ms, &[])
}

fn spawn_child_with(url: &str, log: &str, job_ms: u64, env: &[(&str, &str)]) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args(["child_worker", "--exact", "--nocapture", "--test-threads=1"])
        .env("KYU_CRASH_CHILD", url)
        .env("KYU_CRASH_LOG", log)
        .env("KYU_CRASH_JOB_MS", job_ms.to_string())
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn the worker process")
}

fn sigkill(child: &mut Child) {
    // SAFETY: sending a signal to a process id we own.
    let rc = unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
    assert_eq!(rc, 0, "kill failed");
    let status = child.wait().unwrap();
    assert!(!status.success(), "the child died of SIGKILL");
}

async fn rescue_worker(kyu: &Kyu, log: String) -> kyu::WorkerHandle {
    Worker::new(kyu)
        .handle("work", move |ctx| {
            let log = log.clone();
            async move {
                log_run(&log, ctx.id(), ctx.attempt());
                Ok(Outcome::Done)
            }
        })
        .configure(|c| {
            quick(c);
            c.id = "rescuer".into();
            c.lease = LEASE;
            // Heartbeats must come more often than the lease runs out
            // (WorkerConfig::validate).
            c.heartbeat_every = Duration::from_millis(500);
            let m = c.maintenance.as_mut().unwrap();
            m.reap_every = Duration::from_millis(200);
        })
        .start()
}

async fn sigkilled_worker_job_is_rescued_and_the_lost_attempt_recorded(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let url = backend.fresh_url(dir.path());
    let log = dir.path().join("runs.log").display().to_string();
    let kyu = Kyu::connect(&url).await.unwrap();
    let e = kyu
        .enqueue(NewJob::new("work", serde_json::json!({})))
        .await
        .unwrap();

    let mut child = spawn_child(&url, &log, 3_600_000);
    eventually(
        Duration::from_secs(30),
        "the child starts the job",
        || async { !runs(&log).is_empty() },
    )
    .await;
    let running = kyu.job(e.id).await.unwrap();
    assert_eq!(running.state, JobState::Running);
    assert_eq!(running.worker.as_deref(), Some("doomed-worker"));
    sigkill(&mut child);

    let rescuer = rescue_worker(&kyu, log.clone()).await;
    let job = kyu
        .wait(e.id)
        .timeout(Duration::from_secs(30))
        .await
        .unwrap();
    rescuer.shutdown().await;

    assert_eq!(job.state, JobState::Completed);
    assert_eq!(job.attempt, 2);
    assert_eq!(job.errors.len(), 1, "{:?}", job.errors);
    assert_eq!(job.errors[0].attempt, 1);
    assert_eq!(job.errors[0].worker, "doomed-worker");
    assert!(
        job.errors[0].message.contains("lease expired"),
        "{:?}",
        job.errors
    );
    assert_eq!(runs(&log), vec![(e.id, 1), (e.id, 2)]);
}

async fn nothing_is_lost_when_a_busy_worker_is_killed(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let url = backend.fresh_url(dir.path());
    let log = dir.path().join("runs.log").display().to_string();
    let kyu = Kyu::connect(&url).await.unwrap();
    let n = 200;
    let jobs = (0..n)
        .map(|i| NewJob::new("work", serde_json::json!({ "i": i })))
        .collect();
    let ids: Vec<i64> = kyu
        .enqueue_many(jobs)
        .await
        .unwrap()
        .iter()
        .map(|e| e.id)
        .collect();

    let mut child = spawn_child(&url, &log, 20);
    eventually(
        Duration::from_secs(30),
        "the child has run a third",
        || async { runs(&log).len() >= n / 3 },
    )
    .await;
    sigkill(&mut child);
    let killed_at = runs(&log).len();
    assert!(killed_at < n, "the child was killed mid-run");

    let rescuer = rescue_worker(&kyu, log.clone()).await;
    for id in &ids {
        let job = kyu
            .wait(*id)
            .timeout(Duration::from_secs(60))
            .await
            .unwrap();
        assert_eq!(job.state, JobState::Completed, "job {id}");
    }
    rescuer.shutdown().await;

    // Every job ran; the only second runs are of jobs the dead worker held,
    // and each of those has its lost attempt recorded. A job the dead worker
    // had claimed but not yet started (killed between the claim's commit and
    // the handler's first line) ran once, as attempt 2, its attempt 1 lost.
    let log = runs(&log);
    for id in &ids {
        let attempts: Vec<u32> = log
            .iter()
            .filter(|(j, _)| j == id)
            .map(|(_, a)| *a)
            .collect();
        let job = kyu.job(*id).await.unwrap();
        match attempts.as_slice() {
            [] => panic!("job {id} never ran"),
            [1] => assert!(job.errors.is_empty(), "job {id}: {:?}", job.errors),
            [1, 2] | [2] => {
                assert_eq!(job.errors.len(), 1, "job {id}: {:?}", job.errors);
                let lost = &job.errors[0];
                assert_eq!(
                    (lost.attempt, lost.worker.as_str()),
                    (1, "doomed-worker"),
                    "job {id}"
                );
                assert!(lost.message.contains("lease expired"), "job {id}: {lost:?}");
            }
            other => panic!("job {id} ran as attempts {other:?}"),
        }
    }
    // The dead worker held at most 4 running jobs plus, at most, 4 whose
    // handlers had ended but whose results were not yet written.
    let duplicates = log.len() - n;
    assert!(
        duplicates <= 8,
        "only the jobs the dead worker held run twice: {duplicates}"
    );
}

/// Only started attempts count: a worker (concurrency 2, prefetch 20) holds
/// 2 running jobs and 10 claimed ahead, never started, when it is SIGKILLed.
/// Another worker completes every job; the started ones have their lost
/// attempt recorded, the never-started ones ran once, as attempt 1, with no
/// error and no `lease_expired` event.
async fn prefetched_jobs_of_a_sigkilled_worker_are_rescued_without_an_attempt_charged(
    backend: Backend,
) {
    let dir = tempfile::tempdir().unwrap();
    let url = backend.fresh_url(dir.path());
    let log = dir.path().join("runs.log").display().to_string();
    let kyu = Kyu::connect(&url).await.unwrap();
    let n = 12;
    let ids: Vec<i64> = kyu
        .enqueue_many(
            (0..n)
                .map(|i| NewJob::new("work", serde_json::json!({ "i": i })).max_attempts(1))
                .collect(),
        )
        .await
        .unwrap()
        .iter()
        .map(|e| e.id)
        .collect();

    let mut child = spawn_child_with(
        &url,
        &log,
        3_600_000,
        &[("KYU_CRASH_CONCURRENCY", "2"), ("KYU_CRASH_PREFETCH", "20")],
    );
    eventually(
        Duration::from_secs(30),
        "the child starts 2 jobs and holds all 12",
        || async {
            let mut held = 0;
            for id in &ids {
                let j = kyu.job(*id).await.unwrap();
                if j.state == JobState::Running && j.worker.as_deref() == Some("doomed-worker") {
                    held += 1;
                }
            }
            runs(&log).len() == 2 && held == n
        },
    )
    .await;
    // Give a wrongly started third handler time to show in the log.
    tokio::time::sleep(Duration::from_millis(300)).await;
    sigkill(&mut child);
    let started: Vec<i64> = runs(&log).iter().map(|(id, _)| *id).collect();
    assert_eq!(started.len(), 2, "concurrency 2: {started:?}");

    let since = kyu.last_event_id().await.unwrap();
    let rescuer = rescue_worker(&kyu, log.clone()).await;
    for id in &ids {
        let job = kyu
            .wait(*id)
            .timeout(Duration::from_secs(60))
            .await
            .unwrap();
        let runs_of: Vec<u32> = runs(&log)
            .iter()
            .filter(|(j, _)| j == id)
            .map(|(_, a)| *a)
            .collect();
        if started.contains(id) {
            // Its only attempt was lost with the worker: failed, recorded.
            assert_eq!(job.state, JobState::Failed, "job {id}");
            assert_eq!(runs_of, vec![1], "job {id}");
            assert_eq!(job.errors.len(), 1, "job {id}: {:?}", job.errors);
            assert!(job.errors[0].message.contains("lease expired"));
        } else {
            // Never started: its single attempt was given back, and used now.
            assert_eq!(job.state, JobState::Completed, "job {id}: {:?}", job.errors);
            assert_eq!(job.attempt, 1, "job {id}: no attempt charged");
            assert!(job.errors.is_empty(), "job {id}: {:?}", job.errors);
            assert_eq!(runs_of, vec![1], "job {id}");
        }
    }
    rescuer.shutdown().await;

    let events = kyu.store().read_events(since, 10_000).await.unwrap().events;
    for e in &events {
        if e.event_type == kyu::EventType::LeaseExpired || e.event_type == kyu::EventType::Failed {
            let id = e.job_id.unwrap();
            assert!(started.contains(&id), "job {id} never started: {e:?}");
        }
    }
    let released = events
        .iter()
        .filter(|e| e.event_type == kyu::EventType::Released)
        .count();
    assert_eq!(released, n - 2, "one `released` per never-started job");
}
