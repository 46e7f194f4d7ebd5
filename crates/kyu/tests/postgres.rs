//! kyu on PostgreSQL with real processes: several worker processes sharing
//! one database, wake-ups across processes, and a PostgreSQL restart in the
//! middle of a run.
//!
//! Worker processes are this test binary run again with `KYU_PG_CHILD` set:
//! the `child_worker` test then runs a worker until it is killed. Each handler
//! start is appended to a run log ("id attempt worker"), the record the
//! assertions are made on.
//!
//! The database is `KYU_TEST_POSTGRES_URL` (what `.ci/run` sets), each test
//! in a fresh schema. The restart test starts a private PostgreSQL cluster
//! (`tests/pg_cluster`: initdb and pg_ctl from the machine's PostgreSQL, as
//! the `postgres` user when run as root), so restarting it disturbs nothing
//! else.

mod common;
mod pg_cluster;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::eventually;
use kyu::{JobState, Kyu, NewJob, Outcome, Worker};
use pg_cluster::PrivateCluster;

/// The test database (see the README's "PostgreSQL tests").
fn base_url() -> String {
    kyu::postgres::testing::test_url_or_local()
}

/// `base` with a schema no other test uses.
fn with_fresh_schema(base: &str, prefix: &str) -> String {
    kyu::postgres::testing::with_fresh_schema(base, &format!("t_{prefix}"))
}

fn log_line(path: &str, line: &str) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .expect("open run log");
    // One write per line: appends of a few bytes do not interleave.
    f.write_all(format!("{line}\n").as_bytes())
        .expect("write run log");
}

/// Handler starts recorded in the log: (job id, attempt, worker).
fn runs(path: &str) -> Vec<(i64, u32, String)> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.starts_with("ready"))
        .map(|l| {
            let mut p = l.split(' ');
            (
                p.next().unwrap().parse().unwrap(),
                p.next().unwrap().parse().unwrap(),
                p.next().unwrap().to_string(),
            )
        })
        .collect()
}

fn ready_count(path: &str) -> usize {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.starts_with("ready"))
        .count()
}

/// The worker run in a child process.
#[tokio::test]
async fn child_worker() {
    let Ok(url) = std::env::var("KYU_PG_CHILD") else {
        return; // not a child: nothing to do
    };
    let log = std::env::var("KYU_PG_LOG").unwrap();
    let name = std::env::var("KYU_PG_NAME").unwrap();
    let job_ms: u64 = std::env::var("KYU_PG_JOB_MS").unwrap().parse().unwrap();
    let poll_ms: u64 = std::env::var("KYU_PG_POLL_MS").unwrap().parse().unwrap();
    // The first connection may race a server that is still starting.
    let kyu = loop {
        match Kyu::connect(&url).await {
            Ok(k) => break k,
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    };
    let worker_name = name.clone();
    let run_log = log.clone();
    let (long_name, long_log) = (name.clone(), log.clone());
    let _worker = Worker::new(&kyu)
        .handle("work", move |ctx| {
            let log = run_log.clone();
            let name = worker_name.clone();
            async move {
                log_line(&log, &format!("{} {} {name}", ctx.id(), ctx.attempt()));
                if job_ms > 0 {
                    tokio::time::sleep(Duration::from_millis(job_ms)).await;
                }
                Ok(Outcome::Done)
            }
        })
        .handle("long", move |ctx| {
            let log = long_log.clone();
            let name = long_name.clone();
            async move {
                log_line(&log, &format!("{} {} {name}", ctx.id(), ctx.attempt()));
                let ms = ctx.args_as::<serde_json::Value>()?["ms"]
                    .as_u64()
                    .unwrap_or(0);
                tokio::time::sleep(Duration::from_millis(ms)).await;
                Ok(Outcome::Done)
            }
        })
        .queue("default", 8)
        .configure(|c| {
            c.id = name.clone();
            c.poll_interval = Duration::from_millis(poll_ms);
        })
        .start();
    log_line(&log, &format!("ready {name}"));
    tokio::time::sleep(Duration::from_secs(3600)).await;
}

fn spawn_worker(url: &str, log: &str, name: &str, job_ms: u64, poll_ms: u64) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args(["child_worker", "--exact", "--nocapture", "--test-threads=1"])
        .env("KYU_PG_CHILD", url)
        .env("KYU_PG_LOG", log)
        .env("KYU_PG_NAME", name)
        .env("KYU_PG_JOB_MS", job_ms.to_string())
        .env("KYU_PG_POLL_MS", poll_ms.to_string())
        .env("RUST_LOG", "error")
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn a worker process")
}

