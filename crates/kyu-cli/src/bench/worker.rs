//! The worker half of `kyu bench` (`kyu bench-worker`, a child process): it
//! runs the no-op jobs when told to start and reports what it saw on stdout.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{anyhow, Context};
use clap::Args;
use kyu::{JobState, Outcome, Worker};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, BufReader};

use super::{count, max_rss_mib, mono_ns, BenchJob, Workload, KIND, QUEUE};
use crate::commands::Ctx;
use crate::CmdResult;

/// The worker half, started by `kyu bench`.
#[derive(Args, Debug)]
pub struct WorkerArgs {
    #[arg(long, value_enum)]
    pub(super) workload: Workload,
    #[arg(long)]
    pub(super) total: u32,
    #[arg(long)]
    pub(super) warmup: u32,
    #[arg(long)]
    pub(super) concurrency: u32,
    #[arg(long)]
    pub(super) prefetch: kyu::Prefetch,
    #[arg(long)]
    pub(super) timeout_s: u64,
    /// Completed jobs already in the queue, not counted as this run's.
    #[arg(long, default_value_t = 0)]
    pub(super) preload: u64,
}

/// What the worker process reports at the end of a workload.
#[derive(Serialize, Deserialize, Debug)]
pub(super) struct WorkerReport {
    /// This run's jobs the store reports completed (the preload not counted).
    pub done: u64,
    pub process_s: f64,
    pub last_handler_s: Option<f64>,
    pub duplicates: u64,
    pub timed_out: bool,
    pub latencies_ms: Vec<Option<f64>>,
    pub max_rss_mib: f64,
}

/// What the handler records, shared with the report.
struct Seen {
    total: usize,
    seen: Vec<AtomicBool>,
    distinct: AtomicUsize,
    duplicates: AtomicUsize,
    warm: AtomicUsize,
    latencies_ms: Mutex<Vec<Option<f64>>>,
    last_ns: AtomicU64,
    all: tokio::sync::Notify,
    warm_done: tokio::sync::Notify,
}

/// `kyu bench-worker`: waits for "start" on stdin, runs the workload's jobs,
/// prints its [`WorkerReport`] as one JSON line, and stops on the next line.
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
        .configure(|c| c.prefetch = a.prefetch)
        .start();
    // The store's completed count includes the preloaded jobs.
    let expected_done = a.preload
        + match a.workload {
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
        done: done.saturating_sub(a.preload),
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
