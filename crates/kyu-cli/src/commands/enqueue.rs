//! `kyu enqueue`.

use std::io::Read;
use std::time::Duration;

use chrono::{DateTime, Utc};
use clap::Args;

use super::{print_json, Ctx, JobFlags};
use crate::{parse, CmdResult, Failure};

/// Enqueue one job, or many with --jsonl.
#[derive(Args, Debug)]
#[command(after_help = "Examples:\n  \
kyu enqueue send_email '{\"to\":\"ada@example.com\"}'\n  \
kyu enqueue report '{\"month\":\"2026-11\"}' --queue reports --delay 10m --priority -1\n  \
echo '{\"user\":42}' | kyu enqueue sync -\n  \
kyu enqueue sync '{\"user\":42}' --unique-key sync:42   # a second call returns the first job\n  \
kyu enqueue sync --jsonl < users.jsonl                  # one job per line, in bulk")]
pub struct EnqueueArgs {
    /// The job's kind: which handler runs it.
    kind: String,
    /// The args as JSON text; `-` reads them from stdin. Default `{}`.
    #[arg(conflicts_with = "jsonl")]
    args: Option<String>,
    /// Enqueue one job per line of stdin, each line the args of one job (JSON
    /// Lines; blank lines are skipped). Every line is checked before anything
    /// is written; then the jobs go in, one transaction per 1,000 lines.
    /// The other options apply to every job.
    #[arg(long, conflicts_with_all = ["unique_key", "unique_for"])]
    jsonl: bool,
    /// Run no earlier than this long from now, e.g. 30s, 5m, 1h.
    #[arg(long, allow_hyphen_values = true, value_parser = parse::duration, conflicts_with = "run_at")]
    delay: Option<Duration>,
    /// Run no earlier than this RFC 3339 time, e.g. 2026-11-25T09:00:00Z.
    #[arg(long, value_parser = parse::time)]
    run_at: Option<DateTime<Utc>>,
    /// A second enqueue with this key returns the first job while it is unfinished.
    #[arg(long)]
    unique_key: Option<String>,
    /// With --unique-key: the key holds for this long after the first enqueue, finished or not.
    #[arg(long, allow_hyphen_values = true, value_parser = parse::duration, requires = "unique_key")]
    unique_for: Option<Duration>,
    #[command(flatten)]
    job: JobFlags,
}

pub async fn run(ctx: &Ctx, a: EnqueueArgs) -> CmdResult {
    let args = match a.args.as_deref() {
        Some("-") => {
            let mut s = String::new();
            std::io::stdin()
                .read_to_string(&mut s)
                .map_err(|e| Failure::invalid(format!("could not read args from stdin: {e}")))?;
            s
        }
        Some(args) => args.to_string(),
        None => "{}".to_string(),
    };
    let mut job = a.job.build(ctx, &a.kind, args)?;
    if let Some(d) = a.delay {
        let d = chrono::Duration::from_std(d)
            .map_err(|_| Failure::invalid(format!("--delay {d:?} is too long")))?;
        job = job.run_at(Utc::now() + d);
    }
    if let Some(at) = a.run_at {
        job = job.run_at(at);
    }
    match (a.unique_key, a.unique_for) {
        (Some(k), Some(w)) => job = job.unique_for(k, w),
        (Some(k), None) => job = job.unique_key(k),
        _ => {}
    }
    warn_if_undeclared(ctx, &a.kind)?;
    if a.jsonl {
        return super::enqueue_jsonl::run(ctx, job, std::io::stdin().lock()).await;
    }
    // Validate before opening the database: bad input never creates a file.
    job.validate(&kyu::Limits::default())
        .map_err(kyu::Error::from)?;
    let kyu = ctx.connect().await?;
    let queue = job.queue.clone();
    let enqueued = kyu.enqueue(job).await?;
    if ctx.json {
        print_json(&enqueued)?;
    } else if enqueued.duplicate {
        println!(
            "job {} already exists with that unique key; nothing enqueued",
            enqueued.id
        );
    } else {
        println!("enqueued job {} on queue {queue}", enqueued.id);
    }
    Ok(())
}

/// A kind that kyu.toml does not declare is still accepted (a Rust worker or
/// another host's kyu.toml may run it), but the user hears that `kyu serve`
/// with this file will not.
fn warn_if_undeclared(ctx: &Ctx, kind: &str) -> Result<(), Failure> {
    if let Some((config, _)) = ctx.config()? {
        if !config.jobs.contains_key(kind) {
            eprintln!(
                "warning: the config file declares no [jobs.{kind}]: `kyu serve` with it will not \
                 run this job; it waits for a worker that handles kind {kind}"
            );
        }
    }
    Ok(())
}
