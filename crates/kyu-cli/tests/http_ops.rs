//! The operators' HTTP API against a real `kyu serve` process: an SSE
//! client that disconnects and resumes with `Last-Event-ID` (nothing
//! missed, nothing twice), a bulk retry bounded by its dry run's snapshot,
//! and `[http]` limits from kyu.toml (413 in the API's error shape).

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{json, Value};

const KYU: &str = env!("CARGO_BIN_EXE_kyu");

/// Starts `kyu serve` in `dir` on a free port: the process, its address
/// and the admin token it printed.
fn serve(dir: &Path) -> (Child, String, String) {
    let mut child = Command::new(KYU)
        .current_dir(dir)
        .args(["serve", "--http", "127.0.0.1:0"])
        .env_remove("KYU_DATABASE_URL")
        .env_remove("KYU_CONFIG")
        .env_remove("KYU_HTTP")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut seen = String::new();
    let mut line = String::new();
    while !line.contains(" started: ") {
        line.clear();
        assert!(
            stderr.read_line(&mut line).unwrap() > 0,
            "serve ended early:\n{seen}"
        );
        seen.push_str(&line);
    }
    std::thread::spawn(move || {
        let mut sink = String::new();
        while stderr.read_line(&mut sink).map(|n| n > 0).unwrap_or(false) {
            sink.clear();
        }
    });
    let addr = line
        .split("; http ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .unwrap_or_else(|| panic!("no address: {line}"))
        .to_string();
    let token = seen
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("kyu_") && !l.contains(' '))
        .unwrap_or_else(|| panic!("no admin token:\n{seen}"))
        .to_string();
    (child, addr, token)
}

fn stop(mut child: Child) {
    // SAFETY: signalling a child we started.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    assert!(child.wait().unwrap().success());
}

type HttpClient = Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>;

struct Api {
    addr: String,
    token: String,
    client: HttpClient,
}

impl Api {
    fn new(addr: &str, token: &str) -> Api {
        Api {
            addr: addr.into(),
            token: token.into(),
            client: Client::builder(TokioExecutor::new()).build_http(),
        }
    }

    async fn send(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: String,
    ) -> hyper::Response<hyper::body::Incoming> {
        let mut req = hyper::Request::builder()
            .method(method)
            .uri(format!("http://{}{path}", self.addr))
            .header("authorization", format!("Bearer {}", self.token));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = req.body(Full::new(Bytes::from(body))).unwrap();
        tokio::time::timeout(Duration::from_secs(20), self.client.request(req))
            .await
            .expect("an answer within 20 s")
            .expect("a response")
    }

    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let resp = self
            .send(
                method,
                path,
                &[],
                body.map(|b| b.to_string()).unwrap_or_default(),
            )
            .await;
        let status = resp.status().as_u16();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    async fn enqueue(&self, job: Value) -> i64 {
        let (status, body) = self.call("POST", "/v1/jobs", Some(job)).await;
        assert_eq!(status, 201, "{body}");
        body["id"].as_i64().unwrap()
    }

    async fn job(&self, id: i64) -> Value {
        self.call("GET", &format!("/v1/jobs/{id}"), None).await.1
    }

