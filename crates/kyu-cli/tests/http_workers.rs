//! Remote workers over HTTP with real processes: a real `kyu serve` (this
//! crate's binary) on a fresh database, and workers that speak only HTTP
//! (`crates/kyu-server/examples/http_worker.rs`, run as child processes:
//! this test binary re-executes itself as the worker). One worker claims,
//! heartbeats and completes 1,000 jobs; a second is SIGKILLed while it
//! holds leases, and its jobs are rescued after the lease and completed by
//! the first, the lost attempt recorded; a complete sent with the dead
//! worker's stale lease token answers 409 `lease_lost` and changes nothing.
//!
//! It lives here, not in kyu-server's tests, because the `kyu` binary is
//! this crate's (`CARGO_BIN_EXE_kyu`). Runs on SQLite, and on PostgreSQL
//! when `KYU_TEST_POSTGRES_URL` is set.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{json, Value};

#[allow(dead_code)]
#[path = "../../kyu-server/examples/http_worker.rs"]
mod http_worker;

const KYU: &str = env!("CARGO_BIN_EXE_kyu");
/// When set, this test binary runs the HTTP worker with these arguments
/// (separated by newlines) instead of tests: see [`spawn_worker`].
const WORKER_ARGS: &str = "KYU_TEST_HTTP_WORKER_ARGS";

/// The entry point of the worker processes: does nothing in a normal test run.
#[test]
fn http_worker_process() {
    if let Ok(args) = std::env::var(WORKER_ARGS) {
        http_worker::main_with(args.lines().map(str::to_string));
        std::process::exit(0);
    }
}

/// Starts an HTTP worker as a child process: this test binary, running
/// only [`http_worker_process`].
fn spawn_worker(args: &[&str]) -> (Child, BufReader<ChildStdout>) {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "http_worker_process",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(WORKER_ARGS, args.join("\n"))
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let out = BufReader::new(child.stdout.take().unwrap());
    (child, out)
}

/// The next JSON line of a worker with `"event": event` (other lines, e.g.
/// the test harness's, skipped).
fn next_event(out: &mut BufReader<ChildStdout>, event: &str) -> Value {
    let mut line = String::new();
    loop {
        line.clear();
        assert!(
            out.read_line(&mut line).unwrap() > 0,
            "the worker ended before saying {event:?}"
        );
        // The harness may print its "test … " before the worker's first line.
        let json = line.find('{').map_or("", |at| line[at..].trim());
        if let Ok(v) = serde_json::from_str::<Value>(json) {
            if v["event"] == event {
                return v;
            }
            assert_ne!(v["event"], "heartbeat_failed", "{v}");
        }
    }
}

fn signal(child: &Child, sig: i32) {
    // SAFETY: signalling a child we started.
    assert_eq!(unsafe { libc::kill(child.id() as i32, sig) }, 0);
}

/// Starts `kyu serve` on `database` in `dir`; the process, its address and
/// the admin token it printed.
fn start_serve(dir: &Path, database: &str) -> (Child, String, String) {
    let mut child = Command::new(KYU)
        .current_dir(dir)
        .args(["serve", "--http", "127.0.0.1:0"])
        .env("KYU_DATABASE_URL", database)
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
            "kyu serve ended before its start line: {seen}"
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
        .find(|l| l.starts_with("kyu_"))
        .unwrap_or_else(|| panic!("no admin token printed: {seen}"))
        .to_string();
    (child, addr, token)
}

/// One HTTP call from the test; the status and the JSON body.
fn call(addr: &str, token: &str, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
        let req = hyper::Request::builder()
            .method(method)
            .uri(format!("http://{addr}{path}"))
            .header("authorization", format!("Bearer {token}"))
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(
                body.map(|b| b.to_string()).unwrap_or_default(),
            )))
            .unwrap();
        let resp = client.request(req).await.unwrap();
        let status = resp.status().as_u16();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    })
}

/// Enqueues `n` jobs of kind `work` into `remote` over HTTP; their ids.
fn enqueue(addr: &str, token: &str, args: impl Fn(usize) -> Value, n: usize) -> Vec<i64> {
    let jobs: Vec<Value> = (0..n)
        .map(|i| json!({"kind": "work", "queue": "remote", "args": args(i)}))
        .collect();
    let (status, b) = call(
        addr,
        token,
        "POST",
        "/v1/jobs/batch",
        Some(json!({ "jobs": jobs })),
    );
    assert_eq!(status, 201, "{b}");
    b["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["id"].as_i64().unwrap())
        .collect()
}

/// The job once it has finished (long polls of the API's `?wait=`).
fn finished(addr: &str, token: &str, id: i64) -> Value {
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let (status, job) = call(addr, token, "GET", &format!("/v1/jobs/{id}?wait=30s"), None);
        assert_eq!(status, 200, "{job}");
        if job["finished_at"].is_string() {
            return job;
        }
        assert!(Instant::now() < deadline, "job {id} never finished: {job}");
    }
}

