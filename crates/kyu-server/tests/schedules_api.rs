//! Schedules created and changed over HTTP: `PUT` (create or replace),
//! `PATCH` (change some fields), validation in the CLI's words, and a
//! tenant that cannot take over or place a schedule outside its queues.

mod common;

use axum::http::{Method, StatusCode};
use common::T;
use kyu::Scope;
use serde_json::json;

#[tokio::test]
async fn put_creates_then_replaces_and_patch_changes_some_fields() {
    let t = T::new().await;
    let op = t.token("op", &[Scope::Operate, Scope::Read], &[]).await;
    let body = json!({"cron": "0 3 * * *", "zone": "Asia/Tokyo",
        "job": {"kind": "report", "args": {"format": "pdf"}, "queue": "reports", "max_attempts": 2},
        "overlap": "buffer_one", "misfire": "run_once"});
    let (status, view) = t
        .call(
            Method::PUT,
            "/v1/schedules/nightly",
            &op,
            Some(body.clone()),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{view}");
    assert_eq!(
        (
            view["cron"].as_str(),
            view["zone"].as_str(),
            view["queue"].as_str(),
            view["enabled"].as_bool()
        ),
        (
            Some("0 3 * * *"),
            Some("Asia/Tokyo"),
            Some("reports"),
            Some(true)
        )
    );
    let rec = t.kyu.get_schedule("nightly").await.unwrap();
    assert_eq!(rec.spec.job.max_attempts, 2);
    assert_eq!(rec.spec.overlap, kyu::OverlapPolicy::BufferOne);
    assert_eq!(rec.spec.misfire, kyu::MisfirePolicy::RunOnce);
    let (status, _) = t
        .call(Method::PUT, "/v1/schedules/nightly", &op, Some(body))
        .await;
    assert_eq!(status, StatusCode::OK, "replaced");
    let (status, view) = t
        .call(
            Method::PATCH,
            "/v1/schedules/nightly",
            &op,
            Some(json!({"cron": "30 4 * * *", "enabled": false})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{view}");
    assert_eq!(
        (view["cron"].as_str(), view["enabled"].as_bool()),
        (Some("30 4 * * *"), Some(false))
    );
    let rec = t.kyu.get_schedule("nightly").await.unwrap();
    assert_eq!(rec.spec.zone.name(), "Asia/Tokyo", "unchanged fields stay");
    assert_eq!(rec.spec.job.kind, "report");
    let (status, _) = t
        .call(
            Method::PATCH,
            "/v1/schedules/nope",
            &op,
            Some(json!({"enabled": true})),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn invalid_schedules_are_400_with_the_cli_words_and_write_nothing() {
    let t = T::new().await;
    let op = t.token("op", &[Scope::Operate], &[]).await;
    let words = |r: Result<(), kyu::InvalidInput>| r.unwrap_err().to_string();
    let cases = [
        (
            json!({"cron": "61 * * * *", "job": {"kind": "k"}}),
            "cron",
            Some(words("61 * * * *".parse::<kyu::CronExpr>().map(|_| ()))),
        ),
        (
            json!({"cron": "0 3 * * *", "zone": "Mars/Base", "job": {"kind": "k"}}),
            "zone",
            Some(zone_words("Mars/Base")),
        ),
        (
            json!({"cron": "0 3 * * *", "overlap": "sometimes", "job": {"kind": "k"}}),
            "overlap",
            Some(words("sometimes".parse::<kyu::OverlapPolicy>().map(|_| ()))),
        ),
        (
            json!({"cron": "0 3 * * *", "misfire": "never", "job": {"kind": "k"}}),
            "misfire",
            Some(words("never".parse::<kyu::MisfirePolicy>().map(|_| ()))),
        ),
        (
            json!({"cron": "0 3 * * *", "job": {"kind": "k", "queue": ""}}),
            "job.queue",
            None,
        ),
        (
            json!({"cron": "0 3 * * *", "job": {"kind": "k", "timeout": "soon"}}),
            "job.timeout",
            None,
        ),
        (json!({"cron": "0 3 * * *"}), "body", None),
    ];
    for (body, field, message) in cases {
        let (status, r) = t
            .call(Method::PUT, "/v1/schedules/s", &op, Some(body.clone()))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {r}");
        assert!(
            r["error"]["field"]
                .as_str()
                .is_some_and(|f| f == field || f.ends_with(&format!(".{field}"))),
            "{body}: {r}"
        );
        if let Some(m) = message {
            assert_eq!(r["error"]["message"], m, "the CLI's words");
        }
    }
    assert!(
        t.kyu.schedules().await.unwrap().is_empty(),
        "nothing written"
    );
    let long = "x".repeat(300);
    let (status, _) = t
        .call(
            Method::PUT,
            &format!("/v1/schedules/{long}"),
            &op,
            Some(json!({"cron": "0 3 * * *", "job": {"kind": "k"}})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "a name over the limit");
}

#[tokio::test]
async fn a_tenant_cannot_place_or_take_over_a_schedule_outside_its_queues() {
    let t = T::new().await;
    let admin = t.token("admin", &[Scope::Admin], &[]).await;
    let tenant = t
        .token("a", &[Scope::Operate, Scope::Read], &["tenant-a.*"])
        .await;
    let (status, _) = t
        .call(
            Method::PUT,
            "/v1/schedules/b-nightly",
            &admin,
            Some(json!({"cron": "0 3 * * *", "job": {"kind": "k", "queue": "tenant-b.mail"}})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, r) = t
        .call(
            Method::PUT,
            "/v1/schedules/mine",
            &tenant,
            Some(json!({"cron": "0 3 * * *", "job": {"kind": "k", "queue": "tenant-b.mail"}})),
        )
        .await;
    assert_eq!(
        (status, r["error"]["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("forbidden_queue"))
    );
    let (status, r) = t
        .call(
            Method::PUT,
            "/v1/schedules/b-nightly",
            &tenant,
            Some(json!({"cron": "* * * * *", "job": {"kind": "k", "queue": "tenant-a.mail"}})),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{r}");
    assert!(!r.to_string().contains("tenant-b"), "{r}");
    let (status, _) = t
        .call(
            Method::PATCH,
            "/v1/schedules/b-nightly",
            &tenant,
            Some(json!({"enabled": false})),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let s = t.kyu.get_schedule("b-nightly").await.unwrap();
    assert_eq!(
        (s.spec.cron.as_str(), s.spec.enabled),
        ("0 3 * * *", true),
        "untouched"
    );
    let (status, _) = t
        .call(
            Method::PUT,
            "/v1/schedules/a-nightly",
            &tenant,
            Some(json!({"cron": "0 3 * * *", "job": {"kind": "k", "queue": "tenant-a.mail"}})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
}

/// The CLI's words for a bad zone (`kyu schedules add --tz`), said of the
/// request body's field `zone`.
fn zone_words(zone: &str) -> String {
    let e = kyu::parse_zone(zone).unwrap_err();
    format!("zone: {}", e.problem)
}

/// A bad zone in `PUT` and `PATCH` names the body's field, `zone`, exactly
/// (the OpenAPI's name for it), with the CLI's words.
#[tokio::test]
async fn a_bad_zone_names_the_body_field_zone_in_put_and_patch() {
    let t = T::new().await;
    let op = t.token("op", &[Scope::Operate, Scope::Read], &[]).await;
    let (status, r) = t
        .call(
            Method::PUT,
            "/v1/schedules/s",
            &op,
            Some(json!({"cron": "0 3 * * *", "zone": "Mars/Base", "job": {"kind": "k"}})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{r}");
    assert_eq!(r["error"]["field"], "zone", "{r}");
    assert_eq!(r["error"]["message"], zone_words("Mars/Base"), "{r}");
    let (status, r) = t
        .call(
            Method::PUT,
            "/v1/schedules/s",
            &op,
            Some(json!({"cron": "0 3 * * *", "job": {"kind": "k"}})),
        )
        .await;
    assert!(status.is_success(), "{r}");
    let (status, r) = t
        .call(
            Method::PATCH,
            "/v1/schedules/s",
            &op,
            Some(json!({"zone": "asia/tokyo"})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{r}");
    assert_eq!(r["error"]["field"], "zone", "{r}");
    assert_eq!(r["error"]["message"], zone_words("asia/tokyo"), "{r}");
    assert!(
        r["error"]["message"]
            .as_str()
            .unwrap()
            .contains("did you mean Asia/Tokyo?"),
        "{r}"
    );
}
