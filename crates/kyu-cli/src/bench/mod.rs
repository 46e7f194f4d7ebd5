//! `kyu bench`: the two workloads of the peer benchmark (shared/bench/peers),
//! with the same N, pacing and definitions, on the backend the database URL
//! names, repeated `--runs` times; JSON lines in the peers' shape with
//! `--json`, a readable report otherwise.
//!
//! The producer is this process; the worker is a child process
//! (`kyu bench-worker`), and they talk over the child's stdin and stdout.
//! Latencies compare CLOCK_MONOTONIC readings, which every process on the
//! machine shares.

mod http;
mod machine;
mod summary;
mod target;
mod worker;
mod workload;

use anyhow::anyhow;
use clap::{Args, ValueEnum};
use kyu::{JobState, Kyu};
use serde::{Deserialize, Serialize};

pub use worker::{worker, WorkerArgs};

use crate::commands::Ctx;
use crate::{CmdResult, Failure};

const QUEUE: &str = "bench";
const KIND: &str = "noop";
/// The kind of the `--preload` jobs: the bench worker does not run them.
const PRELOAD_KIND: &str = "preload";

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

/// How the producer and the worker reach kyu.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Via {
    /// The Rust library (`Kyu::enqueue_many`, `Kyu::enqueue`, `Worker`).
    Library,
    /// The HTTP API of a `kyu serve` the bench starts: `POST /v1/jobs/batch`
    /// and `POST /v1/jobs`, and a remote worker claiming in batches with a
    /// long poll.
    Http,
}

/// Measure kyu the way the peer benchmark measures BullMQ, graphile-worker and pg-boss.
#[derive(Args, Debug)]
#[command(
    after_help = "What is measured: the database named by --database, else KYU_DATABASE_URL, \
else `database` in kyu.toml (the order every command uses). SQLite: each run gets a fresh \
directory kyu-bench-* (holding its database file) in the directory of the named database: \
the same disk; the named file is never opened; removed afterwards. PostgreSQL: each run gets a fresh schema kyu_bench_* in the named \
database, dropped afterwards (the URL's own schema is not touched). With no database named, \
SQLite in a new temporary directory. Any other URL is refused (exit 2).\n\n\
Output: the backend and where, the machine (cores, memory, an fdatasync rate of the disk; \
PostgreSQL's version, fsync and synchronous_commit), one line per run and the median \
(min–max) of the runs. With --json: one JSON line per run (the peers' shape, plus run, \
preload and store), then one summary line per workload (\"summary\": true, each figure as \
{median, min, max}, and the machine).\n\n\
Examples:\n  kyu bench --workload w1 --jobs 20000 --concurrency 10\n  \
kyu bench --workload w2 --runs 5\n  \
kyu bench --via http --workload w2   # through kyu serve's HTTP API\n  \
kyu bench --database sqlite:///srv/kyu/kyu.db --preload 100000\n  \
kyu bench --database postgres://postgres@127.0.0.1/bench --prefetch 100 --json\n  \
kyu bench                      # both workloads, 3 runs each"
)]
pub struct BenchArgs {
    /// The workload: w1 (throughput) or w2 (latency) [default: both]
    #[arg(long, value_enum)]
    workload: Option<Workload>,
    /// library: producer and worker use the Rust library; http: the bench
    /// starts `kyu serve` on each run's database and both speak only its HTTP
    /// API (W1: `POST /v1/jobs/batch` in --chunk jobs, a remote worker
    /// claiming up to --http-batch jobs per long poll and acknowledging each
    /// batch in one request; W2: `POST /v1/jobs`, latency to the claim's
    /// answer).
    #[arg(long, value_enum, default_value = "library")]
    via: Via,
    /// --via http: most jobs per claim (the remote worker's capacity; one ack
    /// request per claim).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=1000))]
    http_batch: u32,
    /// --via http: claim loops of the remote worker, each with its own long
    /// poll.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=64))]
    http_pollers: u32,
    /// Repetitions of each workload, each on a fresh database or schema; the
    /// report gives each run and the median (min–max).
    #[arg(long, value_name = "K", default_value_t = 3,
          value_parser = clap::value_parser!(u32).range(1..=1000))]
    runs: u32,
    /// Completed jobs put in the bench queue before each run's clock starts
    /// (bulk-inserted, then run by a no-op worker): a store that has been
    /// working a while. The figures count only the run's own jobs.
    #[arg(long, value_name = "N", default_value_t = 0)]
    preload: u32,
    /// Skip settling the preload (PostgreSQL: VACUUM (ANALYZE) of the jobs
    /// table and a CHECKPOINT before the clock starts), to measure a run
    /// that autovacuum and a checkpoint catch in the middle of their work.
    #[arg(long, requires = "preload")]
    no_settle: bool,
    /// W1: how many jobs.
    #[arg(long, default_value_t = 20_000, value_parser = clap::value_parser!(u32).range(1..))]
    jobs: u32,
    /// Jobs the worker runs at once [default: the library worker's, kyu::DEFAULT_CONCURRENCY].
    #[arg(long, default_value_t = kyu::DEFAULT_CONCURRENCY as u32,
          value_parser = clap::value_parser!(u32).range(1..=10000))]
    concurrency: u32,
    /// Jobs the worker claims ahead of its free slots (WorkerConfig::prefetch):
    /// off (the worker's default), auto (what it starts in 5 ms at its recent
    /// pace), or a number.
    #[arg(long, default_value = "off")]
    prefetch: kyu::Prefetch,
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
    /// survives power loss: one fsync per group commit) [default: the URL's
    /// ?synchronous=, else normal]. Refused on PostgreSQL.
    #[arg(long, value_parser = ["normal", "full"])]
    synchronous: Option<String>,
    /// SQLite: directory for the fresh database files (created if needed)
    /// [default: the directory of the named database, else a new temporary
    /// directory]. Refused on PostgreSQL.
    #[arg(long)]
    dir: Option<std::path::PathBuf>,
    /// Deprecated: use --database. Kept as an alias of --database for a
    /// postgres:// URL (it wins over --database, KYU_DATABASE_URL and
    /// kyu.toml); prints a warning.
    #[arg(long, value_name = "URL")]
    postgres: Option<String>,
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

