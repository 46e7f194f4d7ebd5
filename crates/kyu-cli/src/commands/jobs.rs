//! `kyu jobs ls|show|cancel|retry`.

use clap::Subcommand;
use kyu::{CancelResult, JobFilter, JobId, JobRecord, JobState, RetryResult};

use super::{print_json, Ctx};
use crate::output::{cut, opt_time, time, Table};
use crate::{parse, CmdResult, Failure};

/// Job commands.
#[derive(Subcommand, Debug)]
pub enum JobsCommand {
    /// List jobs, newest first.
    #[command(after_help = "Examples:\n  \
kyu jobs ls --state failed --queue mail\n  \
kyu jobs ls --tag tenant:42 --limit 20\n  \
kyu jobs ls --before 1200        # the next page: ids below 1200")]
    Ls {
        /// Only jobs in this state (repeat for several): scheduled, available,
        /// running, completed, failed, cancelled.
        #[arg(long = "state", short = 's', value_parser = parse::state)]
        states: Vec<JobState>,
        /// Only this queue.
        #[arg(long, short)]
        queue: Option<String>,
        /// Only this kind.
        #[arg(long, short)]
        kind: Option<String>,
        /// Only jobs with this tag.
        #[arg(long, short)]
        tag: Option<String>,
        /// At most this many jobs (1 to 10000).
        #[arg(long, short, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=10000))]
        limit: u32,
        /// Only jobs with an id below this one (the cursor printed after a full page).
        #[arg(long)]
        before: Option<JobId>,
    },
    /// Show one job: args, state, attempts, progress, result, every attempt's error.
    Show {
        /// The job's id.
        id: JobId,
    },
    /// Show a command job's output (stdout and stderr of its attempts).
    #[command(
        after_help = "Examples:\n  kyu jobs logs 42\n  kyu jobs logs 42 --follow      # live, until the job finishes\n  kyu jobs logs 42 --attempt 1"
    )]
    Logs {
        /// The job's id.
        id: JobId,
        /// Keep printing new output until the job finishes.
        #[arg(long, short)]
        follow: bool,
        /// Only this attempt (default: the latest).
        #[arg(long)]
        attempt: Option<u32>,
    },
    /// Wait until a job ends: exit 0 if it completed (printing its result),
    /// 1 if it failed or was cancelled (printing its last error).
    Wait(super::events::WaitArgs),
    /// Cancel jobs: waiting ones never run; running ones are signalled and end cancelled.
    Cancel {
        /// The jobs' ids.
        #[arg(required = true)]
        ids: Vec<JobId>,
    },
    /// Run failed or cancelled jobs again.
    #[command(after_help = "Examples:\n  \
kyu jobs retry 42 43\n  \
kyu jobs retry --all-failed                  # the whole dead-letter set\n  \
kyu jobs retry --all-failed --queue mail --kind send_email")]
    Retry {
        /// The jobs' ids.
        #[arg(required_unless_present = "all_failed", conflicts_with = "all_failed")]
        ids: Vec<JobId>,
        /// Retry every failed job (narrow with --queue and --kind).
        #[arg(long)]
        all_failed: bool,
        /// With --all-failed: only this queue.
        #[arg(long, requires = "all_failed")]
        queue: Option<String>,
        /// With --all-failed: only this kind.
        #[arg(long, requires = "all_failed")]
        kind: Option<String>,
    },
}

