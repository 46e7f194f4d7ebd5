//! `kyu schedules`: list, add, remove, enable, disable, trigger and preview
//! cron schedules.

use chrono::{DateTime, Utc};
use clap::{Args, Subcommand};
use kyu::{CronExpr, MisfirePolicy, OverlapPolicy, ScheduleRecord, ScheduleSpec};

use super::{print_json, Ctx, JobFlags};
use crate::output::{opt_time, time, Table};
use crate::{parse, CmdResult, Failure};

/// Schedule commands.
#[derive(Subcommand, Debug)]
pub enum SchedulesCommand {
    /// List schedules: next fire time, last fire time, last job and its state.
    Ls,
    /// Add a schedule, or replace the one with the same name.
    Add(Box<AddArgs>),
    /// Remove a schedule (its jobs stay).
    Rm {
        /// The schedule.
        name: String,
    },
    /// Enable a schedule: it fires from its next fire time after now.
    Enable {
        /// The schedule.
        name: String,
    },
    /// Disable a schedule: it fires nothing until enabled.
    Disable {
        /// The schedule.
        name: String,
    },
    /// Run a schedule's job now (enabled or not); its next fire time stays.
    Trigger {
        /// The schedule.
        name: String,
    },
    /// Print the next fire times of a cron expression; opens no database.
    Preview(PreviewArgs),
}

/// `kyu schedules add`.
#[derive(Args, Debug)]
#[command(
    after_help = "Cron: 5 fields (minute hour day-of-month month day-of-week), \
6 with seconds first, or @yearly @monthly @weekly @daily @hourly.\n\n\
Overlap (the previous job still unfinished at a fire time): allow (enqueue anyway), \
skip (drop the fire time; default), buffer_one (run it once the previous job finishes).\n\
Misfire (fire times missed by more than 60 s, e.g. while no `kyu serve` ran): \
skip (default) or run_once (one catch-up job).\n\n\
Examples:\n  \
kyu schedules add nightly-report '0 3 * * *' report '{\"format\":\"pdf\"}' --tz Asia/Tokyo\n  \
kyu schedules add sync '*/15 * * * *' sync_user --overlap skip --misfire run_once\n  \
kyu schedules add heartbeat '*/10 * * * * *' ping --queue fast --overlap allow"
)]
pub struct AddArgs {
    /// Unique name; adding an existing name replaces that schedule.
    name: String,
    /// Cron expression, e.g. '0 3 * * *' (quote it).
    cron: String,
    /// The kind of job to enqueue.
    kind: String,
    /// The job's args as JSON text. Default `{}`.
    #[arg(default_value = "{}")]
    args: String,
    /// IANA time zone whose wall clock the expression reads, e.g. Asia/Tokyo.
    #[arg(
        long = "tz",
        alias = "zone",
        default_value = "UTC",
        value_name = "ZONE"
    )]
    tz: String,
    /// allow, skip or buffer_one.
    #[arg(long, default_value = "skip")]
    overlap: String,
    /// skip or run_once.
    #[arg(long, default_value = "skip")]
    misfire: String,
    #[command(flatten)]
    job: JobFlags,
    /// Add it disabled.
    #[arg(long)]
    disabled: bool,
}

/// `kyu schedules preview`.
#[derive(Args, Debug)]
#[command(after_help = "Examples:\n  \
kyu schedules preview '30 2 * * *' --tz America/New_York --after 2026-03-07T00:00:00Z\n  \
kyu schedules preview '*/15 9-17 * * MON-FRI' --tz Europe/Berlin --count 10")]
pub struct PreviewArgs {
    /// Cron expression (quote it).
    cron: String,
    /// IANA time zone, e.g. Asia/Tokyo.
    #[arg(
        long = "tz",
        alias = "zone",
        default_value = "UTC",
        value_name = "ZONE"
    )]
    tz: String,
    /// How many fire times.
    #[arg(long, short = 'n', default_value_t = 5)]
    count: usize,
    /// Start after this RFC 3339 time [default: now]
    #[arg(long, value_parser = parse::time)]
    after: Option<DateTime<Utc>>,
}

/// A missing schedule exits 3; anything else as usual.
fn fail(e: kyu::Error) -> Failure {
    match e {
        kyu::Error::ScheduleNotFound(name) => Failure::not_found(format!(
            "schedule {name:?} not found; `kyu schedules ls` lists them"
        )),
        e => e.into(),
    }
}

