//! Unique jobs: enqueueing the same key twice returns the first job.
//!
//! Seed 000's worry, "two instances sync the same user at once", goes away
//! with a unique key per user.

use std::time::Duration;

use kyu::{Kyu, NewJob};

#[tokio::main]
async fn main() -> Result<(), kyu::Error> {
    // In memory, so the example leaves nothing behind; an application names
    // a file ("sqlite://kyu.db") or a PostgreSQL database ("postgres://…").
    let kyu = Kyu::connect("sqlite::memory:").await?;

    let sync = |user: u32| NewJob::new("sync_user", serde_json::json!({ "user": user }));

    // While the first job is unfinished, the key holds.
    let first = kyu.enqueue(sync(42).unique_key("sync:42")).await?;
    let again = kyu.enqueue(sync(42).unique_key("sync:42")).await?;
    println!("first {first:?}, again {again:?}");
    assert!(again.duplicate && again.id == first.id);

    // A window: at most one report per hour, whatever state the first is in.
    let report = kyu
        .enqueue(
            NewJob::new("report", serde_json::json!({}))
                .unique_for("hourly-report", Duration::from_secs(3600)),
        )
        .await?;
    kyu.cancel(&[report.id]).await?;
    let second = kyu
        .enqueue(
            NewJob::new("report", serde_json::json!({}))
                .unique_for("hourly-report", Duration::from_secs(3600)),
        )
        .await?;
    assert!(
        second.duplicate,
        "within the window even a finished job counts"
    );
    Ok(())
}
