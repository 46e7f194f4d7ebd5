//! `kyu bench`: the two workloads of the peer benchmark (shared/bench/peers),
//! with the same N, pacing and definitions, printed as JSON lines in the same
//! shape so the figures sit next to BullMQ's, graphile-worker's and pg-boss's.
//!
//! The producer is this process; the worker is a child process
//! (`kyu bench-worker`), and they talk over the child's stdin and stdout.
//! Latencies compare CLOCK_MONOTONIC readings, which every process on the
//! machine shares.

use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use clap::{Args, ValueEnum};
use kyu::{JobState, Kyu, NewJob, Outcome, Worker};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

use crate::commands::Ctx;
use crate::CmdResult;

const QUEUE: &str = "bench";
const KIND: &str = "noop";

/// Which workload to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Workload {
    /// Throughput: bulk-enqueue N no-op jobs, then time the worker until the
    /// store reports all N completed.
    W1,
    /// Latency: idle worker; 1000 jobs enqueued one at a time 5 ms apart;
    /// handler start − enqueue call.
    W2,
}

/// Measure kyu the way the peer benchmark measures BullMQ, graphile-worker and pg-boss.
#[derive(Args, Debug)]
#[command(
    after_help = "Each workload runs on a fresh SQLite database created in --dir, or with \
--postgres in a fresh schema of that PostgreSQL database, dropped afterwards \
(your --database is not touched). Output: one JSON line per workload, the peers' shape.\n\n\
Examples:\n  kyu bench --workload w1 --jobs 20000 --concurrency 10\n  kyu bench --workload w2\n  \
kyu bench --postgres postgres://postgres@127.0.0.1/bench --prefetch 100\n  \
kyu bench                      # both"
)]
pub struct BenchArgs {
    /// The workload; both when not given.
    #[arg(long, value_enum)]
    workload: Option<Workload>,
    /// W1: how many jobs.
    #[arg(long, default_value_t = 20_000, value_parser = clap::value_parser!(u32).range(1..))]
    jobs: u32,
    /// Jobs the worker runs at once.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=10000))]
    concurrency: u32,
    /// Jobs the worker claims ahead of its free slots (WorkerConfig::prefetch).
    #[arg(long, default_value_t = 0)]
    prefetch: u32,
    /// W1: jobs per bulk-enqueue call.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..))]
    chunk: u32,
    /// W2: measured jobs.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..))]
    w2_jobs: u32,
    /// W2: milliseconds between enqueues.
    #[arg(long, default_value_t = 5)]
    w2_interval_ms: u64,
    /// W2: warm-up jobs, not recorded.
    #[arg(long, default_value_t = 20)]
    w2_warmup: u32,
    /// W1 is cut off after this many seconds.
    #[arg(long, default_value_t = 60)]
    timeout_s: u64,
    /// SQLite durability: normal (survives any process crash) or full (also
    /// survives power loss: one fsync per group commit).
    #[arg(long, default_value = "normal", value_parser = ["normal", "full"])]
    synchronous: String,
    /// Directory for the fresh databases (default: a new temporary directory).
    #[arg(long)]
    dir: Option<std::path::PathBuf>,
    /// Run on this PostgreSQL database instead of SQLite, in a fresh schema
    /// per workload (dropped afterwards), with the server's own durability
    /// settings.
    #[arg(long, value_name = "URL")]
    postgres: Option<String>,
}

/// The worker half, started by `kyu bench`.
#[derive(Args, Debug)]
pub struct WorkerArgs {
    #[arg(long, value_enum)]
    workload: Workload,
    #[arg(long)]
    total: u32,
    #[arg(long)]
    warmup: u32,
    #[arg(long)]
    concurrency: u32,
    #[arg(long)]
    prefetch: u32,
    #[arg(long)]
    timeout_s: u64,
}

/// CLOCK_MONOTONIC in nanoseconds: the same clock in every process.
fn mono_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec we own.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Peak resident memory of this process, in MiB.
fn max_rss_mib() -> f64 {
    // SAFETY: getrusage fills the struct we own.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    ru.ru_maxrss as f64 / 1024.0
}

