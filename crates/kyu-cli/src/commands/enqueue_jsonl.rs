//! `kyu enqueue KIND --jsonl`: many jobs from JSON Lines on stdin.
//!
//! Every line is read and checked first, so a bad line changes nothing; then
//! the jobs are inserted one transaction per chunk, with a progress bar when
//! stderr is a terminal.

use std::io::BufRead;
use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;

use super::{print_json, Ctx};
use crate::{CmdResult, Failure};

/// Jobs per transaction: large enough that a commit's cost is shared by many
/// jobs, small enough that a failure loses little and progress moves.
const CHUNK: usize = 1000;

/// What `--json` prints at the end.
#[derive(Serialize)]
struct Summary {
    /// Non-blank lines read.
    lines: usize,
    /// New jobs.
    enqueued: usize,
    /// Lines whose job already existed (only where a unique key applies).
    duplicates: usize,
    /// The first and last id of the jobs, new or existing.
    first_id: Option<i64>,
    last_id: Option<i64>,
    /// The batch, with --batch or --batch-id.
    #[serde(skip_serializing_if = "Option::is_none")]
    batch: Option<kyu::BatchStatus>,
}

/// The batch the lines go into (`--batch`, `--batch-id`).
pub enum BatchTarget {
    /// A new batch with these callbacks, sealed after the lines if `seal`.
    New {
        /// Its callbacks.
        batch: Box<kyu::NewBatch>,
        /// Seal it after the lines.
        seal: bool,
    },
    /// An open batch, sealed after the lines if `seal`.
    Existing {
        /// Its id.
        id: i64,
        /// Seal it after the lines.
        seal: bool,
    },
}

/// Enqueues one job per line of `input`, each a copy of `template` with the
/// line as its args; into a batch when `batch` says so.
pub async fn run(
    ctx: &Ctx,
    template: kyu::NewJob,
    input: impl BufRead,
    batch: Option<BatchTarget>,
) -> CmdResult {
    let limits = kyu::Limits::default();
    let mut jobs = Vec::new();
    for (i, line) in input.lines().enumerate() {
        let line = line.map_err(|e| {
            Failure::invalid(format!("could not read line {} of stdin: {e}", i + 1))
        })?;
        let args = line.trim();
        if args.is_empty() {
            continue;
        }
        let mut job = template.clone();
        job.args = args.to_string();
        // Bad input changes nothing: every line is checked before the first write.
        job.validate(&limits)
            .map_err(|e| Failure::invalid(format!("stdin line {}: {e}", i + 1)))?;
        jobs.push(job);
    }
    if jobs.is_empty() && batch.is_none() {
        return Err(Failure::invalid(
            "--jsonl read no lines from stdin; give the args of one job per line, e.g. {\"user\":42}",
        ));
    }

    let kyu = ctx.connect().await?;
    let (batch, seal) = match batch {
        None => (None, false),
        Some(BatchTarget::New { batch, seal }) => {
            let mut b = kyu.batch();
            let batch = *batch;
            if let Some(j) = batch.on_complete {
                b = b.on_complete(j);
            }
            if let Some(j) = batch.on_success {
                b = b.on_success(j);
            }
            (Some(b.create().await?), seal)
        }
        Some(BatchTarget::Existing { id, seal }) => {
            let b = kyu.batch_by_id(id);
            b.status().await?;
            (Some(b), seal)
        }
    };
    let started = Instant::now();
    let total = jobs.len();
    let bar = ProgressBar::new(total as u64);
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} jobs  {per_sec}  eta {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let mut summary = Summary {
        lines: total,
        enqueued: 0,
        duplicates: 0,
        first_id: None,
        last_id: None,
        batch: None,
    };
    let mut rest = jobs;
    while !rest.is_empty() {
        let chunk: Vec<_> = rest.drain(..rest.len().min(CHUNK)).collect();
        let n = chunk.len();
        let done = match &batch {
            Some(b) => b.add(chunk).await,
            None => kyu.enqueue_many(chunk).await,
        };
        let done = done.map_err(|e| {
            bar.abandon();
            Failure::from(anyhow::Error::from(e).context(format!(
                "enqueued {} of {total} jobs, then the database refused the next {n}",
                summary.enqueued + summary.duplicates
            )))
        })?;
        for e in &done {
            if e.duplicate {
                summary.duplicates += 1;
            } else {
                summary.enqueued += 1;
            }
            summary.first_id.get_or_insert(e.id);
            summary.last_id = Some(e.id);
        }
        bar.inc(n as u64);
    }
    bar.finish_and_clear();
    if let Some(b) = &batch {
        let status = if seal {
            b.seal().await?
        } else {
            b.status().await?
        };
        summary.batch = Some(status);
    }

    if ctx.json {
        print_json(&summary)?;
    } else {
        let kind = &template.kind;
        let queue = &template.queue;
        print!(
            "enqueued {} job(s) of kind {kind} on queue {queue} in {:.2} s",
            summary.enqueued,
            started.elapsed().as_secs_f64()
        );
        if let (Some(first), Some(last)) = (summary.first_id, summary.last_id) {
            print!(" (ids {first}..={last})");
        }
        if summary.duplicates > 0 {
            print!("; {} already existed", summary.duplicates);
        }
        println!();
        if let Some(s) = &summary.batch {
            let how = if s.is_done() {
                "sealed and done: its callbacks are enqueued"
            } else if s.sealed {
                "sealed"
            } else {
                "open: add more with --batch-id, then kyu batches seal"
            };
            println!("batch {} ({} jobs): {how}", s.id, s.total);
        }
    }
    Ok(())
}
