//! A network cut to PostgreSQL without a reset (issue 14, point 4).
//!
//! Two worker processes reach PostgreSQL through a TCP proxy this test
//! runs. While they hold leases, the proxy freezes every connection: it
//! stops reading and writing in both directions but closes nothing, so no
//! FIN and no RST ever come (a failed-over server, a dropped NAT entry).
//! The cut lasts longer than the lease, then heals.
//!
//! Then: a call made through the proxy during the cut fails within its
//! time limit instead of hanging (it hung for the whole cut before the
//! limits); the workers, never restarted, carry on; every job completes; a
//! job ran more than once only when a lease expired (counted and printed).
//!
//! Runs when `KYU_TEST_POSTGRES_URL` is set. The workers are this test
//! binary run again with `KYU_CUT_ROLE=worker`.

mod common;

use std::collections::HashMap;
use std::io::Write;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::quick;
use kyu::{JobState, Kyu, NewJob, Outcome, Worker};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

const JOBS: usize = 80;
const LEASE: Duration = Duration::from_secs(3);
const CUT: Duration = Duration::from_secs(10);
/// The limits on the proxied URL: a call gives up after 2 s + 2 s.
const LIMITS: &str = "statement_timeout=2s&connect_timeout=2";

fn append(path: &str, line: &str) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .expect("open log");
    f.write_all(format!("{line}\n").as_bytes())
        .expect("write log");
}

/// A worker process: runs `cut` jobs (each takes 400 ms) through the proxy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn network_cut_child() {
    if std::env::var("KYU_CUT_ROLE").is_err() {
        return; // not a child
    }
    let url = std::env::var("KYU_CUT_URL").unwrap();
    let log = std::env::var("KYU_CUT_LOG").unwrap();
    if std::env::var_os("KYU_CUT_TRACE").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter("info")
            .with_writer(std::io::stderr)
            .try_init();
    }
    let kyu = Kyu::connect(&url).await.unwrap();
    let _worker = Worker::new(&kyu)
        .handle("cut", move |ctx| {
            let log = log.clone();
            async move {
                append(&log, &format!("{} {}", ctx.id(), ctx.attempt()));
                tokio::time::sleep(Duration::from_millis(400)).await;
                Ok(Outcome::Done)
            }
        })
        .queue("default", 4)
        .configure(|c| {
            quick(c);
            c.id = format!("cut-{}", std::process::id());
            c.lease = LEASE;
            c.heartbeat_every = Duration::from_millis(1000);
            let m = c.maintenance.as_mut().unwrap();
            m.reap_every = Duration::from_millis(500);
        })
        .start();
    tokio::time::sleep(Duration::from_secs(3600)).await;
}

