//! How long a bulk dry run's count takes with a million jobs in the store:
//! the count page by page (what the dry run did before `count_jobs`:
//! pages of `Options::bulk_batch` jobs, each read whole) against
//! [`kyu::Kyu::count_jobs`], and the dashboard's confirmation page and the
//! API's dry run end to end (server time: the router called in-process).
//! Ignored by default; run by hand, in a release build:
//!
//! ```sh
//! KYU_SCALE_URL=sqlite:///tmp/count.db cargo test -p kyu-server --release \
//!     --test bulk_count_scale -- --ignored --nocapture
//! ```
//!
//! It loads KYU_SCALE_JOBS jobs (default 1,000,000: 5 queues, 5 kinds, a
//! third scheduled an hour ahead, every fifth cancelled) into the store of
//! KYU_SCALE_URL (default: a fresh SQLite file), unless that store already
//! holds that many jobs (so one load serves many runs), then times each
//! count 5 times and prints the median and worst. Not a timed assertion:
//! it reports.

use std::future::Future;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use http_body_util::BodyExt;
use kyu::tokens::TokenSpec;
use kyu::{JobFilter, JobState, Kyu, Scope};
use serde_json::json;
use tower::ServiceExt;

mod scale;

/// The dashboard's cap (`COUNT_CAP`).
const CAP: u64 = 10_000;

/// Times `f` 5 times: (median, worst, its last answer).
async fn time<T, F: Future<Output = T>>(mut f: impl FnMut() -> F) -> (Duration, Duration, T) {
    let mut times = Vec::new();
    let mut last = None;
    for _ in 0..5 {
        let t = Instant::now();
        last = Some(f().await);
        times.push(t.elapsed());
    }
    times.sort();
    (times[2], times[4], last.expect("ran"))
}

/// The dry run's count as it was: pages of `batch` jobs within the
/// snapshot, up to `cap` (then "more"), as `api::bulk::by_filter` reads
/// them without an action.
async fn paged_count(kyu: &Kyu, filter: &JobFilter, cap: Option<u64>) -> (u64, bool) {
    let mut f = filter.clone();
    f.limit = kyu_server::Options::default().bulk_batch;
    let mut n = 0u64;
    loop {
        let page = kyu.list(&f).await.unwrap();
        n += page.jobs.len() as u64;
        if let Some(cap) = cap.filter(|c| n >= *c) {
            return (n.min(cap), n > cap || page.next.is_some());
        }
        match page.next {
            Some(next) => f.before = Some(next),
            None => return (n, false),
        }
    }
}

