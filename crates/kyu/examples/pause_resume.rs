//! Pausing a queue: workers claim nothing from it until it is resumed.
//!
//! An operator pauses `mail` during an incident at the mail provider. Jobs
//! keep arriving and wait as `available`; jobs already running finish. On
//! resume the waiting jobs run. `kyu queues pause mail` / `kyu queues resume
//! mail` do the same from the shell.

use std::time::Duration;

use kyu::{JobState, Kyu, NewJob, Outcome, Worker};

#[tokio::main]
async fn main() -> Result<(), kyu::Error> {
    // In memory, so the example leaves nothing behind; an application names
    // a file ("sqlite://kyu.db") or a PostgreSQL database ("postgres://…").
    let kyu = Kyu::connect("sqlite::memory:").await?;

    kyu.pause("mail").await?;
    let worker = Worker::new(&kyu)
        .handle("send_email", |_ctx| async { Ok(Outcome::Done) })
        .queue("mail", 4)
        .configure(|c| c.poll_interval = Duration::from_millis(50))
        .start();

    let mut ids = Vec::new();
    for to in ["ada@example.com", "grace@example.com", "alan@example.com"] {
        let job = NewJob::new("send_email", serde_json::json!({ "to": to })).queue("mail");
        ids.push(kyu.enqueue(job).await?.id);
    }

    // Paused: a running worker leaves the jobs alone.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mail = kyu
        .queues()
        .await?
        .into_iter()
        .find(|q| q.queue == "mail")
        .unwrap();
    println!(
        "mail paused={} available={}",
        mail.paused,
        mail.count(JobState::Available)
    );
    assert!(mail.paused);
    assert_eq!(mail.count(JobState::Available), 3);

    // Resumed: the worker takes them at once.
    kyu.resume("mail").await?;
    for id in ids {
        let done = kyu.wait(id).timeout(Duration::from_secs(10)).await?;
        println!("job {} is {}", done.id, done.state);
        assert_eq!(done.state, JobState::Completed);
    }

    worker.shutdown().await;
    Ok(())
}
