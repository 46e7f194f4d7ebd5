//! How long each dashboard page takes with many jobs in the store (server
//! time: the router called in-process). Ignored by default; run by hand:
//!
//! ```sh
//! KYU_SCALE_JOBS=1000000 cargo test -p kyu-server --release --test dashboard_scale -- --ignored --nocapture
//! ```
//!
//! It loads KYU_SCALE_JOBS jobs (default 1,000,000) into a fresh SQLite file
//! (or the store of KYU_SCALE_URL, e.g. a PostgreSQL URL with a fresh `?schema=`)
//! (5 queues, 5 kinds, a third scheduled an hour ahead; of the rest most
//! completed, a tenth of those failed, a thousand running; a tenth of all
//! cancelled where still cancellable, a tag on every hundredth) and 200 batches of 50 jobs, then reads each
//! page 5 times and prints the median and worst time, and how long the
//! overview's charts took to read the event log in the background. Not a
//! timed assertion: it reports.

use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use http_body_util::BodyExt;
use kyu::tokens::TokenSpec;
use kyu::{NewJob, Scope};
use serde_json::json;
use tower::ServiceExt;

mod scale;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "loads a million jobs: run by hand (see the file's doc)"]
async fn dashboard_page_times_at_scale() {
    let n = scale::jobs_wanted();
    let (kyu, _dir) = scale::store().await;
    let start = Instant::now();
    let ids = scale::enqueue(&kyu, n).await;
    // A store that has been working: of the runnable jobs (two thirds),
    // most ran: completed, every tenth of those failed for good, and the
    // last thousand claimed still running (a lease of an hour).
    let runnable = n - n / 3;
    let to_run = runnable * 9 / 10;
    let mut ran = 0;
    let mut failed = 0;
    while ran < to_run {
        let claimed = kyu
            .store()
            .claim(kyu::store::Claim {
                worker: "scale-worker".into(),
                queues: (0..5).map(|q| format!("q{q}")).collect(),
                kinds: None,
                limit: 1000.min(to_run - ran),
                lease: Duration::from_secs(3600),
                unstarted: false,
            })
            .await
            .unwrap();
        if claimed.is_empty() {
            break;
        }
        ran += claimed.len();
        if ran + 1000 >= to_run {
            // The last claim's jobs stay running.
            continue;
        }
        let now = chrono::Utc::now();
        let batch: Vec<kyu::store::Finish> = claimed
            .iter()
            .enumerate()
            .map(|(i, j)| kyu::store::Finish {
                lease: j.lease(),
                worker: "scale-worker".into(),
                outcome: if i % 10 == 0 {
                    failed += 1;
                    kyu::store::FinishOutcome::Errored {
                        message: "upstream said no".into(),
                        retry_at: now,
                        permanent: true,
                    }
                } else {
                    kyu::store::FinishOutcome::Completed {
                        result: Some("{\"ok\":true}".into()),
                    }
                },
            })
            .collect();
        kyu.store().finish(batch).await.unwrap();
    }
    eprintln!("ran {ran} jobs ({failed} failed for good, the last claim's still running)");
    let cancel: Vec<i64> = ids.iter().copied().step_by(10).collect();
    for chunk in cancel.chunks(1000) {
        kyu.cancel(chunk).await.unwrap();
    }
    // 200 batches of 50 jobs each (more jobs, in a queue of their own),
    // half of them sealed.
    let mut batch_ids = Vec::new();
    for b in 0..200 {
        let batch = kyu
            .batch()
            .on_complete(NewJob::new("report", json!({})).queue("batches"))
            .create()
            .await
            .unwrap();
        let jobs: Vec<NewJob> = (0..50)
            .map(|i| NewJob::new("part", json!({ "i": i })).queue("batches"))
            .collect();
        batch.add(jobs).await.unwrap();
        if b % 2 == 0 {
            batch.seal().await.unwrap();
        }
        batch_ids.push(batch.id());
    }
    eprintln!(
        "loaded {n} jobs and 200 batches of 50 in {:.1?}",
        start.elapsed()
    );
    if let Some(pg) = kyu.postgres() {
        // Autovacuum analyzes tables this size within a minute or two of
        // loading them; a dashboard meets analyzed tables (the planner then
        // knows, e.g., how few jobs have a lease).
        kyu::postgres::sqlx::query("ANALYZE")
            .execute(pg.pool())
            .await
            .unwrap();
    }

    let secret = kyu
        .create_token(TokenSpec {
            name: "admin".into(),
            scopes: vec![Scope::Admin],
            queues: Vec::new(),
            expires_in: None,
        })
        .await
        .unwrap()
        .secret;
    let tenant = kyu
        .create_token(TokenSpec {
            name: "tenant".into(),
            scopes: vec![Scope::Read],
            queues: vec!["q3".parse().unwrap()],
            expires_in: None,
        })
        .await
        .unwrap()
        .secret;
    let app = kyu_server::router(kyu.clone(), kyu_server::Options::default());
    let login = |token: String| {
        let app = app.clone();
        async move {
            let resp = app
                .oneshot(
                    Request::post("/login")
                        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                        .body(Body::from(format!("token={token}")))
                        .unwrap(),
                )
                .await
                .unwrap();
            resp.headers()[header::SET_COOKIE]
                .to_str()
                .unwrap()
                .split(';')
                .next()
                .unwrap()
                .to_string()
        }
    };
    let admin = login(secret).await;
    // The first overview starts the charts' reading of the event log.
    let charts_started = Instant::now();
    let tenant = login(tenant).await;
    let mid = ids[n / 2];
    let half_time = serde_urlencoded::to_string([(
        "",
        kyu.job(mid)
            .await
            .unwrap()
            .created_at
            .to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
    )])
    .unwrap()
    .trim_start_matches('=')
    .to_string();
    let pages = [
        ("admin", "/".to_string()),
        ("admin", "/queues".into()),
        ("admin", "/jobs".into()),
        ("admin", "/jobs?state=cancelled".into()),
        ("admin", "/jobs?state=failed".into()),
        ("admin", "/jobs?state=running".into()),
        ("admin", "/jobs?state=completed&queue=q1".into()),
        ("admin", "/jobs?state=scheduled&queue=q2".into()),
        ("admin", "/jobs?queue=q4&kind=k4".into()),
        ("admin", "/jobs?tag=hundred".into()),
        ("admin", format!("/jobs?before={mid}")),
        ("admin", format!("/jobs/{mid}")),
        // A search inside args, a created range, and the bulk dry runs
        // (counted up to 10,000, then "10,000+").
        ("admin", format!("/jobs?args=args.user%3D{}", n / 2)),
        (
            "admin",
            format!("/jobs?queue=q1&args=args.user%3D{}", n / 2 + 1),
        ),
        ("admin", format!("/jobs?created_after={half_time}")),
        ("admin", "/jobs/bulk?action=retry&state=cancelled".into()),
        ("admin", "/jobs/bulk?action=delete&queue=q2&kind=k2".into()),
        ("admin", "/jobs/bulk?action=retry&state=failed".into()),
        (
            "admin",
            format!("/jobs/bulk?action=retry&args=args.user%3D{}", n / 2),
        ),
        ("admin", "/schedules".into()),
        ("admin", "/workers".into()),
        ("admin", "/batches".into()),
        ("admin", format!("/batches/{}", batch_ids[100])),
        ("tenant q3", "/jobs".into()),
        ("tenant q3", "/".into()),
        ("tenant q3", "/queues".into()),
        ("tenant q3", "/workers".into()),
        // The Live page: the newest events, and a filter matching nothing
        // (it reads its bound of ids, then offers "older").
        ("admin", "/live".into()),
        ("admin", "/live?kind=nothing".into()),
        ("tenant q3", "/live".into()),
    ];
    eprintln!(
        "{:<10} {:<60} {:>10} {:>10}",
        "token", "page", "median", "worst"
    );
    for (who, path) in pages {
        let cookie = if who == "admin" { &admin } else { &tenant };
        let mut times: Vec<Duration> = Vec::new();
        for _ in 0..5 {
            let t = Instant::now();
            let resp = app
                .clone()
                .oneshot(
                    Request::get(&path)
                        .header(header::COOKIE, cookie)
                        .body(Body::empty())
                        .unwrap(),
                )
                .await
                .unwrap();
            assert_eq!(resp.status(), StatusCode::OK, "{path}");
            resp.into_body().collect().await.unwrap();
            times.push(t.elapsed());
        }
        times.sort();
        eprintln!(
            "{who:<10} {path:<60} {:>10.1?} {:>10.1?}",
            times[2], times[4]
        );
    }
    // The overview's charts read the whole event log once, in the
    // background (pages do not wait for it): how long that took.
    let mut caught_up = None;
    for _ in 0..1200 {
        let resp = app
            .clone()
            .oneshot(
                Request::get("/")
                    .header(header::COOKIE, &admin)
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        if !String::from_utf8_lossy(&body).contains("still reading the event log") {
            caught_up = Some(charts_started.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    eprintln!(
        "charts: the rollup read the event log ({} jobs' events) in {:.1?} after the first overview",
        n + 10_000,
        caught_up.expect("caught up within 10 minutes")
    );
}
