//! Workers over HTTP through the real router (`tower::ServiceExt::oneshot`):
//! register, claim (long poll), heartbeat, complete / fail / snooze /
//! progress, batch ack and leave, with each error path: a forged, stale or
//! another worker's lease token is 409 `lease_lost` and changes nothing, an
//! unknown worker is 404, a wait over the limit is 400, a tenant cannot
//! register on, claim from or finish in another tenant's queues. The same
//! tests run on PostgreSQL when `KYU_TEST_POSTGRES_URL` is set.
//! (The end-to-end test with real processes is `crates/kyu-cli/tests/http_workers.rs`.)

use std::time::Duration;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use http_body_util::BodyExt;
use kyu::tokens::TokenSpec;
use kyu::{JobState, Kyu, NewJob, Scope};
use serde_json::{json, Value};
use tower::ServiceExt;

struct T {
    kyu: Kyu,
    app: axum::Router,
    work: String,
    _dir: Option<tempfile::TempDir>,
}

/// The stores to run on: SQLite always, PostgreSQL (a fresh schema) when
/// `KYU_TEST_POSTGRES_URL` is set.
async fn stores() -> Vec<(Kyu, Option<tempfile::TempDir>)> {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/kyu.db", dir.path().display());
    let mut out = vec![(Kyu::connect(&url).await.unwrap(), Some(dir))];
    if let Ok(pg) = std::env::var("KYU_TEST_POSTGRES_URL") {
        let schema = format!("http_workers_{:016x}", rand_u64());
        let sep = if pg.contains('?') { '&' } else { '?' };
        let kyu = Kyu::connect(&format!("{pg}{sep}schema={schema}"))
            .await
            .unwrap();
        out.push((kyu, None));
    }
    out
}

fn rand_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos(),
    );
    h.finish()
}

impl T {
    async fn all() -> Vec<T> {
        T::all_with(kyu_server::Options::default()).await
    }

    async fn all_with(options: kyu_server::Options) -> Vec<T> {
        let mut out = Vec::new();
        for (kyu, dir) in stores().await {
            let app = kyu_server::router(kyu.clone(), options.clone());
            let mut t = T {
                kyu,
                app,
                work: String::new(),
                _dir: dir,
            };
            t.work = t.token("worker", &[Scope::Work], &[]).await;
            out.push(t);
        }
        out
    }

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

    async fn call_as(
        &self,
        token: &str,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let req = Request::builder()
            .method(method)
            .uri(path)
            .header("authorization", format!("Bearer {token}"));
        let req = match body {
            Some(b) => req
                .header("content-type", "application/json")
                .body(Body::from(b.to_string())),
            None => req.body(Body::empty()),
        }
        .unwrap();
        let resp = self.app.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        let text = String::from_utf8_lossy(&bytes).to_string();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.call_as(&self.work, Method::POST, path, Some(body))
            .await
    }

    /// Registers a worker of `queues` running kind `k`; its id.
    async fn register(&self, body: Value) -> String {
        let (status, b) = self.post("/v1/workers", body).await;
        assert_eq!(status, StatusCode::CREATED, "{b}");
        b["worker_id"].as_str().unwrap().to_string()
    }

    async fn enqueue(&self, n: usize, queue: &str) -> Vec<i64> {
        let jobs = (0..n)
            .map(|i| NewJob::new("k", json!({"i": i})).queue(queue))
            .collect();
        self.kyu
            .enqueue_many(jobs)
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.id)
            .collect()
    }

    async fn claim(&self, worker: &str, body: Value) -> Vec<Value> {
        let (status, b) = self
            .post(&format!("/v1/workers/{worker}/claim"), body)
            .await;
        assert_eq!(status, StatusCode::OK, "{b}");
        b["jobs"].as_array().unwrap().clone()
    }

    async fn state(&self, id: i64) -> JobState {
        self.kyu.job(id).await.unwrap().state
    }
}

fn code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or("")
}