pub async fn run(ctx: &Ctx, cmd: SchedulesCommand) -> CmdResult {
    match cmd {
        SchedulesCommand::Preview(a) => preview(ctx, a),
        SchedulesCommand::Add(a) => add(ctx, *a).await,
        SchedulesCommand::Ls => {
            let kyu = ctx.connect_existing().await?;
            let all = kyu.schedules().await?;
            if ctx.json {
                return print_json(&all);
            }
            if all.is_empty() {
                println!("no schedules");
                return Ok(());
            }
            print_table(&all);
            Ok(())
        }
        SchedulesCommand::Rm { name } => {
            let kyu = ctx.connect_existing().await?;
            if !kyu.unschedule(&name).await? {
                return Err(fail(kyu::Error::ScheduleNotFound(name)));
            }
            if ctx.json {
                print_json(&serde_json::json!({"removed": name}))
            } else {
                println!("removed schedule {name}");
                Ok(())
            }
        }
        SchedulesCommand::Enable { name } => set_enabled(ctx, name, true).await,
        SchedulesCommand::Disable { name } => set_enabled(ctx, name, false).await,
        SchedulesCommand::Trigger { name } => {
            let kyu = ctx.connect_existing().await?;
            let id = kyu.trigger(&name).await.map_err(fail)?;
            if ctx.json {
                print_json(&serde_json::json!({"schedule": name, "job": id}))
            } else {
                println!("triggered schedule {name}: enqueued job {id}");
                Ok(())
            }
        }
    }
}

async fn set_enabled(ctx: &Ctx, name: String, enabled: bool) -> CmdResult {
    let kyu = ctx.connect_existing().await?;
    let r = if enabled {
        kyu.enable_schedule(&name).await
    } else {
        kyu.disable_schedule(&name).await
    };
    r.map_err(fail)?;
    let rec = kyu.get_schedule(&name).await.map_err(fail)?;
    if ctx.json {
        return print_json(&rec);
    }
    if enabled {
        println!("enabled schedule {name}; next fire {}", next_fire(&rec));
    } else {
        println!("disabled schedule {name}");
    }
    Ok(())
}

async fn add(ctx: &Ctx, a: AddArgs) -> CmdResult {
    let invalid = |e: kyu::InvalidInput| Failure::from(kyu::Error::Invalid(e));
    let cron: CronExpr = a.cron.parse().map_err(invalid)?;
    let zone = kyu::parse_zone(&a.tz).map_err(invalid)?;
    let overlap: OverlapPolicy = a.overlap.parse().map_err(invalid)?;
    let misfire: MisfirePolicy = a.misfire.parse().map_err(invalid)?;
    let job = a.job.build(ctx, &a.kind, a.args)?;
    let spec = ScheduleSpec::new(a.name, cron, job)
        .zone(zone)
        .overlap(overlap)
        .misfire(misfire)
        .enabled(!a.disabled);
    // Validate before opening the database: bad input never creates a file.
    spec.validate(&kyu::Limits::default()).map_err(invalid)?;
    let kyu = ctx.connect().await?;
    let rec = kyu.schedule(spec).await?;
    if ctx.json {
        return print_json(&rec);
    }
    println!(
        "schedule {} saved: {:?} in {}; next fire {}",
        rec.spec.name,
        rec.spec.cron.as_str(),
        rec.spec.zone.name(),
        next_fire(&rec)
    );
    Ok(())
}

fn next_fire(rec: &ScheduleRecord) -> String {
    if !rec.spec.enabled {
        return "- (disabled)".into();
    }
    match rec.next_fire_at {
        Some(t) => local(&t, rec.spec.zone),
        None => "never".into(),
    }
}

/// `2026-11-25 09:00:00Z (18:00 Asia/Tokyo)`; just the UTC time for UTC.
fn local(t: &DateTime<Utc>, zone: kyu::Tz) -> String {
    if zone == kyu::Tz::UTC {
        return time(t);
    }
    format!(
        "{} ({} {})",
        time(t),
        t.with_timezone(&zone).format("%Y-%m-%d %H:%M:%S %Z"),
        zone.name()
    )
}

