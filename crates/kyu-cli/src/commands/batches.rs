//! `kyu batches show|ls|seal`, and the callback flags of `kyu enqueue --batch`.

use clap::Subcommand;

use super::{print_json, Ctx};
use crate::output::{opt_time, time, Table};
use crate::{CmdResult, Failure};

/// Batch commands.
#[derive(Subcommand, Debug)]
pub enum BatchesCommand {
    /// Show a batch: total, pending, running, succeeded, failed, cancelled,
    /// whether it is sealed and done, and its callback jobs.
    Show {
        /// The batch id (printed by `kyu enqueue --batch`).
        id: i64,
    },
    /// List the newest batches with their counts.
    Ls {
        /// At most this many.
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
    /// Seal an open batch: no job can be added after; its callbacks run
    /// once every job has finished (at once if they all have).
    Seal {
        /// The batch id.
        id: i64,
    },
}

/// Parses a callback flag's `KIND` or `KIND:JSON` into a job on `queue`.
pub fn parse_callback(flag: &str, value: &str, queue: &str) -> Result<kyu::NewJob, Failure> {
    let (kind, args) = match value.split_once(':') {
        Some((k, a)) => (k.trim(), a.trim()),
        None => (value.trim(), "{}"),
    };
    let parsed: serde_json::Value = serde_json::from_str(args).map_err(|e| {
        Failure::invalid(format!(
            "{flag} {value:?}: the args after ':' are not JSON ({e}); accepted: KIND or \
             KIND:JSON with JSON an object, e.g. report:{{\"to\":\"ops\"}}"
        ))
    })?;
    if !parsed.is_object() {
        return Err(Failure::invalid(format!(
            "{flag} {value:?}: the args must be a JSON object (kyu adds a \"batch\" key); \
             accepted: KIND or KIND:{{...}}"
        )));
    }
    let job = kyu::NewJob::from_json_text(kind, args).queue(queue);
    job.validate(&kyu::Limits::default())
        .map_err(|e| Failure::invalid(format!("{flag} {value:?}: {e}")))?;
    Ok(job)
}

fn counts_table(batches: &[kyu::BatchStatus]) -> Table {
    let mut t = Table::new(&[
        "ID",
        "STATE",
        "TOTAL",
        "PENDING",
        "RUNNING",
        "SUCCEEDED",
        "FAILED",
        "CANCELLED",
        "CREATED",
    ]);
    for b in batches {
        t.row(vec![
            b.id.to_string(),
            b.state().into(),
            b.total.to_string(),
            b.pending.to_string(),
            b.running.to_string(),
            b.succeeded.to_string(),
            b.failed.to_string(),
            b.cancelled.to_string(),
            time(&b.created_at),
        ]);
    }
    t
}

fn show(b: &kyu::BatchStatus) {
    println!("batch {}: {}", b.id, b.state());
    println!("  total      {}", b.total);
    println!("  pending    {}", b.pending);
    println!("  running    {}", b.running);
    println!("  succeeded  {}", b.succeeded);
    println!("  failed     {}", b.failed);
    println!("  cancelled  {}", b.cancelled);
    println!("  created    {}", time(&b.created_at));
    println!("  done       {}", opt_time(&b.done_at));
    let cb = |k: &Option<String>| k.clone().unwrap_or_else(|| "-".into());
    println!("  on_complete {}", cb(&b.on_complete));
    println!("  on_success  {}", cb(&b.on_success));
    if !b.callback_jobs.is_empty() {
        let ids: Vec<String> = b.callback_jobs.iter().map(|i| i.to_string()).collect();
        println!("  callback jobs {}", ids.join(", "));
    }
}

pub async fn run(ctx: &Ctx, cmd: BatchesCommand) -> CmdResult {
    let kyu = ctx.connect().await?;
    match cmd {
        BatchesCommand::Show { id } => {
            let b = kyu.batch_status(id).await?;
            if ctx.json {
                print_json(&b)?;
            } else {
                show(&b);
            }
        }
        BatchesCommand::Ls { limit } => {
            let all = kyu.batches(limit).await?;
            if ctx.json {
                print_json(&all)?;
            } else if all.is_empty() {
                println!("no batches");
            } else {
                counts_table(&all).print();
            }
        }
        BatchesCommand::Seal { id } => {
            let b = kyu.batch_by_id(id).seal().await?;
            if ctx.json {
                print_json(&b)?;
            } else {
                show(&b);
            }
        }
    }
    Ok(())
}
