//! `kyu events` (print the event log, `--follow` to tail it) and
//! `kyu jobs wait ID` (wait on events until the job ends).

use std::io::Write;
use std::time::Duration;

use clap::Args;
use futures_util::StreamExt;
use kyu::events::EventItem;
use kyu::{Event, EventFilter, EventId, EventType, JobId, JobState};

use super::Ctx;
use crate::{parse, CmdResult, Failure};

/// `kyu events`.
#[derive(Args, Debug)]
#[command(after_help = "Examples:\n  \
kyu events                          # what the log holds (24 h by default)\n  \
kyu events --follow --queue mail    # and tail it live\n  \
kyu events --since 1200 --json      # after id 1200, one JSON object a line\n  \
kyu events --job 42 --type failed --type retrying")]
pub struct EventsArgs {
    /// Keep printing new events as they are written, until interrupted.
    #[arg(long, short)]
    follow: bool,
    /// Only events after this id (the last one you saw): none is missed, none repeated.
    #[arg(long)]
    since: Option<EventId>,
    /// Only this queue.
    #[arg(long, short)]
    queue: Option<String>,
    /// Only this kind.
    #[arg(long, short)]
    kind: Option<String>,
    /// Only this job.
    #[arg(long)]
    job: Option<JobId>,
    /// Only this type (repeat for several): enqueued, started, progress,
    /// completed, retrying, failed, snoozed, cancelled, cancel_requested,
    /// released, lease_expired, retried, queue_paused, queue_resumed,
    /// queue_limits_changed, schedule_fired, schedule_skipped, schedule_buffered,
    /// schedule_misfired, worker_started, worker_stopped, deleted, run_now,
    /// batch_completed.
    #[arg(long = "type", short = 't', value_parser = parse_type)]
    types: Vec<EventType>,
}

fn parse_type(s: &str) -> Result<EventType, String> {
    s.parse::<EventType>().map_err(|e| e.to_string())
}

/// One line of the log for people: id, time, type, job, queue, kind, attempt, facts.
fn line(e: &Event) -> String {
    let mut out = format!(
        "{:>8}  {}  {:<17}",
        e.id,
        e.at.format("%Y-%m-%d %H:%M:%S%.3fZ"),
        e.event_type.as_str()
    );
    if let Some(id) = e.job_id {
        out.push_str(&format!(" job {id}"));
    }
    if let Some(q) = &e.queue {
        out.push_str(&format!(" queue {q}"));
    }
    if let Some(k) = &e.kind {
        out.push_str(&format!(" kind {k}"));
    }
    if let Some(a) = e.attempt {
        out.push_str(&format!(" attempt {a}"));
    }
    let f = &e.facts;
    let mut facts: Vec<String> = Vec::new();
    if let Some(s) = f.state {
        facts.push(format!("state={s}"));
    }
    if let Some(w) = &f.worker {
        facts.push(format!("worker={w}"));
    }
    if let Some(ms) = f.wait_ms {
        facts.push(format!("waited={ms}ms"));
    }
    if let Some(ms) = f.duration_ms {
        facts.push(format!("took={ms}ms"));
    }
    if let Some(p) = f.progress {
        facts.push(format!("progress={p}%"));
    }
    if let Some(m) = &f.message {
        facts.push(format!("message={m:?}"));
    }
    if let Some(t) = f.run_at {
        facts.push(format!("run_at={}", t.format("%Y-%m-%d %H:%M:%SZ")));
    }
    if f.duplicate == Some(true) {
        facts.push("duplicate".into());
    }
    if let Some(s) = &f.schedule {
        facts.push(format!("schedule={s}"));
    }
    if let Some(t) = f.fire_time {
        facts.push(format!("fire_time={}", t.format("%Y-%m-%d %H:%M:%SZ")));
    }
    if let Some(r) = &f.reason {
        facts.push(format!("reason={r:?}"));
    }
    if let Some(err) = &f.error {
        facts.push(format!("error={err:?}"));
    }
    if !facts.is_empty() {
        out.push_str("  ");
        out.push_str(&facts.join(" "));
    }
    out
}

fn print(ctx: &Ctx, item: &EventItem) -> CmdResult {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    match item {
        EventItem::Gap(g) => {
            if ctx.json {
                writeln!(out, "{}", serde_json::json!({ "gap": g }))?;
            } else {
                writeln!(
                    out,
                    "-- gap: the events after {} up to {} were pruned by retention; \
                     going on from {}",
                    g.after, g.pruned_through, g.pruned_through
                )?;
            }
        }
        EventItem::Event(e) => {
            if ctx.json {
                writeln!(out, "{}", serde_json::to_string(e)?)?;
            } else {
                writeln!(out, "{}", line(e))?;
            }
        }
    }
    out.flush()?;
    Ok(())
}