pub async fn run(ctx: &Ctx, cmd: JobsCommand) -> CmdResult {
    let kyu = ctx.connect_existing().await?;
    match cmd {
        JobsCommand::Wait(args) => return super::events::wait(ctx, &kyu, args).await,
        JobsCommand::Ls {
            states,
            queue,
            kind,
            tag,
            limit,
            before,
        } => {
            let filter = JobFilter {
                states,
                queue,
                kind,
                tag,
                before,
                limit: limit as usize,
                ..JobFilter::default()
            };
            let page = kyu.list(&filter).await?;
            if ctx.json {
                return print_json(&serde_json::json!({"jobs": page.jobs, "next": page.next}));
            }
            if page.jobs.is_empty() {
                println!("no jobs match");
                return Ok(());
            }
            let mut t = Table::new(&[
                "ID", "STATE", "QUEUE", "KIND", "ATTEMPT", "PRIORITY", "RUN AT", "ARGS",
            ]);
            for j in &page.jobs {
                t.row(vec![
                    j.id.to_string(),
                    j.state.to_string(),
                    j.queue.clone(),
                    j.kind.clone(),
                    format!("{}/{}", j.attempt, j.max_attempts),
                    j.priority.to_string(),
                    time(&j.run_at),
                    cut(&j.args, 40),
                ]);
            }
            t.print();
            if let Some(next) = page.next {
                println!("more: kyu jobs ls --before {next}");
            }
        }
        JobsCommand::Show { id } => {
            let job = kyu.job(id).await?;
            if ctx.json {
                return print_json(&job);
            }
            // A job stored without a timeout gets its kind's from kyu.toml
            // (the worker's rule); show the one that applies.
            let kind_timeout = match job.timeout {
                Some(_) => None,
                None => ctx
                    .config()
                    .ok()
                    .flatten()
                    .and_then(|(c, _)| c.jobs.get(&job.kind).and_then(|k| k.timeout)),
            };
            let waiting = if runnable(&job) && !kyu.handled(&job.queue, &job.kind).await? {
                Some(no_worker(&job.queue, &job.kind))
            } else {
                None
            };
            print!("{}", describe(&job, waiting.as_deref(), kind_timeout));
        }
        JobsCommand::Logs {
            id,
            follow,
            attempt,
        } => logs(ctx, &kyu, id, follow, attempt).await?,
        JobsCommand::Cancel { ids } => {
            let results = kyu.cancel(&ids).await?;
            report(ctx, "cancelled", &ids, &results, |r| match r {
                CancelResult::Cancelled => Said::Done("cancelled".into()),
                CancelResult::Requested => {
                    Said::Done("running: cancel requested, its worker stops it".into())
                }
                // Cancelling twice is not an error: the job is where it was asked to be.
                CancelResult::AlreadyFinished(JobState::Cancelled) => {
                    Said::Done("already cancelled; nothing to do".into())
                }
                CancelResult::AlreadyFinished(s) => Said::Refused(format!(
                    "not cancelled: it is already {s}; only unfinished jobs can be cancelled"
                )),
                CancelResult::NotFound => Said::NotFound,
                // A result a newer kyu-core adds: said as it is, never as done.
                other => Said::Refused(format!("not cancelled: {other:?}")),
            })?;
        }
        JobsCommand::Retry {
            ids,
            all_failed,
            queue,
            kind,
        } => {
            if all_failed {
                let out = kyu.retry_failed(queue.as_deref(), kind.as_deref()).await?;
                let n = out.retried;
                if ctx.json {
                    print_json(&out)?;
                } else {
                    println!("retried {n} failed job{}", if n == 1 { "" } else { "s" });
                    for h in &out.key_held {
                        println!("job {}: not retried: {}", h.id, key_held(&h.key, h.holder));
                    }
                }
                refused(out.key_held.len())?;
            } else {
                let results = kyu.retry(&ids).await?;
                report(ctx, "retried", &ids, &results, |r| match r {
                    RetryResult::Retried => Said::Done("retried: available again".into()),
                    RetryResult::NotRetryable(s) => Said::Refused(format!(
                        "not retried: it is {s}; only failed or cancelled jobs can be retried"
                    )),
                    RetryResult::KeyHeld { key, holder } => {
                        Said::Refused(format!("not retried: {}", key_held(key, *holder)))
                    }
                    RetryResult::NotFound => Said::NotFound,
                    other => Said::Refused(format!("not retried: {other:?}")),
                })?;
            }
        }
    }
    Ok(())
}

/// Why a job was not retried: its unique key is held.
fn key_held(key: &str, holder: JobId) -> String {
    format!(
        "unfinished job {holder} holds its unique key {key} \
         (retry it once job {holder} has finished, or cancel job {holder})"
    )
}

/// Exit 1 when a retry left jobs as they were because their key is held.
fn refused(n: usize) -> CmdResult {
    if n == 0 {
        return Ok(());
    }
    Err(Failure {
        code: 1,
        error: anyhow::anyhow!(
            "{n} job{} not retried: {} unique key is held by another unfinished job",
            if n == 1 { "" } else { "s" },
            if n == 1 { "its" } else { "each one's" }
        ),
    })
}

/// What an action did with one id.
enum Said {
    /// Done (or already so): the line to print.
    Done(String),
    /// Refused: why, naming what is accepted.
    Refused(String),
    /// No job has the id.
    NotFound,
}

/// Prints one line per id (`--json`: one object per id with `"done"` and the
/// reason); exits 3 if any id was not found, else 1 if any was refused, so a
/// script can tell.
fn report<R: serde::Serialize>(
    ctx: &Ctx,
    verb: &str,
    ids: &[JobId],
    results: &[R],
    say: impl Fn(&R) -> Said,
) -> CmdResult {
    let mut missing = Vec::new();
    let mut refused = Vec::new();
    let mut rows = Vec::new();
    for (id, r) in ids.iter().zip(results) {
        let (done, message) = match say(r) {
            Said::Done(line) => (true, line),
            Said::Refused(why) => {
                refused.push(id.to_string());
                (false, why)
            }
            Said::NotFound => {
                missing.push(id.to_string());
                (false, format!("no job with id {id}"))
            }
        };
        if ctx.json {
            rows.push(
                serde_json::json!({"id": id, "done": done, "outcome": r, "message": message}),
            );
        } else if !missing.last().is_some_and(|m| *m == id.to_string()) {
            println!("job {id}: {message}");
        }
    }
    if ctx.json {
        print_json(&rows)?;
    }
    if !missing.is_empty() {
        return Err(Failure::not_found(format!(
            "no job with id {}",
            missing.join(", ")
        )));
    }
    if !refused.is_empty() {
        return Err(Failure {
            code: 1,
            error: anyhow::anyhow!(
                "{} of {} job(s) not {verb}: {} (see above)",
                refused.len(),
                ids.len(),
                refused.join(", ")
            ),
        });
    }
    Ok(())
}

