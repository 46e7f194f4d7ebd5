//! `kyu events` and `kyu jobs wait` as a user runs them (real processes,
//! a real SQLite file).

use std::io::{BufRead, BufReader};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

struct Db {
    dir: tempfile::TempDir,
    url: String,
}

fn db() -> Db {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/kyu.db", dir.path().display());
    Db { dir, url }
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

fn lines(o: &Output) -> Vec<serde_json::Value> {
    assert!(o.status.success(), "kyu failed: {}", stderr(o));
    stdout(o)
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object a line"))
        .collect()
}

#[test]
fn kyu_events_prints_the_log_filters_it_and_follow_tails_it() {
    let db = db();
    assert!(kyu(&db, &["enqueue", "a", "{}"]).status.success());
    assert!(kyu(&db, &["enqueue", "b", "{}", "--queue", "mail"])
        .status
        .success());
    let all = lines(&kyu(&db, &["events", "--json"]));
    assert_eq!(all.len(), 2, "{all:?}");
    assert_eq!(all[0]["type"], "enqueued");
    assert_eq!(all[0]["job_id"], 1);
    assert_eq!(all[1]["queue"], "mail");
    assert!(all[0].get("args").is_none(), "never the args");
    let first = all[0]["id"].as_i64().unwrap().to_string();
    let after = lines(&kyu(&db, &["events", "--json", "--since", &first]));
    assert_eq!(after, all[1..].to_vec(), "exactly the events after --since");
    assert_eq!(
        lines(&kyu(&db, &["events", "--json", "--queue", "mail"])).len(),
        1
    );
    assert!(lines(&kyu(&db, &["events", "--json", "--type", "started"])).is_empty());
    let text = stdout(&kyu(&db, &["events"]));
    assert!(
        text.contains("enqueued") && text.contains("job 2 queue mail kind b"),
        "{text}"
    );

    let bad = kyu(&db, &["events", "--type", "finished"]);
    assert_eq!(bad.status.code(), Some(2), "{}", stderr(&bad));
    assert!(
        stderr(&bad).contains("lease_expired"),
        "names the accepted types: {}",
        stderr(&bad)
    );

    // --follow: prints what comes after, live, one JSON line per event.
    let last = all[1]["id"].as_i64().unwrap().to_string();
    let mut follow = Command::new(env!("CARGO_BIN_EXE_kyu"))
        .args([
            "--database",
            &db.url,
            "events",
            "--follow",
            "--json",
            "--since",
            &last,
        ])
        .env_remove("KYU_DATABASE_URL")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let out = follow.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    assert!(kyu(&db, &["enqueue", "c", "{}"]).status.success());
    let line = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("the follower prints the new event");
    let _ = follow.kill();
    let _ = follow.wait();
    let e: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(
        (e["type"].as_str(), e["kind"].as_str()),
        (Some("enqueued"), Some("c"))
    );
    assert_eq!(e["job_id"], 3);
}

#[test]
fn kyu_jobs_wait_exits_0_when_completed_and_1_when_failed() {
    let db = db();
    let toml = db.dir.path().join("kyu.toml");
    std::fs::write(
        &toml,
        "[jobs.ok]\ncommand = [\"sh\", \"-c\", \"sleep 0.3; echo '{\\\"n\\\":7}'\"]\n\
         result_from_stdout = true\n\
         [jobs.bad]\ncommand = [\"sh\", \"-c\", \"echo broken >&2; exit 65\"]\n\
         permanent_exit_codes = [65]\n",
    )
    .unwrap();
    assert!(kyu(&db, &["enqueue", "ok", "{}"]).status.success()); // job 1
    assert!(kyu(&db, &["enqueue", "bad", "{}"]).status.success()); // job 2
    assert!(kyu(&db, &["enqueue", "nobody", "{}"]).status.success()); // job 3
    let mut worker = Command::new(env!("CARGO_BIN_EXE_kyu"))
        .args(["--database", &db.url, "--config"])
        .arg(&toml)
        .arg("worker")
        .env_remove("KYU_DATABASE_URL")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let ok = kyu(&db, &["jobs", "wait", "1", "--timeout", "20s"]);
    let bad = kyu(&db, &["jobs", "wait", "2", "--timeout", "20s"]);
    let late = kyu(&db, &["jobs", "wait", "3", "--timeout", "1s"]);
    let missing = kyu(&db, &["jobs", "wait", "99"]);
    let _ = worker.kill();
    let _ = worker.wait();
    assert_eq!(ok.status.code(), Some(0), "{}", stderr(&ok));
    assert!(
        stdout(&ok).contains(r#"job 1 completed: {"n":7}"#),
        "{}",
        stdout(&ok)
    );
    assert_eq!(bad.status.code(), Some(1), "{}", stderr(&bad));
    assert!(stderr(&bad).contains("job 2 failed"), "{}", stderr(&bad));
    assert_eq!(late.status.code(), Some(1));
    assert!(
        stderr(&late).contains("job 3 is still available after 1s"),
        "{}",
        stderr(&late)
    );
    assert_eq!(missing.status.code(), Some(3), "{}", stderr(&missing));
}

#[test]
fn events_retention_in_kyu_toml_is_checked_with_its_line() {
    let db = db();
    let toml = db.dir.path().join("kyu.toml");
    std::fs::write(&toml, "[events]\nretention = \"2h\"\n").unwrap();
    let ok = Command::new(env!("CARGO_BIN_EXE_kyu"))
        .arg("--config")
        .arg(&toml)
        .args(["config", "check"])
        .output()
        .unwrap();
    assert!(ok.status.success(), "{}", stderr(&ok));
    std::fs::write(&toml, "[events]\nretention = \"soon\"\n").unwrap();
    let bad = Command::new(env!("CARGO_BIN_EXE_kyu"))
        .arg("--config")
        .arg(&toml)
        .args(["config", "check"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2), "{}", stderr(&bad));
    assert!(
        stderr(&bad).contains(":2"),
        "names the line: {}",
        stderr(&bad)
    );
}
