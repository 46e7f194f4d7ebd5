//! What every PostgreSQL test needs: the server's URL and a fresh schema.

#![allow(dead_code)] // each test file uses part of it

use std::sync::atomic::{AtomicUsize, Ordering};

/// The test database: `KYU_TEST_POSTGRES_URL`, or the local server's `test`
/// database (what `.ci/run` and the README set up).
pub fn url() -> String {
    std::env::var("KYU_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/kyu_test".to_string())
}

/// A schema name no other test (in this run or a parallel one) uses.
pub fn fresh_schema(prefix: &str) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("{prefix}_{}_{n}_{nanos}", std::process::id())
}

/// The URL of a fresh schema.
pub fn fresh_url(prefix: &str) -> String {
    let base = url();
    let sep = if base.contains('?') { '&' } else { '?' };
    format!("{base}{sep}schema={}", fresh_schema(prefix))
}
