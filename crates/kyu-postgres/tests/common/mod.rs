//! What every PostgreSQL test needs: the server's URL and a fresh schema
//! (from `kyu_postgres::testing`, shared with the other crates' tests).

#![allow(dead_code)] // each test file uses part of it

/// The test database: `KYU_TEST_POSTGRES_URL`, or the local server's
/// `kyu_test` database (what `.ci/run` and the README set up).
pub fn url() -> String {
    kyu_postgres::testing::test_url_or_local()
}

/// The URL of a fresh schema.
pub fn fresh_url(prefix: &str) -> String {
    kyu_postgres::testing::with_fresh_schema(&url(), prefix)
}