fn fence(job: &Value) -> Value {
    json!({"attempt": job["attempt"], "lease_token": job["lease_token"]})
}

fn with(mut base: Value, extra: Value) -> Value {
    base.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    base
}

#[tokio::test]
async fn register_claim_heartbeat_complete_fail_snooze_progress() {
    for t in T::all().await {
        let (status, reg) = t
            .post(
                "/v1/workers",
                json!({"name": "py-1", "queues": ["remote"], "kinds": ["k"], "capacity": 2, "lease_ms": 6000}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{reg}");
        assert_eq!(reg["lease_ms"], 6000);
        assert_eq!(reg["heartbeat_interval_ms"], 2000);
        assert_eq!(reg["max_wait_ms"], 30000);
        let w = reg["worker_id"].as_str().unwrap().to_string();
        assert!(w.starts_with("py-1-"), "{w}");
        // The store's registry knows it, as it knows a local worker.
        let live = t.kyu.workers().await.unwrap();
        assert!(live.iter().any(|l| l.info.id == w), "{live:?}");
        assert!(t.kyu.handled("remote", "k").await.unwrap());
        assert!(!t.kyu.handled("remote", "other").await.unwrap());

        let ids = t.enqueue(5, "remote").await;
        let other = t
            .kyu
            .enqueue(NewJob::new("other", json!({})).queue("remote"))
            .await
            .unwrap()
            .id;
        let jobs = t.claim(&w, json!({})).await;
        assert_eq!(jobs.len(), 2, "capacity caps the claim: {jobs:?}");
        for j in &jobs {
            assert_eq!(j["attempt"], 1);
            assert_eq!(j["kind"], "k");
            assert_eq!(j["queue"], "remote");
            assert!(j["args"]["i"].is_number(), "{j}");
            assert_eq!(j["lease_token"].as_str().unwrap().len(), 64);
            assert_eq!(t.state(j["id"].as_i64().unwrap()).await, JobState::Running);
        }

        // Heartbeat: both extended, no cancel; the command is run.
        let leases: Vec<Value> = jobs
            .iter()
            .map(|j| json!({"job_id": j["id"], "attempt": j["attempt"], "lease_token": j["lease_token"]}))
            .collect();
        let (status, hb) = t
            .post(
                &format!("/v1/workers/{w}/heartbeat"),
                json!({ "leases": leases }),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{hb}");
        assert_eq!(hb["command"], "run");
        for l in hb["leases"].as_array().unwrap() {
            assert_eq!(l["status"], "extended", "{hb}");
            assert_eq!(l["cancel_requested"], false);
        }
        // A cancel asked for is passed on.
        let (a, b) = (&jobs[0], &jobs[1]);
        let (a_id, b_id) = (a["id"].as_i64().unwrap(), b["id"].as_i64().unwrap());
        t.kyu.cancel(&[b_id]).await.unwrap();
        let (_, hb) = t
            .post(
                &format!("/v1/workers/{w}/heartbeat"),
                json!({ "leases": leases }),
            )
            .await;
        assert_eq!(hb["leases"][1]["cancel_requested"], true, "{hb}");
        assert_eq!(hb["leases"][0]["cancel_requested"], false, "{hb}");

        // Progress, then complete with a result.
        let (status, p) = t
            .post(
                &format!("/v1/workers/{w}/jobs/{a_id}/progress"),
                with(fence(a), json!({"percent": 40, "message": "step 2"})),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{p}");
        assert_eq!(t.kyu.job(a_id).await.unwrap().progress.unwrap().percent, 40);
        let (status, c) = t
            .post(
                &format!("/v1/workers/{w}/jobs/{a_id}/complete"),
                with(fence(a), json!({"result": {"ok": 1}})),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{c}");
        assert_eq!(c["state"], "completed");
        let done = t.kyu.job(a_id).await.unwrap();
        assert_eq!(done.result.as_deref(), Some(r#"{"ok":1}"#));
        // The cancelled one fails: cancel asked for → cancelled.
        let (status, f) = t
            .post(
                &format!("/v1/workers/{w}/jobs/{b_id}/fail"),
                with(fence(b), json!({"message": "stopped on cancel"})),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{f}");
        assert_eq!(f["state"], "cancelled");

        // Fail with retry_after → scheduled, the error recorded; snooze → scheduled, attempt given back.
        let jobs = t.claim(&w, json!({"max": 2})).await;
        assert_eq!(jobs.len(), 2);
        let (c_id, d_id) = (
            jobs[0]["id"].as_i64().unwrap(),
            jobs[1]["id"].as_i64().unwrap(),
        );
        let (status, f) = t
            .post(
                &format!("/v1/workers/{w}/jobs/{c_id}/fail"),
                with(
                    fence(&jobs[0]),
                    json!({"message": "upstream down", "retry_after_ms": 60000}),
                ),
            )
            .await;
        assert_eq!(
            (status, f["state"].as_str()),
            (StatusCode::OK, Some("scheduled")),
            "{f}"
        );
        let c = t.kyu.job(c_id).await.unwrap();
        assert_eq!(c.errors.len(), 1);
        assert_eq!(c.errors[0].message, "upstream down");
        assert_eq!(c.errors[0].worker, w);
        assert!(c.run_at > chrono::Utc::now() + chrono::Duration::seconds(50));
        let (status, s) = t
            .post(
                &format!("/v1/workers/{w}/jobs/{d_id}/snooze"),
                with(fence(&jobs[1]), json!({"delay_ms": 60000})),
            )
            .await;
        assert_eq!(
            (status, s["state"].as_str()),
            (StatusCode::OK, Some("scheduled")),
            "{s}"
        );
        assert_eq!(t.kyu.job(d_id).await.unwrap().attempt, 0);

        // A permanent failure fails the job at once.
        let jobs = t.claim(&w, json!({"max": 1})).await;
        let e_id = jobs[0]["id"].as_i64().unwrap();
        let (_, f) = t
            .post(
                &format!("/v1/workers/{w}/jobs/{e_id}/fail"),
                with(
                    fence(&jobs[0]),
                    json!({"message": "bad args", "permanent": true}),
                ),
            )
            .await;
        assert_eq!(f["state"], "failed", "{f}");
        // Only its kinds: the `other` job was never claimed.
        assert_eq!(t.state(other).await, JobState::Available);
        assert!(ids.contains(&e_id));
    }
}

#[tokio::test]
async fn batch_ack_writes_many_outcomes_and_reports_each_lost_lease() {
    for t in T::all().await {
        let w = t
            .register(json!({"name": "w", "queues": ["remote"], "kinds": ["k"], "capacity": 10}))
            .await;
        t.enqueue(4, "remote").await;
        let jobs = t.claim(&w, json!({"max": 4})).await;
        assert_eq!(jobs.len(), 4);
        let item = |j: &Value, extra: Value| {
            with(
                json!({"job_id": j["id"], "attempt": j["attempt"], "lease_token": j["lease_token"]}),
                extra,
            )
        };
        let forged = with(
            item(&jobs[3], json!({"outcome": "complete"})),
            json!({"lease_token": "ab".repeat(32)}),
        );
        let (status, r) = t
            .post(
                &format!("/v1/workers/{w}/ack"),
                json!({"acks": [
                    item(&jobs[0], json!({"outcome": "complete", "result": [1, 2]})),
                    item(&jobs[1], json!({"outcome": "fail", "message": "m", "permanent": true})),
                    item(&jobs[2], json!({"outcome": "release"})),
                    forged,
                ]}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{r}");
        let results = r["results"].as_array().unwrap();
        let got: Vec<(&str, &str)> = results
            .iter()
            .map(|x| {
                (
                    x["result"].as_str().unwrap(),
                    x["state"].as_str().unwrap_or("-"),
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                ("applied", "completed"),
                ("applied", "failed"),
                ("applied", "available"),
                ("lease_lost", "-")
            ]
        );
        let id = |i: usize| jobs[i]["id"].as_i64().unwrap();
        assert_eq!(
            t.state(id(3)).await,
            JobState::Running,
            "the forged ack changed nothing"
        );
        assert_eq!(
            t.kyu.job(id(2)).await.unwrap().attempt,
            0,
            "a release gives the attempt back"
        );

        // A bad item refuses the whole batch, nothing written.
        let (status, r) = t
            .post(
                &format!("/v1/workers/{w}/ack"),
                json!({"acks": [item(&jobs[3], json!({"outcome": "complete"})), item(&jobs[3], json!({"outcome": "snooze"}))]}),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{r}");
        assert_eq!(r["error"]["field"], "acks[1].delay_ms");
        assert_eq!(t.state(id(3)).await, JobState::Running);
    }
}

#[tokio::test]
async fn forged_stale_and_other_workers_tokens_are_409_lease_lost_and_change_nothing() {
    for t in T::all().await {
        let a = t
            .register(json!({"name": "a", "queues": ["remote"], "kinds": ["k"]}))
            .await;
        let b = t
            .register(json!({"name": "b", "queues": ["remote"], "kinds": ["k"]}))
            .await;
        t.enqueue(1, "remote").await;
        let job = t.claim(&a, json!({"max": 1})).await.remove(0);
        let id = job["id"].as_i64().unwrap();
        let complete = |w: &str| format!("/v1/workers/{w}/jobs/{id}/complete");
        let attempts = [
            (
                "forged token",
                complete(&a),
                json!({"attempt": 1, "lease_token": "00".repeat(32)}),
            ),
            (
                "not hex",
                complete(&a),
                json!({"attempt": 1, "lease_token": "nope"}),
            ),
            (
                "wrong attempt",
                complete(&a),
                with(fence(&job), json!({"attempt": 2})),
            ),
            ("another worker's path", complete(&b), fence(&job)),
        ];
        for (what, path, body) in attempts {
            let (status, r) = t.post(&path, body).await;
            assert_eq!(status, StatusCode::CONFLICT, "{what}: {r}");
            assert_eq!(code(&r), "lease_lost", "{what}");
            assert_eq!(r["error"]["field"], "lease_token");
            assert_eq!(
                t.state(id).await,
                JobState::Running,
                "{what} changed nothing"
            );
        }
        // A forged heartbeat does not extend: reported lost.
        let (_, hb) = t
            .post(
                &format!("/v1/workers/{b}/heartbeat"),
                json!({"leases": [{"job_id": id, "attempt": 1, "lease_token": job["lease_token"]}]}),
            )
            .await;
        assert_eq!(hb["leases"][0]["status"], "lost", "{hb}");

        // Stale: the lease given back (a snooze gives the attempt number
        // back), then claimed again by b at the same attempt number: a's
        // late write must not land on b's attempt.
        let (status, _) = t
            .post(
                &format!("/v1/workers/{a}/ack"),
                json!({"acks": [with(fence(&job), json!({"job_id": id, "outcome": "release"}))]}),
            )
            .await;
        assert_eq!(status, StatusCode::OK);
        let again = t.claim(&b, json!({"max": 1})).await.remove(0);
        assert_eq!(
            (again["id"].as_i64(), again["attempt"].as_u64()),
            (Some(id), Some(1))
        );
        for (path, body) in [
            (complete(&a), fence(&job)),
            (
                format!("/v1/workers/{a}/jobs/{id}/progress"),
                with(fence(&job), json!({"percent": 5})),
            ),
        ] {
            let (status, r) = t.post(&path, body).await;
            assert_eq!(
                (status, code(&r)),
                (StatusCode::CONFLICT, "lease_lost"),
                "{path}: {r}"
            );
        }
        let now = t.kyu.job(id).await.unwrap();
        assert_eq!(
            (now.state, now.worker.as_deref(), now.progress),
            (JobState::Running, Some(b.as_str()), None),
            "b's attempt untouched"
        );
        // b's own token still works.
        let (status, _) = t.post(&complete(&b), fence(&again)).await;
        assert_eq!(status, StatusCode::OK);
        // And once finished, the same write again is stale.
        let (status, r) = t.post(&complete(&b), fence(&again)).await;
        assert_eq!((status, code(&r)), (StatusCode::CONFLICT, "lease_lost"));
    }
}

#[tokio::test]
async fn unknown_worker_is_404_and_bad_input_is_400() {
    for t in T::all().await {
        for (method, path, body) in [
            (Method::POST, "/v1/workers/nobody-1/claim", Some(json!({}))),
            (
                Method::POST,
                "/v1/workers/nobody-1/heartbeat",
                Some(json!({"leases": []})),
            ),
            (Method::DELETE, "/v1/workers/nobody-1", None),
        ] {
            let (status, r) = t.call_as(&t.work, method.clone(), path, body).await;
            assert_eq!(status, StatusCode::NOT_FOUND, "{method} {path}: {r}");
            assert_eq!(code(&r), "unknown_worker");
        }
        let w = t
            .register(json!({"name": "w", "queues": ["remote"], "kinds": ["k"], "capacity": 3}))
            .await;
        let bad: [(&str, Value, &str); 10] = [
            (
                "/v1/workers",
                json!({"name": "", "queues": ["q"], "kinds": ["k"]}),
                "name",
            ),
            (
                "/v1/workers",
                json!({"name": "w", "queues": [], "kinds": ["k"]}),
                "queues",
            ),
            (
                "/v1/workers",
                json!({"name": "w", "queues": ["q"], "kinds": []}),
                "kinds",
            ),
            (
                "/v1/workers",
                json!({"name": "w", "queues": ["q"], "kinds": ["k"], "capacity": 0}),
                "capacity",
            ),
            (
                "/v1/workers",
                json!({"name": "w", "queues": ["q"], "kinds": ["k"], "lease_ms": 10}),
                "lease_ms",
            ),
            (
                "/v1/workers",
                json!({"name": "w", "queues": ["q"], "kinds": ["k"], "colour": 1}),
                "body",
            ),
            (
                &format!("/v1/workers/{w}/claim"),
                json!({"wait_ms": 30001}),
                "wait_ms",
            ),
            (&format!("/v1/workers/{w}/claim"), json!({"max": 4}), "max"),
            (
                &format!("/v1/workers/{w}/jobs/x/complete"),
                json!({"attempt": 1, "lease_token": "00"}),
                "id",
            ),
            (
                &format!("/v1/workers/{w}/jobs/1/progress"),
                json!({"attempt": 1, "lease_token": "00", "percent": 101}),
                "percent",
            ),
        ];
        for (path, body, field) in bad {
            let (status, r) = t.post(path, body.clone()).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{path} {body}: {r}");
            assert_eq!(r["error"]["field"], field, "{path} {body}: {r}");
            assert!(
                r["error"]["message"].as_str().unwrap().contains("accepted"),
                "says what is accepted: {r}"
            );
        }
    }
}

#[tokio::test]
async fn the_wait_limit_is_the_servers() {
    let options = kyu_server::Options {
        max_wait: Duration::from_millis(500),
        ..Default::default()
    };
    for t in T::all_with(options).await {
        let (_, reg) = t
            .post(
                "/v1/workers",
                json!({"name": "w", "queues": ["q"], "kinds": ["k"]}),
            )
            .await;
        assert_eq!(reg["max_wait_ms"], 500);
        let w = reg["worker_id"].as_str().unwrap();
        let (status, r) = t
            .post(&format!("/v1/workers/{w}/claim"), json!({"wait_ms": 501}))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{r}");
        assert!(
            r["error"]["message"].as_str().unwrap().contains("0 to 500"),
            "{r}"
        );
    }
}

#[tokio::test]
async fn a_long_poll_is_answered_when_a_job_is_enqueued() {
    for t in T::all().await {
        let w = t
            .register(json!({"name": "w", "queues": ["remote"], "kinds": ["k"]}))
            .await;
        let app = t.app.clone();
        let token = t.work.clone();
        let poll = tokio::spawn(async move {
            let req = Request::post(format!("/v1/workers/{w}/claim"))
                .header("authorization", format!("Bearer {token}"))
                .header("content-type", "application/json")
                .body(Body::from(json!({"wait_ms": 30000}).to_string()))
                .unwrap();
            let resp = app.oneshot(req).await.unwrap();
            let bytes = resp.into_body().collect().await.unwrap().to_bytes();
            serde_json::from_slice::<Value>(&bytes).unwrap()
        });
        // The poll is waiting (nothing to claim yet); a job of another kind
        // does not answer it.
        t.kyu
            .enqueue(NewJob::new("other", json!({})).queue("remote"))
            .await
            .unwrap();
        let id = t.enqueue(1, "remote").await[0];
        // Answered by the wake-up, long before the 30 s wait ends.
        let got = tokio::time::timeout(Duration::from_secs(20), poll)
            .await
            .expect("the long poll is answered when a job is enqueued")
            .unwrap();
        let jobs = got["jobs"].as_array().unwrap();
        assert_eq!(jobs.len(), 1, "{got}");
        assert_eq!(jobs[0]["id"].as_i64(), Some(id));
    }
}

#[tokio::test]
async fn quiet_answers_a_waiting_claim_at_once_and_heartbeats_carry_the_command() {
    let control = kyu_server::api::workers::WorkerControl::default();
    let options = kyu_server::Options {
        worker_control: control.clone(),
        ..Default::default()
    };
    for t in T::all_with(options).await {
        control.set(kyu_server::api::workers::WorkerCommand::Run);
        let w = t
            .register(json!({"name": "w", "queues": ["remote"], "kinds": ["k"]}))
            .await;
        let app = t.app.clone();
        let token = t.work.clone();
        let path = format!("/v1/workers/{w}/claim");
        let poll = tokio::spawn(async move {
            let req = Request::post(path)
                .header("authorization", format!("Bearer {token}"))
                .header("content-type", "application/json")
                .body(Body::from(json!({"wait_ms": 30000}).to_string()))
                .unwrap();
            let resp = app.oneshot(req).await.unwrap();
            let bytes = resp.into_body().collect().await.unwrap().to_bytes();
            serde_json::from_slice::<Value>(&bytes).unwrap()
        });
        tokio::task::yield_now().await;
        control.set(kyu_server::api::workers::WorkerCommand::Quiet);
        let got = tokio::time::timeout(Duration::from_secs(20), poll)
            .await
            .expect("quiet answers the waiting claim")
            .unwrap();
        assert_eq!(got["command"], "quiet", "{got}");
        // Quiet: nothing is claimed even when there is work.
        let id = t.enqueue(1, "remote").await[0];
        let (_, r) = t.post(&format!("/v1/workers/{w}/claim"), json!({})).await;
        assert_eq!(
            (r["jobs"].as_array().unwrap().len(), r["command"].as_str()),
            (0, Some("quiet"))
        );
        assert_eq!(t.state(id).await, JobState::Available);
        control.set(kyu_server::api::workers::WorkerCommand::Stop);
        let (_, hb) = t
            .post(&format!("/v1/workers/{w}/heartbeat"), json!({"leases": []}))
            .await;
        assert_eq!(hb["command"], "stop");
    }
}

#[tokio::test]
async fn leave_releases_held_jobs_at_once_and_unregisters() {
    for t in T::all().await {
        let w = t
            .register(json!({"name": "w", "queues": ["remote"], "kinds": ["k"]}))
            .await;
        t.enqueue(3, "remote").await;
        let jobs = t.claim(&w, json!({"max": 3})).await;
        let done = &jobs[0];
        let (status, _) = t
            .post(
                &format!("/v1/workers/{w}/jobs/{}/complete", done["id"]),
                fence(done),
            )
            .await;
        assert_eq!(status, StatusCode::OK);
        let (status, r) = t
            .call_as(&t.work, Method::DELETE, &format!("/v1/workers/{w}"), None)
            .await;
        assert_eq!(status, StatusCode::OK, "{r}");
        let mut released: Vec<i64> = r["released"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_i64().unwrap())
            .collect();
        released.sort();
        let mut held = vec![
            jobs[1]["id"].as_i64().unwrap(),
            jobs[2]["id"].as_i64().unwrap(),
        ];
        held.sort();
        assert_eq!(released, held);
        for id in held {
            let j = t.kyu.job(id).await.unwrap();
            assert_eq!(
                (j.state, j.attempt),
                (JobState::Available, 0),
                "back at once, attempt not counted"
            );
        }
        assert!(t
            .kyu
            .workers()
            .await
            .unwrap()
            .iter()
            .all(|l| l.info.id != w));
        let (status, r) = t.post(&format!("/v1/workers/{w}/claim"), json!({})).await;
        assert_eq!(
            (status, code(&r)),
            (StatusCode::NOT_FOUND, "unknown_worker")
        );
    }
}

#[tokio::test]
async fn a_tenant_cannot_register_on_claim_from_or_finish_in_another_tenants_queues() {
    for t in T::all().await {
        let tenant_a = t.token("tenant-a", &[Scope::Work], &["tenant-a.*"]).await;
        let (status, r) = t
            .call_as(
                &tenant_a,
                Method::POST,
                "/v1/workers",
                Some(json!({"name": "w", "queues": ["tenant-a.x", "tenant-b.x"], "kinds": ["k"]})),
            )
            .await;
        assert_eq!(
            (status, code(&r)),
            (StatusCode::FORBIDDEN, "forbidden_queue"),
            "{r}"
        );
        assert_eq!(r["error"]["field"], "queues[1]");
        // Tenant b's worker (registered with an unlimited token) holds a job
        // of tenant b: tenant a can neither use the worker nor finish the job.
        let b = t
            .register(json!({"name": "b", "queues": ["tenant-b.x"], "kinds": ["k"]}))
            .await;
        t.enqueue(2, "tenant-b.x").await;
        let job = t.claim(&b, json!({"max": 1})).await.remove(0);
        let id = job["id"].as_i64().unwrap();
        for (method, path, body) in [
            (
                Method::POST,
                format!("/v1/workers/{b}/claim"),
                Some(json!({})),
            ),
            (
                Method::POST,
                format!("/v1/workers/{b}/heartbeat"),
                Some(json!({"leases": []})),
            ),
            (Method::DELETE, format!("/v1/workers/{b}"), None),
        ] {
            let (status, r) = t.call_as(&tenant_a, method.clone(), &path, body).await;
            assert_eq!(
                (status, code(&r)),
                (StatusCode::NOT_FOUND, "unknown_worker"),
                "{method} {path}: {r}"
            );
        }
        let (status, r) = t
            .call_as(
                &tenant_a,
                Method::POST,
                &format!("/v1/workers/{b}/jobs/{id}/complete"),
                Some(fence(&job)),
            )
            .await;
        assert_eq!(
            (status, code(&r)),
            (StatusCode::CONFLICT, "lease_lost"),
            "{r}"
        );
        let (_, r) = t
            .call_as(
                &tenant_a,
                Method::POST,
                &format!("/v1/workers/{b}/ack"),
                Some(json!({"acks": [with(fence(&job), json!({"job_id": id, "outcome": "complete"}))]})),
            )
            .await;
        assert_eq!(r["results"][0]["result"], "lease_lost", "{r}");
        assert_eq!(
            t.state(id).await,
            JobState::Running,
            "tenant b's job untouched"
        );
        assert!(!r.to_string().contains("tenant-b"));
    }
}
