//! `kyu queues ls|pause|resume|set`.

use std::collections::BTreeMap;

use clap::Subcommand;
use kyu::JobState;

use super::{print_json, Ctx};
use crate::output::Table;
use crate::CmdResult;

/// Queue commands.
#[derive(Subcommand, Debug)]
pub enum QueuesCommand {
    /// List queues with job counts by state, each limit with its use now and
    /// when the next start is allowed (for a rate per key: the starts of
    /// every key, the keys at their limit and the busiest), and the
    /// runnable jobs no live worker handles (NO WORKER: they wait until a
    /// worker that runs their kind on their queue starts).
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
    /// Set or clear a queue's limits, for every worker process and host:
    /// stored in the database, enforced when jobs are claimed.
    Set {
        /// The queue.
        queue: String,
        /// At most N jobs of the queue running at once across every process
        /// and host; `none` clears the limit.
        #[arg(long, value_name = "N|none")]
        global_concurrency: Option<String>,
        /// At most STARTS job starts in any window of PERIOD, e.g. 5000/1h,
        /// 10/1s, 10000/1d (per rate key, see --rate-key); `none` clears the
        /// limit (and its --rate-key).
        #[arg(long, value_name = "STARTS/PERIOD|none")]
        rate: Option<String>,
        /// Apply the rate per key: the value at this path in each job's
        /// args, e.g. args.api or args.tenant.id (a key given at enqueue
        /// with `kyu enqueue --rate-key` wins; jobs without one share one
        /// window). Needs a rate. `none` makes the rate apply to the whole
        /// queue again (keys given at enqueue still count apart).
        #[arg(long, value_name = "args.FIELD|none")]
        rate_key: Option<String>,
    },
}

/// Whether a limit's value clears it.
fn clears(v: &str) -> bool {
    matches!(v.trim(), "none" | "off")
}

/// The change `kyu queues set` asks for, checked.
fn limits_update(
    global_concurrency: Option<&str>,
    rate: Option<&str>,
    rate_key: Option<&str>,
) -> Result<kyu::LimitsUpdate, kyu::InvalidInput> {
    let mut u = kyu::LimitsUpdate::default();
    if let Some(v) = global_concurrency {
        u.global_concurrency = Some(if clears(v) {
            None
        } else {
            let n: u32 = v.trim().parse().map_err(|_| {
                kyu::InvalidInput::new(
                    "--global-concurrency",
                    format!(
                        "{v:?} is not accepted; give a whole number from 1, or none to clear it"
                    ),
                )
            })?;
            kyu::limits::check_global_concurrency("--global-concurrency", n)?;
            Some(n)
        });
    }
    if let Some(v) = rate {
        u.rate = Some(if clears(v) {
            None
        } else {
            Some(kyu::RateLimit::parse("--rate", v)?)
        });
    }
    if let Some(v) = rate_key {
        u.rate_key = Some(if clears(v) {
            None
        } else {
            Some(kyu::limits::RateKeyPath::parse("--rate-key", v.trim())?)
        });
    }
    if u == kyu::LimitsUpdate::default() {
        return Err(kyu::InvalidInput::new(
            "kyu queues set",
            "nothing to set; give --global-concurrency N|none, --rate STARTS/PERIOD|none \
             and/or --rate-key args.FIELD|none",
        ));
    }
    Ok(u)
}

/// Whether a queue's rate applies per key: it has a key path, or some of
/// its recent starts had a key given at enqueue.
fn keyed(s: &kyu::QueueLimitStatus) -> bool {
    s.limits.rate_key.is_some() || !s.busiest_keys.is_empty()
}

/// One limited queue's limits and their use, in words.
fn limits_line(s: &kyu::QueueLimitStatus, now: kyu::chrono::DateTime<kyu::chrono::Utc>) -> String {
    let mut parts = Vec::new();
    if let Some(n) = s.limits.global_concurrency {
        parts.push(format!("global concurrency {n} ({} running)", s.running));
    }
    if let Some(r) = s.limits.rate {
        let next = match s.next_start_at {
            Some(at) => {
                let wait = (at - now).to_std().unwrap_or_default();
                let wait = std::time::Duration::from_millis(wait.as_millis() as u64);
                format!(
                    "full: next start at {} (in {})",
                    at.to_rfc3339_opts(kyu::chrono::SecondsFormat::Millis, true),
                    humantime::format_duration(wait)
                )
            }
            None if keyed(s) => "a key with room: starts now".to_string(),
            None => format!(
                "{} left",
                r.starts as u64 - s.rate_used.min(r.starts as u64)
            ),
        };
        if keyed(s) {
            let per = s
                .limits
                .rate_key
                .as_ref()
                .map_or("key".to_string(), |p| p.to_string());
            let busiest: Vec<String> = s
                .busiest_keys
                .iter()
                .map(|k| {
                    format!(
                        "{} {}/{}",
                        k.key.as_deref().unwrap_or("(no key)"),
                        k.used,
                        r.starts
                    )
                })
                .collect();
            let keys = if busiest.is_empty() {
                String::new()
            } else {
                format!(", busiest {}", busiest.join(", "))
            };
            parts.push(format!(
                "rate {r} per {per} ({} used in the window by every key, {} key{} at the \
                 limit{keys}; {next})",
                s.rate_used,
                s.keys_at_limit,
                if s.keys_at_limit == 1 { "" } else { "s" },
            ));
        } else {
            parts.push(format!(
                "rate {r} ({} used in the window, {next})",
                s.rate_used
            ));
        }
    }
    format!("queue {}: {}", s.queue, parts.join("; "))
}

pub async fn run(ctx: &Ctx, cmd: QueuesCommand) -> CmdResult {
    let kyu = match &cmd {
        QueuesCommand::Ls => ctx.connect_existing().await?,
        // Pausing a queue before its first job is allowed; a bad name is
        // refused before the database is opened (or created).
        QueuesCommand::Pause { queue }
        | QueuesCommand::Resume { queue }
        | QueuesCommand::Set { queue, .. } => {
            kyu::validate::queue_name("queue", queue).map_err(kyu::Error::from)?;
            ctx.connect().await?
        }
    };
    match cmd {
        QueuesCommand::Ls => {
            let queues = kyu.queues().await?;
            let limits = kyu.queue_limits().await?;
            let now = kyu.store().clock().now();
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
                        if let Some(l) = limits.iter().find(|l| l.queue == q.queue) {
                            v["limits"] = serde_json::to_value(&l.limits).unwrap_or_default();
                            v["running"] = l.running.into();
                            v["rate_used"] = l.rate_used.into();
                            v["next_start_at"] =
                                serde_json::to_value(l.next_start_at).unwrap_or_default();
                            if keyed(l) {
                                v["keys_at_limit"] = l.keys_at_limit.into();
                                v["busiest_keys"] =
                                    serde_json::to_value(&l.busiest_keys).unwrap_or_default();
                            }
                        }
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
            for l in &limits {
                println!("{}", limits_line(l, now));
            }
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
        QueuesCommand::Set {
            queue,
            global_concurrency,
            rate,
            rate_key,
        } => {
            let update = limits_update(
                global_concurrency.as_deref(),
                rate.as_deref(),
                rate_key.as_deref(),
            )
            .map_err(kyu::Error::from)?;
            let now = kyu.set_queue_limits(&queue, update).await?;
            if ctx.json {
                print_json(&serde_json::json!({"queue": queue, "limits": now}))?;
            } else {
                println!("queue {queue}: {}", kyu::limits::describe(&now));
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
