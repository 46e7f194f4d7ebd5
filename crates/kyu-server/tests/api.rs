//! The JSON API through the real router (`tower::ServiceExt::oneshot`):
//! producers, operators, the error shape and status rule, the authorization
//! matrix generated from the route table, and the OpenAPI document.

use std::time::Duration;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use http_body_util::BodyExt;
use kyu::tokens::TokenSpec;
use kyu::{Kyu, Scope};
use serde_json::{json, Value};
use tower::ServiceExt;

struct T {
    kyu: Kyu,
    app: axum::Router,
    _dir: tempfile::TempDir,
}

impl T {
    async fn new() -> T {
        T::with(kyu_server::Options {
            // An event stream is read until its first keep-alive.
            sse_keep_alive: Duration::from_millis(200),
            ..Default::default()
        })
        .await
    }

    async fn with(options: kyu_server::Options) -> T {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/kyu.db", dir.path().display());
        let kyu = Kyu::connect(&url).await.unwrap();
        let app = kyu_server::router(kyu.clone(), options);
        T {
            kyu,
            app,
            _dir: dir,
        }
    }

    /// A token with `scopes`, limited to `queues` if any.
    async fn token(&self, name: &str, scopes: &[Scope], queues: &[&str]) -> String {
        self.kyu
            .create_token(TokenSpec {
                name: name.into(),
                scopes: scopes.to_vec(),
                queues: queues.iter().map(|q| q.parse().unwrap()).collect(),
                expires_in: None,
            })
            .await
            .unwrap()
            .secret
    }

    async fn admin(&self) -> String {
        self.token("admin", &[Scope::Admin], &[]).await
    }

    /// Claims job `id` (as a worker would) and returns the job token of the
    /// attempt it is now running, as kyu gives it to a command.
    async fn running(&self, id: i64) -> String {
        let claimed = self
            .kyu
            .store()
            .claim_job(id, "w", Duration::from_secs(30))
            .await
            .unwrap()
            .expect("the job is claimable");
        self.kyu
            .job_token(id, claimed.lease().attempt)
            .await
            .unwrap()
    }

    /// Sends one request; the status and the body (JSON, or a string).
    async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = Request::builder().method(method).uri(path);
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        let req = match body {
            Some(b) => req
                .header("content-type", "application/json")
                .body(Body::from(b.to_string())),
            None => req.body(Body::empty()),
        }
        .unwrap();
        self.send(req).await
    }

    async fn send(&self, req: Request<Body>) -> (StatusCode, Value) {
        let resp = self.app.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        if resp
            .headers()
            .get("content-type")
            .is_some_and(|c| c == "text/event-stream")
        {
            return (status, Value::String(read_stream(resp.into_body()).await));
        }
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        let text = String::from_utf8_lossy(&bytes).to_string();
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, body)
    }
}

/// An event stream's text up to its first keep-alive comment: what it
/// replayed before it went idle.
async fn read_stream(mut body: Body) -> String {
    let mut text = String::new();
    while !text.contains(": keep-alive") {
        let frame = tokio::time::timeout(Duration::from_secs(10), body.frame())
            .await
            .expect("a keep-alive within 10 s")
            .expect("the stream goes on")
            .unwrap();
        if let Ok(data) = frame.into_data() {
            text.push_str(&String::from_utf8_lossy(&data));
        }
    }
    text
}

/// Asserts the error shape and returns the code.
fn error_code(body: &Value) -> String {
    let e = &body["error"];
    assert!(
        e["message"].as_str().is_some_and(|m| !m.is_empty()),
        "an error has a message: {body}"
    );
    assert!(
        e.get("field").is_some(),
        "an error has a field (maybe null): {body}"
    );
    e["code"]
        .as_str()
        .unwrap_or_else(|| panic!("an error has a code: {body}"))
        .to_string()
}