    async fn until(&self, what: &str, mut f: impl AsyncFnMut(&Api) -> bool) {
        let end = Instant::now() + Duration::from_secs(30);
        while Instant::now() < end {
            if f(self).await {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("timed out waiting for: {what}");
    }
}

/// An open SSE stream, read message by message (comments skipped).
struct Sse {
    body: hyper::body::Incoming,
    buf: String,
}

impl Sse {
    async fn open(api: &Api, path: &str, last_id: Option<&str>) -> Sse {
        let headers: Vec<(&str, &str)> = last_id
            .map(|id| ("last-event-id", id))
            .into_iter()
            .collect();
        let resp = api.send("GET", path, &headers, String::new()).await;
        assert_eq!(resp.status().as_u16(), 200);
        Sse {
            body: resp.into_body(),
            buf: String::new(),
        }
    }

    /// The next message: (id, data as JSON).
    async fn next(&mut self) -> (String, Value) {
        loop {
            while let Some(end) = self.buf.find("\n\n") {
                let block: String = self.buf.drain(..end + 2).collect();
                let id = block
                    .lines()
                    .find_map(|l| l.strip_prefix("id:"))
                    .map(|s| s.trim().to_string());
                let data: String = block
                    .lines()
                    .filter_map(|l| l.strip_prefix("data:"))
                    .map(str::trim_start)
                    .collect();
                if let Some(id) = id {
                    return (id, serde_json::from_str(&data).unwrap());
                }
            }
            let frame = tokio::time::timeout(Duration::from_secs(20), self.body.frame())
                .await
                .expect("an event within 20 s")
                .expect("the stream goes on")
                .unwrap();
            if let Ok(d) = frame.into_data() {
                self.buf.push_str(&String::from_utf8_lossy(&d));
            }
        }
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn an_sse_client_that_reconnects_with_last_event_id_misses_nothing_and_sees_nothing_twice() {
    let dir = tempfile::tempdir().unwrap();
    let (child, addr, token) = serve(dir.path());
    runtime().block_on(async {
        let api = Api::new(&addr, &token);
        // Kinds no worker handles: they stay available; only enqueues happen.
        let job = || json!({"kind": "nobody_handles", "queue": "q"});
        let mut want = Vec::new();
        for _ in 0..3 {
            want.push(api.enqueue(job()).await);
        }
        let path = "/v1/events?since=0&types=enqueued&queue=q";
        let mut s = Sse::open(&api, path, None).await;
        let mut got = Vec::new();
        let (_, e1) = s.next().await;
        let (last_id, e2) = s.next().await;
        got.push(e1["job_id"].as_i64().unwrap());
        got.push(e2["job_id"].as_i64().unwrap());
        drop(s); // the connection drops mid-stream
        for _ in 0..3 {
            want.push(api.enqueue(job()).await);
        }
        let mut s = Sse::open(&api, "/v1/events?types=enqueued&queue=q", Some(&last_id)).await;
        while got.len() < want.len() {
            got.push(s.next().await.1["job_id"].as_i64().unwrap());
        }
        // And live after the reconnect.
        want.push(api.enqueue(job()).await);
        got.push(s.next().await.1["job_id"].as_i64().unwrap());
        assert_eq!(got, want, "every enqueue once, in order");
    });
    stop(child);
}

#[test]
fn a_bulk_retry_by_filter_touches_only_what_its_dry_run_saw() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("kyu.toml"),
        "[jobs.bad]\ncommand = [\"sh\", \"-c\", \"exit 65\"]\nmax_attempts = 1\n",
    )
    .unwrap();
    let (child, addr, token) = serve(dir.path());
    runtime().block_on(async {
        let api = Api::new(&addr, &token);
        let mut before = Vec::new();
        for _ in 0..4 {
            before.push(api.enqueue(json!({"kind": "bad"})).await);
        }
        let failed = |ids: Vec<i64>| {
            async move |api: &Api| {
                for id in &ids {
                    if api.job(*id).await["state"] != "failed" {
                        return false;
                    }
                }
                true
            }
        };
        api.until("4 jobs fail", failed(before.clone())).await;
        let filter = json!({"state": "failed", "kind": "bad"});
        let (status, dry) = api
            .call(
                "POST",
                "/v1/jobs/bulk",
                Some(json!({"action": "retry", "filter": filter, "dry_run": true})),
            )
            .await;
        assert_eq!((status, dry["matched"].as_i64()), (200, Some(4)), "{dry}");
        // After the look: one more job fails.
        let later = api.enqueue(json!({"kind": "bad"})).await;
        api.until("the later job fails", failed(vec![later])).await;
        let (status, done) = api
            .call(
                "POST",
                "/v1/jobs/bulk",
                Some(json!({"action": "retry", "filter": filter, "snapshot": dry["snapshot"]})),
            )
            .await;
        assert_eq!(status, 200, "{done}");
        assert_eq!(done["counts"], json!({"retried": 4}), "{done}");
        // The four run again (and fail again); the later one never does.
        api.until(
            "the four ran a second attempt and failed",
            async |api: &Api| {
                for id in &before {
                    let j = api.job(*id).await;
                    if j["attempt"] != 2 || j["state"] != "failed" {
                        return false;
                    }
                }
                true
            },
        )
        .await;
        let j = api.job(later).await;
        assert_eq!(
            (j["state"].as_str(), j["attempt"].as_i64()),
            (Some("failed"), Some(1)),
            "{j}"
        );
    });
    stop(child);
}

#[test]
fn http_limits_from_kyu_toml_apply_and_an_oversized_body_is_413_json() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("kyu.toml"),
        "[http]\nbody_limit = \"4KiB\"\npage_size_limit = 10\nmax_wait = \"2s\"\n",
    )
    .unwrap();
    let (child, addr, token) = serve(dir.path());
    runtime().block_on(async {
        let api = Api::new(&addr, &token);
        let big = json!({"kind": "k", "args": {"x": "y".repeat(8 * 1024)}});
        let (status, body) = api.call("POST", "/v1/jobs", Some(big)).await;
        assert_eq!(status, 413, "{body}");
        assert_eq!(body["error"]["code"], "body_too_large", "{body}");
        let (status, body) = api.call("GET", "/v1/jobs?limit=11", None).await;
        assert_eq!(
            (status, body["error"]["field"].as_str()),
            (400, Some("limit")),
            "{body}"
        );
        let id = api.enqueue(json!({"kind": "k"})).await;
        let (status, body) = api
            .call("GET", &format!("/v1/jobs/{id}?wait=3s"), None)
            .await;
        assert_eq!(
            (status, body["error"]["field"].as_str()),
            (400, Some("wait")),
            "{body}"
        );
    });
    stop(child);
    // A bad value is refused at start with the file and line.
    let bad = tempfile::tempdir().unwrap();
    std::fs::write(bad.path().join("kyu.toml"), "[http]\npage_size_limit = 0\n").unwrap();
    let out = Command::new(KYU)
        .current_dir(bad.path())
        .args(["serve", "--http", "127.0.0.1:0"])
        .env_remove("KYU_DATABASE_URL")
        .env_remove("KYU_CONFIG")
        .env_remove("KYU_HTTP")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("http.page_size_limit")
            && err.contains("kyu.toml")
            && err.contains("1 to 10000"),
        "{err}"
    );
}