/// Copies `from` to `to` while the gate is open. When it closes, nothing
/// more is read or written (bytes already read are held) and no socket is
/// closed, until it opens again.
async fn pump(mut from: OwnedReadHalf, mut to: OwnedWriteHalf, mut frozen: watch::Receiver<bool>) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        while *frozen.borrow_and_update() {
            if frozen.changed().await.is_err() {
                return;
            }
        }
        let n = tokio::select! {
            r = from.read(&mut buf) => match r {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            },
            _ = frozen.changed() => continue,
        };
        while *frozen.borrow_and_update() {
            if frozen.changed().await.is_err() {
                return;
            }
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

/// A proxy to `target` on a free local port; `frozen` cuts and heals it.
async fn proxy(target: String) -> (u16, watch::Sender<bool>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = watch::channel(false);
    tokio::spawn(async move {
        loop {
            let Ok((client, _)) = listener.accept().await else {
                return;
            };
            // A connection made during the cut is accepted, never answered.
            let rx = rx.clone();
            let target = target.clone();
            tokio::spawn(async move {
                let Ok(server) = TcpStream::connect(&target).await else {
                    return;
                };
                let (client_r, client_w) = client.into_split();
                let (server_r, server_w) = server.into_split();
                tokio::join!(
                    pump(client_r, server_w, rx.clone()),
                    pump(server_r, client_w, rx)
                );
            });
        }
    });
    (port, tx)
}

/// A child process killed on drop.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_survive_a_silent_network_cut_longer_than_the_lease() {
    if std::env::var("KYU_CUT_ROLE").is_ok() {
        return;
    }
    let Some(base) = kyu::postgres::testing::test_url() else {
        eprintln!(
            "skipped: set {} to run the network-cut test",
            kyu::postgres::testing::TEST_URL_VAR
        );
        return;
    };
    let direct = kyu::postgres::testing::with_fresh_schema(&base, "t_cut");
    let (options, _) = kyu::postgres::split_url(&direct).unwrap();
    let (host, port) = (options.get_host().to_string(), options.get_port());
    let authority = format!("@{host}:{port}/");
    if !direct.contains(&authority) {
        eprintln!("skipped: the network-cut test needs a URL of the form postgres://USER@HOST:PORT/DB, not {base}");
        return;
    }
    let (proxy_port, cut) = proxy(format!("{host}:{port}")).await;
    let proxied = format!(
        "{}&{LIMITS}",
        direct.replace(&authority, &format!("@127.0.0.1:{proxy_port}/"))
    );
    let tmp = tempfile::tempdir().unwrap();
    let runs = tmp.path().join("runs.log").display().to_string();

    // The test's own view, not through the proxy; the schema is made here.
    let kyu = Kyu::connect(&direct).await.unwrap();
    let ids: Vec<i64> = kyu
        .enqueue_many(
            (0..JOBS)
                .map(|i| NewJob::new("cut", serde_json::json!({ "n": i })))
                .collect::<Vec<_>>(),
        )
        .await
        .unwrap()
        .iter()
        .map(|e| e.id)
        .collect();
    // A client through the proxy, for a call during the cut.
    let through = Kyu::connect(&proxied).await.unwrap();
    through.queues().await.unwrap();

    let workers: Vec<Killed> = (0..2)
        .map(|_| {
            Killed(
                Command::new(std::env::current_exe().unwrap())
                    .args([
                        "network_cut_child",
                        "--exact",
                        "--nocapture",
                        "--test-threads=1",
                    ])
                    .env("KYU_CUT_ROLE", "worker")
                    .env("KYU_CUT_URL", &proxied)
                    .env("KYU_CUT_LOG", &runs)
                    .stdout(Stdio::null())
                    .stderr(if std::env::var_os("KYU_CUT_TRACE").is_some() {
                        Stdio::inherit()
                    } else {
                        Stdio::null()
                    })
                    .spawn()
                    .expect("spawn a worker"),
            )
        })
        .collect();

    // Cut while jobs are running (leases held).
    let start = Instant::now();
    loop {
        let running: u64 = kyu
            .queues()
            .await
            .unwrap()
            .iter()
            .map(|q| q.count(JobState::Running))
            .sum();
        if running >= 4 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the workers never took jobs"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let before = kyu.queues().await.unwrap();
    let count = |s: JobState| -> u64 { before.iter().map(|q| q.count(s)).sum() };
    let (held, done_before) = (count(JobState::Running), count(JobState::Completed));
    cut.send_replace(true);
    let cut_at = Instant::now();

    // A call through the proxy during the cut fails in time: it does not
    // wait for the heal.
    let call_start = Instant::now();
    let during = tokio::time::timeout(CUT - Duration::from_secs(1), through.queues()).await;
    let call_took = call_start.elapsed();
    let error = match during {
        Err(_) => {
            panic!("a call through the cut network was still waiting after {call_took:?}: it hangs")
        }
        Ok(Ok(_)) => panic!("a call through the cut network succeeded"),
        Ok(Err(e)) => e.to_string(),
    };
    assert!(
        error.contains("no answer from PostgreSQL within"),
        "{error}"
    );
    tokio::time::sleep(CUT.saturating_sub(cut_at.elapsed())).await;
    cut.send_replace(false);
    let healed = Instant::now();

    // Every job completes, the workers never restarted.
    let mut left: Vec<i64> = ids.clone();
    while !left.is_empty() {
        let mut still = Vec::new();
        for id in left {
            if kyu.job(id).await.unwrap().state != JobState::Completed {
                still.push(id);
            }
        }
        left = still;
        assert!(
            healed.elapsed() < Duration::from_secs(90),
            "{} jobs not completed 90 s after the heal",
            left.len()
        );
        if !left.is_empty() {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let recovered = healed.elapsed();
    drop(workers);

    let mut per_job: HashMap<i64, u32> = HashMap::new();
    for l in std::fs::read_to_string(&runs).unwrap().lines() {
        let id: i64 = l.split(' ').next().unwrap().parse().unwrap();
        *per_job.entry(id).or_default() += 1;
    }
    let (mut duplicates, mut expired_total, mut unexplained) = (0, 0, Vec::new());
    for id in &ids {
        let job = kyu.job(*id).await.unwrap();
        let expired = job
            .errors
            .iter()
            .filter(|e| e.message.contains("lease expired"))
            .count() as u32;
        expired_total += expired;
        let n = per_job.get(id).copied().unwrap_or(0);
        assert!(n >= 1, "job {id} completed without running");
        duplicates += n - 1;
        if n > 1 + expired {
            unexplained.push(format!("job {id} ran {n} times, {expired} expired leases"));
        }
    }
    assert!(
        unexplained.is_empty(),
        "duplicates not from expired leases: {unexplained:?}"
    );
    println!(
        "network cut: {JOBS} jobs, 2 worker processes through a proxy, lease {LEASE:?}; cut (no FIN, \
         no RST) for {CUT:?} with {held} leases held and {done_before} jobs done; a call through the proxy during the cut failed \
         after {call_took:.1?}: {error:?}; after the heal all {JOBS} completed in {recovered:.1?} \
         with no restart; {duplicates} duplicate runs, {expired_total} expired leases"
    );
}
