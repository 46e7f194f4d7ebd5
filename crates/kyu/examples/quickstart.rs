//! A typed job, a worker, and waiting for the result.
//!
//! `cargo run -p kyu --example quickstart` (uses a temporary database;
//! set KYU_DATABASE_URL=sqlite://kyu.db to keep it).

use std::time::Duration;

use kyu::{Job, JobContext, JobResult, Kyu, Outcome, Worker};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
struct Resize {
    image: String,
    width: u32,
}

impl Job for Resize {
    const KIND: &'static str = "resize";

    const QUEUE: &'static str = "images";

    fn options(&self, job: kyu::NewJob) -> kyu::NewJob {
        job.timeout(Duration::from_secs(30))
    }

    async fn run(self, ctx: JobContext) -> JobResult {
        ctx.set_progress(50, format!("resizing {}", self.image))
            .await;
        Ok(Outcome::Result(serde_json::json!({
            "thumbnail": format!("{}@{}w", self.image, self.width)
        })))
    }
}

#[tokio::main]
async fn main() -> Result<(), kyu::Error> {
    // KYU_DATABASE_URL if set (e.g. "sqlite://kyu.db" or "postgres://…"), else
    // in memory, so the example leaves nothing behind.
    let url = std::env::var("KYU_DATABASE_URL").unwrap_or_else(|_| "sqlite::memory:".into());
    let kyu = Kyu::connect(&url).await?;

    let worker = Worker::new(&kyu)
        .register::<Resize>()
        .queue("images", 4)
        .start();

    let job = kyu
        .enqueue(Resize {
            image: "cat.png".into(),
            width: 64,
        })
        .await?;
    let done = kyu.wait(job.id).timeout(Duration::from_secs(10)).await?;
    println!(
        "job {} {}: {}",
        done.id,
        done.state,
        done.result.as_deref().unwrap_or("-")
    );
    assert_eq!(done.state, kyu::JobState::Completed);

    worker.shutdown().await;
    Ok(())
}
