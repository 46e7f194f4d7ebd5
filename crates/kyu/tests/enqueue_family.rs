//! One family of names for enqueueing: `enqueue` (one job), `enqueue_many`
//! (a batch in one transaction), `enqueue_with` (per-call options), each
//! taking a typed `Job` or a `NewJob` alike.

mod common;

use common::{fresh, on_each_backend, Backend};
use kyu::{Job, JobContext, JobFilter, JobResult, NewJob, Outcome};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
struct Resize {
    w: u32,
}

impl Job for Resize {
    const KIND: &'static str = "resize";
    const QUEUE: &'static str = "images";
    fn options(&self, job: NewJob) -> NewJob {
        job.priority(3)
    }
    async fn run(self, _ctx: JobContext) -> JobResult {
        Ok(Outcome::Done)
    }
}

on_each_backend!(enqueue_takes_typed_jobs_and_new_jobs_alike);

async fn enqueue_takes_typed_jobs_and_new_jobs_alike(backend: Backend) {
    let (kyu, _dir) = fresh(backend).await;

    let typed = kyu.enqueue(Resize { w: 64 }).await.unwrap();
    let untyped = kyu
        .enqueue(NewJob::new("resize", serde_json::json!({ "w": 32 })).queue("images"))
        .await
        .unwrap();
    let typed_batch = kyu
        .enqueue_many(vec![Resize { w: 1 }, Resize { w: 2 }])
        .await
        .unwrap();
    let untyped_batch = kyu
        .enqueue_many(vec![NewJob::new("other", serde_json::json!({}))])
        .await
        .unwrap();
    let overridden = kyu
        .enqueue_with(Resize { w: 9 }, |o| o.priority(-1))
        .await
        .unwrap();
    let untyped_overridden = kyu
        .enqueue_with(NewJob::new("other", serde_json::json!({})), |o| {
            o.queue("elsewhere")
        })
        .await
        .unwrap();

    let rec = kyu.job(typed.id).await.unwrap();
    assert_eq!(
        (rec.kind.as_str(), rec.queue.as_str(), rec.priority),
        ("resize", "images", 3)
    );
    assert_eq!(rec.args, r#"{"w":64}"#);
    assert_eq!(kyu.job(untyped.id).await.unwrap().queue, "images");
    assert_eq!(typed_batch.len(), 2);
    for (e, w) in typed_batch.iter().zip([1, 2]) {
        let rec = kyu.job(e.id).await.unwrap();
        assert_eq!(
            (rec.queue.as_str(), rec.args),
            ("images", format!(r#"{{"w":{w}}}"#))
        );
    }
    assert_eq!(kyu.job(untyped_batch[0].id).await.unwrap().kind, "other");
    assert_eq!(kyu.job(overridden.id).await.unwrap().priority, -1);
    assert_eq!(
        kyu.job(untyped_overridden.id).await.unwrap().queue,
        "elsewhere"
    );
    assert_eq!(kyu.list(&JobFilter::default()).await.unwrap().jobs.len(), 7);
}

#[tokio::test]
async fn enqueue_many_is_all_or_none() {
    let (kyu, _dir) = fresh(Backend::Sqlite).await;
    let err = kyu
        .enqueue_many(vec![
            NewJob::new("ok", serde_json::json!({})),
            NewJob::new("", serde_json::json!({})),
        ])
        .await
        .expect_err("an empty kind is refused");
    assert!(err.to_string().contains("jobs[1].kind"), "{err}");
    assert!(kyu
        .list(&JobFilter::default())
        .await
        .unwrap()
        .jobs
        .is_empty());
}
