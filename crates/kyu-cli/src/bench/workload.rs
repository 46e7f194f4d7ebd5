//! The producer half of W1 and W2, and the preload before them: this process
//! enqueues, a child `kyu bench-worker` runs the jobs.

use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, Context};
use kyu::{JobState, Kyu, NewJob, Outcome, Worker};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

use super::worker::WorkerReport;
use super::{count, mono_ns, name, percentile, round, BenchArgs, BenchJob, Via, Workload};
use super::{KIND, PRELOAD_KIND, QUEUE};

/// Runs workload `w` once on the fresh database `url`: one row, the peers' shape.
pub(super) async fn run(
    a: &BenchArgs,
    w: Workload,
    fresh: &super::target::Fresh,
) -> anyhow::Result<serde_json::Value> {
    let url = fresh.url.as_str();
    let kyu = Kyu::connect(url).await?;
    preload(&kyu, a.preload).await?;
    let settled = a.preload > 0 && !a.no_settle && fresh.settle().await?;
    // What the store holds when the clock starts, as it reports it.
    let preloaded = count(&kyu, JobState::Completed).await?;
    let mut row = match (a.via, w) {
        (Via::Library, Workload::W1) => w1(a, &kyu, url).await?,
        (Via::Library, Workload::W2) => w2(a, &kyu, url).await?,
        (Via::Http, Workload::W1) => super::http::w1(a, &kyu, url, preloaded).await?,
        (Via::Http, Workload::W2) => super::http::w2(a, &kyu, url, preloaded).await?,
    };
    row["preload"] = preloaded.into();
    if a.preload > 0 {
        row["preload_settled"] = settled.into();
    }
    Ok(row)
}