#[tokio::test]
async fn enqueue_with_every_option_then_get_shows_it_and_redacts_args_without_read_args() {
    let t = T::new().await;
    let producer = t.token("web", &[Scope::Produce, Scope::Read], &[]).await;
    let reader = t.token("ops", &[Scope::Read, Scope::ReadArgs], &[]).await;
    let (status, body) = t
        .call(
            Method::POST,
            "/v1/jobs",
            Some(&producer),
            Some(
                json!({"kind": "send_email", "args": {"to": "a@example.com"}, "queue": "mail",
                "priority": -1, "delay": "1h", "max_attempts": 3,
                "retry": {"type": "fixed", "delay": "5s"}, "timeout": "30s",
                "unique_key": "welcome:a", "unique_for": "1h", "tags": ["tenant:42"]}),
            ),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let id = body["id"].as_i64().unwrap();
    let job = t.kyu.job(id).await.unwrap();
    assert_eq!(
        (job.queue.as_str(), job.priority, job.max_attempts),
        ("mail", -1, 3)
    );
    assert_eq!(job.state, kyu::JobState::Scheduled, "a delay schedules it");
    assert_eq!(job.timeout, Some(Duration::from_secs(30)));
    assert_eq!(job.unique_key.as_deref(), Some("welcome:a"));
    assert_eq!(job.tags, ["tenant:42"]);

    let (status, view) = t
        .call(
            Method::GET,
            &format!("/v1/jobs/{id}"),
            Some(&producer),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(view["args"], Value::Null, "no read_args: args redacted");
    assert_eq!(view["redacted"], true);
    assert_eq!(view["state"], "scheduled");
    let (_, view) = t
        .call(Method::GET, &format!("/v1/jobs/{id}"), Some(&reader), None)
        .await;
    assert_eq!(view["args"], json!({"to": "a@example.com"}));
    assert_eq!(view["redacted"], false);
}

#[tokio::test]
async fn bad_input_is_400_with_the_cli_words_and_never_5xx() {
    let t = T::with(kyu_server::Options {
        body_limit: 4096,
        ..Default::default()
    })
    .await;
    let admin = t.admin().await;
    let post = |body: &'static str| {
        Request::post("/v1/jobs")
            .header("authorization", format!("Bearer {admin}"))
            .header("content-type", "application/json")
            .body(Body::from(body))
            .unwrap()
    };
    for bad in [
        "",
        "{",
        "[]",
        "null",
        "{\"kind\": 5}",
        "{\"args\": {}}",
        "{\"kind\":\"k\",\"nope\":1}",
    ] {
        let (status, body) = t.send(post(bad)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
        assert_eq!(error_code(&body), "bad_json", "{bad}");
    }
    let (status, body) = t
        .call(
            Method::POST,
            "/v1/jobs",
            Some(&admin),
            Some(json!({"kind": "k", "queue": "default "})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["field"], "queue");
    let words = kyu::validate::queue_name("queue", "default ")
        .unwrap_err()
        .to_string();
    assert_eq!(
        body["error"]["message"], words,
        "the same words as the library and CLI"
    );
    let (status, body) = t
        .call(
            Method::POST,
            "/v1/jobs",
            Some(&admin),
            Some(json!({"kind": "k", "delay": "soon"})),
        )
        .await;
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("delay"))
    );
    let big = json!({"kind": "k", "args": {"x": "y".repeat(8192)}});
    let (status, body) = t
        .call(Method::POST, "/v1/jobs", Some(&admin), Some(big))
        .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    assert_eq!(error_code(&body), "body_too_large");
    for path in [
        "/v1/jobs/abc",
        "/v1/jobs/-1",
        "/v1/jobs/99999999999999999999",
        "/v1/jobs?limit=0",
        "/v1/jobs?state=done",
        "/v1/jobs?cursor=x",
        "/v1/jobs?limit=abc",
        "/v1/jobs/1?wait=forever",
        "/v1/jobs/1?wait=1h",
        "/v1/jobs?bogus=1",
    ] {
        let (status, body) = t.call(Method::GET, path, Some(&admin), None).await;
        assert!(
            status == StatusCode::BAD_REQUEST || status == StatusCode::NOT_FOUND,
            "{path}: {status} {body}"
        );
        error_code(&body);
    }
    let (status, body) = t.call(Method::GET, "/v1/nothing", Some(&admin), None).await;
    assert_eq!(
        (status, error_code(&body).as_str()),
        (StatusCode::NOT_FOUND, "not_found")
    );
    let (status, body) = t.call(Method::GET, "/v1/jobs", None, None).await;
    assert_eq!(
        (status, error_code(&body).as_str()),
        (StatusCode::UNAUTHORIZED, "unauthorized")
    );
    let (status, _) = t
        .call(Method::GET, "/v1/jobs", Some("kyu_wrong"), None)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = t.call(Method::GET, "/healthz", None, None).await;
    assert_eq!(status, StatusCode::OK, "/healthz is open");
}

#[tokio::test]
async fn revoked_and_expired_tokens_are_refused() {
    let t = T::new().await;
    let reader = t.token("r", &[Scope::Read], &[]).await;
    assert_eq!(
        t.call(Method::GET, "/v1/jobs", Some(&reader), None).await.0,
        StatusCode::OK
    );
    assert!(t.kyu.revoke_token("r").await.unwrap());
    assert_eq!(
        t.call(Method::GET, "/v1/jobs", Some(&reader), None).await.0,
        StatusCode::UNAUTHORIZED
    );
    let brief = t
        .kyu
        .create_token(TokenSpec {
            name: "brief".into(),
            scopes: vec![Scope::Read],
            queues: vec![],
            expires_in: Some(Duration::from_millis(1)),
        })
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(5)).await;
    assert_eq!(
        t.call(Method::GET, "/v1/jobs", Some(&brief.secret), None)
            .await
            .0,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn idempotency_key_makes_a_retried_request_return_the_first_job() {
    let t = T::new().await;
    let admin = t.admin().await;
    let req = || {
        Request::post("/v1/jobs")
            .header("authorization", format!("Bearer {admin}"))
            .header("idempotency-key", "order-7")
            .body(Body::from(json!({"kind": "charge"}).to_string()))
            .unwrap()
    };
    let (s1, b1) = t.send(req()).await;
    let (s2, b2) = t.send(req()).await;
    assert_eq!(
        (s1, b1["duplicate"].as_bool()),
        (StatusCode::CREATED, Some(false))
    );
    assert_eq!(
        (s2, b2["duplicate"].as_bool()),
        (StatusCode::OK, Some(true))
    );
    assert_eq!(b1["id"], b2["id"]);
    assert_eq!(
        t.kyu
            .list(&kyu::JobFilter::default())
            .await
            .unwrap()
            .jobs
            .len(),
        1
    );
}

#[tokio::test]
async fn batch_enqueue_is_all_or_none() {
    let t = T::new().await;
    let admin = t.admin().await;
    let (status, body) = t
        .call(
            Method::POST,
            "/v1/jobs/batch",
            Some(&admin),
            Some(json!({"jobs": [{"kind": "a"}, {"kind": "b", "queue": ""}]})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"]["field"], "jobs[1].queue");
    assert!(
        t.kyu
            .list(&kyu::JobFilter::default())
            .await
            .unwrap()
            .jobs
            .is_empty(),
        "nothing written"
    );
    let (status, body) = t
        .call(
            Method::POST,
            "/v1/jobs/batch",
            Some(&admin),
            Some(json!({"jobs": [{"kind": "a"}, {"kind": "b"}]})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(body["jobs"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn list_filters_and_pages_by_keyset_cursor() {
    let t = T::new().await;
    let admin = t.admin().await;
    for i in 0..5 {
        let job =
            json!({"kind": if i % 2 == 0 { "even" } else { "odd" }, "tags": [format!("n{i}")]});
        t.call(Method::POST, "/v1/jobs", Some(&admin), Some(job))
            .await;
    }
    let (_, page) = t
        .call(Method::GET, "/v1/jobs?limit=2", Some(&admin), None)
        .await;
    let ids = |p: &Value| {
        p["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|j| j["id"].as_i64().unwrap())
            .collect::<Vec<_>>()
    };
    assert_eq!(ids(&page), [5, 4]);
    let next = page["next"].as_str().unwrap().to_string();
    let (_, page) = t
        .call(
            Method::GET,
            &format!("/v1/jobs?limit=2&cursor={next}"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(ids(&page), [3, 2]);
    let next = page["next"].as_str().unwrap().to_string();
    let (_, page) = t
        .call(
            Method::GET,
            &format!("/v1/jobs?limit=2&cursor={next}"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(ids(&page), [1]);
    assert_eq!(page["next"], Value::Null, "the last page has no next");
    let (_, page) = t
        .call(Method::GET, "/v1/jobs?kind=odd", Some(&admin), None)
        .await;
    assert_eq!(ids(&page), [4, 2]);
    let (_, page) = t
        .call(
            Method::GET,
            "/v1/jobs?tag=n3&state=available",
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(ids(&page), [4]);
}

#[tokio::test]
async fn wait_long_poll_answers_when_the_job_finishes() {
    let t = T::new().await;
    let admin = t.admin().await;
    let (_, b) = t
        .call(
            Method::POST,
            "/v1/jobs",
            Some(&admin),
            Some(json!({"kind": "k"})),
        )
        .await;
    let id = b["id"].as_i64().unwrap();
    let (_, quick) = t
        .call(
            Method::GET,
            &format!("/v1/jobs/{id}?wait=100ms"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(
        quick["state"], "available",
        "the wait ended first: the job as it is"
    );
    let store = t.kyu.store().clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let c = store
            .claim(kyu::store::Claim {
                worker: "w".into(),
                queues: vec!["default".into()],
                kinds: None,
                limit: 1,
                lease: Duration::from_secs(30),
                unstarted: false,
            })
            .await
            .unwrap();
        store
            .finish(vec![kyu::store::Finish {
                lease: c[0].lease(),
                worker: "w".into(),
                outcome: kyu::store::FinishOutcome::Completed {
                    result: Some("7".into()),
                },
            }])
            .await
            .unwrap();
    });
    let (status, done) = t
        .call(
            Method::GET,
            &format!("/v1/jobs/{id}?wait=10s"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(done["state"], "completed");
    assert_eq!(done["result"], 7);
}

#[tokio::test]
async fn operators_cancel_retry_pause_and_run_schedules() {
    let t = T::new().await;
    let admin = t.admin().await;
    let (_, b) = t
        .call(
            Method::POST,
            "/v1/jobs",
            Some(&admin),
            Some(json!({"kind": "k"})),
        )
        .await;
    let id = b["id"].as_i64().unwrap();
    let (_, r) = t
        .call(
            Method::POST,
            "/v1/jobs/cancel",
            Some(&admin),
            Some(json!({"ids": [id, 999]})),
        )
        .await;
    assert_eq!(r["results"][id.to_string()], "cancelled");
    assert_eq!(r["results"]["999"], "not_found");
    let (_, r) = t
        .call(
            Method::POST,
            "/v1/jobs/retry",
            Some(&admin),
            Some(json!({"ids": [id]})),
        )
        .await;
    assert_eq!(r["results"][id.to_string()], "retried");
    assert_eq!(
        t.call(Method::POST, "/v1/queues/default/pause", Some(&admin), None)
            .await
            .0,
        StatusCode::NO_CONTENT
    );
    let (_, qs) = t.call(Method::GET, "/v1/queues", Some(&admin), None).await;
    assert_eq!(qs[0]["paused"], true);
    assert_eq!(qs[0]["counts"]["available"], 1);
    assert_eq!(
        t.call(
            Method::POST,
            "/v1/queues/default/resume",
            Some(&admin),
            None
        )
        .await
        .0,
        StatusCode::NO_CONTENT
    );
    t.kyu
        .schedule(kyu::ScheduleSpec::new(
            "nightly",
            kyu::CronExpr::parse("0 3 * * *").unwrap(),
            kyu::JobTemplate::new("report", json!({})),
        ))
        .await
        .unwrap();
    let (_, s) = t
        .call(Method::GET, "/v1/schedules", Some(&admin), None)
        .await;
    assert_eq!(s[0]["name"], "nightly");
    let (_, p) = t
        .call(
            Method::GET,
            "/v1/schedules/nightly/preview?count=3",
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(p.as_array().unwrap().len(), 3);
    assert_eq!(
        t.call(
            Method::POST,
            "/v1/schedules/nightly/disable",
            Some(&admin),
            None
        )
        .await
        .0,
        StatusCode::NO_CONTENT
    );
    assert!(!t.kyu.get_schedule("nightly").await.unwrap().spec.enabled);
    assert_eq!(
        t.call(
            Method::POST,
            "/v1/schedules/nightly/enable",
            Some(&admin),
            None
        )
        .await
        .0,
        StatusCode::NO_CONTENT
    );
    let (status, trig) = t
        .call(
            Method::POST,
            "/v1/schedules/nightly/trigger",
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(
        t.kyu.job(trig["id"].as_i64().unwrap()).await.unwrap().kind,
        "report"
    );
    assert_eq!(
        t.call(Method::DELETE, "/v1/schedules/nightly", Some(&admin), None)
            .await
            .0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        t.call(Method::DELETE, "/v1/schedules/nightly", Some(&admin), None)
            .await
            .0,
        StatusCode::NOT_FOUND
    );
}

/// What one route is called with in the matrix: its path with the
/// placeholders filled and a body. Every route of the table must have one;
/// a new route without one fails here, so it cannot miss the matrix.
fn sample(
    route: &kyu_server::api::RouteInfo,
    job: i64,
    queue: &str,
    schedule: &str,
) -> (String, Option<Value>) {
    let path = route.path.replace("{id}", &job.to_string()).replace(
        "{name}",
        if route.path.starts_with("/v1/queues") {
            queue
        } else {
            schedule
        },
    );
    let path = path.replace("{worker}", "w-0");
    let body = match (route.method.as_str(), route.path) {
        ("POST", "/v1/jobs") => Some(json!({"kind": "k", "queue": queue})),
        ("POST", "/v1/jobs/batch") => Some(json!({"jobs": [{"kind": "k", "queue": queue}]})),
        ("POST", "/v1/batches") | ("POST", "/v1/batches/{id}/jobs") => Some(
            json!({"jobs": [{"kind": "k", "queue": queue}], "on_complete": {"kind": "k", "queue": queue}}),
        ),
        ("POST", "/v1/batches/{id}/seal") => None,
        ("POST", "/v1/jobs/{id}/progress") => Some(json!({"percent": 40, "message": "m"})),
        ("POST", "/v1/jobs/cancel")
        | ("POST", "/v1/jobs/retry")
        | ("POST", "/v1/jobs/delete")
        | ("POST", "/v1/jobs/run_now") => Some(json!({"ids": [job]})),
        ("POST", "/v1/jobs/bulk") => Some(json!({"action": "cancel", "ids": [job]})),
        ("PUT", "/v1/schedules/{name}") => {
            Some(json!({"cron": "0 3 * * *", "job": {"kind": "k", "queue": queue}}))
        }
        ("PATCH", "/v1/schedules/{name}") => Some(json!({"enabled": true})),
        ("PATCH", "/v1/queues/{name}") => Some(json!({"global_concurrency": 5})),
        ("GET", "/v1/jobs") => return (format!("/v1/jobs?queue={queue}"), None),
        ("GET", "/v1/events") => return ("/v1/events?since=0".to_string(), None),
        ("POST", p) if p.starts_with("/v1/workers") => return (path, worker_sample(p, queue)),
        ("GET", _) | ("DELETE", _) => None,
        ("POST", p) if p.starts_with("/v1/queues/") || p.starts_with("/v1/schedules/") => None,
        _ => panic!(
            "route {} {} has no sample request in the authorization matrix: add one",
            route.method, route.path
        ),
    };
    (path, body)
}

/// The body of a sample request to a worker route (`/v1/workers…`).
fn worker_sample(path: &str, queue: &str) -> Option<Value> {
    let fence = |extra: Value| {
        let mut b = json!({"attempt": 1, "lease_token": "00"});
        b.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        Some(b)
    };
    match path.rsplit('/').next().unwrap() {
        "workers" => Some(json!({"name": "w", "queues": [queue], "kinds": ["k"]})),
        "claim" => Some(json!({"max": 1})),
        "heartbeat" => Some(json!({"leases": []})),
        "ack" => Some(json!({"acks": []})),
        "complete" => fence(json!({})),
        "fail" => fence(json!({"message": "m"})),
        "snooze" => fence(json!({"delay_ms": 1000})),
        "progress" => fence(json!({"percent": 1})),
        other => panic!("worker route {path} ({other}) has no sample request: add one"),
    }
}

#[tokio::test]
async fn queue_update_sets_a_rate_key_and_enqueue_takes_one() {
    let t = T::new().await;
    let admin = t.admin().await;
    let path = "/v1/queues/calls";
    // A path needs a rate: refused on a queue without one, nothing written.
    let (status, body) = t
        .call(
            Method::PATCH,
            path,
            Some(&admin),
            Some(json!({"rate_key": "args.api"})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"]["field"], "rate_key", "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("needs a rate"),
        "{body}"
    );
    let (status, body) = t
        .call(
            Method::PATCH,
            path,
            Some(&admin),
            Some(json!({"rate_key": "api", "rate": "1/1h"})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"]["field"], "rate_key", "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("e.g. \"args.api\""),
        "{body}"
    );
    assert!(t.kyu.queue_limits().await.unwrap().is_empty());
    let (status, body) = t
        .call(
            Method::PATCH,
            path,
            Some(&admin),
            Some(json!({"rate": "1/1h", "rate_key": "args.api"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body,
        json!({"queue": "calls", "global_concurrency": null, "rate": "1/1h", "rate_key": "args.api"})
    );
    // The key given at enqueue wins over the path; the path finds the other.
    let mut ids = Vec::new();
    for job in [
        json!({"kind": "call", "queue": "calls", "args": {"api": "a"}, "rate_key": "tenant:1"}),
        json!({"kind": "call", "queue": "calls", "args": {"api": "a"}}),
    ] {
        let (status, body) = t
            .call(Method::POST, "/v1/jobs", Some(&admin), Some(job))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        ids.push(body["id"].as_i64().unwrap());
    }
    assert_eq!(
        t.kyu.job(ids[0]).await.unwrap().rate_key.as_deref(),
        Some("tenant:1")
    );
    assert_eq!(
        t.kyu.job(ids[1]).await.unwrap().rate_key.as_deref(),
        Some("a")
    );
    let (_, view) = t
        .call(
            Method::GET,
            &format!("/v1/jobs/{}", ids[0]),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(view["rate_key"], "tenant:1", "{view}");
    let (status, body) = t
        .call(
            Method::POST,
            "/v1/jobs",
            Some(&admin),
            Some(json!({"kind": "call", "rate_key": ""})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"]["field"], "rate_key", "{body}");
    // null makes the rate apply to the whole queue again.
    let (status, body) = t
        .call(
            Method::PATCH,
            path,
            Some(&admin),
            Some(json!({"rate_key": null})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["rate_key"], Value::Null, "{body}");
    assert_eq!(body["rate"], "1/1h", "{body}");
}

#[tokio::test]
async fn queue_update_sets_and_clears_limits() {
    let t = T::new().await;
    let admin = t.admin().await;
    let path = "/v1/queues/batch";
    let (status, body) = t
        .call(
            Method::PATCH,
            path,
            Some(&admin),
            Some(json!({"global_concurrency": 1, "rate": "5000/1h"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body,
        json!({"queue": "batch", "global_concurrency": 1, "rate": "5000/1h", "rate_key": null})
    );
    let limits = t.kyu.queue_limits().await.unwrap();
    assert_eq!(limits.len(), 1);
    assert_eq!(limits[0].limits.global_concurrency, Some(1));
    // A field left out is kept; null clears.
    let (status, body) = t
        .call(
            Method::PATCH,
            path,
            Some(&admin),
            Some(json!({"rate": null})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body,
        json!({"queue": "batch", "global_concurrency": 1, "rate": null, "rate_key": null})
    );
    // Bad input: 400, the field named, nothing changed.
    for (bad, field) in [
        (json!({"global_concurrency": 0}), "global_concurrency"),
        (json!({"rate": "5000/1y"}), "rate"),
        (json!({"rate": 5}), "body"),
        (json!({}), "body"),
        (json!({"concurrency": 2}), "body"),
    ] {
        let (status, body) = t
            .call(Method::PATCH, path, Some(&admin), Some(bad.clone()))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
        assert!(
            body["error"]["field"]
                .as_str()
                .unwrap_or("")
                .contains(field)
                || body["error"]["message"]
                    .as_str()
                    .unwrap_or("")
                    .contains(field),
            "{bad}: {body}"
        );
    }
    let limits = t.kyu.queue_limits().await.unwrap();
    assert_eq!(limits[0].limits.global_concurrency, Some(1));
    assert_eq!(limits[0].limits.rate, None);
    // A token limited to other queues may not change this one.
    let tenant = t.token("tenant", &[Scope::Operate], &["tenant-a.*"]).await;
    let (status, _) = t
        .call(
            Method::PATCH,
            path,
            Some(&tenant),
            Some(json!({"global_concurrency": null})),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(
        t.kyu.queue_limits().await.unwrap()[0]
            .limits
            .global_concurrency,
        Some(1)
    );
}

#[tokio::test]
async fn batches_create_add_seal_and_show_counts() {
    let t = T::new().await;
    let admin = t.admin().await;
    let (status, body) = t
        .call(
            Method::POST,
            "/v1/batches",
            Some(&admin),
            Some(json!({
                "on_complete": {"kind": "report", "args": {"to": "ops"}, "queue": "cb"},
                "on_success": {"kind": "cheer"},
                "jobs": [{"kind": "row", "args": {"n": 1}}, {"kind": "row", "args": {"n": 2}}]
            })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let id = body["batch"]["id"].as_i64().unwrap();
    assert_eq!(body["batch"]["state"], "open");
    assert_eq!(body["batch"]["total"], 2);
    assert_eq!(body["jobs"].as_array().unwrap().len(), 2);
    let first = body["jobs"][0]["id"].as_i64().unwrap();
    let (_, job) = t
        .call(
            Method::GET,
            &format!("/v1/jobs/{first}"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(job["batch_id"], id, "a job names its batch");
    let (status, body) = t
        .call(
            Method::POST,
            &format!("/v1/batches/{id}/jobs"),
            Some(&admin),
            Some(json!({"jobs": [{"kind": "row", "args": {"n": 3}}], "seal": true})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["batch"]["state"], "sealed");
    assert_eq!(body["batch"]["pending"], 3);
    // Sealed: no more jobs.
    let (status, body) = t
        .call(
            Method::POST,
            &format!("/v1/batches/{id}/jobs"),
            Some(&admin),
            Some(json!({"jobs": [{"kind": "row"}]})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("sealed"));
    // The jobs run; the batch is done and on_complete, on_success enqueued.
    let worker = kyu::Worker::new(&t.kyu)
        .handle("row", |_ctx| async { Ok(kyu::Outcome::Done) })
        .start();
    let end = std::time::Instant::now() + Duration::from_secs(30);
    let body = loop {
        let (status, body) = t
            .call(
                Method::GET,
                &format!("/v1/batches/{id}"),
                Some(&admin),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        if body["state"] == "done" || std::time::Instant::now() > end {
            break body;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    worker.shutdown().await;
    assert_eq!(body["state"], "done", "{body}");
    assert_eq!(
        (
            &body["total"],
            &body["succeeded"],
            &body["failed"],
            &body["pending"]
        ),
        (&json!(3), &json!(3), &json!(0), &json!(0))
    );
    assert_eq!(body["callback_jobs"].as_array().unwrap().len(), 2);
    let report = t
        .kyu
        .job(body["callback_jobs"][0].as_i64().unwrap())
        .await
        .unwrap();
    assert_eq!(report.queue, "cb");
    let args: Value = serde_json::from_str(&report.args).unwrap();
    assert_eq!(args["batch"]["succeeded"], 3);
    assert_eq!(args["to"], "ops");

    // Unknown batches are 404; bad callbacks 400 naming the field, nothing written.
    for (m, p) in [
        (Method::GET, "/v1/batches/999"),
        (Method::POST, "/v1/batches/999/seal"),
    ] {
        let (status, body) = t.call(m, p, Some(&admin), None).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{p}: {body}");
    }
    let (status, body) = t
        .call(
            Method::POST,
            "/v1/batches",
            Some(&admin),
            Some(json!({"on_complete": {"kind": "report", "args": [1]}})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"]["field"], "on_complete.args");
    let (status, body) = t
        .call(
            Method::POST,
            "/v1/batches",
            Some(&admin),
            Some(json!({"jobs": [{"kind": "row"}, {"kind": "row", "queue": ""}]})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"]["field"], "jobs[1].queue");
    assert_eq!(t.kyu.batches(10).await.unwrap().len(), 1, "nothing written");
    // A token limited to queues may not use batches (they span queues).
    let tenant = t
        .token("tenant", &[Scope::Produce, Scope::Read], &["a.*"])
        .await;
    let (status, _) = t
        .call(
            Method::GET,
            &format!("/v1/batches/{id}"),
            Some(&tenant),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn authorization_matrix_every_route_every_scope() {
    let t = T::new().await;
    let admin = t.admin().await;
    let (_, b) = t
        .call(
            Method::POST,
            "/v1/jobs",
            Some(&admin),
            Some(json!({"kind": "k"})),
        )
        .await;
    let job = b["id"].as_i64().unwrap();
    t.kyu
        .schedule(kyu::ScheduleSpec::new(
            "s",
            kyu::CronExpr::parse("0 3 * * *").unwrap(),
            kyu::JobTemplate::new("k", json!({})),
        ))
        .await
        .unwrap();
    let routes = kyu_server::api::routes();
    assert!(routes.len() >= 18, "the table lists every route");
    for scope in Scope::ALL {
        let token = t.token(&format!("only-{scope}"), &[scope], &[]).await;
        for r in &routes {
            let (path, body) = sample(r, job, "default", "s");
            let (status, resp) = t
                .call(r.method.clone(), &path, Some(&token), body.clone())
                .await;
            let allowed = scope == Scope::Admin || scope == r.scope;
            if allowed {
                assert!(
                    status != StatusCode::UNAUTHORIZED && status != StatusCode::FORBIDDEN,
                    "{scope} may call {} {path}: {status} {resp}",
                    r.method
                );
            } else {
                assert_eq!(
                    status,
                    StatusCode::FORBIDDEN,
                    "{scope} may not call {} {path}: {resp}",
                    r.method
                );
                assert_eq!(error_code(&resp), "forbidden_scope");
            }
            assert!(status.as_u16() < 500, "{} {path}: {status}", r.method);
            let (status, resp) = t.call(r.method.clone(), &path, None, body).await;
            assert_eq!(
                status,
                StatusCode::UNAUTHORIZED,
                "no token on {} {path}: {resp}",
                r.method
            );
        }
    }
    // The other principal: a command's job token (KYU_JOB_TOKEN) of a
    // running job. It passes only the routes the table opens to job tokens,
    // aimed at its own job; everything else is 403 forbidden_job_token.
    let (_, b) = t
        .call(
            Method::POST,
            "/v1/jobs",
            Some(&admin),
            Some(json!({"kind": "k", "queue": "cmd"})),
        )
        .await;
    let own = b["id"].as_i64().unwrap();
    let job_token = t.running(own).await;
    let open: Vec<String> = routes
        .iter()
        .filter(|r| r.job_token)
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    assert_eq!(
        open,
        ["GET /v1/jobs/{id}", "POST /v1/jobs/{id}/progress"],
        "job tokens read their job and report its progress, nothing else"
    );
    for r in &routes {
        for (aim, label) in [(own, "its own job"), (job, "another job")] {
            let (path, body) = sample(r, aim, "cmd", "s");
            let (status, resp) = t
                .call(r.method.clone(), &path, Some(&job_token), body)
                .await;
            if r.job_token && aim == own {
                assert_eq!(
                    status,
                    StatusCode::OK,
                    "a job token may call {} {path} ({label}): {resp}",
                    r.method
                );
            } else {
                assert_eq!(
                    status,
                    StatusCode::FORBIDDEN,
                    "a job token may not call {} {path} ({label}): {resp}",
                    r.method
                );
                assert_eq!(error_code(&resp), "forbidden_job_token", "{resp}");
                let message = resp["error"]["message"].as_str().unwrap();
                assert!(
                    message.contains(&format!("GET /v1/jobs/{own}")),
                    "the refusal says what a job token may do: {message}"
                );
            }
        }
    }
}

/// A job token works while the attempt it was made for runs, for that job
/// only: it reads the job (args too) and records its progress; it is
/// refused once the attempt ends (retried, finished), and a token altered
/// to name another job or attempt is refused.
#[tokio::test]
async fn job_token_reports_on_its_own_attempt_and_expires_with_it() {
    let t = T::new().await;
    let admin = t.admin().await;
    let (_, b) = t
        .call(
            Method::POST,
            "/v1/jobs",
            Some(&admin),
            Some(json!({"kind": "k", "queue": "batch", "args": {"day": "2026-11-27"}, "max_attempts": 3})),
        )
        .await;
    let id = b["id"].as_i64().unwrap();
    let first = t.running(id).await;

    let (status, job) = t
        .call(Method::GET, &format!("/v1/jobs/{id}"), Some(&first), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{job}");
    assert_eq!(job["args"], json!({"day": "2026-11-27"}), "args shown");
    let progress = format!("/v1/jobs/{id}/progress");
    let (status, resp) = t
        .call(
            Method::POST,
            &progress,
            Some(&first),
            Some(json!({"percent": 40, "message": "step 2 of 5"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{resp}");
    let (_, job) = t
        .call(Method::GET, &format!("/v1/jobs/{id}"), Some(&admin), None)
        .await;
    assert_eq!(
        job["progress"],
        json!({"percent": 40, "message": "step 2 of 5"})
    );
    let (status, resp) = t
        .call(
            Method::POST,
            &progress,
            Some(&first),
            Some(json!({"percent": 101})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{resp}");

    // Altered: the same signature with another attempt or job.
    for forged in [
        first.replacen(&format!("kyuj_{id}_1_"), &format!("kyuj_{id}_2_"), 1),
        first.replacen(&format!("kyuj_{id}_1_"), &format!("kyuj_{}_1_", id + 1), 1),
    ] {
        assert_ne!(forged, first);
        let (status, resp) = t
            .call(Method::GET, &format!("/v1/jobs/{id}"), Some(&forged), None)
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{resp}");
    }

    // The attempt fails and the job is retried: the first attempt's token
    // dies with it, even while the second attempt runs.
    let lease = kyu::store::LeaseRef { id, attempt: 1 };
    t.kyu
        .store()
        .finish(vec![kyu::store::Finish {
            lease,
            worker: "w".into(),
            outcome: kyu::store::FinishOutcome::Errored {
                message: "boom".into(),
                retry_at: kyu::chrono::Utc::now(),
                permanent: false,
            },
        }])
        .await
        .unwrap();
    let (status, resp) = t
        .call(Method::GET, &format!("/v1/jobs/{id}"), Some(&first), None)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{resp}");
    assert!(
        resp["error"]["message"]
            .as_str()
            .unwrap()
            .contains("expired with its attempt 1"),
        "{resp}"
    );
    let second = t.running(id).await;
    for (token, want) in [
        (&first, StatusCode::UNAUTHORIZED),
        (&second, StatusCode::OK),
    ] {
        let (status, resp) = t
            .call(
                Method::POST,
                &progress,
                Some(token),
                Some(json!({"percent": 10})),
            )
            .await;
        assert_eq!(status, want, "{resp}");
    }

    // Finished: refused everywhere, its own routes included.
    t.kyu
        .store()
        .finish(vec![kyu::store::Finish {
            lease: kyu::store::LeaseRef { id, attempt: 2 },
            worker: "w".into(),
            outcome: kyu::store::FinishOutcome::Completed { result: None },
        }])
        .await
        .unwrap();
    for (method, path, body) in [
        (Method::GET, format!("/v1/jobs/{id}"), None),
        (
            Method::POST,
            progress.clone(),
            Some(json!({"percent": 100})),
        ),
        (Method::GET, "/v1/queues".to_string(), None),
    ] {
        let (status, resp) = t.call(method, &path, Some(&second), body).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{path}: {resp}");
        assert_eq!(error_code(&resp), "unauthorized");
    }
}

/// `POST /v1/jobs/{id}/progress` through an API token (scope work, the
/// job's queue): a running job's progress; 409 for a job not running.
#[tokio::test]
async fn progress_route_takes_a_work_token_for_running_jobs_only() {
    let t = T::new().await;
    let admin = t.admin().await;
    let work = t.token("work", &[Scope::Work], &["a.*"]).await;
    let mut ids = Vec::new();
    for queue in ["a.x", "a.y", "b.x"] {
        let (_, b) = t
            .call(
                Method::POST,
                "/v1/jobs",
                Some(&admin),
                Some(json!({"kind": "k", "queue": queue})),
            )
            .await;
        ids.push(b["id"].as_i64().unwrap());
    }
    t.running(ids[0]).await;
    let body = Some(json!({"percent": 5, "message": "started"}));
    let at = |id: i64| format!("/v1/jobs/{id}/progress");
    let (status, resp) = t
        .call(Method::POST, &at(ids[0]), Some(&work), body.clone())
        .await;
    assert_eq!(status, StatusCode::OK, "{resp}");
    let (status, resp) = t
        .call(Method::POST, &at(ids[1]), Some(&work), body.clone())
        .await;
    assert_eq!(
        status,
        StatusCode::CONFLICT,
        "available, not running: {resp}"
    );
    assert_eq!(error_code(&resp), "not_running");
    let (status, resp) = t.call(Method::POST, &at(ids[2]), Some(&work), body).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "another tenant's: {resp}");
}

#[tokio::test]
async fn tenant_token_sees_and_touches_nothing_of_another_tenant_on_any_route() {
    let t = T::new().await;
    let admin = t.admin().await;
    let (_, b) = t
        .call(
            Method::POST,
            "/v1/jobs",
            Some(&admin),
            Some(json!({"kind": "k", "queue": "tenant-b.mail", "args": {"secret": "b"}})),
        )
        .await;
    let theirs = b["id"].as_i64().unwrap();
    let (_, b) = t
        .call(
            Method::POST,
            "/v1/jobs",
            Some(&admin),
            Some(json!({"kind": "k", "queue": "tenant-a.mail"})),
        )
        .await;
    let ours = b["id"].as_i64().unwrap();
    t.kyu
        .schedule(kyu::ScheduleSpec::new(
            "b-nightly",
            kyu::CronExpr::parse("0 3 * * *").unwrap(),
            {
                let mut j = kyu::JobTemplate::new("k", json!({}));
                j.queue = "tenant-b.mail".into();
                j
            },
        ))
        .await
        .unwrap();
    let tenant = t.token("tenant-a", &Scope::ALL, &["tenant-a.*"]).await;
    // Tenant a's command job, running, with its job token: the other
    // principal (first, while its job still runs: the tenant's own turn
    // deletes it).
    let job_token = t.running(ours).await;
    let mut leaks = Vec::new();
    for (who, token) in [("job token", &job_token), ("tenant token", &tenant)] {
        for r in kyu_server::api::routes() {
            // Aimed at tenant b's job, queue and schedule.
            for (path, body) in [sample(&r, theirs, "tenant-b.mail", "b-nightly"), {
                // And unaimed: lists and counts must not show tenant b.
                let (p, _) = sample(&r, ours, "tenant-a.mail", "b-nightly");
                (p.split('?').next().unwrap().to_string(), None)
            }] {
                if body.is_none()
                    && (r.method == Method::PUT
                        || r.method == Method::PATCH
                        || r.method == Method::POST
                            && (r.path == "/v1/jobs"
                                || r.path.ends_with("batch")
                                || r.path.ends_with("cancel")
                                || r.path.ends_with("retry")
                                || r.path.ends_with("delete")
                                || r.path.ends_with("run_now")
                                || r.path.ends_with("bulk")))
                {
                    continue;
                }
                let (status, resp) = t.call(r.method.clone(), &path, Some(token), body).await;
                let text = resp.to_string();
                if status.is_success()
                    && (text.contains("tenant-b")
                        || text.contains("b-nightly")
                        || text.contains("\"secret\""))
                {
                    leaks.push(format!("{who}: {} {path}: {status} {text}", r.method));
                }
                assert!(
                    status.as_u16() < 500,
                    "{} {path}: {status} {text}",
                    r.method
                );
            }
        }
    }
    assert!(leaks.is_empty(), "tenant a saw tenant b: {leaks:#?}");
    // And nothing of tenant b changed.
    let job = t.kyu.job(theirs).await.unwrap();
    assert_eq!(
        job.state,
        kyu::JobState::Available,
        "tenant b's job untouched"
    );
    let q = t.kyu.queues().await.unwrap();
    assert!(q.iter().all(|q| !q.paused), "no queue paused: {q:?}");
    let limited = t.kyu.queue_limits().await.unwrap();
    assert!(
        limited.iter().all(|l| l.queue != "tenant-b.mail"),
        "tenant b's queue limits untouched: {limited:?}"
    );
    assert_eq!(
        q.iter()
            .find(|q| q.queue == "tenant-b.mail")
            .unwrap()
            .count(kyu::JobState::Available),
        1,
        "nothing enqueued into tenant b"
    );
    let s = t.kyu.get_schedule("b-nightly").await.unwrap();
    assert!(s.spec.enabled, "tenant b's schedule untouched");
    assert!(s.last_job_id.is_none(), "and not triggered");
}

#[tokio::test]
async fn served_openapi_matches_docs_openapi_json() {
    let t = T::new().await;
    let admin = t.admin().await;
    let (status, served) = t
        .call(Method::GET, "/openapi.json", Some(&admin), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        served["openapi"].as_str().map(|v| v.starts_with("3.1")),
        Some(true)
    );
    for r in kyu_server::api::routes() {
        let method = r.method.as_str().to_lowercase();
        assert!(
            served["paths"][r.path][&method].is_object(),
            "{} {} is in the OpenAPI document",
            r.method,
            r.path
        );
    }
    let file = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/openapi.json");
    if std::env::var_os("KYU_UPDATE_OPENAPI").is_some() {
        std::fs::write(file, kyu_server::api::openapi::document()).unwrap();
    }
    let checked_in: Value =
        serde_json::from_str(&std::fs::read_to_string(file).unwrap_or_default())
            .unwrap_or(Value::Null);
    assert!(
        checked_in == served,
        "docs/openapi.json differs from the served document; regenerate it with \
         `KYU_UPDATE_OPENAPI=1 cargo test -p kyu-server --test api served_openapi` and commit it"
    );
}

/// `[jobs.KIND]` in kyu.toml (given to the server as
/// `Options::kind_defaults`) applies to jobs enqueued over HTTP as it does
/// to `kyu enqueue`: what the request does not give comes from the kind,
/// what it gives wins. Single, batch and a schedule's job alike.
#[tokio::test]
async fn enqueue_applies_the_kinds_defaults_unless_the_request_gives_them() {
    let mut kinds = std::collections::HashMap::new();
    kinds.insert(
        "report".to_string(),
        kyu_server::KindDefaults {
            queue: Some("reports".into()),
            priority: Some(-3),
            max_attempts: Some(2),
            retry: Some(kyu::RetryPolicy::fixed(Duration::from_secs(7))),
            timeout: Some(Duration::from_secs(90)),
        },
    );
    let t = T::with(kyu_server::Options {
        kind_defaults: kinds,
        ..Default::default()
    })
    .await;
    let admin = t.admin().await;
    let (status, body) = t
        .call(
            Method::POST,
            "/v1/jobs",
            Some(&admin),
            Some(json!({"kind": "report"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let job = t.kyu.job(body["id"].as_i64().unwrap()).await.unwrap();
    assert_eq!(job.queue, "reports");
    assert_eq!(job.priority, -3);
    assert_eq!(job.max_attempts, 2);
    assert_eq!(job.retry, kyu::RetryPolicy::fixed(Duration::from_secs(7)));
    assert_eq!(job.timeout, Some(Duration::from_secs(90)));

    let (status, body) = t
        .call(
            Method::POST,
            "/v1/jobs/batch",
            Some(&admin),
            Some(json!({"jobs": [
                {"kind": "report", "queue": "urgent", "priority": 1, "max_attempts": 9, "timeout": "5s",
                 "retry": {"type": "fixed", "delay": "1s"}},
                {"kind": "report"},
                {"kind": "other"},
            ]})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let ids: Vec<i64> = body["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["id"].as_i64().unwrap())
        .collect();
    let given = t.kyu.job(ids[0]).await.unwrap();
    assert_eq!(
        (
            given.queue.as_str(),
            given.priority,
            given.max_attempts,
            given.timeout
        ),
        ("urgent", 1, 9, Some(Duration::from_secs(5))),
        "what the request gives wins"
    );
    assert_eq!(given.retry, kyu::RetryPolicy::fixed(Duration::from_secs(1)));
    let defaulted = t.kyu.job(ids[1]).await.unwrap();
    assert_eq!(defaulted.queue, "reports");
    assert_eq!(defaulted.timeout, Some(Duration::from_secs(90)));
    let other = t.kyu.job(ids[2]).await.unwrap();
    assert_eq!(
        (other.queue.as_str(), other.priority, other.timeout),
        ("default", 0, None),
        "a kind without defaults gets the library's"
    );

    let (status, body) = t
        .call(
            Method::PUT,
            "/v1/schedules/nightly",
            Some(&admin),
            Some(json!({"cron": "0 3 * * *", "job": {"kind": "report"}})),
        )
        .await;
    assert!(status.is_success(), "{body}");
    assert_eq!(body["queue"], "reports", "{body}");
}

/// A body over the configured limit is refused with 413, and the message
/// gives the limit in force, not the default.
#[tokio::test]
async fn a_body_over_the_limit_is_413_naming_the_configured_limit() {
    let t = T::with(kyu_server::Options {
        body_limit: 4096,
        ..Default::default()
    })
    .await;
    let admin = t.admin().await;
    let big = json!({"kind": "k", "args": {"x": "y".repeat(8192)}});
    let (status, body) = t
        .call(Method::POST, "/v1/jobs", Some(&admin), Some(big))
        .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("4096 bytes"), "{message}");
    assert!(!message.contains("2 MiB"), "{message}");
}
