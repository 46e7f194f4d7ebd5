//! Helpers shared by the kyu integration tests (included with `mod common;`).
#![allow(dead_code)]

use std::time::Duration;

use kyu::{Kyu, WorkerConfig};

/// A fresh SQLite database in a temporary directory (kept alive by the guard).
pub async fn fresh() -> (Kyu, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}/kyu.db", dir.path().display());
    (Kyu::connect(&url).await.expect("connect"), dir)
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
