//! Flow control across processes: several real `kyu worker` processes on
//! one database (SQLite, and PostgreSQL where `KYU_TEST_POSTGRES_URL` is
//! set) obey a queue's global concurrency and rate limit. Every job records
//! its own start and end (the command writes them, so they lie inside the
//! job's `running` time), and the recorded intervals are checked.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const KYU: &str = env!("CARGO_BIN_EXE_kyu");

struct Site {
    dir: tempfile::TempDir,
}

impl Site {
    fn new(toml: &str) -> Site {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("kyu.toml"), toml).unwrap();
        Site { dir }
    }
    fn path(&self, f: &str) -> PathBuf {
        self.dir.path().join(f)
    }
    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(KYU);
        c.current_dir(self.dir.path())
            .args(args)
            .env_remove("KYU_DATABASE_URL")
            .env_remove("KYU_CONFIG")
            .env_remove("KYU_HTTP");
        c
    }
    fn run(&self, args: &[&str]) -> Output {
        let o = self.cmd(args).output().unwrap();
        assert!(
            o.status.success(),
            "kyu {args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        o
    }
    fn json(&self, args: &[&str]) -> serde_json::Value {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        serde_json::from_slice(&self.run(&all).stdout).unwrap()
    }
    fn enqueue_many(&self, kind: &str, n: usize) {
        let mut c = self
            .cmd(&["enqueue", kind, "--jsonl"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let lines: String = (0..n).map(|i| format!("{{\"i\":{i}}}\n")).collect();
        std::io::Write::write_all(&mut c.stdin.take().unwrap(), lines.as_bytes()).unwrap();
        let o = c.wait_with_output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    fn spawn_worker(&self) -> Child {
        self.cmd(&["worker"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    }
    /// Jobs completed in `queue`; 0 if `kyu queues ls` failed this time (a
    /// loaded test server may be slow to give a connection: the caller polls).
    fn completed(&self, queue: &str) -> u64 {
        let o = self.cmd(&["--json", "queues", "ls"]).output().unwrap();
        if !o.status.success() {
            eprintln!("kyu queues ls: {}", String::from_utf8_lossy(&o.stderr));
            return 0;
        }
        serde_json::from_slice::<serde_json::Value>(&o.stdout)
            .unwrap()
            .as_array()
            .unwrap()
            .iter()
            .find(|q| q["queue"] == queue)
            .and_then(|q| q["counts"]["completed"].as_u64())
            .unwrap_or(0)
    }
}

fn wait_until(limit: Duration, what: &str, mut f: impl FnMut() -> bool) {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("timed out after {limit:?} waiting for: {what}");
}

/// The worker processes of a test: stopped (SIGTERM) when dropped, so a
/// failing test leaves none behind holding database connections.
struct Fleet(Vec<Child>);

impl Fleet {
    fn start(site: &Site, n: usize) -> Fleet {
        Fleet((0..n).map(|_| site.spawn_worker()).collect())
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        for c in &mut self.0 {
            // SAFETY: signalling a child we started.
            unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
        }
        for c in &mut self.0 {
            let _ = c.wait();
        }
    }
}

/// The PostgreSQL runs one at a time: each fleet holds up to 30 connections.
static ONE_FLEET_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// The (start, end) of each job, in nanoseconds, from `start ID NANOS` and
/// `end ID NANOS` lines.
fn intervals(log: &Path) -> Vec<(u128, u128)> {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let mut starts = std::collections::BTreeMap::new();
    let mut out = Vec::new();
    for l in text.lines() {
        let f: Vec<&str> = l.split(' ').collect();
        let (Some(what), Some(id), Some(t)) = (f.first(), f.get(1), f.get(2)) else {
            continue;
        };
        let t: u128 = t.parse().expect("nanoseconds");
        match *what {
            "start" => {
                starts.insert(id.to_string(), t);
            }
            "end" => out.push((starts.remove(*id).expect("a start before the end"), t)),
            _ => {}
        }
    }
    out
}

/// The most intervals that overlap at one instant.
fn max_overlap(iv: &[(u128, u128)]) -> usize {
    let mut edges: Vec<(u128, i32)> = iv.iter().flat_map(|(s, e)| [(*s, 1), (*e, -1)]).collect();
    // An end at the same instant as a start comes first: touching is not overlapping.
    edges.sort();
    let (mut now, mut most) = (0i32, 0i32);
    for (_, d) in edges {
        now += d;
        most = most.max(now);
    }
    most as usize
}

const RECORD: &str = "echo start $KYU_JOB_ID $(date +%s%N) >> {log}; sleep {secs}; \
                      echo end $KYU_JOB_ID $(date +%s%N) >> {log}";

fn site(database: &str, limits: &str, secs: &str) -> Site {
    let record = RECORD.replace("{secs}", secs);
    let toml = format!(
        r#"database = "{database}"

[queues.limited]
concurrency = 4
{limits}

[jobs.step]
queue = "limited"
command = ["sh", "-c", "{record}"]
"#
    );
    let s = Site::new(&toml);
    let log = s.path("runs.log");
    let toml = toml.replace("{log}", &log.display().to_string());
    std::fs::write(s.path("kyu.toml"), toml).unwrap();
    s
}

/// 3 workers, concurrency 4 each, `global_concurrency = 2`, 200 jobs of 50 ms:
/// never more than 2 run at once (without the limit up to 12 would).
fn global_concurrency_holds_across_processes(database: &str) {
    let s = site(database, "global_concurrency = 2", "0.05");
    let n = 200;
    s.enqueue_many("step", n);
    let workers = Fleet::start(&s, 3);
    wait_until(Duration::from_secs(300), "every job completes", || {
        s.completed("limited") == n as u64
    });
    drop(workers);
    let iv = intervals(&s.path("runs.log"));
    assert_eq!(iv.len(), n, "every job recorded its start and end");
    let most = max_overlap(&iv);
    assert!(most <= 2, "{most} jobs ran at once; the limit is 2");
    assert_eq!(
        most, 2,
        "the two slots were used (the test can see overlap)"
    );
}

/// 3 workers, `rate = "20/1s"`, 200 instant jobs: no window of 1 s holds
/// more than 20 starts.
fn rate_holds_across_processes(database: &str) {
    let s = site(database, "rate = \"20/1s\"", "0");
    let n = 200;
    s.enqueue_many("step", n);
    let began = Instant::now();
    let workers = Fleet::start(&s, 3);
    wait_until(Duration::from_secs(300), "every job completes", || {
        s.completed("limited") == n as u64
    });
    drop(workers);
    let elapsed = began.elapsed();
    // The claims, as the store recorded them (a `started` event per claim,
    // at the store's time): the commands' own start times come a fork
    // later, so two of them can be closer than their claims were.
    let o = s.run(&["--json", "events", "--type", "started"]);
    let mut claimed: Vec<kyu::chrono::DateTime<kyu::chrono::Utc>> =
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .map(|l| {
                let e: serde_json::Value = serde_json::from_str(l).expect("a JSON line");
                e["at"].as_str().expect("at").parse().expect("a time")
            })
            .collect();
    claimed.sort();
    assert_eq!(claimed.len(), n, "one start event per job");
    let mut most = 0;
    for (i, c0) in claimed.iter().enumerate() {
        let within = claimed[i..]
            .iter()
            .take_while(|t| **t < *c0 + kyu::chrono::Duration::seconds(1))
            .count();
        most = most.max(within);
    }
    // Without the limit, 3 workers claim the 200 jobs within a second.
    assert!(most <= 20, "{most} starts in one second; the limit is 20");
    let span = (claimed[n - 1] - claimed[0]).to_std().unwrap_or_default();
    eprintln!(
        "rate 20/1s, {n} jobs, 3 workers: at most {most} starts in 1 s; first to last \
         start {span:?} (the limit needs at least 9 s); wall time with start-up {elapsed:?}"
    );
}

#[test]
fn sqlite_global_concurrency_holds_across_processes() {
    global_concurrency_holds_across_processes("sqlite://kyu.db");
}

#[test]
fn sqlite_rate_holds_across_processes() {
    rate_holds_across_processes("sqlite://kyu.db");
}

fn postgres() -> Option<String> {
    let url = kyu::postgres::testing::test_url();
    if url.is_none() {
        eprintln!("KYU_TEST_POSTGRES_URL is not set: the PostgreSQL run is skipped");
    }
    url.map(|u| kyu::postgres::testing::with_fresh_schema(&u, "t_flow"))
}

#[test]
fn postgres_global_concurrency_holds_across_processes() {
    if let Some(url) = postgres() {
        let _one = ONE_FLEET_AT_A_TIME
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        global_concurrency_holds_across_processes(&url);
    }
}

#[test]
fn postgres_rate_holds_across_processes() {
    if let Some(url) = postgres() {
        let _one = ONE_FLEET_AT_A_TIME
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        rate_holds_across_processes(&url);
    }
}

#[test]
fn queues_set_stores_limits_that_ls_shows() {
    let s = Site::new("database = \"sqlite://kyu.db\"\n");
    let o = s.run(&[
        "queues",
        "set",
        "batch",
        "--global-concurrency",
        "2",
        "--rate",
        "3/1m",
    ]);
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        out.contains("queue batch: global_concurrency 2, rate 3/1m"),
        "{out}"
    );
    s.run(&["enqueue", "k", "--queue", "batch"]);
    let ls = String::from_utf8_lossy(&s.run(&["queues", "ls"]).stdout).into_owned();
    assert!(
        ls.contains("queue batch: global concurrency 2 (0 running); rate 3/1m (0 used in the window, 3 left)"),
        "{ls}"
    );
    let o = s.run(&["queues", "set", "batch", "--rate", "none"]);
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("queue batch: global_concurrency 2\n"),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
    for (args, says) in [
        (
            vec!["--global-concurrency", "0"],
            "--global-concurrency: 0 is not accepted",
        ),
        (
            vec!["--global-concurrency", "many"],
            "give a whole number from 1",
        ),
        (vec!["--rate", "3/1y"], "--rate: \"3/1y\" is not accepted"),
        (vec![], "nothing to set"),
    ] {
        let mut all = vec!["queues", "set", "batch"];
        all.extend(args);
        let o = s.cmd(&all).output().unwrap();
        assert_eq!(o.status.code(), Some(2), "{all:?}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains(says), "{all:?}: {err}");
    }
    let v = s.json(&["queues", "ls"]);
    assert_eq!(v[0]["queue"], "batch");
    assert_eq!(v[0]["limits"], serde_json::json!({"global_concurrency": 2}));
}

#[test]
fn kyu_toml_limits_are_checked_and_stored_at_start() {
    let s = Site::new("[queues.batch]\nconcurrency = 1\nglobal_concurrency = 0\n");
    let o = s.cmd(&["config", "check"]).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("kyu.toml:3")
            && err.contains("queues.batch.global_concurrency: 0 is not accepted"),
        "{err}"
    );
    let s = Site::new("[queues.batch]\nrate = \"5/1y\"\n");
    let o = s.cmd(&["config", "check"]).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("kyu.toml:2") && err.contains("STARTS/PERIOD"),
        "{err}"
    );

    let s = Site::new(
        "[queues.batch]\nconcurrency = 1\nglobal_concurrency = 1\nrate = \"5000/1h\"\n\n\
         [jobs.k]\nqueue = \"batch\"\ncommand = [\"true\"]\n",
    );
    s.enqueue_many("k", 3);
    let workers = Fleet::start(&s, 1);
    wait_until(Duration::from_secs(60), "the jobs complete", || {
        s.completed("batch") == 3
    });
    drop(workers);
    let v = s.json(&["queues", "ls"]);
    assert_eq!(
        v[0]["limits"],
        serde_json::json!({"global_concurrency": 1, "rate": "5000/1h"})
    );
    assert_eq!(v[0]["rate_used"], 3);
}