fn round(x: f64, digits: i32) -> f64 {
    let f = 10f64.powi(digits);
    (x * f).round() / f
}

/// Nearest-rank percentile of an ascending slice.
fn percentile(sorted: &[f64], p: f64) -> f64 {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[derive(Serialize, Deserialize)]
struct BenchJob {
    i: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    t: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    w: Option<u8>,
}

/// What the worker process reports at the end of a workload.
#[derive(Serialize, Deserialize, Debug)]
struct WorkerReport {
    done: u64,
    process_s: f64,
    last_handler_s: Option<f64>,
    duplicates: u64,
    timed_out: bool,
    latencies_ms: Vec<Option<f64>>,
    max_rss_mib: f64,
}

pub async fn run(_ctx: &Ctx, a: BenchArgs) -> CmdResult {
    let tmp;
    let dir = match &a.dir {
        Some(d) => {
            std::fs::create_dir_all(d)
                .with_context(|| format!("could not create {}", d.display()))?;
            d.clone()
        }
        None => {
            tmp = tempdir()?;
            tmp.path.clone()
        }
    };
    let workloads = match a.workload {
        Some(w) => vec![w],
        None => vec![Workload::W1, Workload::W2],
    };
    let server = match &a.postgres {
        Some(base) => Some(postgres_settings(base).await?),
        None => None,
    };
    for w in workloads {
        let db = dir.join(format!("bench-{}-{}.db", name(w), std::process::id()));
        let schema = format!("kyu_bench_{}_{}", name(w), std::process::id());
        let url = match &a.postgres {
            Some(base) => {
                let sep = if base.contains('?') { '&' } else { '?' };
                format!("{base}{sep}schema={schema}")
            }
            None => format!("sqlite://{}?synchronous={}", db.display(), a.synchronous),
        };
        let settings = match &server {
            Some(server) => format!(
                "{server}; worker concurrency {}, prefetch {}",
                a.concurrency, a.prefetch
            ),
            None => settings(&a),
        };
        let row = match w {
            Workload::W1 => w1(&a, &url, settings).await,
            Workload::W2 => w2(&a, &url, settings).await,
        };
        match &a.postgres {
            Some(base) => drop_schema(base, &schema).await,
            None => {
                for suffix in ["", "-wal", "-shm"] {
                    let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
                }
            }
        }
        println!("{}", row?);
    }
    Ok(())
}

/// The server's version and durability settings, for the settings column.
async fn postgres_settings(base: &str) -> anyhow::Result<String> {
    use kyu::postgres::sqlx::{self, Connection};
    let (options, _) = kyu::postgres::split_url(base)?;
    let mut conn = sqlx::PgConnection::connect_with(&options)
        .await
        .with_context(|| format!("could not connect to {base}"))?;
    let mut out = Vec::new();
    for name in ["server_version", "fsync", "synchronous_commit"] {
        let v: String = sqlx::query_scalar(&format!("SHOW {name}"))
            .fetch_one(&mut conn)
            .await?;
        out.push(format!("{name}={v}"));
    }
    let _ = conn.close().await;
    Ok(format!("PostgreSQL ({}), lease 30s", out.join(", ")))
}

/// Drops a bench schema; a failure is only reported.
async fn drop_schema(base: &str, schema: &str) {
    use kyu::postgres::sqlx::{self, Connection};
    let result = async {
        let (options, _) = kyu::postgres::split_url(base)?;
        let mut conn = sqlx::PgConnection::connect_with(&options).await?;
        sqlx::query(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
            .execute(&mut conn)
            .await?;
        anyhow::Ok(())
    }
    .await;
    if let Err(e) = result {
        eprintln!("warning: could not drop the bench schema {schema}: {e:#}");
    }
}

fn name(w: Workload) -> &'static str {
    match w {
        Workload::W1 => "w1",
        Workload::W2 => "w2",
    }
}

struct TempDir {
    path: std::path::PathBuf,
}
impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}
fn tempdir() -> anyhow::Result<TempDir> {
    let path = std::env::temp_dir().join(format!("kyu-bench-{}-{}", std::process::id(), mono_ns()));
    std::fs::create_dir_all(&path)
        .with_context(|| format!("could not create {}", path.display()))?;
    Ok(TempDir { path })
}

