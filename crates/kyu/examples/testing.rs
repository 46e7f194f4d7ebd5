//! Testing an application that uses kyu, with `kyu::testing`: assert what
//! the application's code enqueued without running a worker, then run one
//! job's handler inline, with the handlers registered the way the
//! application's worker registers them.
//!
//! In an application these would be `#[tokio::test]` functions; here `main`
//! runs them, so `cargo test` runs this example. Each test gets a database of
//! its own (a SQLite file in a temporary directory; on PostgreSQL,
//! `kyu::testing::postgres::with_fresh_schema` gives each one a schema).

use kyu::{testing, Job, JobContext, JobResult, JobState, Kyu, NewJob, Outcome, Worker};
use serde::{Deserialize, Serialize};
use serde_json::json;

// ------------------------------------------------------------ the application

/// A typed job: the welcome e-mail.
#[derive(Serialize, Deserialize)]
struct SendWelcome {
    to: String,
    plan: String,
}

impl Job for SendWelcome {
    const KIND: &'static str = "send_welcome";

    const QUEUE: &'static str = "mail";

    fn options(&self, job: NewJob) -> NewJob {
        job.max_attempts(3)
    }

    async fn run(self, ctx: JobContext) -> JobResult {
        ctx.set_progress(50, "rendering").await;
        let subject = format!("Welcome to the {} plan", self.plan);
        Ok(Outcome::Result(
            json!({ "to": self.to, "subject": subject }),
        ))
    }
}

/// The application's sign-up: a welcome e-mail for everyone, and a CRM sync
/// (a command job run by `kyu serve`, so it has no Rust type) for paid plans.
async fn sign_up(kyu: &Kyu, email: &str, plan: &str) -> Result<(), kyu::Error> {
    kyu.enqueue(SendWelcome {
        to: email.into(),
        plan: plan.into(),
    })
    .await?;
    if plan != "free" {
        kyu.enqueue(NewJob::new(
            "crm_sync",
            json!({ "email": email, "plan": plan }),
        ))
        .await?;
    }
    Ok(())
}

/// The application's worker, as `main` would start it.
fn worker(kyu: &Kyu) -> Worker {
    Worker::new(kyu).register::<SendWelcome>().queue("mail", 4)
}

// ------------------------------------------------------------ its tests

/// A database of the test's own: in memory, gone with the test.
async fn fresh() -> Kyu {
    Kyu::connect("sqlite::memory:")
        .await
        .expect("a test database")
}

/// A paid sign-up enqueues the welcome e-mail and the CRM sync.
async fn paid_sign_up_enqueues_welcome_and_crm_sync() {
    let kyu = fresh().await;
    sign_up(&kyu, "ada@example.com", "pro").await.unwrap();

    let welcome = testing::assert_enqueued::<SendWelcome>(&kyu, |w| {
        w.to == "ada@example.com" && w.plan == "pro"
    })
    .await;
    assert_eq!(welcome.queue, "mail");
    testing::assert_enqueued_json(&kyu, "crm_sync", json!({ "email": "ada@example.com" })).await;
    let kinds: Vec<String> = testing::enqueued(&kyu)
        .await
        .unwrap()
        .into_iter()
        .map(|j| j.kind)
        .collect();
    println!("paid sign-up enqueued {kinds:?}");
}

/// A free sign-up enqueues no CRM sync.
async fn free_sign_up_skips_the_crm_sync() {
    let kyu = fresh().await;
    sign_up(&kyu, "bob@example.com", "free").await.unwrap();
    testing::assert_enqueued::<SendWelcome>(&kyu, |w| w.plan == "free").await;
    testing::assert_not_enqueued_json(&kyu, "crm_sync", json!({})).await;
    println!("free sign-up: no crm_sync");
}

/// The welcome e-mail's handler, run inline on the job sign-up enqueued.
async fn welcome_email_names_the_plan() {
    let kyu = fresh().await;
    sign_up(&kyu, "ada@example.com", "pro").await.unwrap();
    let job = testing::assert_enqueued::<SendWelcome>(&kyu, |_| true).await;

    let worked = testing::work_job(&worker(&kyu), job.id).await.unwrap();
    assert_eq!(worked.job.state, JobState::Completed);
    let result: serde_json::Value =
        serde_json::from_str(worked.job.result.as_deref().unwrap()).unwrap();
    assert_eq!(result["subject"], "Welcome to the pro plan");
    println!("job {} ran inline: {result}", worked.job.id);
    // Only the CRM sync is left, for `kyu serve` to run.
    testing::assert_not_enqueued::<SendWelcome>(&kyu, |_| true).await;
}

/// A failed assertion says what was enqueued instead.
async fn a_failed_assertion_lists_what_was_enqueued() {
    let kyu = fresh().await;
    sign_up(&kyu, "ada@example.com", "pro").await.unwrap();
    let k = kyu.clone();
    // Keep the expected panic's report off the output; it is printed below.
    let report = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let failed = tokio::spawn(async move {
        testing::assert_enqueued::<SendWelcome>(&k, |w| w.to == "eve@example.com").await;
    })
    .await
    .expect_err("no welcome e-mail to eve");
    std::panic::set_hook(report);
    let message = failed
        .into_panic()
        .downcast::<String>()
        .map(|m| *m)
        .unwrap_or_default();
    assert!(message.contains("ada@example.com"), "{message}");
    println!("the failure reads:\n{message}");
}

#[tokio::main]
async fn main() {
    paid_sign_up_enqueues_welcome_and_crm_sync().await;
    free_sign_up_skips_the_crm_sync().await;
    welcome_email_names_the_plan().await;
    a_failed_assertion_lists_what_was_enqueued().await;
    println!("all application tests passed");
}
