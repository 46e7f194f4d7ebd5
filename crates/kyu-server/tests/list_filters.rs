//! `GET /v1/jobs` filters pushed into the store: created range, tag, and
//! searches inside args by path, with cursor paging; and unique keys that
//! cannot reveal another tenant's job.

mod common;

use axum::http::{Method, StatusCode};
use common::{ids, T};
use kyu::{NewJob, Scope};
use serde_json::json;

#[tokio::test]
async fn list_by_args_path_created_range_and_tag_with_a_cursor() {
    let t = T::new().await;
    let r = t.token("r", &[Scope::Read, Scope::ReadArgs], &[]).await;
    let a = t
        .add(NewJob::new("k", json!({"user": 42, "a": {"b": "x"}})).tag("t"))
        .await;
    let b = t
        .add(NewJob::new("k", json!({"user": 42, "a": {"b": "y"}})))
        .await;
    let c = t.add(NewJob::new("k", json!({"user": 7}))).await;
    let cases = [
        ("/v1/jobs?args.user=42", vec![b, a]),
        ("/v1/jobs?args.a.b=%22x%22", vec![a]),
        ("/v1/jobs?args.a.b=y", vec![b]),
        ("/v1/jobs?args.user=42&args.a.b=x", vec![a]),
        ("/v1/jobs?args.user=42&tag=t", vec![a]),
        ("/v1/jobs?args.nope=1", vec![]),
    ];
    for (path, want) in cases {
        let (status, page) = t.call(Method::GET, path, &r, None).await;
        assert_eq!(status, StatusCode::OK, "{path}: {page}");
        assert_eq!(ids(&page), want, "{path}");
    }
    let (_, page) = t
        .call(Method::GET, "/v1/jobs?args.user=42&limit=1", &r, None)
        .await;
    assert_eq!(ids(&page), [b]);
    let next = page["next"].as_str().unwrap().to_string();
    let (_, page) = t
        .call(
            Method::GET,
            &format!("/v1/jobs?args.user=42&limit=1&cursor={next}"),
            &r,
            None,
        )
        .await;
    assert_eq!(ids(&page), [a]);
    let created_c = t.kyu.job(c).await.unwrap().created_at;
    let at = created_c.to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    let (_, page) = t
        .call(
            Method::GET,
            &format!("/v1/jobs?created_after={at}"),
            &r,
            None,
        )
        .await;
    assert_eq!(ids(&page), [c], "from (inclusive)");
    let (_, page) = t
        .call(
            Method::GET,
            &format!("/v1/jobs?created_before={at}"),
            &r,
            None,
        )
        .await;
    assert_eq!(ids(&page), [b, a], "before (exclusive)");
    // Without read_args the args are hidden, and so no search inside them
    // (it would reveal them one guess at a time).
    let blind = t.token("blind", &[Scope::Read], &[]).await;
    let (status, body) = t
        .call(Method::GET, "/v1/jobs?args.user=42", &blind, None)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["error"]["field"], "args", "{body}");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("read_args"));
    let (status, _) = t.call(Method::GET, "/v1/jobs?tag=t", &blind, None).await;
    assert_eq!(status, StatusCode::OK);
    for (path, field) in [
        ("/v1/jobs?created_after=yesterday", "created_after"),
        ("/v1/jobs?args.a%20b=1", "args"),
        ("/v1/jobs?args.a={}", "args"),
        ("/v1/jobs?argsx=1", "query"),
    ] {
        let (status, body) = t.call(Method::GET, path, &r, None).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}: {body}");
        assert_eq!(body["error"]["field"], field, "{path}: {body}");
    }
}