async fn load(kyu: &Kyu, n: usize) {
    let start = Instant::now();
    let ids = scale::enqueue(kyu, n).await;
    let cancel: Vec<i64> = ids.iter().copied().step_by(5).collect();
    for chunk in cancel.chunks(1000) {
        kyu.cancel(chunk).await.unwrap();
    }
    eprintln!(
        "loaded {n} jobs ({} cancelled) in {:.1?}",
        cancel.len(),
        start.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "loads a million jobs: run by hand (see the file's doc)"]
async fn bulk_dry_run_count_at_scale() {
    let n = scale::jobs_wanted();
    let (kyu, _dir) = scale::store().await;
    let have = kyu
        .count_jobs(&JobFilter::default(), u64::MAX)
        .await
        .unwrap();
    if have.n < n as u64 {
        load(&kyu, n).await;
        if let Some(pg) = kyu.postgres() {
            // Autovacuum would analyze (and set the visibility map of) a
            // table this size within minutes; a dashboard meets it so.
            kyu::postgres::sqlx::query("VACUUM ANALYZE")
                .execute(pg.pool())
                .await
                .unwrap();
        }
    } else {
        eprintln!("the store holds {} jobs already: not loading", have.n);
    }

    // The snapshot as the dry run takes it.
    let at = kyu.store().clock().now();
    let max_id = kyu
        .list(&JobFilter {
            limit: 1,
            ..JobFilter::default()
        })
        .await
        .unwrap()
        .jobs[0]
        .id;
    let within = |f: JobFilter| JobFilter {
        changed_by: Some(at),
        before: Some(max_id + 1),
        ..f
    };
    let filters = [
        (
            "state=cancelled",
            within(JobFilter {
                states: vec![JobState::Cancelled],
                ..JobFilter::default()
            }),
        ),
        (
            "state=failed (none)",
            within(JobFilter {
                states: vec![JobState::Failed],
                ..JobFilter::default()
            }),
        ),
        (
            "queue=q2&kind=k2",
            within(JobFilter {
                queue: Some("q2".into()),
                kind: Some("k2".into()),
                ..JobFilter::default()
            }),
        ),
    ];
    eprintln!(
        "{:<22} {:<28} {:>10} {:>10}  answer",
        "filter", "count", "median", "worst"
    );
    for (name, f) in &filters {
        for cap in [Some(CAP), None] {
            let cap_name = cap.map_or("all".to_string(), |c| format!("cap {c}"));
            let (med, worst, old) = time(|| paged_count(&kyu, f, cap)).await;
            eprintln!(
                "{name:<22} {:<28} {med:>10.1?} {worst:>10.1?}  {old:?}",
                format!("pages of jobs, {cap_name}")
            );
            let (med, worst, new) =
                time(|| async { kyu.count_jobs(f, cap.unwrap_or(u64::MAX)).await.unwrap() }).await;
            eprintln!(
                "{name:<22} {:<28} {med:>10.1?} {worst:>10.1?}  {:?}",
                format!("count_jobs, {cap_name}"),
                (new.n, new.more)
            );
            assert_eq!(old, (new.n, new.more), "{name}: the same answer");
        }
    }

    // End to end: the dashboard's confirmation (cap 10,000) and the API's
    // dry run (every matching job).
    let secret = kyu
        .create_token(TokenSpec {
            name: format!("count-scale-{}", chrono::Utc::now().timestamp_micros()),
            scopes: vec![Scope::Admin],
            queues: Vec::new(),
            expires_in: None,
        })
        .await
        .unwrap()
        .secret;
    let app = kyu_server::router(kyu.clone(), kyu_server::Options::default());
    let resp = app
        .clone()
        .oneshot(
            Request::post("/login")
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(Body::from(format!("token={secret}")))
                .unwrap(),
        )
        .await
        .unwrap();
    let cookie = resp.headers()[header::SET_COOKIE]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    for path in [
        "/jobs/bulk?action=retry&state=cancelled",
        "/jobs/bulk?action=retry&state=failed",
        "/jobs/bulk?action=delete&queue=q2&kind=k2",
    ] {
        let (med, worst, status) = time(|| async {
            let resp = app
                .clone()
                .oneshot(
                    Request::get(path)
                        .header(header::COOKIE, &cookie)
                        .body(Body::empty())
                        .unwrap(),
                )
                .await
                .unwrap();
            let status = resp.status();
            resp.into_body().collect().await.unwrap();
            status
        })
        .await;
        assert_eq!(status, StatusCode::OK, "{path}");
        eprintln!("dashboard GET {path:<48} {med:>10.1?} {worst:>10.1?}");
    }
    for filter in [
        json!({"state": "cancelled"}),
        json!({"state": "failed"}),
        json!({"queue": "q2", "kind": "k2"}),
    ] {
        let body = json!({"action": "retry", "filter": filter, "dry_run": true}).to_string();
        let (med, worst, (status, reply)) = time(|| async {
            let resp = app
                .clone()
                .oneshot(
                    Request::post("/v1/jobs/bulk")
                        .header(header::AUTHORIZATION, format!("Bearer {secret}"))
                        .header(header::CONTENT_TYPE, "application/json")
                        .body(Body::from(body.clone()))
                        .unwrap(),
                )
                .await
                .unwrap();
            let status = resp.status();
            let bytes = resp.into_body().collect().await.unwrap().to_bytes();
            (status, String::from_utf8_lossy(&bytes).to_string())
        })
        .await;
        assert_eq!(status, StatusCode::OK, "{reply}");
        let matched: serde_json::Value = serde_json::from_str(&reply).unwrap();
        eprintln!(
            "API dry run {:<48} {med:>10.1?} {worst:>10.1?}  matched {}",
            filter.to_string(),
            matched["matched"]
        );
    }
}