/// Whether a job is waiting to be claimed now (available, or scheduled and due).
fn runnable(j: &JobRecord) -> bool {
    j.state == JobState::Available
        || (j.state == JobState::Scheduled && j.run_at <= chrono::Utc::now())
}

/// Why a runnable job waits: no live worker claims its kind on its queue.
pub fn no_worker(queue: &str, kind: &str) -> String {
    format!("no live worker handles kind {kind} on queue {queue}")
}

/// The `kyu jobs show` text. `waiting` says why a runnable job is not taken;
/// `kind_timeout` is the kind's timeout in kyu.toml, which applies when the
/// job has none of its own.
pub fn describe(
    j: &JobRecord,
    waiting: Option<&str>,
    kind_timeout: Option<std::time::Duration>,
) -> String {
    let mut s = String::new();
    let mut line = |k: &str, v: String| s.push_str(&format!("{k:<13}{v}\n"));
    line("id", j.id.to_string());
    line("state", j.state.to_string());
    if let Some(w) = waiting {
        line("waiting", w.to_string());
    }
    line("queue", j.queue.clone());
    line("kind", j.kind.clone());
    line("args", j.args.clone());
    line("priority", j.priority.to_string());
    line("attempt", format!("{} of {}", j.attempt, j.max_attempts));
    line("retry", serde_json::to_string(&j.retry).unwrap_or_default());
    let human = |t: std::time::Duration| humantime::format_duration(t).to_string();
    line(
        "timeout",
        match (j.timeout, kind_timeout) {
            (Some(t), _) => human(t),
            (None, Some(t)) => format!("{} (kind {} in kyu.toml)", human(t), j.kind),
            (None, None) => "none".into(),
        },
    );
    if let Some(k) = &j.unique_key {
        line("unique key", k.clone());
    }
    if let Some(k) = &j.rate_key {
        line("rate key", k.clone());
    }
    if !j.tags.is_empty() {
        line("tags", j.tags.join(", "));
    }
    if let Some(b) = j.batch_id {
        line("batch", format!("{b} (kyu batches show {b})"));
    }
    line("created", time(&j.created_at));
    line("run at", time(&j.run_at));
    line("attempted", opt_time(&j.attempted_at));
    line("finished", opt_time(&j.finished_at));
    if let Some(w) = &j.worker {
        line("worker", w.clone());
    }
    if j.state == JobState::Running {
        line("lease until", opt_time(&j.lease_expires_at));
    }
    if j.cancel_requested {
        line("cancel", "requested".into());
    }
    if let Some(p) = &j.progress {
        line("progress", format!("{}% {}", p.percent, p.message));
    }
    if let Some(r) = &j.result {
        line("result", r.clone());
    }
    if !j.errors.is_empty() {
        s.push_str("errors:\n");
        for e in &j.errors {
            s.push_str(&format!(
                "  attempt {} at {} on {}: {}\n",
                e.attempt,
                time(&e.at),
                e.worker,
                e.message
            ));
        }
    }
    s
}

/// `kyu jobs logs`: prints the output; with `follow`, prints what is new
/// every half second until the job finishes.
async fn logs(
    ctx: &Ctx,
    kyu: &kyu::Kyu,
    id: JobId,
    follow: bool,
    attempt: Option<u32>,
) -> CmdResult {
    use std::io::Write;
    let pick = |all: Vec<kyu::AttemptLogs>| match attempt {
        Some(a) => all.into_iter().find(|l| l.attempt == a),
        None => all.into_iter().last(),
    };
    if !follow {
        let logs = pick(kyu.logs(id).await?);
        if ctx.json {
            return print_json(&logs);
        }
        match logs {
            Some(l) => {
                print!("{}", l.stdout);
                eprint!("{}", l.stderr);
            }
            None => eprintln!("job {id} has no recorded output"),
        }
        return Ok(());
    }
    // Bytes printed so far of each stream, per attempt.
    let mut shown: (u32, u64, u64) = (0, 0, 0);
    loop {
        let finished = kyu.job(id).await?.state.is_finished();
        if let Some(l) = pick(kyu.logs(id).await?) {
            if l.attempt != shown.0 {
                if shown.0 != 0 {
                    eprintln!("--- attempt {} ---", l.attempt);
                }
                shown = (l.attempt, 0, 0);
            }
            print!(
                "{}",
                kyu::AttemptLogs::new_part(&l.stdout, l.stdout_bytes, shown.1)
            );
            eprint!(
                "{}",
                kyu::AttemptLogs::new_part(&l.stderr, l.stderr_bytes, shown.2)
            );
            let _ = std::io::stdout().flush();
            shown.1 = l.stdout_bytes;
            shown.2 = l.stderr_bytes;
        }
        if finished {
            return Ok(());
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
}