#[tokio::test]
async fn a_tenant_cannot_learn_of_another_tenants_job_through_a_unique_key() {
    let t = T::new().await;
    let a = t
        .token("a", &[Scope::Produce, Scope::Read], &["tenant-a.*"])
        .await;
    let b = t
        .token("b", &[Scope::Produce, Scope::Read], &["tenant-b.*"])
        .await;
    let (status, theirs) = t
        .call(
            Method::POST,
            "/v1/jobs",
            &b,
            Some(json!({"kind": "k", "queue": "tenant-b.mail", "unique_key": "order-7"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{theirs}");
    let (status, mine) = t
        .call(
            Method::POST,
            "/v1/jobs",
            &a,
            Some(json!({"kind": "k", "queue": "tenant-a.mail", "unique_key": "order-7"})),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::CREATED,
        "a new job, not tenant b's: {mine}"
    );
    assert_eq!(mine["duplicate"], false);
    assert_ne!(mine["id"], theirs["id"]);
    // The key still dedupes within the tenant's queue, and shows as given.
    let (status, again) = t
        .call(
            Method::POST,
            "/v1/jobs",
            &a,
            Some(json!({"kind": "k", "queue": "tenant-a.mail", "unique_key": "order-7"})),
        )
        .await;
    assert_eq!((status, &again["id"]), (StatusCode::OK, &mine["id"]));
    let (_, view) = t
        .call(Method::GET, &format!("/v1/jobs/{}", mine["id"]), &a, None)
        .await;
    assert_eq!(view["unique_key"], "order-7");
    // Batches too.
    let (_, batch) = t
        .call(
            Method::POST,
            "/v1/jobs/batch",
            &a,
            Some(json!({"jobs": [{"kind": "k", "queue": "tenant-a.x", "unique_key": "order-7"}]})),
        )
        .await;
    assert_eq!(batch["jobs"][0]["duplicate"], false, "{batch}");
    // A key written in the scoped form into tenant b by an unlimited token
    // is still never shown to tenant a.
    let admin = t.token("admin", &[Scope::Admin], &[]).await;
    t.call(
        Method::POST,
        "/v1/jobs",
        &admin,
        Some(json!({"kind": "k", "queue": "tenant-b.mail", "unique_key": "queue:tenant-a.y:k9"})),
    )
    .await;
    let (status, body) = t
        .call(
            Method::POST,
            "/v1/jobs",
            &a,
            Some(json!({"kind": "k", "queue": "tenant-a.y", "unique_key": "k9"})),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["error"]["code"], "unique_key_taken");
    assert!(!body.to_string().contains("tenant-b"), "{body}");
    assert!(body.get("id").is_none());
}

/// The list and the bulk action by filter parse one filter: the same bad
/// value is refused with the same words (the bulk's fields under `filter.`).
#[tokio::test]
async fn list_and_bulk_refuse_a_bad_filter_with_the_same_words() {
    let t = T::new().await;
    let admin = t.token("admin", &[Scope::Admin], &[]).await;
    for (query, filter, field) in [
        ("state=done", json!({"state": "done"}), "state"),
        ("queue=a%01b", json!({"queue": "a\u{1}b"}), "queue"),
        (
            "created_after=yesterday",
            json!({"created_after": "yesterday"}),
            "created_after",
        ),
        (
            "created_before=2030-01-01",
            json!({"created_before": "2030-01-01"}),
            "created_before",
        ),
        ("args.a%20b=1", json!({"args": ["args.a b=1"]}), "args"),
    ] {
        let (status, list) = t
            .call(Method::GET, &format!("/v1/jobs?{query}"), &admin, None)
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {list}");
        let (status, bulk) = t
            .call(
                Method::POST,
                "/v1/jobs/bulk",
                &admin,
                Some(json!({"action": "retry", "filter": filter, "dry_run": true})),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{filter}: {bulk}");
        let list_words = list["error"]["message"].as_str().unwrap();
        let bulk_words = bulk["error"]["message"].as_str().unwrap();
        assert_eq!(list["error"]["field"], field, "{list}");
        // The bulk names its field inside the body: filter.args[0] for args.
        let bulk_field = bulk["error"]["field"].as_str().unwrap();
        assert!(
            bulk_field.starts_with(&format!("filter.{field}")),
            "{bulk_field}"
        );
        let list_rest = list_words.strip_prefix(field).unwrap();
        let bulk_rest = bulk_words.strip_prefix(bulk_field).unwrap();
        assert_eq!(list_rest, bulk_rest, "{query} vs {filter}");
    }
    // Ten searches inside args: refused alike.
    let q: String = (0..9).map(|i| format!("&args.k{i}=1")).collect();
    let (status, list) = t
        .call(
            Method::GET,
            &format!("/v1/jobs?state=failed{q}"),
            &admin,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{list}");
    let args: Vec<String> = (0..9).map(|i| format!("args.k{i}=1")).collect();
    let (_, bulk) = t
        .call(
            Method::POST,
            "/v1/jobs/bulk",
            &admin,
            Some(json!({"action": "retry", "filter": {"args": args}})),
        )
        .await;
    assert_eq!(
        list["error"]["message"].as_str().unwrap(),
        bulk["error"]["message"]
            .as_str()
            .unwrap()
            .strip_prefix("filter.")
            .unwrap()
    );
}

/// Enqueues `n` jobs whose args are `{"i": i, "hit": i % every == 123}`;
/// their ids, oldest first.
async fn jobs_with_a_hit_every(t: &T, n: usize, every: usize) -> Vec<i64> {
    let mut ids = Vec::with_capacity(n);
    for chunk in (0..n).collect::<Vec<_>>().chunks(1000) {
        let jobs: Vec<NewJob> = chunk
            .iter()
            .map(|&i| NewJob::new("k", json!({"i": i, "hit": i % every == 123})))
            .collect();
        ids.extend(
            t.kyu
                .enqueue_many(jobs)
                .await
                .unwrap()
                .into_iter()
                .map(|e| e.id),
        );
    }
    ids
}

/// A search inside args reads at most 20,000 jobs per request: a page
/// holds the matches among them and its `next` goes on past them, so paging
/// through 50,000 jobs with a match every 7,000th returns every match
/// once, in order, in three requests, and a search with no match pages
/// through empty pages to the end.
#[tokio::test]
async fn list_by_args_reads_one_window_per_page_and_pages_on_to_every_match() {
    let t = T::new().await;
    let r = t.token("r", &[Scope::Read, Scope::ReadArgs], &[]).await;
    let ids = jobs_with_a_hit_every(&t, 50_000, 7_000).await;
    let want: Vec<i64> = (0..ids.len())
        .rev()
        .filter(|i| i % 7_000 == 123)
        .map(|i| ids[i])
        .collect();
    assert_eq!(want.len(), 8);
    for (search, want) in [("args.hit=true", want), ("args.nope=1", Vec::new())] {
        let mut got = Vec::new();
        let mut cursors = Vec::new();
        let mut path = format!("/v1/jobs?{search}&limit=5");
        loop {
            let (status, page) = t.call(Method::GET, &path, &r, None).await;
            assert_eq!(status, StatusCode::OK, "{path}: {page}");
            got.extend(common::ids(&page));
            match page["next"].as_str() {
                Some(next) => {
                    cursors.push(next.to_string());
                    path = format!("/v1/jobs?{search}&limit=5&cursor={next}");
                }
                None => break,
            }
        }
        assert_eq!(got, want, "{search}");
        // Each request read 20,000 jobs (fewer than 5 matches each): its
        // cursor is just past them.
        let newest = *ids.last().unwrap();
        assert_eq!(
            cursors,
            [newest - 19_999, newest - 39_999].map(|c| c.to_string()),
            "{search}"
        );
    }
}