/// A bench job's args: its index, the enqueue time (W2) and a warm-up mark.
#[derive(Serialize, Deserialize)]
struct BenchJob {
    i: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    t: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    w: Option<u8>,
}

/// `kyu bench`: resolve what to measure (or refuse), record the machine, run
/// each workload `--runs` times on fresh databases, print runs and summaries.
pub async fn run(ctx: &Ctx, a: BenchArgs) -> CmdResult {
    let target = target::Target::resolve(ctx, &a).await?;
    let machine = machine::Machine::probe(target.disk()).await;
    let workloads = match a.workload {
        Some(w) => vec![w],
        None => vec![Workload::W1, Workload::W2],
    };
    let settings = target.settings(&a);
    if !ctx.json {
        let names: Vec<_> = workloads.iter().map(|w| name(*w).to_uppercase()).collect();
        let shape = match a.via {
            Via::Library => format!(
                "via library; concurrency {}, prefetch {}",
                a.concurrency, a.prefetch
            ),
            Via::Http => format!(
                "via http (kyu serve; POST /v1/jobs/batch and POST /v1/jobs; a remote \
                 worker claiming up to {} per long poll, {} claim loop(s))",
                a.http_batch, a.http_pollers
            ),
        };
        println!(
            "kyu {} bench: {}, {} run(s) each; {shape}; preload {}",
            env!("CARGO_PKG_VERSION"),
            names.join(" and "),
            a.runs,
            a.preload
        );
        println!("backend: {}", target.describe());
        println!("machine: {}", machine.describe());
    }
    let mut rows: Vec<(Workload, serde_json::Value)> = Vec::new();
    // Interleaved as the peer harness does (run 1: W1, W2; run 2: …), so a
    // slow spell of the machine is spread over the workloads.
    for run in 1..=a.runs {
        for &w in &workloads {
            let fresh = target.fresh(run, w)?;
            let result = tokio::select! {
                r = workload::run(&a, w, &fresh) => r.map_err(Failure::from),
                _ = tokio::signal::ctrl_c() => Err(Failure {
                    code: 130,
                    error: anyhow!("interrupted; the bench database of run {run} was removed"),
                }),
            };
            let store = fresh.store.clone();
            fresh.remove().await;
            let mut row = result?;
            row["run"] = run.into();
            row["store"] = store;
            row["settings"] = settings.clone().into();
            if ctx.json {
                println!("{row}");
            } else {
                println!("{}", summary::run_line(w, run, &row));
            }
            rows.push((w, row));
        }
    }
    for &w in &workloads {
        let mine: Vec<_> = rows
            .iter()
            .filter(|(x, _)| *x == w)
            .map(|(_, r)| r.clone())
            .collect();
        let mut extra = serde_json::Map::new();
        extra.insert("store".into(), target.store());
        extra.insert(
            "machine".into(),
            serde_json::to_value(&machine).map_err(anyhow::Error::from)?,
        );
        let s = summary::summarize(w, &mine, extra);
        if ctx.json {
            println!("{s}");
        } else {
            println!("{}", summary::summary_line(w, &s));
        }
    }
    Ok(())
}

fn name(w: Workload) -> &'static str {
    match w {
        Workload::W1 => "w1",
        Workload::W2 => "w2",
    }
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
