//! `kyu config check`.

use clap::Subcommand;

use super::{print_json, Ctx};
use crate::{CmdResult, Failure};

/// Config commands.
#[derive(Subcommand, Debug)]
pub enum ConfigCommand {
    /// Validate the config file and print what kyu understood from it.
    Check,
}

pub async fn run(ctx: &Ctx, cmd: ConfigCommand) -> CmdResult {
    match cmd {
        ConfigCommand::Check => {
            let Some((config, base)) = ctx.config()? else {
                return Err(Failure::invalid(
                    "no config file: ./kyu.toml does not exist; give one with --config PATH",
                ));
            };
            let database = ctx.database()?;
            // What `kyu serve` listens on (`--http` and KYU_HTTP win over it).
            let http = config
                .http
                .listen
                .map(|l| l.to_string())
                .unwrap_or_else(|| format!("{} (default)", super::serve::DEFAULT_HTTP));
            if ctx.json {
                let kinds: serde_json::Map<String, serde_json::Value> = config
                    .jobs
                    .iter()
                    .map(|(name, j)| {
                        let spec = config.command_spec(name, &base).expect("known kind");
                        (
                            name.clone(),
                            serde_json::json!({
                                "command": spec.command,
                                "cwd": spec.cwd,
                                "queue": j.queue,
                                "timeout_ms": j.timeout.map(|t| t.as_millis() as u64),
                                "max_attempts": j.max_attempts.unwrap_or(5),
                                "retry": j.retry.unwrap_or_default(),
                                "stop_grace_ms": spec.stop_grace.as_millis() as u64,
                                "log_limit": spec.log_limit,
                                "permanent_exit_codes": spec.permanent_exit_codes,
                            }),
                        )
                    })
                    .collect();
                return print_json(&serde_json::json!({
                    "database": database,
                    "http": {"listen": http.to_string()},
                    "queues": config.queues.iter().map(|(n, q)| (n.clone(), serde_json::json!({"concurrency": q.concurrency, "paused": q.paused}))).collect::<serde_json::Map<_, _>>(),
                    "jobs": kinds,
                    "schedules": config.schedules.iter().map(|s| serde_json::json!({"name": s.name, "cron": s.cron, "zone": s.zone, "kind": s.kind, "overlap": s.overlap, "misfire": s.misfire, "enabled": s.enabled})).collect::<Vec<_>>(),
                }));
            }
            println!("database   {database}");
            println!("http       {http} (kyu serve)");
            for (name, q) in &config.queues {
                println!(
                    "queue      {name}: concurrency {}{}",
                    q.concurrency,
                    if q.paused { ", paused" } else { "" }
                );
            }
            for (name, j) in &config.jobs {
                let spec = config.command_spec(name, &base).expect("known kind");
                println!(
                    "job kind   {name}: {:?} in {} on queue {}, timeout {}, {} attempts, retry {}",
                    spec.command,
                    spec.cwd
                        .as_deref()
                        .unwrap_or(std::path::Path::new("."))
                        .display(),
                    j.queue,
                    j.timeout
                        .map(|t| humantime::format_duration(t).to_string())
                        .unwrap_or_else(|| "none".into()),
                    j.max_attempts.unwrap_or(5),
                    serde_json::to_string(&j.retry.unwrap_or_default()).unwrap_or_default(),
                );
            }
            for s in &config.schedules {
                println!(
                    "schedule   {}: {:?} in {} → {} (overlap {}, misfire {}{})",
                    s.name,
                    s.cron,
                    s.zone,
                    s.kind,
                    s.overlap,
                    s.misfire,
                    match s.enabled {
                        Some(true) => ", enabled",
                        Some(false) => ", disabled",
                        None => "",
                    }
                );
            }
            println!("ok");
            Ok(())
        }
    }
}
