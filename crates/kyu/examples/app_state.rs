//! Application state in handlers, and fanning out from a handler.
//!
//! A weekly reminder: one job looks up the users to remind and enqueues one
//! `send_reminder` job per user through `ctx.kyu()`; each of those reads the
//! application's state (here a stand-in mailer; in an application, a database
//! pool or an HTTP client) with `ctx.state::<T>()`. The state is given once to
//! the worker with `Worker::state`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use kyu::{Job, JobContext, JobResult, JobState, Kyu, NewJob, Outcome, Worker};
use serde::{Deserialize, Serialize};

/// What the application shares with its handlers.
struct App {
    users: Vec<String>,
    /// Stands in for a mail client: what was sent.
    outbox: Mutex<Vec<String>>,
}

#[derive(Serialize, Deserialize)]
struct WeeklyReminder {
    week: String,
}

impl Job for WeeklyReminder {
    const KIND: &'static str = "weekly_reminder";

    async fn run(self, ctx: JobContext) -> JobResult {
        let app = ctx.state::<Arc<App>>()?;
        let jobs: Vec<NewJob> = app
            .users
            .iter()
            .map(|user| {
                SendReminder {
                    to: user.clone(),
                    week: self.week.clone(),
                }
                .to_new_job()
            })
            .collect::<Result<_, _>>()?;
        let n = ctx.kyu().enqueue_many(jobs).await?.len();
        Ok(Outcome::Result(serde_json::json!({ "fanned_out": n })))
    }
}

#[derive(Serialize, Deserialize)]
struct SendReminder {
    to: String,
    week: String,
}

impl Job for SendReminder {
    const KIND: &'static str = "send_reminder";

    async fn run(self, ctx: JobContext) -> JobResult {
        let app = ctx.state::<Arc<App>>()?;
        let mail = format!("to {}: your reminder for week {}", self.to, self.week);
        app.outbox.lock().expect("outbox").push(mail);
        Ok(Outcome::Done)
    }
}

#[tokio::main]
async fn main() -> Result<(), kyu::Error> {
    let kyu = Kyu::connect("sqlite::memory:").await?;
    let app = Arc::new(App {
        users: vec![
            "ada@example.com".into(),
            "grace@example.com".into(),
            "alan@example.com".into(),
        ],
        outbox: Mutex::new(Vec::new()),
    });
    let worker = Worker::new(&kyu)
        .state(app.clone())
        .register::<WeeklyReminder>()
        .register::<SendReminder>()
        .queue("default", 5)
        .start();

    let job = kyu
        .enqueue(WeeklyReminder {
            week: "2026-W48".into(),
        })
        .await?;
    let done = kyu.wait(job.id).timeout(Duration::from_secs(10)).await?;
    println!(
        "weekly_reminder: {} {}",
        done.state,
        done.result.as_deref().unwrap_or("-")
    );
    assert_eq!(done.result.as_deref(), Some(r#"{"fanned_out":3}"#));

    // Wait for the three reminders.
    let reminders = kyu
        .list(&kyu::JobFilter {
            kind: Some("send_reminder".into()),
            ..Default::default()
        })
        .await?;
    for j in &reminders.jobs {
        assert_eq!(
            kyu.wait(j.id).timeout(Duration::from_secs(10)).await?.state,
            JobState::Completed
        );
    }
    let sent = app.outbox.lock().expect("outbox").clone();
    for mail in &sent {
        println!("sent: {mail}");
    }
    assert_eq!(sent.len(), 3);

    worker.shutdown().await;
    Ok(())
}
