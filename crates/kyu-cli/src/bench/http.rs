//! `kyu bench --via http`: W1 and W2 through the HTTP API. The bench starts a
//! real `kyu serve` (this binary) on the run's fresh database, makes a token
//! with scopes produce, work and read, and then speaks only HTTP: the
//! producer calls `POST /v1/jobs/batch` (W1) or `POST /v1/jobs` (W2), and a
//! remote worker (tasks in this process, each a claim loop over keep-alive
//! connections) registers, claims in batches with a long poll and
//! acknowledges each batch in one request. Completion is what the store
//! reports, as in the native runs.

use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, Context};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use kyu::tokens::TokenSpec;
use kyu::{JobState, Kyu, Scope};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use super::target::TempDir;
use super::workload::{w2_row, W2Measured};
use super::{count, mono_ns, round, BenchArgs, BenchJob, KIND, QUEUE};

/// A `kyu serve` process on the run's database, and the token it accepts.
struct Serve {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    base: String,
    token: String,
    /// Its working directory, holding the empty kyu.toml it is given.
    _dir: TempDir,
}

impl Serve {
    /// Makes the bench token, starts `kyu serve --http 127.0.0.1:0` with an
    /// empty config (no local workers, no schedules) and waits for its
    /// start line.
    async fn start(kyu: &Kyu, url: &str) -> anyhow::Result<Serve> {
        let made = kyu
            .create_token(TokenSpec {
                name: "bench".into(),
                scopes: vec![Scope::Produce, Scope::Work, Scope::Read],
                queues: Vec::new(),
                expires_in: None,
            })
            .await
            .context("creating the bench's API token")?;
        let dir = TempDir::new()?;
        let config = dir.path().join("kyu.toml");
        std::fs::write(&config, "").context("writing the bench server's empty kyu.toml")?;
        let exe = std::env::current_exe().context("could not find the kyu executable")?;
        let mut child = Command::new(exe)
            .current_dir(dir.path())
            // The environment, not an argument: a password in the URL stays
            // out of `ps`.
            .env("KYU_DATABASE_URL", url)
            .env_remove("KYU_HTTP")
            .arg("--config")
            .arg(&config)
            .args(["serve", "--http", "127.0.0.1:0"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .context("could not start kyu serve")?;
        let stderr = child.stderr.take().context("kyu serve's stderr")?;
        let mut lines = BufReader::new(stderr).lines();
        let mut seen = String::new();
        let started = tokio::time::timeout(Duration::from_secs(60), async {
            while let Some(line) = lines.next_line().await? {
                seen.push_str(&line);
                seen.push('\n');
                if line.contains(" started: ") {
                    return anyhow::Ok(Some(line));
                }
            }
            anyhow::Ok(None)
        })
        .await;
        let line = match started {
            Ok(Ok(Some(line))) => line,
            Ok(Ok(None)) => bail!("kyu serve ended before it started:\n{seen}"),
            Ok(Err(e)) => return Err(e.context("reading kyu serve's output")),
            Err(_) => bail!("kyu serve did not start within 60 s:\n{seen}"),
        };
        // Keep reading, so the server never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        let addr = line
            .split("; http ")
            .nth(1)
            .and_then(|r| r.split_whitespace().next())
            .with_context(|| format!("no address in kyu serve's start line: {line}"))?;
        Ok(Serve {
            child,
            base: format!("http://{addr}"),
            token: made.secret,
            _dir: dir,
        })
    }

    /// A client of this server with the bench token.
    fn api(&self) -> Api {
        Api {
            client: Client::builder(TokioExecutor::new())
                .pool_idle_timeout(Duration::from_secs(90))
                .build_http(),
            base: self.base.clone(),
            token: self.token.clone(),
        }
    }

    /// The server's peak resident memory (Linux), in MiB.
    fn max_rss_mib(&self) -> Option<f64> {
        let pid = self.child.id()?;
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        let kb: f64 = status
            .lines()
            .find(|l| l.starts_with("VmHWM:"))?
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()?;
        Some(round(kb / 1024.0, 1))
    }

    /// SIGTERM, then waits for it to stop (killed after 20 s).
    async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(pid) = self.child.id() {
            // SAFETY: a signal to our own child process.
            unsafe { libc::kill(pid as i32, libc::SIGTERM) };
        }
        match tokio::time::timeout(Duration::from_secs(20), self.child.wait()).await {
            Ok(status) => {
                status.context("waiting for kyu serve")?;
            }
            Err(_) => {
                eprintln!("warning: kyu serve did not stop within 20 s of SIGTERM; killed");
                self.child.kill().await?;
            }
        }
        Ok(())
    }
}

/// JSON over HTTP with the bench token, on keep-alive connections.
#[derive(Clone)]
struct Api {
    client: Client<HttpConnector, Full<Bytes>>,
    base: String,
    token: String,
}

impl Api {
    /// A call that must answer 2xx; its JSON body.
    async fn ok(&self, method: &str, path: &str, body: Option<String>) -> anyhow::Result<Value> {
        let req = hyper::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base))
            .header("authorization", format!("Bearer {}", self.token))
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body.unwrap_or_default())))?;
        let resp = self
            .client
            .request(req)
            .await
            .with_context(|| format!("{method} {path}"))?;
        let status = resp.status();
        let bytes = resp
            .into_body()
            .collect()
            .await
            .with_context(|| format!("{method} {path}: reading the answer"))?
            .to_bytes();
        if !status.is_success() {
            bail!(
                "{method} {path}: {status} {}",
                String::from_utf8_lossy(&bytes)
            );
        }
        Ok(serde_json::from_slice(&bytes).unwrap_or(Value::Null))
    }
}

