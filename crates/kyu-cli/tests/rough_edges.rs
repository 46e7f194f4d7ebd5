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