/// Puts `n` completed jobs in the bench queue before the clock starts, so a
/// run measures a store that has been working a while (bigger tables and
/// indexes). Bulk insert, then a no-op worker in this process; the public API
/// has no faster way to write finished jobs.
async fn preload(kyu: &Kyu, n: u32) -> anyhow::Result<()> {
    if n == 0 {
        return Ok(());
    }
    const CHUNK: u32 = 5_000;
    let mut i = 0;
    while i < n {
        let end = (i + CHUNK).min(n);
        let jobs: Vec<NewJob> = (i..end)
            .map(|_| NewJob::from_json_text(PRELOAD_KIND, "{}".to_string()).queue(QUEUE))
            .collect();
        kyu.enqueue_many(jobs).await.context("preload: inserting")?;
        i = end;
    }
    let worker = Worker::new(kyu)
        .handle(PRELOAD_KIND, |_| async { Ok(Outcome::Done) })
        .queue(QUEUE, 100)
        .configure(|c| c.prefetch = kyu::Prefetch::Fixed(500))
        .start();
    // Bounded by progress, not by size: a big preload may take a while, a
    // stuck one is reported.
    let mut last = (0, tokio::time::Instant::now());
    let result = loop {
        let done = count(kyu, JobState::Completed).await?;
        if done >= n as u64 {
            break Ok(());
        }
        if done > last.0 {
            last = (done, tokio::time::Instant::now());
        } else if last.1.elapsed() > Duration::from_secs(30) {
            break Err(anyhow::anyhow!(
                "preload: stuck at {done} of {n} jobs completed for 30 s"
            ));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    worker.shutdown().await;
    result
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
            // The environment, not an argument: a password in the URL stays
            // out of `ps`.
            .env("KYU_DATABASE_URL", url)
            .args(["bench-worker", "--workload", name(w)])
            .args([
                "--total",
                &total.to_string(),
                "--warmup",
                &warmup.to_string(),
            ])
            .args(["--concurrency", &a.concurrency.to_string()])
            .args(["--prefetch", &a.prefetch.to_string()])
            .args(["--timeout-s", &a.timeout_s.to_string()])
            .args(["--preload", &a.preload.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .context("could not start the bench worker process")?;
        let stdin = child.stdin.take().context("the worker's stdin")?;
        let stdout = child.stdout.take().context("the worker's stdout")?;
        Ok(WorkerProcess {
            child,
            stdin,
            lines: BufReader::new(stdout).lines(),
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

    async fn report(&mut self) -> anyhow::Result<WorkerReport> {
        let line = self.expect("{").await?;
        serde_json::from_str(&line).context("the bench worker's report")
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
    if a.prefetch != kyu::Prefetch::Off {
        format!("c{}+prefetch-{}", a.concurrency, a.prefetch)
    } else {
        format!("c{}", a.concurrency)
    }
}

async fn w1(a: &BenchArgs, kyu: &Kyu, url: &str) -> anyhow::Result<serde_json::Value> {
    let n = a.jobs;
    let mut worker = WorkerProcess::start(url, Workload::W1, n, 0, a).await?;
    worker.expect("ready").await?;
    let t0 = std::time::Instant::now();
    let mut i = 0;
    while i < n {
        let end = (i + a.chunk).min(n);
        let jobs: Vec<NewJob> = (i..end)
            .map(|i| NewJob::new(KIND, serde_json::json!({ "i": i })).queue(QUEUE))
            .collect();
        kyu.enqueue_many(jobs).await?;
        i = end;
    }
    let enqueue_s = t0.elapsed().as_secs_f64();
    let queued = count(kyu, JobState::Available).await?;
    if queued != n as u64 {
        bail!("after enqueue the store holds {queued} available jobs, expected {n}");
    }
    worker.send("start").await?;
    let r = worker.report().await?;
    worker.stop().await?;
    Ok(serde_json::json!({
        "system": "kyu", "version": env!("CARGO_PKG_VERSION"), "backend": kyu.store().backend(),
        "workload": "W1", "via": "library", "config": config_name(a),
        "n": n, "concurrency": a.concurrency, "bulk_api": "Kyu::enqueue_many", "bulk_chunk": a.chunk,
        "enqueue_per_s": round(n as f64 / enqueue_s, 0),
        "process_per_s": round(r.done as f64 / r.process_s, 0),
        "enqueue_s": round(enqueue_s, 3), "process_s": round(r.process_s, 3),
        "last_handler_s": r.last_handler_s.map(|s| round(s, 3)),
        "completed": r.done, "timed_out": r.timed_out, "duplicates": r.duplicates,
        "worker_max_rss_mib": round(r.max_rss_mib, 1),
    }))
}

async fn w2(a: &BenchArgs, kyu: &Kyu, url: &str) -> anyhow::Result<serde_json::Value> {
    let n = a.w2_jobs;
    let mut worker = WorkerProcess::start(url, Workload::W2, n, a.w2_warmup, a).await?;
    worker.expect("ready").await?;
    worker.send("start").await?;
    worker.expect("started").await?;
    tokio::time::sleep(Duration::from_secs(1)).await; // the worker sits idle
    let interval = Duration::from_millis(a.w2_interval_ms);
    if a.w2_warmup > 0 {
        paced(kyu, a.w2_warmup, interval, true).await?;
    }
    worker.expect("warmdone").await?;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let span = paced(kyu, n, interval, false).await?;
    let r = worker.report().await?;
    worker.stop().await?;
    let fields = [
        ("concurrency", a.concurrency.into()),
        ("single_api", "Kyu::enqueue".into()),
        ("worker_max_rss_mib", round(r.max_rss_mib, 1).into()),
    ];
    let measured = W2Measured {
        latencies_ms: r.latencies_ms,
        span_s: span,
        completed: r.done.saturating_sub(a.w2_warmup as u64),
        timed_out: r.timed_out,
        duplicates: r.duplicates,
    };
    Ok(w2_row(a, kyu, "library", config_name(a), &fields, measured))
}

/// What one W2 run measured, however its jobs were enqueued and run.
pub(super) struct W2Measured {
    /// Each measured job's latency in ms; `None`: it had not started in time.
    pub latencies_ms: Vec<Option<f64>>,
    /// Seconds from the first measured enqueue to the last.
    pub span_s: f64,
    /// Measured jobs completed (the warm-up's not counted).
    pub completed: u64,
    /// Whether the run gave up waiting for its jobs.
    pub timed_out: bool,
    /// Jobs a worker saw more than once.
    pub duplicates: u64,
}

/// The W2 row, in one shape for every `via`: the fields every W2 row has,
/// then `fields` (what only this way of running W2 reports).
/// The latency figures are given only when every one of the `--w2-jobs`
/// jobs started in time; otherwise they are null and the row says it was
/// saturated, since figures of the jobs that made it would flatter it.
pub(super) fn w2_row(
    a: &BenchArgs,
    kyu: &Kyu,
    via: &str,
    config: String,
    fields: &[(&str, serde_json::Value)],
    m: W2Measured,
) -> serde_json::Value {
    let n = a.w2_jobs;
    let mut lat: Vec<f64> = m.latencies_ms.into_iter().flatten().collect();
    lat.sort_by(f64::total_cmp);
    let full = lat.len() == n as usize && !m.timed_out;
    let pick = |v: f64| if full { Some(round(v, 2)) } else { None };
    let mut row = serde_json::json!({
        "system": "kyu", "version": env!("CARGO_PKG_VERSION"), "backend": kyu.store().backend(),
        "workload": "W2", "via": via, "config": config,
        "n": n, "interval_ms": a.w2_interval_ms, "warmup": a.w2_warmup,
        "p50_ms": if full { pick(percentile(&lat, 50.0)) } else { None },
        "p99_ms": if full { pick(percentile(&lat, 99.0)) } else { None },
        "max_ms": if full { pick(*lat.last().unwrap_or(&0.0)) } else { None },
        "mean_ms": if full { pick(lat.iter().sum::<f64>() / lat.len() as f64) } else { None },
        "enqueue_span_s": round(m.span_s, 3),
        "measured": lat.len(), "completed": m.completed,
        "timed_out": m.timed_out, "duplicates": m.duplicates,
    });
    for (k, v) in fields {
        row[*k] = v.clone();
    }
    if !full {
        row["saturated"] = true.into();
        row["note"] = format!("only {} of {n} jobs had started in time", lat.len()).into();
    }
    row
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
        kyu.enqueue(NewJob::from_json_text(KIND, args).queue(QUEUE))
            .await?;
    }
    Ok(start.elapsed().as_secs_f64())
}