/// What the remote worker saw, shared by its claim loops.
struct Seen {
    total: usize,
    warmup: usize,
    seen: Vec<AtomicBool>,
    distinct: AtomicUsize,
    duplicates: AtomicUsize,
    warm: AtomicUsize,
    latencies_ms: Mutex<Vec<Option<f64>>>,
    all: tokio::sync::Notify,
    warm_done: tokio::sync::Notify,
}

impl Seen {
    /// Records one claimed job at `t` (when its claim's answer arrived).
    fn record(&self, job: &BenchJob, t: u64) {
        if job.w.is_some() {
            if self.warm.fetch_add(1, Ordering::SeqCst) + 1 == self.warmup {
                self.warm_done.notify_one();
            }
            return;
        }
        let i = job.i as usize;
        if i >= self.total || self.seen[i].swap(true, Ordering::SeqCst) {
            self.duplicates.fetch_add(1, Ordering::SeqCst);
            return;
        }
        if let Some(sent) = job.t {
            self.latencies_ms.lock().expect("lock")[i] = Some(t.saturating_sub(sent) as f64 / 1e6);
        }
        if self.distinct.fetch_add(1, Ordering::SeqCst) + 1 == self.total {
            self.all.notify_one();
        }
    }
}

/// A remote worker: one registration, `--http-pollers` claim loops.
struct RemoteWorker {
    api: Api,
    id: String,
    stop: Arc<AtomicBool>,
    loops: Vec<tokio::task::JoinHandle<anyhow::Result<()>>>,
    seen: Arc<Seen>,
}

