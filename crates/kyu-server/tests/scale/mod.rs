//! The store the by-hand scale tests (`dashboard_scale.rs`,
//! `bulk_count_scale.rs`) load: its size and where it lives from the
//! environment, and the shape of its jobs.

#![allow(dead_code)]

use kyu::{Kyu, NewJob};
use serde_json::json;

/// KYU_SCALE_JOBS, default 1,000,000.
pub fn jobs_wanted() -> usize {
    std::env::var("KYU_SCALE_JOBS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000)
}

/// The store of KYU_SCALE_URL (e.g. a PostgreSQL URL with a fresh
/// `?schema=`), else a fresh SQLite file in the returned directory.
pub async fn store() -> (Kyu, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let url = std::env::var("KYU_SCALE_URL")
        .unwrap_or_else(|_| format!("sqlite://{}/kyu.db", dir.path().display()));
    let kyu = Kyu::connect(&url).await.unwrap();
    eprintln!("store: {}", kyu.store().backend());
    (kyu, dir)
}

/// Enqueues `n` jobs in chunks of 1,000: 5 queues (`q0`…`q4`) and 5 kinds
/// (`k0`…`k4`), args `{"user": i}`, a third scheduled an hour ahead, a tag
/// `hundred` on every hundredth. Returns their ids in order.
pub async fn enqueue(kyu: &Kyu, n: usize) -> Vec<i64> {
    let later = chrono::Utc::now() + chrono::Duration::hours(1);
    let mut ids = Vec::with_capacity(n);
    for chunk in (0..n).collect::<Vec<_>>().chunks(1000) {
        let jobs: Vec<NewJob> = chunk
            .iter()
            .map(|&i| {
                let mut j = NewJob::new(format!("k{}", i % 5), json!({ "user": i }))
                    .queue(format!("q{}", i % 5));
                if i % 3 == 0 {
                    j = j.run_at(later);
                }
                if i % 100 == 0 {
                    j = j.tag("hundred");
                }
                j
            })
            .collect();
        ids.extend(
            kyu.enqueue_many(jobs)
                .await
                .unwrap()
                .into_iter()
                .map(|e| e.id),
        );
    }
    ids
}
