//! `kyu progress`: a command job reports its progress.

use clap::Args;

use super::Ctx;
use crate::{CmdResult, Failure};

/// Report progress from inside a command job.
#[derive(Args, Debug)]
#[command(
    after_help = "Run by a script that kyu started: the job comes from KYU_JOB_ID \
and the database from KYU_DATABASE_URL, both set by the worker.\n\n\
Example (in the script):\n  kyu progress 40 \"step 2 of 5\"\n\n\
The same without this command: print a line `::kyu-progress 40 step 2 of 5` on stdout."
)]
pub struct ProgressArgs {
    /// Percent done, 0 to 100.
    #[arg(value_parser = clap::value_parser!(u8).range(0..=100))]
    percent: u8,
    /// A short note, e.g. "step 2 of 5".
    #[arg(default_value = "")]
    message: String,
    /// The job (default: KYU_JOB_ID).
    #[arg(long, env = "KYU_JOB_ID")]
    job: Option<String>,
}

pub async fn run(ctx: &Ctx, a: ProgressArgs) -> CmdResult {
    let Some(job) = a.job else {
        return Err(Failure::invalid(
            "no job: KYU_JOB_ID is not set (kyu progress is meant to run inside a command job) and --job was not given",
        ));
    };
    let id: i64 = job.parse().map_err(|_| {
        Failure::invalid(format!(
            "job id {job:?} is not a number; accepted: a job id such as 42"
        ))
    })?;
    let kyu = ctx.connect().await?;
    let progress = kyu::Progress {
        percent: a.percent,
        message: a.message,
    };
    if !kyu.set_progress(id, progress).await? {
        return Err(Failure::invalid(format!(
            "job {id} is not running; progress is recorded only while a job runs"
        )));
    }
    Ok(())
}