impl RemoteWorker {
    async fn start(api: Api, a: &BenchArgs, total: u32, warmup: u32) -> anyhow::Result<Self> {
        let reg = api
            .ok(
                "POST",
                "/v1/workers",
                Some(
                    json!({"name": "bench", "queues": [QUEUE], "kinds": [KIND], "capacity": a.http_batch})
                        .to_string(),
                ),
            )
            .await?;
        let id = reg["worker_id"]
            .as_str()
            .context("no worker_id in the registration's answer")?
            .to_string();
        let seen = Arc::new(Seen {
            total: total as usize,
            warmup: warmup as usize,
            seen: (0..total).map(|_| AtomicBool::new(false)).collect(),
            distinct: AtomicUsize::new(0),
            duplicates: AtomicUsize::new(0),
            warm: AtomicUsize::new(0),
            latencies_ms: Mutex::new(vec![None; total as usize]),
            all: tokio::sync::Notify::new(),
            warm_done: tokio::sync::Notify::new(),
        });
        let stop = Arc::new(AtomicBool::new(false));
        let claim = json!({"max": a.http_batch, "wait_ms": 1000}).to_string();
        let loops = (0..a.http_pollers)
            .map(|_| {
                let (api, id, stop, seen, claim) = (
                    api.clone(),
                    id.clone(),
                    stop.clone(),
                    seen.clone(),
                    claim.clone(),
                );
                tokio::spawn(async move {
                    let path = format!("/v1/workers/{id}/claim");
                    let ack = format!("/v1/workers/{id}/ack");
                    while !stop.load(Ordering::SeqCst) {
                        let reply = api.ok("POST", &path, Some(claim.clone())).await?;
                        let t = mono_ns();
                        let jobs = reply["jobs"].as_array().cloned().unwrap_or_default();
                        if jobs.is_empty() {
                            continue;
                        }
                        let mut acks = Vec::with_capacity(jobs.len());
                        for j in &jobs {
                            let job: BenchJob = serde_json::from_value(j["args"].clone())
                                .with_context(|| format!("a claimed job's args: {}", j["args"]))?;
                            seen.record(&job, t);
                            acks.push(json!({"job_id": j["id"], "attempt": j["attempt"],
                                "lease_token": j["lease_token"], "outcome": "complete"}));
                        }
                        api.ok("POST", &ack, Some(json!({ "acks": acks }).to_string()))
                            .await?;
                    }
                    anyhow::Ok(())
                })
            })
            .collect();
        Ok(RemoteWorker {
            api,
            id,
            stop,
            loops,
            seen,
        })
    }

