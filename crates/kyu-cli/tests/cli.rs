//! The `kyu` binary as a user runs it: output, --json, errors and exit codes.

use std::process::{Command, Output};

struct Db {
    _dir: tempfile::TempDir,
    url: String,
}

fn db() -> Db {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/kyu.db", dir.path().display());
    Db { _dir: dir, url }
}

fn kyu(db: &Db, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kyu"))
        .arg("--database")
        .arg(&db.url)
        .args(args)
        .env_remove("KYU_DATABASE_URL")
        .output()
        .expect("run kyu")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}
fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn json(o: &Output) -> serde_json::Value {
    assert!(o.status.success(), "kyu failed: {}", stderr(o));
    serde_json::from_slice(&o.stdout).expect("JSON on stdout")
}

#[test]
fn enqueue_then_list_show_and_cancel() {
    let db = db();
    let o = kyu(
        &db,
        &[
            "enqueue",
            "send_email",
            r#"{"to":"ada@example.com"}"#,
            "--queue",
            "mail",
            "--tag",
            "tenant:1",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("enqueued job 1 on queue mail"),
        "{}",
        stdout(&o)
    );

    let ls = stdout(&kyu(&db, &["jobs", "ls"]));
    assert!(ls.starts_with("ID"), "a table with headers: {ls}");
    assert!(
        ls.contains("send_email") && ls.contains("available"),
        "{ls}"
    );

    let listed = json(&kyu(&db, &["--json", "jobs", "ls", "--tag", "tenant:1"]));
    assert_eq!(listed["jobs"][0]["kind"], "send_email");
    assert_eq!(listed["jobs"][0]["args"], r#"{"to":"ada@example.com"}"#);

    let shown = stdout(&kyu(&db, &["jobs", "show", "1"]));
    assert!(shown.contains("state        available"), "{shown}");
    assert!(shown.contains("attempt      0 of 5"), "{shown}");

    let cancelled = stdout(&kyu(&db, &["jobs", "cancel", "1"]));
    assert!(cancelled.contains("job 1: cancelled"), "{cancelled}");
    let again = stdout(&kyu(&db, &["jobs", "cancel", "1"]));
    assert!(again.contains("already cancelled"), "{again}");

    let retried = stdout(&kyu(&db, &["jobs", "retry", "1"]));
    assert!(retried.contains("job 1: retried"), "{retried}");
    assert_eq!(
        json(&kyu(&db, &["--json", "jobs", "show", "1"]))["state"],
        "available"
    );
}

#[test]
fn unique_key_reports_the_duplicate() {
    let db = db();
    kyu(
        &db,
        &[
            "enqueue",
            "sync",
            r#"{"user":42}"#,
            "--unique-key",
            "sync:42",
        ],
    );
    let second = json(&kyu(
        &db,
        &[
            "--json",
            "enqueue",
            "sync",
            r#"{"user":42}"#,
            "--unique-key",
            "sync:42",
        ],
    ));
    assert_eq!(second, serde_json::json!({"id": 1, "duplicate": true}));
}

#[test]
fn bad_json_says_where_it_broke_and_writes_nothing() {
    let db = db();
    let o = kyu(&db, &["enqueue", "k", "{\"a\": 1,\n \"b\": }"]);
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(err.contains("args") && err.contains("line 2"), "{err}");
    assert!(
        !db._dir.path().join("kyu.db").exists(),
        "nothing was written, not even a database"
    );
}

#[test]
fn unknown_ids_are_not_found() {
    let db = db();
    assert!(kyu(&db, &["queues", "pause", "q"]).status.success());
    let o = kyu(&db, &["jobs", "show", "999"]);
    assert_eq!(o.status.code(), Some(3));
    assert!(stderr(&o).contains("job 999 not found"), "{}", stderr(&o));
    let o = kyu(&db, &["jobs", "cancel", "999"]);
    assert_eq!(o.status.code(), Some(3));
    assert!(stderr(&o).contains("no job with id 999"), "{}", stderr(&o));
}

#[test]
fn bad_option_values_say_what_is_accepted() {
    let db = db();
    let o = kyu(&db, &["enqueue", "k", "--delay", "soon"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("accepted: a number with a unit"),
        "{}",
        stderr(&o)
    );
    let o = kyu(&db, &["jobs", "ls", "--state", "done"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("accepted: scheduled, available"),
        "{}",
        stderr(&o)
    );
    let o = kyu(&db, &["enqueue", "k", "--retry", "linear:1s"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("exponential:INITIAL:CAP"),
        "{}",
        stderr(&o)
    );
    let o = Command::new(env!("CARGO_BIN_EXE_kyu"))
        .args(["--database", "mysql://x", "queues", "ls"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("accepted: sqlite://PATH"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn queues_pause_resume_and_counts() {
    let db = db();
    kyu(&db, &["enqueue", "a", "--queue", "mail"]);
    kyu(&db, &["enqueue", "b", "--queue", "mail", "--delay", "1h"]);
    assert!(kyu(&db, &["queues", "pause", "mail"]).status.success());
    let q = json(&kyu(&db, &["--json", "queues", "ls"]));
    assert_eq!(q[0]["queue"], "mail");
    assert_eq!(q[0]["paused"], true);
    assert_eq!(q[0]["counts"]["available"], 1);
    assert_eq!(q[0]["counts"]["scheduled"], 1);
    let table = stdout(&kyu(&db, &["queues", "ls"]));
    assert!(table.contains("mail   yes"), "{table}");
    assert!(kyu(&db, &["queues", "resume", "mail"]).status.success());
    assert_eq!(
        json(&kyu(&db, &["--json", "queues", "ls"]))[0]["paused"],
        false
    );
}

#[test]
fn retry_all_failed_needs_no_ids() {
    let db = db();
    assert!(kyu(&db, &["queues", "pause", "mail"]).status.success());
    let o = kyu(
        &db,
        &["--json", "jobs", "retry", "--all-failed", "--queue", "mail"],
    );
    assert_eq!(json(&o), serde_json::json!({"retried": 0, "key_held": []}));
    let o = kyu(&db, &["jobs", "retry"]);
    assert_eq!(o.status.code(), Some(2), "ids or --all-failed are required");
}

/// Fails job `id` for good as a worker would (the job must be the next
/// claimable one of `default`).
fn fail_job(db: &Db, id: i64) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let kyu = kyu::Kyu::connect(&db.url).await.unwrap();
        let store = kyu.store();
        let claimed = store
            .claim(kyu::store::Claim {
                worker: "test".into(),
                queues: vec!["default".into()],
                kinds: None,
                limit: 1,
                lease: std::time::Duration::from_secs(30),
                unstarted: false,
            })
            .await
            .unwrap();
        assert_eq!(claimed[0].id, id);
        store
            .finish(vec![kyu::store::Finish {
                lease: claimed[0].lease(),
                worker: "test".into(),
                outcome: kyu::store::FinishOutcome::Errored {
                    message: "boom".into(),
                    retry_at: chrono::Utc::now(),
                    permanent: true,
                },
            }])
            .await
            .unwrap();
    });
}

#[test]
fn retry_refuses_while_another_job_holds_the_unique_key() {
    let db = db();
    let enqueue = |key: &str| {
        let o = kyu(&db, &["enqueue", "ok", "{}", "--unique-key", key]);
        assert!(o.status.success(), "{}", stderr(&o));
    };
    enqueue("U1"); // job 1
    fail_job(&db, 1);
    enqueue("U1"); // job 2: the failed job 1 no longer holds the key
    let o = kyu(&db, &["jobs", "retry", "1"]);
    assert_eq!(o.status.code(), Some(1), "a refused id fails the command");
    assert!(
        stdout(&o).contains("job 1: not retried: unfinished job 2 holds its unique key U1"),
        "{}",
        stdout(&o)
    );
    assert!(
        stderr(&o).contains("1 of 1 job(s) not retried: 1"),
        "{}",
        stderr(&o)
    );
    let shown = stdout(&kyu(&db, &["jobs", "show", "1"]));
    assert!(shown.contains("state        failed"), "{shown}");

    // In bulk: job 3 (U2) and job 4 (U2) both failed; only job 3 comes back.
    kyu(&db, &["jobs", "cancel", "2"]);
    enqueue("U2");
    fail_job(&db, 3);
    enqueue("U2");
    fail_job(&db, 4);
    let o = kyu(&db, &["jobs", "retry", "--all-failed"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("retried 2 failed jobs"), "{out}");
    assert!(
        out.contains("job 4: not retried: unfinished job 3 holds its unique key U2"),
        "{out}"
    );
    let unfinished = json(&kyu(&db, &["--json", "jobs", "ls", "--state", "available"]));
    let ids: Vec<i64> = unfinished["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, vec![3, 1], "one unfinished job per key");
}

/// Polls `f` every 50 ms until it is true; panics after `limit`.
fn wait_until(limit: std::time::Duration, what: &str, mut f: impl FnMut() -> bool) {
    let end = std::time::Instant::now() + limit;
    while std::time::Instant::now() < end {
        if f() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    panic!("timed out after {limit:?} waiting for: {what}");
}

#[test]
fn queues_ls_and_jobs_show_say_when_no_live_worker_handles_a_kind() {
    let db = db();
    let toml = db._dir.path().join("kyu.toml");
    std::fs::write(&toml, "[jobs.a]\ncommand = [\"true\"]\n").unwrap();
    let mut worker = std::process::Command::new(env!("CARGO_BIN_EXE_kyu"))
        .arg("--database")
        .arg(&db.url)
        .arg("--config")
        .arg(&toml)
        .arg("worker")
        .env_remove("KYU_DATABASE_URL")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    assert!(kyu(&db, &["enqueue", "t", "{}"]).status.success()); // job 1
    assert!(kyu(&db, &["enqueue", "a", "{}"]).status.success()); // job 2
    wait_until(
        std::time::Duration::from_secs(20),
        "the worker runs job 2",
        || json(&kyu(&db, &["--json", "jobs", "show", "2"]))["state"] == "completed",
    );
    let shown = stdout(&kyu(&db, &["jobs", "show", "1"]));
    assert!(shown.contains("state        available"), "{shown}");
    assert!(
        shown.contains("attempt      0 of 5"),
        "never claimed: {shown}"
    );
    assert!(
        shown.contains("waiting      no live worker handles kind t on queue default"),
        "{shown}"
    );
    let done = stdout(&kyu(&db, &["jobs", "show", "2"]));
    assert!(!done.contains("no live worker"), "{done}");
    let ls = stdout(&kyu(&db, &["queues", "ls"]));
    assert!(ls.contains("NO WORKER"), "{ls}");
    assert!(
        ls.contains("queue default: 1 job of kind t waits: no live worker handles kind t"),
        "{ls}"
    );
    // A worker that shut down no longer counts.
    // SAFETY: signalling a child we started.
    assert_eq!(unsafe { libc::kill(worker.id() as i32, libc::SIGTERM) }, 0);
    assert!(worker.wait().unwrap().success());
    assert!(kyu(&db, &["enqueue", "a", "{}"]).status.success()); // job 3
    let shown = stdout(&kyu(&db, &["jobs", "show", "3"]));
    assert!(
        shown.contains("no live worker handles kind a on queue default"),
        "{shown}"
    );
    let queues = json(&kyu(&db, &["--json", "queues", "ls"]));
    assert_eq!(
        queues[0]["no_worker"],
        serde_json::json!({"a": 1, "t": 1}),
        "{queues}"
    );
}

#[test]
fn help_explains_itself() {
    let o = Command::new(env!("CARGO_BIN_EXE_kyu"))
        .arg("--help")
        .output()
        .unwrap();
    let help = stdout(&o);
    for needle in [
        "enqueue",
        "jobs",
        "queues",
        "bench",
        "KYU_DATABASE_URL",
        "Exit status",
    ] {
        assert!(help.contains(needle), "--help mentions {needle}: {help}");
    }
}
