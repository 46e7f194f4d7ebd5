//! kyu over TLS to PostgreSQL: `sslmode` and `sslrootcert` in the URL as
//! libpq understands them, against private clusters (`tests/pg_cluster`)
//! started with `ssl = on` and a certificate signed by a CA the test makes,
//! or without TLS.
//!
//! Runs when `KYU_TEST_POSTGRES_URL` is set (`.ci/run` sets it); otherwise
//! each test says it skips and passes.

mod pg_cluster;

use std::time::Duration;

use kyu::{JobState, Kyu, NewJob, Outcome, Worker};
use pg_cluster::{postgres_tests_enabled, PrivateCluster, TestCa};

const WAIT: Duration = Duration::from_secs(30);

/// Whether the session `kyu`'s pool hands out is encrypted, as the server
/// sees it.
async fn session_uses_tls(kyu: &Kyu) -> bool {
    let pool = kyu.postgres().expect("a PostgreSQL client").pool();
    kyu::postgres::sqlx::query_scalar::<_, bool>(
        "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
    )
    .fetch_one(pool)
    .await
    .expect("read pg_stat_ssl")
}

/// A job goes through a worker on `kyu` and completes.
async fn a_job_completes(kyu: &Kyu) {
    let worker = Worker::new(kyu)
        .handle("greet", |_ctx| async { Ok(Outcome::Done) })
        .queue("default", 2)
        .configure(|c| c.poll_interval = Duration::from_millis(50))
        .start();
    let job = kyu
        .enqueue(NewJob::new("greet", serde_json::json!({"to": "ada"})))
        .await
        .expect("enqueue over TLS");
    let done = kyu.wait(job.id).timeout(WAIT).await.expect("wait");
    assert_eq!(done.state, JobState::Completed, "{done:?}");
    worker.shutdown().await;
}

/// `sslmode=require` (TLS, certificate not checked, as in libpq) connects to
/// a server with `ssl = on`, its sessions are encrypted, and jobs run through
/// a worker (whose LISTEN connection is TLS too). Without an sslmode, kyu's
/// default `prefer` uses TLS as soon as the server offers it.
#[tokio::test]
async fn sslmode_require_runs_jobs_over_tls() {
    if !postgres_tests_enabled("sslmode_require_runs_jobs_over_tls") {
        return;
    }
    let ca = TestCa::new("kyu test CA");
    let cluster = PrivateCluster::with_tls(&ca);

    let url = format!("{}&sslmode=require", cluster.url("kyu"));
    let kyu = Kyu::connect(&url)
        .await
        .expect("connect with sslmode=require");
    assert!(session_uses_tls(&kyu).await, "sslmode=require encrypts");
    a_job_completes(&kyu).await;

    let kyu = Kyu::connect(&cluster.url("kyu"))
        .await
        .expect("connect with the default sslmode");
    assert!(
        session_uses_tls(&kyu).await,
        "the default, prefer, uses the TLS the server offers"
    );
}

/// `sslmode=verify-full&sslrootcert=ca.pem` connects when the server's
/// certificate is signed by that CA and names the host (by DNS name or IP
/// address); signed by another CA it is refused, saying where, with which
/// sslmode and CA file, and without the password. `sslmode=require` with an
/// `sslrootcert` checks the CA too, as libpq does.
#[tokio::test]
async fn verify_full_checks_the_certificate_against_sslrootcert() {
    if !postgres_tests_enabled("verify_full_checks_the_certificate_against_sslrootcert") {
        return;
    }
    let ca = TestCa::new("kyu test CA");
    let cluster = PrivateCluster::with_tls(&ca);
    let port = cluster.port();
    let ca_pem = ca.write(cluster.scratch(), "ca.pem");
    let other_pem = TestCa::new("another CA").write(cluster.scratch(), "other.pem");

    for host in ["127.0.0.1", "localhost"] {
        let url = format!(
            "postgres://postgres@{host}:{port}/postgres?schema=kyu&sslmode=verify-full&sslrootcert={}",
            ca_pem.display()
        );
        let kyu = Kyu::connect(&url)
            .await
            .unwrap_or_else(|e| panic!("verify-full to {host}: {e}"));
        assert!(session_uses_tls(&kyu).await, "verify-full to {host}");
        a_job_completes(&kyu).await;
    }

    for mode in ["verify-full", "verify-ca", "require"] {
        let url = format!(
            "postgres://postgres:s3cret@127.0.0.1:{port}/postgres?sslmode={mode}&sslrootcert={}",
            other_pem.display()
        );
        let e = Kyu::connect(&url)
            .await
            .expect_err("a certificate the CA did not sign")
            .to_string();
        eprintln!("{mode} with another CA: {e}");
        let effective = if mode == "require" { "verify-ca" } else { mode };
        assert!(e.contains(&format!("sslmode={effective}")), "{e}");
        assert!(e.contains(&format!("127.0.0.1:{port}")), "{e}");
        assert!(e.contains(&other_pem.display().to_string()), "{e}");
        assert!(e.contains("certificate"), "{e}");
        assert!(!e.contains("s3cret"), "the password is redacted: {e}");
    }
}

/// `sslmode=require` against a server without TLS is refused, saying that
/// the server does not offer TLS, where, and what to do; the default
/// (`prefer`) connects to it in the clear, as libpq does.
#[tokio::test]
async fn sslmode_require_against_a_server_without_tls_is_refused_saying_so() {
    if !postgres_tests_enabled("sslmode_require_against_a_server_without_tls_is_refused_saying_so")
    {
        return;
    }
    let cluster = PrivateCluster::new();
    let port = cluster.port();
    let url = format!("postgres://postgres:s3cret@127.0.0.1:{port}/postgres?sslmode=require");
    let e = Kyu::connect(&url)
        .await
        .expect_err("no TLS on the server")
        .to_string();
    eprintln!("{e}");
    assert!(
        e.contains(&format!(
            "the server at postgres://postgres:***@127.0.0.1:{port}/postgres"
        )),
        "{e}"
    );
    assert!(e.contains("does not offer TLS (sslmode=require)"), "{e}");
    assert!(e.contains("ssl = on"), "says what would fix it: {e}");
    assert!(!e.contains("s3cret"), "{e}");

    let kyu = Kyu::connect(&cluster.url("kyu"))
        .await
        .expect("prefer falls back to a plain connection");
    assert!(!session_uses_tls(&kyu).await);
}