pub async fn run(ctx: &Ctx, args: EventsArgs) -> CmdResult {
    let kyu = ctx.connect_existing().await?;
    let filter = EventFilter {
        queue: args.queue,
        kind: args.kind,
        job_id: args.job,
        types: args.types,
    };
    if args.follow {
        let mut stream = std::pin::pin!(kyu.events(args.since, filter));
        while let Some(item) = stream.next().await {
            print(ctx, &item?)?;
        }
        return Ok(());
    }
    // Without --follow: the log as it is now, up to the highest id
    // committed, waiting for no write in flight (an event of a transaction
    // still open commits after now: it is not part of the log printed).
    let store = kyu.store();
    let end = store.committed_event_id().await.map_err(kyu::Error::from)?;
    let mut after = args.since.unwrap_or(0);
    let mut first = true;
    while after < end {
        let read = store
            .read_committed_events(after, 1000)
            .await
            .map_err(kyu::Error::from)?;
        if let Some(g) = read.gap {
            // Asked for "whatever the log holds": its start is no news.
            if !(first && args.since.is_none()) {
                print(ctx, &EventItem::Gap(g))?;
            }
        }
        first = false;
        let moved = read.next > after;
        for e in read.events.into_iter().filter(|e| e.id <= end) {
            if filter.matches(&e) {
                print(ctx, &EventItem::Event(Box::new(e)))?;
            }
        }
        if !moved {
            // Nothing committed after `after`: the ids up to `end` that
            // remain were pruned meanwhile.
            break;
        }
        after = read.next;
    }
    Ok(())
}

/// `kyu jobs wait ID [--timeout 30s]`.
#[derive(Args, Debug)]
#[command(
    after_help = "Exit status: 0 the job completed (its result printed), 1 it failed or \
was cancelled (its last error printed) or the timeout ran out, 3 no such job.\n\n\
Examples:\n  kyu jobs wait 42\n  kyu jobs wait 42 --timeout 5m --json"
)]
pub struct WaitArgs {
    /// The job's id.
    id: JobId,
    /// Give up after this long (e.g. 30s, 5m, 1h).
    #[arg(long, default_value = "30s", value_parser = parse::duration)]
    timeout: Duration,
}

pub async fn wait(ctx: &Ctx, kyu: &kyu::Kyu, args: WaitArgs) -> CmdResult {
    let ended = async {
        // The log's end first, then the job: a change after the read has a
        // greater id, so the stream below sees it.
        let after = kyu.last_event_id().await?;
        if kyu.job(args.id).await?.state.is_finished() {
            return Ok::<(), Failure>(());
        }
        let filter = EventFilter {
            job_id: Some(args.id),
            ..EventFilter::default()
        };
        let mut stream = std::pin::pin!(kyu.events(Some(after), filter));
        while let Some(item) = stream.next().await {
            if let EventItem::Event(e) = item? {
                if e.event_type.ends_job() {
                    return Ok(());
                }
            }
        }
        Ok(())
    };
    let Ok(waited) = tokio::time::timeout(args.timeout, ended).await else {
        return Err(Failure {
            code: 1,
            error: anyhow::anyhow!(
                "job {} is still {} after {}; wait longer with --timeout",
                args.id,
                kyu.job(args.id).await?.state,
                humantime(args.timeout)
            ),
        });
    };
    waited?;
    let job = kyu.job(args.id).await?;
    if ctx.json {
        super::print_json(&job)?;
    }
    let last_error = job.errors.last().map(|e| e.message.clone());
    match job.state {
        JobState::Completed => {
            if !ctx.json {
                println!(
                    "job {} completed{}",
                    job.id,
                    job.result
                        .as_deref()
                        .map(|r| format!(": {r}"))
                        .unwrap_or_default()
                );
            }
            Ok(())
        }
        state => Err(Failure {
            code: 1,
            error: anyhow::anyhow!(
                "job {} {state}{}",
                job.id,
                last_error.map(|m| format!(": {m}")).unwrap_or_default()
            ),
        }),
    }
}

fn humantime(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 3600 && s % 3600 == 0 {
        format!("{}h", s / 3600)
    } else if s >= 60 && s % 60 == 0 {
        format!("{}m", s / 60)
    } else {
        format!("{:?}", d)
    }
}
