//! The `kyu` binary on PostgreSQL: `--database postgres://…`, `kyu migrate`,
//! `?migrate=false`, and connection errors. Needs the test PostgreSQL (see
//! the README's "PostgreSQL tests").

use std::process::{Command, Output};

/// A schema of its own on the test database (see the README's "PostgreSQL tests").
fn fresh_url() -> String {
    kyu::postgres::testing::with_fresh_schema(&kyu::postgres::testing::test_url_or_local(), "t_cli")
}

fn kyu(url: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kyu"))
        .arg("--database")
        .arg(url)
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

#[test]
fn migrate_then_enqueue_and_list_on_postgres() {
    let url = fresh_url();
    let o = kyu(&url, &["migrate"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let latest = kyu::postgres::latest_version();
    let all: Vec<String> = (1..=latest).map(|v| v.to_string()).collect();
    assert!(
        stdout(&o).contains(&format!("applied migrations {}", all.join(", "))),
        "{}",
        stdout(&o)
    );
    let o = kyu(&url, &["migrate"]);
    assert!(
        stdout(&o).contains(&format!("is up to date (version {latest})")),
        "{}",
        stdout(&o)
    );

    let o = kyu(
        &url,
        &[
            "enqueue",
            "report",
            r#"{"month":"2026-11"}"#,
            "--queue",
            "reports",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("enqueued job 1 on queue reports"),
        "{}",
        stdout(&o)
    );
    let o = kyu(&url, &["jobs", "ls", "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let page: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(page["jobs"][0]["kind"], "report");
    assert_eq!(page["jobs"][0]["state"], "available");
    let o = kyu(&url, &["queues", "ls"]);
    assert!(stdout(&o).contains("reports"), "{}", stdout(&o));
}

#[test]
fn migrate_false_refuses_an_unmigrated_schema_and_says_what_to_do() {
    let url = format!("{}&migrate=false", fresh_url());
    let o = kyu(&url, &["jobs", "ls"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("run `kyu migrate`"), "{}", stderr(&o));
    let o = kyu(&url, &["migrate"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = kyu(&url, &["jobs", "ls"]);
    assert!(o.status.success(), "{}", stderr(&o));
}

#[test]
fn connection_and_url_errors_name_the_problem() {
    // Nothing listens on port 1.
    let o = kyu("postgres://postgres@127.0.0.1:1/kyu_test", &["jobs", "ls"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o)
            .contains("cannot connect to PostgreSQL at postgres://postgres@127.0.0.1:1/kyu_test"),
        "{}",
        stderr(&o)
    );
    assert!(stderr(&o).contains("refused"), "{}", stderr(&o));

    let o = kyu("postgres://postgres:secret@127.0.0.1:1/x", &["jobs", "ls"]);
    assert!(
        !stderr(&o).contains("secret"),
        "the password is not printed: {}",
        stderr(&o)
    );

    let o = kyu(
        "postgres://127.0.0.1/kyu_test?schema=Bad-Name",
        &["jobs", "ls"],
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("schema parameter"), "{}", stderr(&o));

    let o = kyu("mysql://127.0.0.1/x", &["jobs", "ls"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("postgres://"), "{}", stderr(&o));

    let o = kyu("sqlite://x.db", &["migrate", "--schema", "kyu"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("PostgreSQL only"), "{}", stderr(&o));
}
