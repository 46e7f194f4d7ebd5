//! The `kyu` binary over TLS to PostgreSQL: `--database
//! 'postgres://…?sslmode=verify-full&sslrootcert=ca.pem'` against a private
//! cluster with `ssl = on` (the kyu crate's `tests/pg_cluster`), and a bad
//! sslmode refused as a usage error.
//!
//! The cluster test runs when `KYU_TEST_POSTGRES_URL` is set (`.ci/run` sets
//! it); otherwise it says it skips and passes.

#[path = "../../kyu/tests/pg_cluster/mod.rs"]
mod pg_cluster;

use std::process::{Command, Output};

use pg_cluster::{postgres_tests_enabled, PrivateCluster, TestCa};

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

/// The binary connects with `sslmode=require` and with `verify-full`
/// against the cluster's CA, enqueues and lists over TLS; with another CA it
/// fails (exit 1) saying the certificate was refused, and where.
#[test]
fn the_kyu_binary_talks_to_postgres_over_tls() {
    if !postgres_tests_enabled("the_kyu_binary_talks_to_postgres_over_tls") {
        return;
    }
    let ca = TestCa::new("kyu test CA");
    let cluster = PrivateCluster::with_tls(&ca);
    let port = cluster.port();
    let ca_pem = ca.write(cluster.scratch(), "ca.pem");
    let other_pem = TestCa::new("another CA").write(cluster.scratch(), "other.pem");

    let url = format!("{}&sslmode=require", cluster.url("kyu"));
    let o = kyu(&url, &["enqueue", "report", "{}", "--queue", "reports"]);
    assert!(o.status.success(), "{}", stderr(&o));

    let url = format!(
        "postgres://postgres@localhost:{port}/postgres?schema=kyu&sslmode=verify-full&sslrootcert={}",
        ca_pem.display()
    );
    let o = kyu(&url, &["queues", "ls"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("reports"), "{}", stdout(&o));

    let url = format!(
        "postgres://postgres@localhost:{port}/postgres?sslmode=verify-full&sslrootcert={}",
        other_pem.display()
    );
    let o = kyu(&url, &["queues", "ls"]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!(
            "TLS with the server at postgres://postgres@localhost:{port}/postgres"
        )),
        "{err}"
    );
    assert!(err.contains("(sslmode=verify-full)"), "{err}");
    assert!(err.contains("certificate"), "{err}");
}

/// A bad sslmode is a usage error (exit 2) naming the accepted values; no
/// server is needed to say so.
#[test]
fn the_kyu_binary_refuses_a_bad_sslmode_with_exit_2() {
    let o = kyu(
        "postgres://app:s3cret@127.0.0.1:1/app?sslmode=on",
        &["queues", "ls"],
    );
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains(r#"sslmode parameter: "on" is not accepted"#),
        "{err}"
    );
    assert!(
        err.contains("disable, allow, prefer, require, verify-ca, verify-full"),
        "{err}"
    );
    assert!(!err.contains("s3cret"), "{err}");
}
