//! Rough edges a new user hit on first contact with the `kyu` binary, each
//! pinned by the command that showed it.

use std::path::Path;
use std::process::{Command, Output};

fn kyu(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kyu"))
        .current_dir(dir)
        .args(args)
        .env_remove("KYU_DATABASE_URL")
        .env_remove("KYU_CONFIG")
        .output()
        .expect("run kyu")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn cron_steps_larger_than_a_field_are_accepted_as_vixie_cron_does() {
    let dir = tempfile::tempdir().unwrap();
    let o = kyu(
        dir.path(),
        &[
            "--json",
            "schedules",
            "preview",
            "0 0 1 */15 *",
            "--after",
            "2026-02-01T00:00:00Z",
            "-n",
            "2",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    // A step past the month field's 12 values selects only its first: January.
    assert_eq!(v["fire_times"][0]["utc"], "2027-01-01T00:00:00Z");
    assert_eq!(v["fire_times"][1]["utc"], "2028-01-01T00:00:00Z");

    let o = kyu(dir.path(), &["schedules", "preview", "*/0 * * * *"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("a whole number from 1"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn a_bad_json_error_names_its_position_once() {
    let dir = tempfile::tempdir().unwrap();
    let o = kyu(dir.path(), &["enqueue", "t", "{1:2}"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let e = stderr(&o);
    assert!(e.contains("not valid JSON"), "{e}");
    assert_eq!(e.matches("column 2").count(), 1, "{e}");
    assert!(stdout(&o).is_empty());
}

fn kyu_stdin(dir: &Path, args: &[&str], input: &str) -> Output {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_kyu"))
        .current_dir(dir)
        .args(args)
        .env_remove("KYU_DATABASE_URL")
        .env_remove("KYU_CONFIG")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run kyu");
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_string();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(input.as_bytes());
    });
    let out = child.wait_with_output().expect("wait for kyu");
    writer.join().unwrap();
    out
}

#[test]
fn bulk_enqueue_from_json_lines_on_stdin() {
    let dir = tempfile::tempdir().unwrap();
    let lines: String = (0..2500).map(|i| format!("{{\"user\":{i}}}\n\n")).collect();
    let o = kyu_stdin(
        dir.path(),
        &["--json", "enqueue", "sync", "--jsonl", "--queue", "batch"],
        &lines,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["lines"], 2500);
    assert_eq!(v["enqueued"], 2500);
    assert_eq!(v["first_id"], 1);
    assert_eq!(v["last_id"], 2500);
    let o = kyu(dir.path(), &["--json", "jobs", "show", "2500"]);
    let job: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(job["queue"], "batch");
    assert_eq!(job["args"], "{\"user\":2499}");

    // A bad line refuses the whole input, naming the line, before any write.
    let o = kyu_stdin(
        dir.path(),
        &["enqueue", "sync", "--jsonl"],
        "{\"user\":1}\n{\"user\":2}\n{user:3}\n",
    );
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("stdin line 3"), "{}", stderr(&o));
    assert!(stderr(&o).contains("not valid JSON"), "{}", stderr(&o));
    let o = kyu(dir.path(), &["--json", "jobs", "ls", "--limit", "1"]);
    let page: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(page["jobs"][0]["id"], 2500, "nothing was enqueued");

    // The plain summary, and nothing to read.
    let o = kyu_stdin(dir.path(), &["enqueue", "sync", "--jsonl"], "[1]\n[2]\n");
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).starts_with("enqueued 2 job(s) of kind sync on queue default"),
        "{}",
        stdout(&o)
    );
    let o = kyu_stdin(dir.path(), &["enqueue", "sync", "--jsonl"], "\n");
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("read no lines"), "{}", stderr(&o));
    let o = kyu(dir.path(), &["enqueue", "sync", "{}", "--jsonl"]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn enqueue_of_a_kind_the_config_does_not_declare_warns_but_is_accepted() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("kyu.toml"),
        "[jobs.known]\ncommand = [\"true\"]\n",
    )
    .unwrap();
    let o = kyu(dir.path(), &["enqueue", "unknwon"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("enqueued job 1"), "{}", stdout(&o));
    assert!(
        stderr(&o).contains("warning: the config file declares no [jobs.unknwon]"),
        "{}",
        stderr(&o)
    );
    let o = kyu(dir.path(), &["enqueue", "known"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!stderr(&o).contains("warning"), "{}", stderr(&o));
}

#[test]
fn actions_on_several_ids_exit_non_zero_when_any_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for _ in 0..3 {
        assert!(kyu(d, &["enqueue", "t"]).status.success());
    }
    // Job 1 is cancelled; job 2 stays available.
    assert!(kyu(d, &["jobs", "cancel", "1"]).status.success());

    // Retrying an available job is refused: exit 1, and the reason is said.
    let o = kyu(d, &["jobs", "retry", "1", "2"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stdout(&o).contains("job 1: retried"), "{}", stdout(&o));
    assert!(
        stdout(&o).contains("job 2: not retried: it is available; only failed or cancelled"),
        "{}",
        stdout(&o)
    );
    assert!(
        stderr(&o).contains("1 of 2 job(s) not retried: 2"),
        "{}",
        stderr(&o)
    );

    // --json says which ids were refused and why.
    let o = kyu(d, &["--json", "jobs", "retry", "2"]);
    assert_eq!(o.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v[0]["id"], 2);
    assert_eq!(v[0]["done"], false);
    assert!(v[0]["message"]
        .as_str()
        .unwrap()
        .contains("only failed or cancelled"));

    // Cancelling twice is fine; cancelling what cannot be cancelled is not.
    let o = kyu(d, &["jobs", "cancel", "3"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = kyu(d, &["jobs", "cancel", "3"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("already cancelled"), "{}", stdout(&o));

    // A missing id is exit 3, whatever else happened.
    let o = kyu(d, &["jobs", "retry", "2", "99"]);
    assert_eq!(o.status.code(), Some(3));
    assert!(stderr(&o).contains("no job with id 99"), "{}", stderr(&o));
}
