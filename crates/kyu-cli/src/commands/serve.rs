//! `kyu serve` and `kyu worker`.

use std::collections::BTreeMap;

use clap::Args;
use kyu::{Worker, WorkerConfig};

use super::Ctx;
use crate::CmdResult;

/// Options of `kyu serve` and `kyu worker`.
#[derive(Args, Debug)]
#[command(
    after_help = "The jobs, queues and schedules come from the config file \
(./kyu.toml, or --config). SIGTERM or Ctrl-C stops claiming, lets running commands \
finish within the grace period ([worker] shutdown_grace, default 10s), then stops \
them and releases their jobs to other workers.\n\nExamples:\n  kyu serve\n  \
kyu --config /etc/kyu/kyu.toml serve\n  kyu worker --queue default=8   # another process on the same database"
)]
pub struct ServeArgs {
    /// Work a queue with this concurrency, NAME=N (repeatable); overrides kyu.toml.
    #[arg(long = "queue", value_name = "NAME=N", value_parser = parse_queue)]
    queues: Vec<(String, usize)>,
}

fn parse_queue(s: &str) -> Result<(String, usize), String> {
    let accepted = "accepted: NAME=N with N at least 1, e.g. default=8";
    let (name, n) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?} is not a queue setting; {accepted}"))?;
    let n: usize = n
        .parse()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| format!("{s:?}: {n:?} is not a concurrency; {accepted}"))?;
    kyu::validate::queue_name("--queue", name).map_err(|e| e.to_string())?;
    Ok((name.to_string(), n))
}

pub async fn run(ctx: &Ctx, args: ServeArgs, serve: bool) -> CmdResult {
    let url = ctx.database()?;
    let loaded = ctx.config()?;
    let kyu = ctx.connect().await?;
    let (config, base) =
        loaded.unwrap_or_else(|| (Default::default(), std::path::PathBuf::from(".")));

    let mut queues: BTreeMap<String, usize> = BTreeMap::new();
    for (name, q) in &config.queues {
        queues.insert(name.clone(), q.concurrency);
        if q.paused {
            kyu.pause(name).await?;
        }
    }
    for kind in config.jobs.values() {
        queues.entry(kind.queue.clone()).or_insert(10);
    }
    for (name, n) in args.queues {
        queues.insert(name, n);
    }
    if queues.is_empty() {
        queues.insert("default".into(), 10);
    }

    let mut worker_config = WorkerConfig::default();
    if let Some(g) = config.worker.shutdown_grace {
        worker_config.shutdown_grace = g;
    }
    if let Some(l) = config.worker.lease {
        worker_config.lease = l;
        worker_config.heartbeat_every = l / 3;
    }
    if let (Some(keep), Some(m)) = (config.events.retention, worker_config.maintenance.as_mut()) {
        m.keep_events = keep;
    }
    if !serve {
        // Lease recovery stays on in `kyu worker`: a fleet of workers alone
        // must still rescue the jobs of one that died. Retention is left to
        // `kyu serve`.
        if let Some(m) = worker_config.maintenance.as_mut() {
            m.retention = false;
        }
    }
    // Commands run in their own directory: the URL is absolute
    // (`Ctx::database`), so they open the same database.
    let child_url = url.clone();
    let mut worker = Worker::new(&kyu);
    let mut longest_stop = std::time::Duration::ZERO;
    for name in config.jobs.keys() {
        let mut spec = config
            .command_spec(name, &base)
            .expect("the kind is in the config");
        spec.env
            .entry("KYU_DATABASE_URL".into())
            .or_insert_with(|| child_url.clone());
        longest_stop = longest_stop.max(spec.stop_grace);
        worker = worker.command(name.clone(), spec);
    }
    // A cancelled command gets its whole SIGTERM grace before the worker gives up on it.
    worker_config.cancel_grace = worker_config
        .cancel_grace
        .max(longest_stop + std::time::Duration::from_secs(2));
    for (name, n) in &queues {
        worker = worker.queue(name.clone(), *n);
    }
    // `kyu serve` declares the [[schedules]] of kyu.toml (upsert by name: a
    // restart neither skips nor repeats a fire time) and runs the scheduler;
    // any number of `kyu serve` processes may do so on one database.
    let (scheduler, schedules) = if serve {
        let (scheduler, line) = super::schedules::start_scheduler(&kyu, &config).await?;
        (Some(scheduler), line)
    } else {
        (None, "none (kyu serve runs them)".to_string())
    };
    let handle = worker.config(worker_config).try_start()?;
    let kinds: Vec<&String> = config.jobs.keys().collect();
    let queue_list: Vec<String> = queues.iter().map(|(q, n)| format!("{q}={n}")).collect();
    let line = format!(
        "kyu {} started: database {}; queues {}; command kinds {}; schedules {}",
        if serve { "serve" } else { "worker" },
        kyu::postgres::redact_url(&url),
        queue_list.join(", "),
        if kinds.is_empty() {
            "none".to_string()
        } else {
            kinds
                .iter()
                .map(|k| k.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        },
        schedules,
    );
    tracing::info!("{line}");
    eprintln!("{line}");
    kyu::wait_for_signal().await;
    if let Some(s) = scheduler {
        s.shutdown().await;
    }
    handle.shutdown().await;
    eprintln!("kyu stopped");
    Ok(())
}
