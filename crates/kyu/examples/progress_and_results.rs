//! Progress and results: a handler reports how far it got while it runs, and
//! returns a JSON result that the caller waits for.
//!
//! `ctx.set_progress(percent, message)` is stored with the running job
//! (`kyu jobs show` prints it); `Outcome::Result(json)` is kept on the
//! completed job, and `kyu.wait(id)` returns the job once it is finished.

use std::time::Duration;

use kyu::{Job, JobContext, JobResult, JobState, Kyu, Outcome, Worker};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
struct CountWords {
    text: String,
}

impl Job for CountWords {
    const KIND: &'static str = "count_words";

    async fn run(self, ctx: JobContext) -> JobResult {
        let lines: Vec<&str> = self.text.lines().collect();
        let mut words = 0;
        for (i, line) in lines.iter().enumerate() {
            words += line.split_whitespace().count();
            let percent = ((i + 1) * 100 / lines.len()) as u8;
            ctx.set_progress(percent, format!("line {} of {}", i + 1, lines.len()))
                .await;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(Outcome::Result(serde_json::json!({ "words": words })))
    }
}

#[tokio::main]
async fn main() -> Result<(), kyu::Error> {
    // In memory, so the example leaves nothing behind; an application names
    // a file ("sqlite://kyu.db") or a PostgreSQL database ("postgres://…").
    let kyu = Kyu::connect("sqlite::memory:").await?;
    let worker = Worker::new(&kyu).register::<CountWords>().start();

    let job = kyu
        .enqueue(CountWords {
            text: "one two three\nfour five\nsix\nseven eight nine ten".into(),
        })
        .await?;

    // Watch the progress while it runs.
    let mut last = None;
    loop {
        let now = kyu.job(job.id).await?;
        if now.state.is_finished() {
            break;
        }
        if let Some(p) = now.progress.filter(|p| Some(p.percent) != last) {
            println!("progress: {}% {}", p.percent, p.message);
            last = Some(p.percent);
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }

    // Wait for the result (here it is already there).
    let done = kyu.wait(job.id).timeout(Duration::from_secs(10)).await?;
    println!(
        "job {} is {}: {}",
        done.id,
        done.state,
        done.result.as_deref().unwrap_or("-")
    );
    assert_eq!(done.state, JobState::Completed);
    let result: serde_json::Value = serde_json::from_str(done.result.as_deref().unwrap()).unwrap();
    assert_eq!(result["words"], 10);
    assert!(last.is_some(), "progress was seen while the job ran");

    worker.shutdown().await;
    Ok(())
}
