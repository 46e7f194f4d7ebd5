//! `kyu queues ls|pause|resume`.

use clap::Subcommand;
use kyu::JobState;

use super::{print_json, Ctx};
use crate::output::Table;
use crate::CmdResult;

/// Queue commands.
#[derive(Subcommand, Debug)]
pub enum QueuesCommand {
    /// List queues with job counts by state.
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
            if ctx.json {
                return print_json(&queues);
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
            ]);
            for q in &queues {
                let mut row = vec![q.queue.clone(), if q.paused { "yes" } else { "no" }.into()];
                row.extend(JobState::ALL.iter().map(|s| q.count(*s).to_string()));
                t.row(row);
            }
            t.print();
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
