//! Operators on many jobs through the real router: delete and run now by
//! id, bulk actions by ids or by filter, the dry run and the snapshot bound
//! ("retry all failed" never touches a job that failed after the look),
//! batches, and tenant isolation.

mod common;

use axum::http::{Method, StatusCode};
use common::T;
use kyu::{JobState, NewJob, Scope};
use serde_json::json;

fn job(queue: &str) -> NewJob {
    NewJob::new("k", json!({})).queue(queue).max_attempts(1)
}

#[tokio::test]
async fn delete_one_job_and_refuse_a_running_one() {
    let t = T::new().await;
    let op = t.token("op", &[Scope::Operate], &[]).await;
    let a = t.add(job("q")).await;
    let (status, body) = t
        .call(Method::DELETE, &format!("/v1/jobs/{a}"), &op, None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    assert_eq!(t.state(a).await, None, "gone");
    let (status, _) = t
        .call(Method::DELETE, &format!("/v1/jobs/{a}"), &op, None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let r = t.add(job("q")).await;
    t.kyu
        .store()
        .claim_job(r, "w", std::time::Duration::from_secs(30))
        .await
        .unwrap();
    let (status, body) = t
        .call(Method::DELETE, &format!("/v1/jobs/{r}"), &op, None)
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["error"]["code"], "running");
    assert_eq!(t.state(r).await, Some(JobState::Running));
}

#[tokio::test]
async fn run_now_and_delete_by_ids_answer_per_id() {
    let t = T::new().await;
    let op = t.token("op", &[Scope::Operate], &[]).await;
    let later = t
        .add(job("q").run_at(t.kyu.store().clock().now() + chrono::Duration::hours(1)))
        .await;
    let now = t.add(job("q")).await;
    let (status, body) = t
        .call(
            Method::POST,
            "/v1/jobs/run_now",
            &op,
            Some(json!({"ids": [later, now, 999]})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body["results"],
        json!({later.to_string(): "made_available", now.to_string(): "not_scheduled", "999": "not_found"})
    );
    assert_eq!(t.state(later).await, Some(JobState::Available));
    let (_, body) = t
        .call(
            Method::POST,
            "/v1/jobs/delete",
            &op,
            Some(json!({"ids": [later]})),
        )
        .await;
    assert_eq!(body["results"][later.to_string()], "deleted");
    assert_eq!(t.state(later).await, None);
}

#[tokio::test]
async fn retry_all_failed_touches_only_jobs_failed_when_the_operator_looked() {
    let t = T::with(kyu_server::Options {
        bulk_batch: 2, // several batches
        ..Default::default()
    })
    .await;
    let op = t.token("op", &[Scope::Operate, Scope::Read], &[]).await;
    let mut failed_before = Vec::new();
    for _ in 0..5 {
        let id = t.add(job("mail")).await;
        t.fail(id).await;
        failed_before.push(id);
    }
    let other_queue = t.add(job("other")).await;
    t.fail(other_queue).await;
    let running = t.add(job("mail")).await;
    t.kyu
        .store()
        .claim_job(running, "w", std::time::Duration::from_secs(30))
        .await
        .unwrap();
    let filter = json!({"state": "failed", "queue": "mail"});
    let (status, dry) = t
        .call(
            Method::POST,
            "/v1/jobs/bulk",
            &op,
            Some(json!({"action": "retry", "filter": filter, "dry_run": true})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{dry}");
    assert_eq!(dry["dry_run"], true);
    assert_eq!(dry["matched"], 5);
    let snapshot = dry["snapshot"].clone();
    assert_eq!(snapshot["max_id"], running);
    // After the look: the running job fails, and a new job fails.
    t.fail_running(running).await;
    let newer = t.add(job("mail")).await;
    t.fail(newer).await;
    let (status, done) = t
        .call(
            Method::POST,
            "/v1/jobs/bulk",
            &op,
            Some(json!({"action": "retry", "filter": filter, "snapshot": snapshot})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{done}");
    assert_eq!(done["matched"], 5, "{done}");
    assert_eq!(done["counts"], json!({"retried": 5}));
    for id in &failed_before {
        assert_eq!(t.state(*id).await, Some(JobState::Available), "{id}");
    }
    assert_eq!(
        t.state(running).await,
        Some(JobState::Failed),
        "failed after the look: untouched"
    );
    assert_eq!(
        t.state(newer).await,
        Some(JobState::Failed),
        "newer than the look: untouched"
    );
    assert_eq!(
        t.state(other_queue).await,
        Some(JobState::Failed),
        "other queue: untouched"
    );
}

#[tokio::test]
async fn bulk_by_ids_cancel_and_run_now_by_filter_without_a_snapshot() {
    let t = T::new().await;
    let op = t.token("op", &[Scope::Operate], &[]).await;
    let a = t.add(job("q")).await;
    let b = t.add(job("q")).await;
    let (_, r) = t
        .call(
            Method::POST,
            "/v1/jobs/bulk",
            &op,
            Some(json!({"action": "cancel", "ids": [a, b, 999]})),
        )
        .await;
    assert_eq!(r["counts"], json!({"cancelled": 2, "not_found": 1}), "{r}");
    assert_eq!(r["results"]["999"], "not_found");
    let later = chrono::Utc::now() + chrono::Duration::hours(1);
    let s1 = t.add(job("q").run_at(later).tag("x")).await;
    let s2 = t.add(job("q").run_at(later)).await;
    let (_, r) = t
        .call(
            Method::POST,
            "/v1/jobs/bulk",
            &op,
            Some(json!({"action": "run_now", "filter": {"state": "scheduled", "tag": "x"}})),
        )
        .await;
    assert_eq!(r["counts"], json!({"made_available": 1}), "{r}");
    assert!(r["snapshot"]["max_id"].as_i64().unwrap() >= s2);
    assert_eq!(t.state(s1).await, Some(JobState::Available));
    assert_eq!(t.state(s2).await, Some(JobState::Scheduled));
    let (_, r) = t
        .call(
            Method::POST,
            "/v1/jobs/bulk",
            &op,
            Some(json!({"action": "delete", "filter": {"state": "cancelled"}})),
        )
        .await;
    assert_eq!(r["counts"], json!({"deleted": 2}), "{r}");
}

#[tokio::test]
async fn bulk_refuses_bad_requests_with_the_field() {
    let t = T::new().await;
    let op = t.token("op", &[Scope::Operate, Scope::ReadArgs], &[]).await;
    for (body, field) in [
        (json!({"action": "retry"}), "ids"),
        (json!({"action": "retry", "ids": [1], "filter": {}}), "ids"),
        (json!({"action": "retry", "ids": []}), "ids"),
        (
            json!({"action": "retry", "ids": [1], "snapshot": {"max_id": 1, "at": "2030-01-01T00:00:00Z"}}),
            "snapshot",
        ),
        (
            json!({"action": "retry", "filter": {"state": "done"}}),
            "filter.state",
        ),
        (
            json!({"action": "retry", "filter": {"args": ["user=1"]}}),
            "filter.args[0]",
        ),
        (
            json!({"action": "retry", "filter": {"queue": " x"}}),
            "filter.queue",
        ),
        (json!({"action": "explode", "ids": [1]}), "body"),
    ] {
        let (status, r) = t
            .call(Method::POST, "/v1/jobs/bulk", &op, Some(body.clone()))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {r}");
        assert_eq!(r["error"]["field"], field, "{body}: {r}");
    }
    // An operator without read_args may not search inside the args it cannot see.
    let blind = t.token("blind", &[Scope::Operate], &[]).await;
    let (status, r) = t
        .call(
            Method::POST,
            "/v1/jobs/bulk",
            &blind,
            Some(json!({"action": "delete", "filter": {"args": ["args.user=1"]}, "dry_run": true})),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{r}");
    assert_eq!(r["error"]["field"], "filter.args", "{r}");
}

#[tokio::test]
async fn a_tenant_bulk_action_by_filter_touches_and_counts_only_its_queues() {
    let t = T::new().await;
    let tenant = t.token("a", &[Scope::Operate], &["tenant-a.*"]).await;
    let mine = t.add(job("tenant-a.mail")).await;
    let theirs = t.add(job("tenant-b.mail")).await;
    t.fail(mine).await;
    t.fail(theirs).await;
    let (_, dry) = t
        .call(
            Method::POST,
            "/v1/jobs/bulk",
            &tenant,
            Some(json!({"action": "delete", "filter": {"state": "failed"}, "dry_run": true})),
        )
        .await;
    assert_eq!(dry["matched"], 1, "counts only its own: {dry}");
    // Naming one of its queues, or as a token that sees every queue, the dry
    // run is the store's one count: the same jobs.
    let (_, dry) = t
        .call(
            Method::POST,
            "/v1/jobs/bulk",
            &tenant,
            Some(json!({"action": "delete", "filter": {"state": "failed", "queue": "tenant-a.mail"}, "dry_run": true})),
        )
        .await;
    assert_eq!(dry["matched"], 1, "its queue: {dry}");
    let admin = t.token("admin", &[Scope::Admin], &[]).await;
    let (_, dry) = t
        .call(
            Method::POST,
            "/v1/jobs/bulk",
            &admin,
            Some(json!({"action": "delete", "filter": {"state": "failed"}, "dry_run": true})),
        )
        .await;
    assert_eq!(dry["matched"], 2, "every queue: {dry}");
    let (_, r) = t
        .call(
            Method::POST,
            "/v1/jobs/bulk",
            &tenant,
            Some(json!({"action": "delete", "filter": {"state": "failed"}})),
        )
        .await;
    assert_eq!(r["counts"], json!({"deleted": 1}), "{r}");
    assert_eq!(t.state(mine).await, None);
    assert_eq!(
        t.state(theirs).await,
        Some(JobState::Failed),
        "tenant b untouched"
    );
    let (status, r) = t
        .call(
            Method::POST,
            "/v1/jobs/bulk",
            &tenant,
            Some(json!({"action": "retry", "filter": {"queue": "tenant-b.mail"}})),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{r}");
    let (_, r) = t
        .call(
            Method::POST,
            "/v1/jobs/bulk",
            &tenant,
            Some(json!({"action": "retry", "ids": [theirs]})),
        )
        .await;
    assert_eq!(r["results"][theirs.to_string()], "not_found", "{r}");
    assert_eq!(t.state(theirs).await, Some(JobState::Failed));
}
