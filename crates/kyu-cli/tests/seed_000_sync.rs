//! `examples/seed-000-sync` end to end, on SQLite, with real processes: a
//! `kyu serve` and two `kyu worker`s run the example's kyu.toml; triggering
//! the 15-minute schedule enqueues one batch of 12 per-user syncs (one user
//! fails on every attempt), the syncs never run more than 5 at once across
//! the three processes (`global_concurrency = 5`), the failing user is tried
//! 3 times, and the batch's on_complete job logs the seed's summary line
//! with the counts, once.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const KYU: &str = env!("CARGO_BIN_EXE_kyu");
const SCHEDULE: &str = "sync-every-15-minutes";

/// A copy of the example in a temporary directory.
struct Site {
    dir: tempfile::TempDir,
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        // A database (and its wake-up sockets) of a run in place stays behind.
        if e.file_name().to_string_lossy().starts_with("kyu.db") {
            continue;
        }
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}

impl Site {
    fn new() -> Site {
        let dir = tempfile::tempdir().unwrap();
        let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/seed-000-sync");
        copy_dir(&example, dir.path());
        Site { dir }
    }
    fn path(&self, f: &str) -> PathBuf {
        self.dir.path().join(f)
    }
    /// `kyu ARGS` in the example's directory, with this build's `kyu` first
    /// on PATH (the schedule's script runs `kyu enqueue`).
    fn cmd(&self, args: &[&str]) -> Command {
        let bin = Path::new(KYU).parent().unwrap();
        let path = format!(
            "{}:{}",
            bin.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let mut c = Command::new(KYU);
        c.current_dir(self.dir.path())
            .args(args)
            .env("PATH", path)
            .env("SYNC_TRACE", self.path("trace.log"))
            .env_remove("KYU_DATABASE_URL")
            .env_remove("KYU_CONFIG")
            .env_remove("KYU_HTTP");
        c
    }
    fn json(&self, args: &[&str]) -> serde_json::Value {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        let o = self.cmd(&all).output().unwrap();
        assert!(
            o.status.success(),
            "kyu {args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        serde_json::from_slice(&o.stdout).unwrap()
    }
    fn jobs(&self, kind: &str) -> Vec<serde_json::Value> {
        self.json(&["jobs", "ls", "--kind", kind, "--limit", "1000"])["jobs"]
            .as_array()
            .unwrap()
            .clone()
    }
    fn spawn(&self, args: &[&str]) -> Child {
        self.cmd(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    }
}

/// The processes of the test: stopped (SIGTERM) when dropped, pass or fail.
struct Fleet(Vec<Child>);

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

/// The (start, end) of each attempt, from the `start KEY NANOS` and `end KEY
/// NANOS` lines the sync script writes.
fn intervals(log: &Path) -> Vec<(u128, u128)> {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let mut starts = std::collections::BTreeMap::new();
    let mut out = Vec::new();
    for l in text.lines() {
        let f: Vec<&str> = l.split(' ').collect();
        let t: u128 = f[2].parse().expect("nanoseconds");
        match f[0] {
            "start" => {
                starts.insert(f[1].to_string(), t);
            }
            "end" => out.push((starts.remove(f[1]).expect("a start before the end"), t)),
            other => panic!("unexpected trace line {other:?}"),
        }
    }
    assert!(starts.is_empty(), "every attempt ended: {starts:?}");
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

#[test]
fn seed_000_example_syncs_users_in_a_batch_and_logs_the_summary() {
    let s = Site::new();
    let check = s.cmd(&["config", "check"]).output().unwrap();
    assert!(
        check.status.success(),
        "the example's kyu.toml is valid: {}",
        String::from_utf8_lossy(&check.stderr)
    );

    // One serve (scheduler and workers) and two more workers: 15 slots of
    // the sync queue in all, 5 of them usable at once.
    let _fleet = Fleet(vec![
        s.spawn(&["serve", "--http", "off"]),
        s.spawn(&["worker"]),
        s.spawn(&["worker"]),
    ]);
    wait_until(
        Duration::from_secs(60),
        "kyu serve declares the schedule",
        || {
            let o = s.cmd(&["--json", "schedules", "ls"]).output().unwrap();
            o.status.success()
                && serde_json::from_slice::<serde_json::Value>(&o.stdout)
                    .map(|v| {
                        v.as_array()
                            .is_some_and(|a| a.iter().any(|x| x["name"] == SCHEDULE))
                    })
                    .unwrap_or(false)
        },
    );
    let o = s.cmd(&["schedules", "trigger", SCHEDULE]).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));

    wait_until(
        Duration::from_secs(120),
        "the summary job completes",
        || {
            // A tick that failed (e.g. no `kyu` on PATH) says why at once.
            if let Some(t) = s
                .jobs("sync_all_users")
                .iter()
                .find(|j| j["state"] == "failed")
            {
                let o = s
                    .cmd(&["jobs", "logs", &t["id"].to_string()])
                    .output()
                    .unwrap();
                panic!("the tick failed: {}", String::from_utf8_lossy(&o.stdout));
            }
            s.jobs("sync_summary")
                .iter()
                .any(|j| j["state"] == "completed")
        },
    );
    // Give a second summary (there must be none) time to show.
    std::thread::sleep(Duration::from_millis(1500));

    // The tick enqueued the batch once.
    let ticks = s.jobs("sync_all_users");
    assert_eq!(ticks.len(), 1, "{ticks:?}");
    assert_eq!(ticks[0]["state"], "completed", "{:?}", ticks[0]);

    // 12 syncs: 11 completed on their first attempt, user 7 failed after 3.
    let syncs = s.jobs("sync_user");
    assert_eq!(syncs.len(), 12, "one job per line of users.jsonl");
    for j in &syncs {
        assert_eq!(j["queue"], "sync");
        assert_eq!(j["max_attempts"], 3, "the kind's max_attempts: {j}");
        let args: serde_json::Value = serde_json::from_str(j["args"].as_str().unwrap()).unwrap();
        if args["user"] == 7 {
            assert_eq!(
                (&j["state"], &j["attempt"]),
                (&"failed".into(), &3.into()),
                "{j}"
            );
        } else {
            assert_eq!(
                (&j["state"], &j["attempt"]),
                (&"completed".into(), &1.into()),
                "{j}"
            );
        }
    }

    // The summary ran once and logged the seed's line with the counts.
    let summaries = s.jobs("sync_summary");
    assert_eq!(summaries.len(), 1, "on_complete ran once: {summaries:?}");
    let id = summaries[0]["id"].to_string();
    let o = s.cmd(&["jobs", "logs", &id]).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let logs = String::from_utf8_lossy(&o.stdout);
    assert!(
        logs.contains("✅ [SYNC] 全ユーザー同期完了: 成功11/失敗1"),
        "the summary line with the counts: {logs}"
    );
    assert!(
        logs.contains("処理ユーザー数: 12, 成功: 11, 失敗: 1"),
        "{logs}"
    );

    // Never more than 5 syncs at once across the three processes; 14
    // attempts in all (11 + 3).
    let iv = intervals(&s.path("trace.log"));
    assert_eq!(iv.len(), 14, "every attempt recorded its start and end");
    let most = max_overlap(&iv);
    assert!(most <= 5, "{most} syncs ran at once; the limit is 5");
    assert!(most >= 2, "the syncs ran side by side ({most} at most)");
}
