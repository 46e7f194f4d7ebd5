//! Helpers shared by the kyu integration tests (included with `mod common;`).
//!
//! Worker-level tests run on every backend: a test is an
//! `async fn NAME(backend: Backend)` and [`on_each_backend!`] turns it into
//! `sqlite::NAME` (always) and `postgres::NAME` (in a fresh schema when
//! `KYU_TEST_POSTGRES_URL` is set, as CI always does; otherwise it says it
//! was skipped and passes).
#![allow(dead_code)]
#![allow(unused_macros, unused_imports)]

use std::sync::Arc;
use std::time::Duration;

use kyu::{Clock, Kyu, WorkerConfig};

/// The database a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// A fresh SQLite file in the test's temporary directory.
    Sqlite,
    /// A fresh schema on the test PostgreSQL server.
    Postgres,
}

impl Backend {
    /// PostgreSQL if the test server is configured (`KYU_TEST_POSTGRES_URL`).
    pub fn postgres() -> Option<Backend> {
        if kyu::postgres::testing::test_url().is_some() {
            Some(Backend::Postgres)
        } else {
            eprintln!(
                "skipped: set {} to run this test on PostgreSQL",
                kyu::postgres::testing::TEST_URL_VAR
            );
            None
        }
    }

    /// The URL of a fresh database of this backend; a SQLite file goes in `dir`.
    pub fn fresh_url(self, dir: &std::path::Path) -> String {
        match self {
            Backend::Sqlite => format!("sqlite://{}/kyu.db", dir.display()),
            Backend::Postgres => kyu::postgres::testing::with_fresh_schema(
                &kyu::postgres::testing::test_url().expect("Backend::postgres checked the URL"),
                "t_kyu",
            ),
        }
    }
}

/// Makes `sqlite::NAME` and `postgres::NAME` tests of each listed
/// `async fn NAME(backend: Backend)`. A name may be followed by the
/// arguments of its `#[tokio::test(...)]`, e.g. `NAME(flavor = "multi_thread")`.
macro_rules! on_each_backend {
    ($($test:ident $(($($arg:tt)*))?),* $(,)?) => {
        /// The tests on SQLite.
        mod sqlite {
            $(
                #[tokio::test$(($($arg)*))?]
                async fn $test() {
                    super::$test($crate::common::Backend::Sqlite).await
                }
            )*
        }
        /// The tests on PostgreSQL, when `KYU_TEST_POSTGRES_URL` is set.
        mod postgres {
            $(
                #[tokio::test$(($($arg)*))?]
                async fn $test() {
                    if let Some(backend) = $crate::common::Backend::postgres() {
                        super::$test(backend).await
                    }
                }
            )*
        }
    };
}
pub(crate) use on_each_backend;

/// A fresh database of `backend` (its SQLite file, and scratch files the
/// test makes, in the temporary directory kept alive by the guard).
pub async fn fresh(backend: Backend) -> (Kyu, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = backend.fresh_url(dir.path());
    (Kyu::connect(&url).await.expect("connect"), dir)
}

/// A client on `url` (a database another client may share) that reads
/// `clock`: one "process" of a test that moves time.
pub async fn connect_with_clock(url: &str, clock: Arc<dyn Clock>) -> Kyu {
    if url.starts_with("sqlite:") {
        let store =
            kyu_sqlite::SqliteStore::open(url, kyu_sqlite::SqliteOptions::with_clock(clock))
                .expect("open");
        Kyu::from_store(Arc::new(store))
    } else {
        let options = kyu::postgres::PgOptions {
            max_connections: 4,
            ..kyu::postgres::PgOptions::with_clock(clock)
        };
        let store = kyu::postgres::PgStore::connect(url, options)
            .await
            .expect("connect to the test PostgreSQL");
        Kyu::from_postgres(store)
    }
}

/// Worker settings that keep tests quick: short polls, short grace periods.
pub fn quick(c: &mut WorkerConfig) {
    c.poll_interval = Duration::from_millis(50);
    c.cancel_poll = Duration::from_millis(50);
    c.cancel_grace = Duration::from_millis(300);
    c.shutdown_grace = Duration::from_millis(500);
}

/// Polls `f` every 10 ms until it is true; panics after `limit`.
pub async fn eventually<F, Fut>(limit: Duration, what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let end = tokio::time::Instant::now() + limit;
    while tokio::time::Instant::now() < end {
        if f().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out after {limit:?} waiting for: {what}");
}