fn print_table(all: &[ScheduleRecord]) {
    let mut t = Table::new(&[
        "NAME",
        "CRON",
        "ZONE",
        "KIND",
        "OVERLAP",
        "MISFIRE",
        "NEXT FIRE",
        "LAST FIRE",
        "LAST JOB",
        "STATE",
        "DECLARED BY",
    ]);
    for s in all {
        t.row(vec![
            s.spec.name.clone(),
            s.spec.cron.as_str().to_string(),
            s.spec.zone.name().to_string(),
            s.spec.job.kind.clone(),
            s.spec.overlap.to_string(),
            s.spec.misfire.to_string(),
            if s.spec.enabled {
                opt_time(&s.next_fire_at)
            } else {
                "disabled".into()
            },
            opt_time(&s.last_fire_at),
            s.last_job_id
                .map(|i| i.to_string())
                .unwrap_or_else(|| "-".into()),
            match (s.last_job_id, s.last_job_state) {
                (_, Some(state)) => state.to_string(),
                (Some(_), None) => "deleted".into(),
                (None, None) => "-".into(),
            },
            if s.from_config {
                "kyu.toml"
            } else {
                "command/API"
            }
            .into(),
        ]);
    }
    t.print();
}

fn preview(ctx: &Ctx, a: PreviewArgs) -> CmdResult {
    let invalid = |e: kyu::InvalidInput| Failure::from(kyu::Error::Invalid(e));
    let cron: CronExpr = a.cron.parse().map_err(invalid)?;
    let zone = kyu::parse_zone(&a.tz).map_err(invalid)?;
    if a.count == 0 || a.count > 10_000 {
        return Err(Failure::invalid(format!(
            "--count {} is not accepted; give 1 to 10000",
            a.count
        )));
    }
    let after = a.after.unwrap_or_else(Utc::now);
    let times: Vec<DateTime<Utc>> = cron.fire_times(after, zone).take(a.count).collect();
    if ctx.json {
        return print_json(&serde_json::json!({
            "cron": cron.as_str(),
            "zone": zone.name(),
            "after": after,
            "fire_times": times.iter().map(|t| serde_json::json!({
                "utc": t,
                "local": t.with_timezone(&zone).to_rfc3339(),
            })).collect::<Vec<_>>(),
        }));
    }
    let mut t = Table::new(&["UTC", "LOCAL"]);
    for f in &times {
        t.row(vec![
            time(f),
            format!(
                "{} {}",
                f.with_timezone(&zone).format("%Y-%m-%d %H:%M:%S %Z (%:z)"),
                zone.name()
            ),
        ]);
    }
    t.print();
    Ok(())
}

/// Makes the database's kyu.toml schedules those of `config` and starts the
/// scheduler (for `kyu serve`). Returns its handle and, for the start line,
/// the schedules with their next fire times and the ones removed.
///
/// The rule (README, "Schedules"): each `[[schedules]]` entry is upserted
/// and marked as kyu.toml's; a schedule kyu.toml declared before and no
/// longer does is removed (its jobs stay); `enabled` applies only when the
/// entry says it, so `kyu schedules disable` survives restarts; schedules
/// made with `kyu schedules add` or the library are never touched.
pub async fn start_scheduler(
    kyu: &kyu::Kyu,
    config: &crate::config::Config,
) -> Result<(kyu::SchedulerHandle, String), Failure> {
    let mut declared = Vec::new();
    for s in &config.schedules {
        // Checked when the file was loaded; checked again for the message.
        let spec = config
            .schedule_spec(s)
            .map_err(|e| Failure::invalid(format!("schedules.{}: {e}", s.name)))?;
        declared.push(kyu::ConfigSchedule {
            spec,
            enabled_explicit: s.enabled.is_some(),
        });
    }
    let synced = kyu.sync_config_schedules(declared).await?;
    for name in &synced.removed {
        tracing::info!(schedule = %name, "schedule removed: no longer in kyu.toml");
    }
    let scheduler = kyu::Scheduler::new(kyu).start();
    let parts: Vec<String> = synced
        .schedules
        .iter()
        .map(|rec| format!("{} next {}", rec.spec.name, next_fire(rec)))
        .collect();
    let mut line = if parts.is_empty() {
        "none".to_string()
    } else {
        parts.join(", ")
    };
    if !synced.removed.is_empty() {
        let removed = format!(
            "removed {} (no longer in kyu.toml)",
            synced.removed.join(", ")
        );
        line = if parts.is_empty() {
            format!("none ({removed})")
        } else {
            format!("{line}; {removed}")
        };
    }
    Ok((scheduler, line))
}