/// Kills and reaps the children, whatever the test's outcome.
struct Children(Vec<Child>);

impl Drop for Children {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

async fn enqueue_n(kyu: &Kyu, n: usize) -> Vec<i64> {
    let mut ids = Vec::with_capacity(n);
    for chunk in (0..n).collect::<Vec<_>>().chunks(1000) {
        let jobs = chunk
            .iter()
            .map(|i| NewJob::new("work", serde_json::json!({ "i": i })))
            .collect();
        ids.extend(kyu.enqueue_many(jobs).await.unwrap().iter().map(|e| e.id));
    }
    ids
}

/// Completed jobs of the default queue; `None` while the database is unreachable.
async fn completed(kyu: &Kyu) -> Option<u64> {
    let queues = kyu.queues().await.ok()?;
    Some(
        queues
            .iter()
            .find(|q| q.queue == "default")
            .map(|q| q.count(JobState::Completed))
            .unwrap_or(0),
    )
}

#[tokio::test]
async fn three_worker_processes_share_the_jobs_and_run_each_once() {
    if std::env::var("KYU_PG_CHILD").is_ok() {
        return;
    }
    let url = with_fresh_schema(&base_url(), "three");
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("runs.log").display().to_string();
    let kyu = Kyu::connect(&url)
        .await
        .expect("the test PostgreSQL (see README)");
    let _children = Children(
        ["w1", "w2", "w3"]
            .iter()
            .map(|name| spawn_worker(&url, &log, name, 1, 1000))
            .collect(),
    );
    eventually(Duration::from_secs(60), "three workers ready", || async {
        ready_count(&log) == 3
    })
    .await;

    let n = 3000;
    let ids = enqueue_n(&kyu, n).await;
    eventually(Duration::from_secs(120), "every job completed", || async {
        completed(&kyu).await == Some(n as u64)
    })
    .await;

    let log = runs(&log);
    let mut per_job: BTreeMap<i64, usize> = BTreeMap::new();
    let mut per_worker: BTreeMap<String, usize> = BTreeMap::new();
    for (id, attempt, worker) in &log {
        assert_eq!(*attempt, 1, "job {id} ran as attempt {attempt}");
        *per_job.entry(*id).or_default() += 1;
        *per_worker.entry(worker.clone()).or_default() += 1;
    }
    let twice: Vec<_> = per_job.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "jobs run more than once: {twice:?}");
    assert_eq!(
        per_job.keys().copied().collect::<BTreeSet<_>>(),
        ids.iter().copied().collect::<BTreeSet<_>>(),
        "every job ran"
    );
    assert_eq!(
        per_worker.len(),
        3,
        "all three processes ran jobs: {per_worker:?}"
    );
    for id in ids.iter().step_by(97) {
        let job = kyu.job(*id).await.unwrap();
        assert_eq!(job.state, JobState::Completed);
        assert!(job.errors.is_empty(), "job {id}: {:?}", job.errors);
    }
}

