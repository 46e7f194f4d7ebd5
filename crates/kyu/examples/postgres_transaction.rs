//! Transactional enqueue on PostgreSQL: the job exists if and only if the
//! application's transaction commits.
//!
//! A sign-up writes the user row and enqueues the welcome e-mail in one
//! transaction. If anything fails before the commit, neither exists: no
//! e-mail to a user who was never created, and no user without the e-mail.
//!
//! Run it against any PostgreSQL database (it creates two schemas and drops
//! them at the end):
//!
//! ```sh
//! KYU_EXAMPLE_POSTGRES_URL=postgres://postgres@127.0.0.1/kyu_test \
//!     cargo run -p kyu --example postgres_transaction
//! ```

use std::time::Duration;

use kyu::postgres::sqlx;
use kyu::{JobFilter, JobState, Kyu, NewJob, Outcome, Worker};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let base = std::env::var("KYU_EXAMPLE_POSTGRES_URL")
        .or_else(|_| std::env::var("KYU_TEST_POSTGRES_URL"))
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/kyu_test".into());
    let schema = format!("example_tx_{}", std::process::id());
    let kyu = Kyu::connect(&format!("{base}?schema={schema}")).await?;
    // The application's own pool and table (here: kyu's pool, another schema).
    let pool = kyu.postgres().expect("a postgres:// URL").pool().clone();
    let app = format!("example_app_{}", std::process::id());
    sqlx::query(&format!("CREATE SCHEMA {app}"))
        .execute(&pool)
        .await?;
    sqlx::query(&format!(
        "CREATE TABLE {app}.users (id bigserial PRIMARY KEY, email text UNIQUE)"
    ))
    .execute(&pool)
    .await?;

    let sign_up = |email: &'static str, commit: bool| {
        let (kyu, pool, app) = (kyu.clone(), pool.clone(), app.clone());
        async move {
            let mut tx = pool.begin().await?;
            let (user,): (i64,) = sqlx::query_as(&format!(
                "INSERT INTO {app}.users (email) VALUES ($1) RETURNING id"
            ))
            .bind(email)
            .fetch_one(&mut *tx)
            .await?;
            let job = NewJob::new(
                "welcome_email",
                serde_json::json!({ "user": user, "to": email }),
            );
            let enqueued = kyu.enqueue_in(&mut tx, vec![job]).await?;
            if commit {
                tx.commit().await?;
            } else {
                tx.rollback().await?; // e.g. a later step of the sign-up failed
            }
            Ok::<_, Box<dyn std::error::Error>>(enqueued[0].id)
        }
    };

    // 1. Rolled back: neither the user nor the job exists.
    let ghost = sign_up("ghost@example.com", false).await?;
    assert!(
        kyu.store().get(ghost).await?.is_none(),
        "the job left with the transaction"
    );
    println!("rolled back: job {ghost} does not exist");

    // 2. Committed: both exist, and a worker sends the e-mail.
    let worker = Worker::new(&kyu)
        .handle("welcome_email", |ctx| async move {
            println!("sending the welcome e-mail: {}", ctx.args());
            Ok(Outcome::Done)
        })
        .start();
    let id = sign_up("ada@example.com", true).await?;
    let done = kyu.wait(id).timeout(Duration::from_secs(10)).await?;
    assert_eq!(done.state, JobState::Completed);
    println!("committed: job {id} {}", done.state);
    worker.shutdown().await;

    let all = kyu.list(&JobFilter::default()).await?;
    assert_eq!(all.jobs.len(), 1, "only the committed sign-up made a job");

    sqlx::query(&format!("DROP SCHEMA {app} CASCADE"))
        .execute(&pool)
        .await?;
    sqlx::query(&format!("DROP SCHEMA {schema} CASCADE"))
        .execute(&pool)
        .await?;
    Ok(())
}
