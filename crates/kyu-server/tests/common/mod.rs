//! The router under test, tokens and one-request helpers, shared by the
//! API test files that are not `api.rs`.

#![allow(dead_code)]

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use http_body_util::BodyExt;
use kyu::tokens::TokenSpec;
use kyu::{Kyu, Scope};
use serde_json::Value;
use tower::ServiceExt;

pub struct T {
    pub kyu: Kyu,
    pub app: axum::Router,
    pub _dir: tempfile::TempDir,
}

impl T {
    pub async fn new() -> T {
        T::with(kyu_server::Options::default()).await
    }

    pub async fn with(options: kyu_server::Options) -> T {
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
    pub async fn token(&self, name: &str, scopes: &[Scope], queues: &[&str]) -> String {
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

    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: &str,
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
        self.send(req).await
    }

    pub async fn send(&self, req: Request<Body>) -> (StatusCode, Value) {
        let resp = self.app.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        let text = String::from_utf8_lossy(&bytes).to_string();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// Enqueues through the library: the id.
    pub async fn add(&self, job: kyu::NewJob) -> i64 {
        self.kyu.enqueue(job).await.unwrap().id
    }

    /// Makes job `id` fail for good now (claim it and fail it permanently).
    pub async fn fail(&self, id: i64) {
        let store = self.kyu.store();
        let c = store
            .claim_job(id, "w", std::time::Duration::from_secs(30))
            .await
            .unwrap()
            .expect("claimable");
        store
            .finish(vec![kyu::store::Finish {
                lease: c.lease(),
                worker: "w".into(),
                outcome: kyu::store::FinishOutcome::Errored {
                    message: "boom".into(),
                    retry_at: store.clock().now(),
                    permanent: true,
                },
            }])
            .await
            .unwrap();
        assert_eq!(self.kyu.job(id).await.unwrap().state, kyu::JobState::Failed);
    }

    /// Fails for good job `id`, running its first attempt under worker `w`.
    pub async fn fail_running(&self, id: i64) {
        let store = self.kyu.store();
        store
            .finish(vec![kyu::store::Finish {
                lease: kyu::store::LeaseRef { id, attempt: 1 },
                worker: "w".into(),
                outcome: kyu::store::FinishOutcome::Errored {
                    message: "later".into(),
                    retry_at: store.clock().now(),
                    permanent: true,
                },
            }])
            .await
            .unwrap();
        assert_eq!(self.kyu.job(id).await.unwrap().state, kyu::JobState::Failed);
    }

    pub async fn state(&self, id: i64) -> Option<kyu::JobState> {
        self.kyu.store().get(id).await.unwrap().map(|j| j.state)
    }
}

/// The ids of a page of `GET /v1/jobs`.
pub fn ids(page: &Value) -> Vec<i64> {
    page["jobs"]
        .as_array()
        .unwrap_or_else(|| panic!("a page: {page}"))
        .iter()
        .map(|j| j["id"].as_i64().unwrap())
        .collect()
}
