//! A kyu worker that speaks only HTTP: what a worker in any language does
//! against `kyu serve`'s API (see README, "Workers over HTTP").
//!
//! ```text
//! cargo run -p kyu-server --example http_worker -- \
//!     --url http://127.0.0.1:7070 --token kyu_… --queue default --kind echo [--capacity 50] [--lease-ms 30000]
//! ```
//!
//! It registers, then loops: claim up to `capacity` jobs with a long poll,
//! run them (kind-agnostic: a job's result is `{"echo": args}`; args
//! `{"sleep_ms": N}` make it take N ms), acknowledge the batch in one
//! request. A task heartbeats the leases held every `heartbeat_interval_ms`.
//! On SIGTERM or SIGINT, or when the server says `quiet` or `stop`, it
//! claims nothing more, acknowledges what it ran, and leaves (`DELETE`),
//! which releases anything it still held. With `--hold` it claims once and
//! holds the jobs (heartbeating) without running them: a worker to kill in
//! tests. It prints one JSON line per event on stdout.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{json, Value};

/// What the worker is told on its command line.
#[derive(Debug, Clone)]
pub struct Config {
    /// The server, e.g. `http://127.0.0.1:7070`.
    pub url: String,
    /// A token with scope `work`.
    pub token: String,
    /// The worker's name.
    pub name: String,
    /// The queues it works.
    pub queues: Vec<String>,
    /// The kinds it runs.
    pub kinds: Vec<String>,
    /// Most jobs per claim.
    pub capacity: usize,
    /// Its lease, if not the server's.
    pub lease_ms: Option<u64>,
    /// Claim once and hold the jobs without running them.
    pub hold: bool,
}

impl Config {
    /// Reads `--url U --token T --queue Q… --kind K… [--name N]
    /// [--capacity C] [--lease-ms L] [--hold]`.
    pub fn from_args(args: impl IntoIterator<Item = String>) -> Result<Config, String> {
        let mut c = Config {
            url: String::new(),
            token: String::new(),
            name: "http-worker".into(),
            queues: Vec::new(),
            kinds: Vec::new(),
            capacity: 10,
            lease_ms: None,
            hold: false,
        };
        let mut args = args.into_iter();
        while let Some(a) = args.next() {
            let mut value = || args.next().ok_or_else(|| format!("{a} needs a value"));
            match a.as_str() {
                "--url" => c.url = value()?,
                "--token" => c.token = value()?,
                "--name" => c.name = value()?,
                "--queue" => c.queues.push(value()?),
                "--kind" => c.kinds.push(value()?),
                "--capacity" => {
                    c.capacity = value()?.parse().map_err(|e| format!("--capacity: {e}"))?
                }
                "--lease-ms" => {
                    c.lease_ms = Some(value()?.parse().map_err(|e| format!("--lease-ms: {e}"))?)
                }
                "--hold" => c.hold = true,
                other => return Err(format!("unknown argument {other:?}")),
            }
        }
        if c.url.is_empty() || c.token.is_empty() || c.queues.is_empty() || c.kinds.is_empty() {
            return Err("accepted: --url URL --token TOKEN --queue Q --kind K [--name N] [--capacity C] [--lease-ms L] [--hold]".into());
        }
        Ok(c)
    }
}

/// A JSON-over-HTTP client with the worker's token.
#[derive(Clone)]
struct Api {
    client: Client<HttpConnector, Full<Bytes>>,
    url: String,
    token: String,
}

impl Api {
    async fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> Result<(u16, Value), String> {
        let req = hyper::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.url))
            .header("authorization", format!("Bearer {}", self.token))
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(
                body.map(|b| b.to_string()).unwrap_or_default(),
            )))
            .map_err(|e| e.to_string())?;
        let resp = self
            .client
            .request(req)
            .await
            .map_err(|e| format!("{method} {path}: {e}"))?;
        let status = resp.status().as_u16();
        let bytes = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        Ok((
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        ))
    }

    /// A call that must answer 2xx.
    async fn ok(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value, String> {
        let (status, v) = self.call(method, path, body).await?;
        if (200..300).contains(&status) {
            Ok(v)
        } else {
            Err(format!("{method} {path}: {status} {v}"))
        }
    }
}

fn say(line: Value) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// The leases held now, by job id: (attempt, lease token).
type Held = Arc<Mutex<HashMap<i64, (u64, String)>>>;