fn remote_workers_complete_1000_jobs_and_rescue_a_killed_ones(database: &str) {
    let dir = tempfile::tempdir().unwrap();
    let (serve, addr, token) = start_serve(dir.path(), database);
    let url = format!("http://{addr}");

    // The victim: claims 20 jobs under a 2 s lease and holds them.
    let victims = enqueue(&addr, &token, |i| json!({"victim": i}), 20);
    let (mut victim, mut victim_out) = spawn_worker(&[
        "--url",
        &url,
        "--token",
        &token,
        "--name",
        "victim",
        "--queue",
        "remote",
        "--kind",
        "work",
        "--capacity",
        "20",
        "--lease-ms",
        "2000",
        "--hold",
    ]);
    let victim_id = next_event(&mut victim_out, "registered")["worker_id"]
        .as_str()
        .unwrap()
        .to_string();
    let held = next_event(&mut victim_out, "holding")["jobs"]
        .as_array()
        .unwrap()
        .clone();
    let mut held_ids: Vec<i64> = held.iter().map(|j| j["id"].as_i64().unwrap()).collect();
    held_ids.sort();
    assert_eq!(held_ids, victims, "the victim holds all 20");
    for id in &victims {
        let (_, job) = call(&addr, &token, "GET", &format!("/v1/jobs/{id}"), None);
        assert_eq!(
            (job["state"].as_str(), job["worker"].as_str()),
            (Some("running"), Some(victim_id.as_str()))
        );
    }
    signal(&victim, libc::SIGKILL);
    victim.wait().unwrap();

    // 1,000 more (ten of which take 1.5 s, so leases are held across
    // heartbeats), and the steady worker, which does them all and the
    // victim's 20 once their leases have run out.
    let ids = enqueue(
        &addr,
        &token,
        |i| {
            if i % 100 == 0 {
                json!({"i": i, "sleep_ms": 1500})
            } else {
                json!({"i": i})
            }
        },
        1000,
    );
    let (steady, mut steady_out) = spawn_worker(&[
        "--url",
        &url,
        "--token",
        &token,
        "--name",
        "steady",
        "--queue",
        "remote",
        "--kind",
        "work",
        "--capacity",
        "50",
        "--lease-ms",
        "3000",
    ]);
    let steady_id = next_event(&mut steady_out, "registered")["worker_id"]
        .as_str()
        .unwrap()
        .to_string();
    // Keep reading its output so it never blocks on a full pipe.
    let reader = std::thread::spawn(move || next_event(&mut steady_out, "left"));

    for id in &ids {
        let job = finished(&addr, &token, *id);
        assert_eq!(job["state"], "completed", "{job}");
        assert_eq!(job["result"]["echo"]["i"], job["args"]["i"], "{job}");
    }
    for id in &victims {
        let job = finished(&addr, &token, *id);
        assert_eq!(job["state"], "completed", "rescued and completed: {job}");
        assert_eq!(
            job["worker"].as_str(),
            Some(steady_id.as_str()),
            "by the steady worker: {job}"
        );
        assert_eq!(job["attempt"], 2, "{job}");
        let errors = job["errors"].as_array().unwrap();
        assert_eq!(errors.len(), 1, "the lost attempt is recorded: {job}");
        assert_eq!(errors[0]["attempt"], 1);
        assert_eq!(
            errors[0]["worker"].as_str(),
            Some(victim_id.as_str()),
            "{job}"
        );
    }
    let (_, queues) = call(&addr, &token, "GET", "/v1/queues", None);
    let remote = queues
        .as_array()
        .or_else(|| queues["queues"].as_array())
        .unwrap()
        .iter()
        .find(|q| q["queue"] == "remote")
        .cloned()
        .unwrap();
    assert_eq!(remote["counts"]["completed"], 1020, "{remote}");

    // The dead worker's stale lease: 409, nothing changed.
    let stale = &held[0];
    let id = stale["id"].as_i64().unwrap();
    let before = finished(&addr, &token, id);
    let (status, r) = call(
        &addr,
        &token,
        "POST",
        &format!("/v1/workers/{victim_id}/jobs/{id}/complete"),
        Some(
            json!({"attempt": stale["attempt"], "lease_token": stale["lease_token"], "result": "stale"}),
        ),
    );
    assert_eq!(
        (status, r["error"]["code"].as_str()),
        (409, Some("lease_lost")),
        "{r}"
    );
    assert_eq!(
        finished(&addr, &token, id),
        before,
        "the stale complete changed nothing"
    );

    // The steady worker leaves on SIGTERM and reports what it did.
    signal(&steady, libc::SIGTERM);
    let summary = reader.join().unwrap();
    assert_eq!(summary["completed"], 1020, "{summary}");
    assert_eq!(summary["lost"], 0, "{summary}");
    assert!(summary["heartbeats"].as_u64().unwrap() >= 1, "{summary}");
    assert!(
        summary["extended"].as_u64().unwrap() >= 1,
        "a held lease was extended: {summary}"
    );
    let mut steady = steady;
    assert!(steady.wait().unwrap().success());

    signal(&serve, libc::SIGTERM);
    let mut serve = serve;
    assert!(serve.wait().unwrap().success(), "kyu serve stops cleanly");
}

#[test]
fn remote_http_workers_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    remote_workers_complete_1000_jobs_and_rescue_a_killed_ones(&format!(
        "sqlite://{}/kyu.db",
        dir.path().display()
    ));
}

#[test]
fn remote_http_workers_on_postgres() {
    let Ok(url) = std::env::var("KYU_TEST_POSTGRES_URL") else {
        eprintln!("KYU_TEST_POSTGRES_URL not set: the PostgreSQL run is skipped");
        return;
    };
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let sep = if url.contains('?') { '&' } else { '?' };
    remote_workers_complete_1000_jobs_and_rescue_a_killed_ones(&format!(
        "{url}{sep}schema=http_workers_{nanos}"
    ));
}
