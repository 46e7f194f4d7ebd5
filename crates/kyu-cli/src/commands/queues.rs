//! `kyu queues ls|pause|resume`.

use std::collections::BTreeMap;

use clap::Subcommand;
use kyu::JobState;

use super::{print_json, Ctx};
use crate::output::Table;
use crate::CmdResult;

/// Queue commands.
#[derive(Subcommand, Debug)]
pub enum QueuesCommand {
    /// List queues with job counts by state, and the runnable jobs no live
    /// worker handles (NO WORKER: they wait until a worker that runs their
    /// kind on their queue starts).
    Ls,
    /// Pause a queue: workers start nothing new from it; running jobs go on.
    Pause {
        /// The queue.
        queue: String,
    },
    /// Resume a paused queue.
    Resume {
        /// The queue.
        queue: String,
    },
}

pub async fn run(ctx: &Ctx, cmd: QueuesCommand) -> CmdResult {
    let kyu = match &cmd {
        QueuesCommand::Ls => ctx.connect_existing().await?,
        // Pausing a queue before its first job is allowed; a bad name is
        // refused before the database is opened (or created).
        QueuesCommand::Pause { queue } | QueuesCommand::Resume { queue } => {
            kyu::validate::queue_name("queue", queue).map_err(kyu::Error::from)?;
            ctx.connect().await?
        }
    };
    match cmd {
        QueuesCommand::Ls => {
            let queues = kyu.queues().await?;
            // Runnable jobs no live worker claims, by queue then kind.
            let mut unhandled: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
            for w in kyu.unhandled().await? {
                unhandled
                    .entry(w.queue)
                    .or_default()
                    .insert(w.kind, w.count);
            }
            if ctx.json {
                let rows: Vec<serde_json::Value> = queues
                    .iter()
                    .map(|q| {
                        let mut v = serde_json::to_value(q).unwrap_or_default();
                        v["no_worker"] = serde_json::to_value(
                            unhandled.get(&q.queue).cloned().unwrap_or_default(),
                        )
                        .unwrap_or_default();
                        v
                    })
                    .collect();
                return print_json(&rows);
            }
            if queues.is_empty() {
                println!("no queues yet: enqueue a job with `kyu enqueue KIND '{{...}}'`");
                return Ok(());
            }
            let mut t = Table::new(&[
                "QUEUE",
                "PAUSED",
                "SCHEDULED",
                "AVAILABLE",
                "RUNNING",
                "COMPLETED",
                "FAILED",
                "CANCELLED",
                "NO WORKER",
            ]);
            for q in &queues {
                let mut row = vec![q.queue.clone(), if q.paused { "yes" } else { "no" }.into()];
                row.extend(JobState::ALL.iter().map(|s| q.count(*s).to_string()));
                let waiting: u64 = unhandled.get(&q.queue).map_or(0, |k| k.values().sum());
                row.push(waiting.to_string());
                t.row(row);
            }
            t.print();
            for (queue, kinds) in &unhandled {
                for (kind, n) in kinds {
                    let (s, verb) = if *n == 1 {
                        ("", "waits")
                    } else {
                        ("s", "wait")
                    };
                    println!(
                        "queue {queue}: {n} job{s} of kind {kind} {verb}: \
                         no live worker handles kind {kind}"
                    );
                }
            }
        }
        QueuesCommand::Pause { queue } => {
            kyu.pause(&queue).await?;
            if ctx.json {
                print_json(&serde_json::json!({"queue": queue, "paused": true}))?;
            } else {
                println!("paused queue {queue}");
            }
        }
        QueuesCommand::Resume { queue } => {
            kyu.resume(&queue).await?;
            if ctx.json {
                print_json(&serde_json::json!({"queue": queue, "paused": false}))?;
            } else {
                println!("resumed queue {queue}");
            }
        }
    }
    Ok(())
}
