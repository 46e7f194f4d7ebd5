//! Application state reaches handlers by type; a missing one is a clear error.

mod common;

use std::time::Duration;

use common::{fresh, on_each_backend, quick, Backend};
use kyu::{JobState, NewJob, Outcome, Worker};

struct Pool(&'static str);
struct Missing;

on_each_backend!(handlers_read_state_by_type_and_a_missing_type_is_named);

async fn handlers_read_state_by_type_and_a_missing_type_is_named(backend: Backend) {
    let (kyu, _dir) = fresh(backend).await;
    let worker = Worker::new(&kyu)
        .state(Pool("db-1"))
        .state(42_u32)
        .handle("uses_state", |ctx| async move {
            let pool = ctx.state::<Pool>()?;
            let n = ctx.state::<u32>()?;
            Ok(Outcome::Result(serde_json::json!([pool.0, n])))
        })
        .handle("needs_missing", |ctx| async move {
            ctx.state::<Missing>()?;
            Ok(Outcome::Done)
        })
        .configure(quick)
        .start();
    let ok = kyu
        .enqueue(NewJob::new("uses_state", serde_json::json!({})))
        .await
        .unwrap();
    let job = kyu
        .wait(ok.id)
        .timeout(Duration::from_secs(20))
        .await
        .unwrap();
    assert_eq!(job.result.as_deref(), Some(r#"["db-1",42]"#));

    let bad = kyu
        .enqueue(NewJob::new("needs_missing", serde_json::json!({})).max_attempts(1))
        .await
        .unwrap();
    let job = kyu
        .wait(bad.id)
        .timeout(Duration::from_secs(20))
        .await
        .unwrap();
    assert_eq!(job.state, JobState::Failed);
    let message = &job.errors[0].message;
    assert!(
        message.contains("no state of type app_state::Missing")
            && message.contains("Worker::new(&kyu).state(value)"),
        "{message}"
    );
    worker.shutdown().await;
}