/// Runs the worker until it is told to stop; what it did, as the last line says.
pub async fn run(config: Config) -> Result<Value, String> {
    let api = Api {
        client: Client::builder(TokioExecutor::new()).build_http(),
        url: config.url.trim_end_matches('/').to_string(),
        token: config.token.clone(),
    };
    let mut register = json!({"name": config.name, "queues": config.queues, "kinds": config.kinds, "capacity": config.capacity});
    if let Some(l) = config.lease_ms {
        register["lease_ms"] = json!(l);
    }
    let reg = api.ok("POST", "/v1/workers", Some(register)).await?;
    let id = reg["worker_id"].as_str().ok_or("no worker_id")?.to_string();
    let interval = Duration::from_millis(reg["heartbeat_interval_ms"].as_u64().unwrap_or(10_000));
    let wait_ms = reg["max_wait_ms"].as_u64().unwrap_or(30_000).min(5_000);
    say(
        json!({"event": "registered", "worker_id": id, "heartbeat_interval_ms": interval.as_millis() as u64}),
    );

    let stop = Arc::new(AtomicBool::new(false));
    let held: Held = Arc::default();
    let heartbeats = Arc::new(AtomicU64::new(0));
    let extended = Arc::new(AtomicU64::new(0));
    let heart = tokio::spawn(heartbeat_loop(
        api.clone(),
        id.clone(),
        interval,
        held.clone(),
        stop.clone(),
        heartbeats.clone(),
        extended.clone(),
    ));
    {
        let stop = stop.clone();
        let hold = config.hold;
        tokio::spawn(async move {
            use tokio::signal::unix::{signal, SignalKind};
            let (mut term, mut int) = (
                signal(SignalKind::terminate()).expect("SIGTERM handler"),
                signal(SignalKind::interrupt()).expect("SIGINT handler"),
            );
            tokio::select! { _ = term.recv() => {}, _ = int.recv() => {} }
            if hold {
                // Holding is for being killed: go without a word, as a crash would.
                std::process::exit(143);
            }
            stop.store(true, Ordering::SeqCst);
        });
    }

    let (mut completed, mut lost) = (0u64, 0u64);
    while !stop.load(Ordering::SeqCst) {
        let reply = api
            .ok(
                "POST",
                &format!("/v1/workers/{id}/claim"),
                Some(json!({"max": config.capacity, "wait_ms": wait_ms})),
            )
            .await?;
        let jobs = reply["jobs"].as_array().cloned().unwrap_or_default();
        {
            let mut h = held.lock().unwrap();
            for j in &jobs {
                h.insert(
                    j["id"].as_i64().unwrap_or(0),
                    (
                        j["attempt"].as_u64().unwrap_or(0),
                        j["lease_token"].as_str().unwrap_or("").to_string(),
                    ),
                );
            }
        }
        if !jobs.is_empty() {
            let ids: Vec<Value> = jobs.iter().map(|j| json!({"id": j["id"], "attempt": j["attempt"], "lease_token": j["lease_token"]})).collect();
            say(json!({"event": if config.hold { "holding" } else { "claimed" }, "jobs": ids}));
        }
        if config.hold {
            if jobs.is_empty() {
                continue;
            }
            // Hold the leases (the heartbeat task keeps them) until killed.
            std::future::pending::<()>().await;
        }
        if reply["command"] != "run" {
            say(json!({"event": "told", "command": reply["command"]}));
            break;
        }
        if jobs.is_empty() {
            continue;
        }
        // Run the batch, then acknowledge it in one request.
        let runs = jobs.iter().map(|j| async move {
            if let Some(ms) = j["args"]["sleep_ms"].as_u64() {
                tokio::time::sleep(Duration::from_millis(ms)).await;
            }
            json!({"job_id": j["id"], "attempt": j["attempt"], "lease_token": j["lease_token"], "outcome": "complete", "result": {"echo": j["args"]}})
        });
        let acks = futures_util::future::join_all(runs).await;
        let reply = api
            .ok(
                "POST",
                &format!("/v1/workers/{id}/ack"),
                Some(json!({ "acks": acks })),
            )
            .await?;
        {
            let mut h = held.lock().unwrap();
            for j in &jobs {
                h.remove(&j["id"].as_i64().unwrap_or(0));
            }
        }
        for r in reply["results"].as_array().cloned().unwrap_or_default() {
            if r["result"] == "applied" {
                completed += 1;
            } else {
                lost += 1;
            }
        }
        say(json!({"event": "acked", "completed": completed, "lost": lost}));
    }
    let left = api.ok("DELETE", &format!("/v1/workers/{id}"), None).await?;
    heart.abort();
    let summary = json!({
        "event": "left", "worker_id": id, "completed": completed, "lost": lost,
        "heartbeats": heartbeats.load(Ordering::SeqCst), "extended": extended.load(Ordering::SeqCst),
        "released": left["released"],
    });
    say(summary.clone());
    Ok(summary)
}

#[allow(clippy::too_many_arguments)]
async fn heartbeat_loop(
    api: Api,
    id: String,
    interval: Duration,
    held: Held,
    stop: Arc<AtomicBool>,
    heartbeats: Arc<AtomicU64>,
    extended: Arc<AtomicU64>,
) {
    let mut tick = tokio::time::interval(interval);
    loop {
        tick.tick().await;
        let leases: Vec<Value> = held
            .lock()
            .unwrap()
            .iter()
            .map(|(job, (attempt, token))| json!({"job_id": job, "attempt": attempt, "lease_token": token}))
            .collect();
        match api
            .ok(
                "POST",
                &format!("/v1/workers/{id}/heartbeat"),
                Some(json!({ "leases": leases })),
            )
            .await
        {
            Ok(reply) => {
                heartbeats.fetch_add(1, Ordering::SeqCst);
                for l in reply["leases"].as_array().cloned().unwrap_or_default() {
                    if l["status"] == "extended" {
                        extended.fetch_add(1, Ordering::SeqCst);
                    } else {
                        held.lock()
                            .unwrap()
                            .remove(&l["job_id"].as_i64().unwrap_or(0));
                    }
                }
                if reply["command"] != "run" {
                    stop.store(true, Ordering::SeqCst);
                }
            }
            Err(e) => say(json!({"event": "heartbeat_failed", "error": e})),
        }
    }
}

/// Runs the worker with these command-line arguments (without the program name).
pub fn main_with(args: impl IntoIterator<Item = String>) {
    let config = match Config::from_args(args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("http_worker: {e}");
            std::process::exit(2);
        }
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    if let Err(e) = rt.block_on(run(config)) {
        eprintln!("http_worker: {e}");
        std::process::exit(1);
    }
}

fn main() {
    main_with(std::env::args().skip(1));
}
