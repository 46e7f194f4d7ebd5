//! Batches: import many rows as one group, and learn once when they are all
//! done.
//!
//! The batch is built in three appends (as rows arrive), then sealed. The
//! `on_complete` callback runs once when every row has finished, whatever
//! the outcome, with the counts in its args; `on_success` runs only if every
//! row succeeded, so here, with one bad row, it never runs.

use std::time::Duration;

use kyu::{JobError, JobState, Kyu, NewJob, Outcome, Worker};
use serde_json::{json, Value};

#[tokio::main]
async fn main() -> Result<(), kyu::Error> {
    // In memory, so the example leaves nothing behind; an application names
    // a file ("sqlite://kyu.db") or a PostgreSQL database ("postgres://…").
    let kyu = Kyu::connect("sqlite::memory:").await?;

    let (report_tx, mut report_rx) = tokio::sync::mpsc::unbounded_channel::<Value>();
    let worker = Worker::new(&kyu)
        .handle("import_row", |ctx| async move {
            let args: Value = serde_json::from_str(ctx.args()).expect("json args");
            if args["row"] == 7 {
                // A row that can never be imported: fail for good, no retries.
                return Err(JobError::permanent("row 7 has no email"));
            }
            Ok(Outcome::Done)
        })
        .handle("import_report", move |ctx| {
            let tx = report_tx.clone();
            async move {
                let args: Value = serde_json::from_str(ctx.args()).expect("json args");
                tx.send(args).expect("the example listens");
                Ok(Outcome::Done)
            }
        })
        .handle("import_celebrate", |_ctx| async move {
            panic!("on_success must not run: a row failed");
        })
        .start();

    let row = |n: u32| NewJob::new("import_row", json!({ "row": n })).max_attempts(1);
    let batch = kyu
        .batch()
        .on_complete(NewJob::new("import_report", json!({"file": "users.csv"})))
        .on_success(NewJob::new("import_celebrate", json!({})))
        .add((1..=4).map(row).collect())
        .await?;
    batch.add((5..=8).map(row).collect()).await?;
    batch.add((9..=10).map(row).collect()).await?;
    let sealed = batch.seal().await?;
    println!("batch {} sealed with {} jobs", batch.id(), sealed.total);

    let report = tokio::time::timeout(Duration::from_secs(30), report_rx.recv())
        .await
        .expect("the report runs")
        .expect("a report");
    println!("on_complete ran with {report}");
    assert_eq!(report["file"], "users.csv");
    assert_eq!(report["batch"]["id"], batch.id());
    assert_eq!(report["batch"]["succeeded"], 9);
    assert_eq!(report["batch"]["failed"], 1);

    let status = batch.status().await?;
    println!(
        "total {} pending {} running {} succeeded {} failed {} cancelled {}",
        status.total,
        status.pending,
        status.running,
        status.succeeded,
        status.failed,
        status.cancelled
    );
    assert_eq!((status.total, status.succeeded, status.failed), (10, 9, 1));
    assert_eq!(
        status.callback_jobs.len(),
        1,
        "only on_complete was enqueued"
    );
    let cb = kyu.wait(status.callback_jobs[0]).await?;
    assert_eq!(cb.state, JobState::Completed);

    worker.shutdown().await;
    Ok(())
}
