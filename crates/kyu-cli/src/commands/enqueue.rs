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
kyu enqueue sync --jsonl < users.jsonl                  # one job per line, in bulk\n  \
kyu enqueue import_row --batch --on-complete 'report:{\"file\":\"users.csv\"}' < rows.jsonl\n  \
kyu enqueue import_row --batch --open < part1.jsonl     # prints the batch id; the batch stays open\n  \
kyu enqueue import_row --batch-id 7 --seal < part2.jsonl  # adds to open batch 7, then seals it")]
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
    /// Like --jsonl, but the jobs form a new batch: prints the batch id. The
    /// batch is sealed once every line is in (unless --open), and its
    /// callbacks run when every job has finished: see --on-complete and
    /// --on-success, and `kyu batches show ID`.
    #[arg(long, conflicts_with_all = ["args", "jsonl", "batch_id", "unique_key", "unique_for"])]
    batch: bool,
    /// Like --jsonl, but the jobs are added to the open batch ID (made by
    /// `--batch --open`); with --seal the batch is sealed after them.
    #[arg(long, value_name = "ID", conflicts_with_all = ["args", "jsonl", "unique_key", "unique_for"])]
    batch_id: Option<i64>,
    /// With --batch: the job enqueued once when every job of the batch has
    /// finished, whatever the outcome: KIND or KIND:JSON (its args, an
    /// object; kyu adds "batch": {id, total, succeeded, failed, cancelled}).
    #[arg(long, value_name = "KIND[:JSON]", requires = "batch")]
    on_complete: Option<String>,
    /// With --batch: the job enqueued once when every job of the batch has
    /// succeeded (KIND or KIND:JSON, as --on-complete).
    #[arg(long, value_name = "KIND[:JSON]", requires = "batch")]
    on_success: Option<String>,
    /// The queue of the callbacks. Default: the jobs' queue (--queue).
    #[arg(long, value_name = "QUEUE", requires = "batch")]
    callback_queue: Option<String>,
    /// With --batch: leave the batch open, to add more with --batch-id ID
    /// and seal it later (`kyu batches seal ID`).
    #[arg(long, requires = "batch", conflicts_with = "seal")]
    open: bool,
    /// With --batch-id: seal the batch after these jobs.
    #[arg(long, requires = "batch_id")]
    seal: bool,
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
    /// The job's rate key: its queue's rate (`kyu queues set QUEUE --rate`)
    /// allows that many starts per key, e.g. one window per tenant. Wins
    /// over the queue's --rate-key path; without either, the job shares the
    /// "no key" window. 1 to 512 bytes.
    #[arg(long, value_name = "KEY")]
    rate_key: Option<String>,
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
    if let Some(k) = a.rate_key {
        kyu::rate_key::check_rate_key("--rate-key", &k).map_err(kyu::Error::from)?;
        job = job.rate_key(k);
    }
    warn_if_undeclared(ctx, &a.kind)?;
    if a.jsonl {
        return super::enqueue_jsonl::run(ctx, job, std::io::stdin().lock(), None).await;
    }
    if a.batch || a.batch_id.is_some() {
        let target = match a.batch_id {
            Some(id) => super::enqueue_jsonl::BatchTarget::Existing { id, seal: a.seal },
            None => {
                let queue = a.callback_queue.as_deref().unwrap_or(&job.queue);
                let callback = |flag: &str, v: &Option<String>| {
                    v.as_deref()
                        .map(|v| super::batches::parse_callback(flag, v, queue))
                        .transpose()
                };
                let batch = kyu::NewBatch {
                    on_complete: callback("--on-complete", &a.on_complete)?,
                    on_success: callback("--on-success", &a.on_success)?,
                };
                batch
                    .validate(&kyu::Limits::default())
                    .map_err(kyu::Error::from)?;
                super::enqueue_jsonl::BatchTarget::New {
                    batch: Box::new(batch),
                    seal: !a.open,
                }
            }
        };
        return super::enqueue_jsonl::run(ctx, job, std::io::stdin().lock(), Some(target)).await;
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
