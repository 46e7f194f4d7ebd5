//! `kyu enqueue --batch` and `kyu batches` with real `kyu worker`
//! processes: a batch built in three appends fires only after it is sealed;
//! on_complete runs once with the counts, on_success not when a job failed
//! for good; bad callback flags are refused before anything is written.

use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const KYU: &str = env!("CARGO_BIN_EXE_kyu");

struct Site {
    dir: tempfile::TempDir,
}

impl Site {
    fn new() -> Site {
        let dir = tempfile::tempdir().unwrap();
        let p = |f: &str| dir.path().join(f).display().to_string();
        // Row 5 fails for good; the callbacks append their args to a log.
        std::fs::write(
            dir.path().join("row.sh"),
            "case \"$KYU_ARGS\" in *'\"row\":5}'*) echo 'row 5 is bad' >&2; exit 3;; esac\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("callback.sh"),
            format!("echo \"$1 $KYU_ARGS\" >> {}\n", p("callbacks.log")),
        )
        .unwrap();
        let toml = format!(
            r#"database = "sqlite://{db}"

[jobs.row]
command = ["sh", "{row}"]
max_attempts = 1

[jobs.report]
command = ["sh", "{cb}", "report"]

[jobs.celebrate]
command = ["sh", "{cb}", "celebrate"]
"#,
            db = p("kyu.db"),
            row = p("row.sh"),
            cb = p("callback.sh"),
        );
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
    fn run_stdin(&self, args: &[&str], input: &str) -> Output {
        let mut c = self
            .cmd(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        std::io::Write::write_all(&mut c.stdin.take().unwrap(), input.as_bytes()).unwrap();
        c.wait_with_output().unwrap()
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
    fn callbacks(&self) -> Vec<String> {
        std::fs::read_to_string(self.path("callbacks.log"))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }
}

/// Kills the worker when the test ends, pass or fail.
struct Worker(Child);

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
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

fn rows(from: u32, to: u32) -> String {
    (from..=to).map(|i| format!("{{\"row\":{i}}}\n")).collect()
}

#[test]
fn batch_in_three_appends_fires_only_after_seal() {
    let s = Site::new();
    let o = s.run_stdin(
        &[
            "--json",
            "enqueue",
            "row",
            "--batch",
            "--open",
            "--on-complete",
            "report:{\"to\":\"ops\"}",
            "--on-success",
            "celebrate",
        ],
        &rows(1, 3),
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let id = v["batch"]["id"].as_i64().expect("the batch id is printed");
    assert_eq!(v["batch"]["sealed"], false);
    let id_s = id.to_string();
    let o = s.run_stdin(&["enqueue", "row", "--batch-id", &id_s], &rows(4, 6));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains(&format!("batch {id} (6 jobs): open")),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );

    // Every job of the open batch finishes: nothing fires.
    let _worker = Worker(
        s.cmd(&["worker"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_until(Duration::from_secs(60), "the six jobs finish", || {
        let b = s.json(&["batches", "show", &id_s]);
        b["succeeded"].as_u64().unwrap() + b["failed"].as_u64().unwrap() == 6
    });
    std::thread::sleep(Duration::from_millis(1500));
    let b = s.json(&["batches", "show", &id_s]);
    assert_eq!(
        (&b["total"], &b["pending"], &b["succeeded"], &b["failed"]),
        (&6.into(), &0.into(), &5.into(), &1.into())
    );
    assert!(b.get("done_at").is_none(), "an open batch is not done: {b}");
    assert!(s.callbacks().is_empty(), "nothing fires before the seal");

    // The third append seals it; the last job's finish fires on_complete once.
    let o = s.run_stdin(
        &["enqueue", "row", "--batch-id", &id_s, "--seal"],
        &rows(7, 8),
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    wait_until(Duration::from_secs(60), "the report runs", || {
        !s.callbacks().is_empty()
    });
    std::thread::sleep(Duration::from_millis(1500));
    let calls = s.callbacks();
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert!(calls[0].starts_with("report "), "{calls:?}");
    let args: serde_json::Value = serde_json::from_str(&calls[0]["report ".len()..]).unwrap();
    assert_eq!(args["to"], "ops");
    assert_eq!(args["batch"]["id"], id);
    assert_eq!(
        (
            &args["batch"]["total"],
            &args["batch"]["succeeded"],
            &args["batch"]["failed"],
            &args["batch"]["cancelled"]
        ),
        (&8.into(), &7.into(), &1.into(), &0.into())
    );
    let b = s.json(&["batches", "show", &id_s]);
    assert!(b["done_at"].is_string(), "{b}");
    assert_eq!(b["callback_jobs"].as_array().unwrap().len(), 1);
    let ls = s.json(&["batches", "ls"]);
    assert_eq!(ls[0]["id"], id);

    // The plain view names every count.
    let o = s.cmd(&["batches", "show", &id_s]).output().unwrap();
    let text = String::from_utf8_lossy(&o.stdout);
    for word in [
        "done",
        "total      8",
        "pending    0",
        "running    0",
        "succeeded  7",
        "failed     1",
        "cancelled  0",
    ] {
        assert!(text.contains(word), "{word:?} in {text}");
    }
}

#[test]
fn batch_flags_refuse_bad_input_and_sealed_batches() {
    let s = Site::new();
    let o = s.run_stdin(
        &["enqueue", "row", "--batch", "--on-complete", "report:[1]"],
        &rows(1, 1),
    );
    assert_eq!(o.status.code(), Some(2));
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(e.contains("--on-complete") && e.contains("object"), "{e}");
    let o = s.run_stdin(
        &["enqueue", "row", "--batch", "--on-success", "report:{nope"],
        &rows(1, 1),
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(!s.path("kyu.db").exists() || s.json(&["batches", "ls"]) == serde_json::json!([]));

    // A sealed batch takes no more jobs; an unknown one is named.
    let o = s.run_stdin(&["--json", "enqueue", "row", "--batch"], &rows(1, 2));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["batch"]["sealed"], true);
    let id = v["batch"]["id"].as_i64().unwrap().to_string();
    let o = s.run_stdin(&["enqueue", "row", "--batch-id", &id], &rows(3, 3));
    assert_ne!(o.status.code(), Some(0));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("is sealed"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let o = s.cmd(&["batches", "show", "999"]).output().unwrap();
    assert_ne!(o.status.code(), Some(0));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("no batch has id 999"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let jobs = s.json(&["jobs", "ls"]);
    assert_eq!(
        jobs["jobs"].as_array().unwrap().len(),
        2,
        "the refused line was not added"
    );
}