    /// Stops the claim loops (each ends after its current long poll) and
    /// leaves; an error of a loop is the first reported.
    async fn stop(self) -> anyhow::Result<()> {
        self.stop.store(true, Ordering::SeqCst);
        let mut first = None;
        for l in self.loops {
            match tokio::time::timeout(Duration::from_secs(10), l).await {
                Ok(Ok(Ok(()))) => {}
                Ok(Ok(Err(e))) => {
                    first.get_or_insert(e);
                }
                Ok(Err(e)) => {
                    first.get_or_insert(anyhow::anyhow!("a claim loop failed: {e}"));
                }
                Err(_) => {
                    first.get_or_insert(anyhow::anyhow!("a claim loop did not stop in 10 s"));
                }
            }
        }
        self.api
            .ok("DELETE", &format!("/v1/workers/{}", self.id), None)
            .await?;
        match first {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

/// Waits until the store reports `expected` completed jobs, or the deadline.
async fn completed_by(
    kyu: &Kyu,
    expected: u64,
    deadline: tokio::time::Instant,
) -> anyhow::Result<(u64, bool)> {
    loop {
        let done = count(kyu, JobState::Completed).await?;
        if done >= expected {
            return Ok((done, true));
        }
        if tokio::time::Instant::now() >= deadline {
            return Ok((done, false));
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn config_name(a: &BenchArgs) -> String {
    format!("http-batch{}-pollers{}", a.http_batch, a.http_pollers)
}

/// W1 over HTTP: bulk enqueue through `POST /v1/jobs/batch` in `--chunk`s,
/// then the remote worker until the store reports all N completed.
pub(super) async fn w1(
    a: &BenchArgs,
    kyu: &Kyu,
    url: &str,
    preload: u64,
) -> anyhow::Result<serde_json::Value> {
    let n = a.jobs;
    let serve = Serve::start(kyu, url).await?;
    let producer = serve.api();
    let t0 = std::time::Instant::now();
    let mut i = 0;
    while i < n {
        let end = (i + a.chunk).min(n);
        let jobs: Vec<Value> = (i..end)
            .map(|i| json!({"kind": KIND, "queue": QUEUE, "args": {"i": i}}))
            .collect();
        producer
            .ok(
                "POST",
                "/v1/jobs/batch",
                Some(json!({ "jobs": jobs }).to_string()),
            )
            .await?;
        i = end;
    }
    let enqueue_s = t0.elapsed().as_secs_f64();
    let queued = count(kyu, JobState::Available).await?;
    if queued != n as u64 {
        bail!("after enqueue the store holds {queued} available jobs, expected {n}");
    }
    let t0 = std::time::Instant::now();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(a.timeout_s);
    let worker = RemoteWorker::start(serve.api(), a, n, 0).await?;
    let handled = tokio::time::timeout_at(deadline, worker.seen.all.notified())
        .await
        .is_ok();
    let (done, ok) = if handled {
        completed_by(kyu, preload + n as u64, deadline).await?
    } else {
        (count(kyu, JobState::Completed).await?, false)
    };
    let process_s = t0.elapsed().as_secs_f64();
    let done = done.saturating_sub(preload);
    let duplicates = worker.seen.duplicates.load(Ordering::SeqCst);
    worker.stop().await?;
    let rss = serve.max_rss_mib();
    serve.stop().await?;
    Ok(serde_json::json!({
        "system": "kyu", "version": env!("CARGO_PKG_VERSION"), "backend": kyu.store().backend(),
        "workload": "W1", "via": "http", "config": config_name(a),
        "n": n, "bulk_api": "POST /v1/jobs/batch", "bulk_chunk": a.chunk,
        "http_batch": a.http_batch, "http_pollers": a.http_pollers,
        "enqueue_per_s": round(n as f64 / enqueue_s, 0),
        "process_per_s": round(done as f64 / process_s, 0),
        "enqueue_s": round(enqueue_s, 3), "process_s": round(process_s, 3),
        "completed": done, "timed_out": !ok, "duplicates": duplicates,
        "server_max_rss_mib": rss,
    }))
}

/// W2 over HTTP: an idle remote worker long-polling; jobs enqueued one at a
/// time with `POST /v1/jobs`; latency = the claim's answer arriving − just
/// before the enqueue call.
pub(super) async fn w2(
    a: &BenchArgs,
    kyu: &Kyu,
    url: &str,
    preload: u64,
) -> anyhow::Result<serde_json::Value> {
    let n = a.w2_jobs;
    let serve = Serve::start(kyu, url).await?;
    let producer = serve.api();
    let worker = RemoteWorker::start(serve.api(), a, n, a.w2_warmup).await?;
    tokio::time::sleep(Duration::from_secs(1)).await; // the worker sits idle
    let interval = Duration::from_millis(a.w2_interval_ms);
    let limit = Duration::from_secs(40);
    if a.w2_warmup > 0 {
        paced(&producer, a.w2_warmup, interval, true).await?;
        tokio::time::timeout(limit, worker.seen.warm_done.notified())
            .await
            .context("the warm-up jobs did not all start within 40 s")?;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let span = paced(&producer, n, interval, false).await?;
    let deadline = tokio::time::Instant::now() + limit;
    let handled = tokio::time::timeout_at(deadline, worker.seen.all.notified())
        .await
        .is_ok();
    let expected = preload + (n + a.w2_warmup) as u64;
    let (done, ok) = if handled {
        completed_by(kyu, expected, deadline).await?
    } else {
        (count(kyu, JobState::Completed).await?, false)
    };
    let duplicates = worker.seen.duplicates.load(Ordering::SeqCst);
    let latencies = worker.seen.latencies_ms.lock().expect("lock").clone();
    worker.stop().await?;
    let rss = serve.max_rss_mib();
    serve.stop().await?;
    let fields = [
        ("single_api", "POST /v1/jobs".into()),
        ("http_batch", a.http_batch.into()),
        ("http_pollers", a.http_pollers.into()),
        ("server_max_rss_mib", rss.into()),
    ];
    let measured = W2Measured {
        latencies_ms: latencies,
        span_s: span,
        completed: done.saturating_sub(preload + a.w2_warmup as u64),
        timed_out: !ok,
        duplicates: duplicates as u64,
    };
    Ok(w2_row(a, kyu, "http", config_name(a), &fields, measured))
}

/// Enqueues `count` jobs one at a time with `POST /v1/jobs` on a fixed
/// schedule (open loop, as the native W2). Returns the span in seconds.
async fn paced(api: &Api, count: u32, interval: Duration, warmup: bool) -> anyhow::Result<f64> {
    let start = tokio::time::Instant::now();
    for i in 0..count {
        tokio::time::sleep_until(start + interval * i).await;
        let t = mono_ns();
        let args = BenchJob {
            i,
            t: Some(t),
            w: warmup.then_some(1),
        };
        let body = json!({"kind": KIND, "queue": QUEUE, "args": args}).to_string();
        api.ok("POST", "/v1/jobs", Some(body)).await?;
    }
    Ok(start.elapsed().as_secs_f64())
}