/// An idle worker in another process starts a new job because of the NOTIFY,
/// not its poll: the poll interval here is a minute.
#[tokio::test]
async fn an_idle_worker_in_another_process_is_woken_by_notify() {
    if std::env::var("KYU_PG_CHILD").is_ok() {
        return;
    }
    let url = with_fresh_schema(&base_url(), "wake");
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("runs.log").display().to_string();
    let kyu = Kyu::connect(&url)
        .await
        .expect("the test PostgreSQL (see README)");
    let _children = Children(vec![spawn_worker(&url, &log, "idle", 0, 60_000)]);
    eventually(Duration::from_secs(60), "the worker is ready", || async {
        ready_count(&log) == 1
    })
    .await;
    // Let its first claim find nothing, so it sits in its one-minute wait.
    tokio::time::sleep(Duration::from_millis(500)).await;
    for round in 0..3 {
        let job = kyu
            .enqueue(NewJob::new("work", serde_json::json!({ "round": round })))
            .await
            .unwrap();
        let started = std::time::Instant::now();
        eventually(
            Duration::from_secs(10),
            "the idle worker starts the job long before its poll",
            || async { runs(&log).iter().any(|(id, _, _)| *id == job.id) },
        )
        .await;
        eprintln!(
            "round {round}: job {} started {:?} after enqueue returned",
            job.id,
            started.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// PostgreSQL stops (immediately: connections cut, no checkpoint) while two
/// worker processes are in the middle of 20 000 jobs, and comes back a few
/// seconds later. Producers and workers reconnect by themselves; a handler
/// running through the outage finishes and its result is written; every job
/// completes; none is lost; duplicates are counted and reported.
#[tokio::test]
async fn a_postgres_restart_mid_run_loses_nothing() {
    if std::env::var("KYU_PG_CHILD").is_ok() {
        return;
    }
    let cluster = PrivateCluster::new();
    let url = cluster.url("kyu");
    let log_dir = tempfile::tempdir().unwrap();
    let log = log_dir.path().join("runs.log").display().to_string();
    let kyu = Kyu::connect(&url).await.expect("the private cluster");
    let n = 20_000;
    // A handler that runs through the whole outage: it must not be killed,
    // and its result must be written once the server is back.
    let long = kyu
        .enqueue(NewJob::new("long", serde_json::json!({ "ms": 8000 })).priority(-1))
        .await
        .unwrap();
    let ids = enqueue_n(&kyu, n).await;
    let _children = Children(
        ["a", "b"]
            .iter()
            .map(|name| spawn_worker(&url, &log, name, 2, 200))
            .collect(),
    );
    eventually(
        Duration::from_secs(120),
        "a quarter of the jobs started",
        || async { runs(&log).len() >= n / 4 },
    )
    .await;

    assert!(
        runs(&log).iter().any(|(id, _, _)| *id == long.id),
        "the long handler is running when the server stops"
    );
    cluster.stop_immediately();
    let stopped_at = runs(&log).len();
    // Producers see the outage as errors, and carry on once it is over.
    assert!(
        kyu.enqueue(NewJob::new("probe", serde_json::json!({})))
            .await
            .is_err(),
        "an enqueue while the server is down fails (and the caller knows)"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    cluster.start();
    let restarted_at = runs(&log).len();
    assert!(
        restarted_at < n,
        "the restart happened mid-run ({restarted_at} of {n} started)"
    );

    eventually(
        Duration::from_secs(180),
        "every job completed after the restart",
        // n jobs and the long one
        || async { completed(&kyu).await == Some(n as u64 + 1) },
    )
    .await;
    let after = kyu
        .enqueue(NewJob::new("probe", serde_json::json!({})).queue("probes"))
        .await
        .expect("the producer reconnected");
    assert!(!after.duplicate);

    let long = kyu
        .wait(long.id)
        .timeout(Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(long.state, JobState::Completed);
    assert_eq!(long.attempt, 1, "the long handler ran through the outage");
    assert!(long.errors.is_empty(), "{:?}", long.errors);

    let log: Vec<_> = runs(&log)
        .into_iter()
        .filter(|(id, _, _)| *id != long.id)
        .collect();
    let mut per_job: BTreeMap<i64, Vec<u32>> = BTreeMap::new();
    for (id, attempt, _) in &log {
        per_job.entry(*id).or_default().push(*attempt);
    }
    let lost: Vec<_> = ids.iter().filter(|id| !per_job.contains_key(id)).collect();
    assert!(lost.is_empty(), "jobs never run: {lost:?}");
    let duplicates: Vec<(&i64, &Vec<u32>)> = per_job.iter().filter(|(_, a)| a.len() > 1).collect();
    eprintln!(
        "restart mid-run: {n} jobs, {stopped_at} started before the stop, {} handler runs, \
         {} jobs ran more than once: {:?}",
        log.len(),
        duplicates.len(),
        duplicates.iter().take(20).collect::<Vec<_>>()
    );
    // A job runs twice only if its lease expired while its result could not
    // be written; the outage (about 2 s) is far shorter than the 30 s lease.
    assert!(
        duplicates.len() <= 16,
        "{} jobs ran more than once",
        duplicates.len()
    );
    for id in ids.iter().step_by(211) {
        assert_eq!(kyu.job(*id).await.unwrap().state, JobState::Completed);
    }
    drop(cluster);
}
