//! Command jobs from Rust: any script or program runs as a job kind.
//!
//! The same thing `[jobs.KIND] command = [...]` in kyu.toml declares for
//! `kyu serve`. Each attempt runs the command in its own process group with
//! the job in its environment (`KYU_JOB_ID`, `KYU_ARGS`, …) and the args on
//! stdin; its output is kept with the attempt; a stdout line
//! `::kyu-progress 50 halfway` records progress; exit 0 completes the job, and
//! with `result_from_stdout` the last JSON line of stdout is its result.

use std::time::Duration;

use kyu::command_job::CommandSpec;
use kyu::{JobState, Kyu, NewJob, Worker};

#[tokio::main]
async fn main() -> Result<(), kyu::Error> {
    // In memory, so the example leaves nothing behind; an application names
    // a file ("sqlite://kyu.db") or a PostgreSQL database ("postgres://…").
    let kyu = Kyu::connect("sqlite::memory:").await?;

    // A shell script standing in for any program: reads its args from stdin.
    let script = r#"
        args=$(cat)
        echo "resizing for job $KYU_JOB_ID with $args"
        echo "::kyu-progress 50 halfway"
        echo "a warning on stderr" >&2
        echo '{"width": 640}'
    "#;
    let mut spec = CommandSpec::new(vec!["sh".into(), "-c".into(), script.into()]);
    spec.timeout = Some(Duration::from_secs(30));
    spec.result_from_stdout = true;

    let worker = Worker::new(&kyu).command("resize", spec).start();
    let job = kyu
        .enqueue(NewJob::new(
            "resize",
            serde_json::json!({ "image": "cat.png" }),
        ))
        .await?;
    let done = kyu.wait(job.id).timeout(Duration::from_secs(20)).await?;
    println!(
        "job {} is {}: result {}",
        done.id,
        done.state,
        done.result.as_deref().unwrap_or("-")
    );
    assert_eq!(done.state, JobState::Completed);
    assert_eq!(done.result.as_deref(), Some(r#"{"width":640}"#));

    // The attempt's output, as `kyu jobs logs ID` prints it.
    let logs = kyu.logs(job.id).await?;
    print!("stdout:\n{}stderr:\n{}", logs[0].stdout, logs[0].stderr);
    assert!(
        logs[0].stdout.contains(r#"with {"image":"cat.png"}"#),
        "{}",
        logs[0].stdout
    );
    assert_eq!(logs[0].stderr, "a warning on stderr\n");

    worker.shutdown().await;
    Ok(())
}