/// The child worker process and its pipes.
struct WorkerProcess {
    child: Child,
    stdin: ChildStdin,
    lines: Lines<BufReader<ChildStdout>>,
}

impl WorkerProcess {
    async fn start(
        url: &str,
        w: Workload,
        total: u32,
        warmup: u32,
        a: &BenchArgs,
    ) -> anyhow::Result<Self> {
        let exe = std::env::current_exe().context("could not find the kyu executable")?;
        let mut child = Command::new(exe)
            .args(["--database", url, "bench-worker", "--workload", name(w)])
            .args([
                "--total",
                &total.to_string(),
                "--warmup",
                &warmup.to_string(),
            ])
            .args(["--concurrency", &a.concurrency.to_string()])
            .args(["--prefetch", &a.prefetch.to_string()])
            .args(["--timeout-s", &a.timeout_s.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .context("could not start the bench worker process")?;
        let stdin = child.stdin.take().expect("piped stdin");
        let lines = BufReader::new(child.stdout.take().expect("piped stdout")).lines();
        Ok(WorkerProcess {
            child,
            stdin,
            lines,
        })
    }

    async fn send(&mut self, msg: &str) -> anyhow::Result<()> {
        self.stdin.write_all(format!("{msg}\n").as_bytes()).await?;
        self.stdin.flush().await?;
        Ok(())
    }

    async fn expect(&mut self, what: &str) -> anyhow::Result<String> {
        match self.lines.next_line().await? {
            Some(line) if line.starts_with(what) => Ok(line),
            Some(line) => bail!("bench worker said {line:?}, expected {what}"),
            None => bail!("bench worker exited before saying {what}"),
        }
    }

    async fn stop(mut self) -> anyhow::Result<()> {
        let _ = self.send("stop").await;
        match tokio::time::timeout(Duration::from_secs(20), self.child.wait()).await {
            Ok(_) => Ok(()),
            Err(_) => {
                self.child.kill().await?;
                Ok(())
            }
        }
    }
}

fn config_name(a: &BenchArgs) -> String {
    if a.prefetch > 0 {
        format!("c{}+prefetch{}", a.concurrency, a.prefetch)
    } else {
        format!("c{}", a.concurrency)
    }
}

fn settings(a: &BenchArgs) -> String {
    format!(
        "SQLite file, WAL, synchronous={}, lease 30s; worker concurrency {}, prefetch {}",
        a.synchronous.to_uppercase(),
        a.concurrency,
        a.prefetch
    )
}

async fn w1(a: &BenchArgs, url: &str, settings: String) -> anyhow::Result<serde_json::Value> {
    let kyu = Kyu::connect(url).await?;
    let n = a.jobs;
    let mut worker = WorkerProcess::start(url, Workload::W1, n, 0, a).await?;
    worker.expect("ready").await?;
    let t0 = std::time::Instant::now();
    let mut i = 0;
    while i < n {
        let end = (i + a.chunk).min(n);
        let jobs = (i..end)
            .map(|i| NewJob::new(KIND, serde_json::json!({ "i": i })).queue(QUEUE))
            .collect();
        kyu.insert_many(jobs).await?;
        i = end;
    }
    let enqueue_s = t0.elapsed().as_secs_f64();
    let queued = count(&kyu, JobState::Available).await?;
    if queued != n as u64 {
        bail!("after enqueue the store holds {queued} available jobs, expected {n}");
    }
    worker.send("start").await?;
    let line = worker.expect("{").await?;
    let r: WorkerReport = serde_json::from_str(&line)?;
    worker.stop().await?;
    Ok(serde_json::json!({
        "system": "kyu", "version": env!("CARGO_PKG_VERSION"), "backend": kyu.store().backend(),
        "workload": "W1", "config": config_name(a),
        "n": n, "concurrency": a.concurrency, "bulk_api": "Kyu::insert_many", "bulk_chunk": a.chunk,
        "enqueue_per_s": round(n as f64 / enqueue_s, 0),
        "process_per_s": round(r.done as f64 / r.process_s, 0),
        "enqueue_s": round(enqueue_s, 3), "process_s": round(r.process_s, 3),
        "last_handler_s": r.last_handler_s.map(|s| round(s, 3)),
        "completed": r.done, "timed_out": r.timed_out, "duplicates": r.duplicates,
        "worker_max_rss_mib": round(r.max_rss_mib, 1),
        "settings": settings,
    }))
}

async fn w2(a: &BenchArgs, url: &str, settings: String) -> anyhow::Result<serde_json::Value> {
    let kyu = Kyu::connect(url).await?;
    let n = a.w2_jobs;
    let mut worker = WorkerProcess::start(url, Workload::W2, n, a.w2_warmup, a).await?;
    worker.expect("ready").await?;
    worker.send("start").await?;
    worker.expect("started").await?;
    tokio::time::sleep(Duration::from_secs(1)).await; // the worker sits idle
    let interval = Duration::from_millis(a.w2_interval_ms);
    if a.w2_warmup > 0 {
        paced(&kyu, a.w2_warmup, interval, true).await?;
    }
    worker.expect("warmdone").await?;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let span = paced(&kyu, n, interval, false).await?;
    let line = worker.expect("{").await?;
    let r: WorkerReport = serde_json::from_str(&line)?;
    worker.stop().await?;
    let mut lat: Vec<f64> = r.latencies_ms.iter().flatten().copied().collect();
    lat.sort_by(|x, y| x.partial_cmp(y).expect("finite"));
    let full = lat.len() == n as usize && !r.timed_out;
    let pick = |v: f64| if full { Some(round(v, 2)) } else { None };
    let mut row = serde_json::json!({
        "system": "kyu", "version": env!("CARGO_PKG_VERSION"), "backend": kyu.store().backend(),
        "workload": "W2", "config": config_name(a),
        "n": n, "concurrency": a.concurrency, "single_api": "Kyu::insert",
        "interval_ms": a.w2_interval_ms, "warmup": a.w2_warmup,
        "p50_ms": if full { pick(percentile(&lat, 50.0)) } else { None },
        "p99_ms": if full { pick(percentile(&lat, 99.0)) } else { None },
        "max_ms": if full { pick(*lat.last().unwrap_or(&0.0)) } else { None },
        "mean_ms": if full { pick(lat.iter().sum::<f64>() / lat.len() as f64) } else { None },
        "enqueue_span_s": round(span, 3),
        "measured": lat.len(), "completed": r.done.saturating_sub(a.w2_warmup as u64),
        "timed_out": r.timed_out, "duplicates": r.duplicates,
        "worker_max_rss_mib": round(r.max_rss_mib, 1),
        "settings": settings,
    });
    if !full {
        row["saturated"] = true.into();
        row["note"] = format!("only {} of {n} jobs had started in time", lat.len()).into();
    }
    Ok(row)
}

/// Enqueues `count` jobs one at a time on a fixed schedule (open loop: a slow
/// enqueue delays only the next one). Returns the span in seconds.
async fn paced(kyu: &Kyu, count: u32, interval: Duration, warmup: bool) -> anyhow::Result<f64> {
    let start = tokio::time::Instant::now();
    for i in 0..count {
        tokio::time::sleep_until(start + interval * i).await;
        let t = mono_ns();
        let args = BenchJob {
            i,
            t: Some(t),
            w: warmup.then_some(1),
        };
        let args = serde_json::to_string(&args)?;
        kyu.insert(NewJob::from_json_text(KIND, args).queue(QUEUE))
            .await?;
    }
    Ok(start.elapsed().as_secs_f64())
}

async fn count(kyu: &Kyu, state: JobState) -> anyhow::Result<u64> {
    Ok(kyu
        .queues()
        .await?
        .iter()
        .find(|q| q.queue == QUEUE)
        .map(|q| q.count(state))
        .unwrap_or(0))
}

/// What the handler records, shared with the report.
struct Seen {
    total: usize,
    seen: Vec<AtomicBool>,
    distinct: AtomicUsize,
    duplicates: AtomicUsize,
    warm: AtomicUsize,
    latencies_ms: Mutex<Vec<Option<f64>>>,
    last_ns: std::sync::atomic::AtomicU64,
    all: tokio::sync::Notify,
    warm_done: tokio::sync::Notify,
}

pub async fn worker(ctx: &Ctx, a: WorkerArgs) -> CmdResult {
    let kyu = ctx.connect().await?;
    let total = a.total as usize;
    let seen = Arc::new(Seen {
        total,
        seen: (0..total).map(|_| AtomicBool::new(false)).collect(),
        distinct: AtomicUsize::new(0),
        duplicates: AtomicUsize::new(0),
        warm: AtomicUsize::new(0),
        latencies_ms: Mutex::new(vec![None; total]),
        last_ns: 0.into(),
        all: tokio::sync::Notify::new(),
        warm_done: tokio::sync::Notify::new(),
    });
    let warmup = a.warmup as usize;
    let mut stdin = BufReader::new(tokio::io::stdin()).lines();
    println!("ready");
    match stdin.next_line().await.context("reading stdin")? {
        Some(l) if l == "start" => {}
        other => return Err(anyhow!("expected start, got {other:?}").into()),
    }
    let t0 = mono_ns();
    let s = seen.clone();
    let handle = Worker::new(&kyu)
        .handle(KIND, move |ctx| {
            let s = s.clone();
            async move {
                let t = mono_ns();
                let job: BenchJob = ctx.args_as()?;
                if job.w.is_some() {
                    if s.warm.fetch_add(1, Ordering::SeqCst) + 1 == warmup {
                        s.warm_done.notify_one();
                    }
                    return Ok(Outcome::Done);
                }
                let i = job.i as usize;
                if i >= s.total || s.seen[i].swap(true, Ordering::SeqCst) {
                    s.duplicates.fetch_add(1, Ordering::SeqCst);
                    return Ok(Outcome::Done);
                }
                if let Some(sent) = job.t {
                    s.latencies_ms.lock().expect("lock")[i] =
                        Some(t.saturating_sub(sent) as f64 / 1e6);
                }
                if s.distinct.fetch_add(1, Ordering::SeqCst) + 1 == s.total {
                    s.last_ns.store(t, Ordering::SeqCst);
                    s.all.notify_one();
                }
                Ok(Outcome::Done)
            }
        })
        .queue(QUEUE, a.concurrency as usize)
        .configure(|c| c.prefetch = a.prefetch as usize)
        .start();
    let expected_done = match a.workload {
        Workload::W1 => total as u64,
        Workload::W2 => {
            println!("started");
            if warmup > 0 {
                seen.warm_done.notified().await;
            }
            println!("warmdone");
            (total + warmup) as u64
        }
    };
    let limit = match a.workload {
        Workload::W1 => Duration::from_secs(a.timeout_s),
        Workload::W2 => Duration::from_secs(40),
    };
    let deadline = tokio::time::Instant::now() + limit;
    let all_handled = tokio::time::timeout_at(deadline, seen.all.notified())
        .await
        .is_ok();
    // Every handler ran; now wait until the store records them all completed.
    let mut done = 0;
    let mut ok = false;
    if all_handled {
        while tokio::time::Instant::now() < deadline {
            done = count(&kyu, JobState::Completed).await?;
            if done >= expected_done {
                ok = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    let t1 = mono_ns();
    if !ok {
        done = count(&kyu, JobState::Completed).await?;
    }
    let last = seen.last_ns.load(Ordering::SeqCst);
    let report = WorkerReport {
        done,
        process_s: (t1 - t0) as f64 / 1e9,
        last_handler_s: (last > 0).then(|| (last - t0) as f64 / 1e9),
        duplicates: seen.duplicates.load(Ordering::SeqCst) as u64,
        timed_out: !ok,
        latencies_ms: match a.workload {
            Workload::W1 => Vec::new(),
            Workload::W2 => seen.latencies_ms.lock().expect("lock").clone(),
        },
        max_rss_mib: max_rss_mib(),
    };
    println!("{}", serde_json::to_string(&report).context("report")?);
    let _ = stdin.next_line().await;
    handle.shutdown().await;
    Ok(())
}
