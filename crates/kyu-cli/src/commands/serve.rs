//! `kyu serve` and `kyu worker`.

use std::collections::BTreeMap;

use clap::Args;
use kyu::{Worker, WorkerConfig};

use super::Ctx;
use crate::parse::Listen;
use crate::CmdResult;

/// Options of `kyu serve` and `kyu worker`.
#[derive(Args, Debug)]
#[command(
    after_help = "The jobs, queues and schedules come from the config file \
(./kyu.toml, or --config). SIGTERM or Ctrl-C stops claiming, lets running commands \
finish within the grace period ([worker] shutdown_grace, default 10s), then stops \
them and releases their jobs to other workers.\n\nHTTP: `kyu serve` listens on \
127.0.0.1:7070 unless told otherwise (--http, KYU_HTTP, [http] listen in kyu.toml) for \
GET /metrics (Prometheus), /healthz and /readyz; `kyu worker` listens only with --http \
(or KYU_HTTP).\n\nExamples:\n  kyu serve\n  \
kyu --config /etc/kyu/kyu.toml serve --http 0.0.0.0:7070\n  \
kyu worker --queue default=8 --http 127.0.0.1:7071   # another process on the same database"
)]
pub struct ServeArgs {
    /// Work a queue with this concurrency, NAME=N (repeatable); overrides kyu.toml.
    #[arg(long = "queue", value_name = "NAME=N", value_parser = parse_queue)]
    queues: Vec<(String, usize)>,
    /// Listen for HTTP (the dashboard at /, the API under /v1, /metrics, /healthz, /readyz) on IP:PORT, or `off`
    /// [default: kyu serve: `[http] listen` in kyu.toml, else 127.0.0.1:7070;
    /// kyu worker: off]
    #[arg(long = "http", value_name = "ADDR", env = "KYU_HTTP", value_parser = crate::parse::listen)]
    http: Option<Listen>,
    /// The kyu HTTP API command jobs report to: each command gets it as
    /// KYU_API_URL with a KYU_JOB_TOKEN good for its own job while its
    /// attempt runs [default: `[api] url` in kyu.toml, else this process's
    /// own listener (--http); none: commands get neither]
    #[arg(long = "api-url", value_name = "URL", env = "KYU_API_URL", value_parser = crate::parse::api_url)]
    api_url: Option<String>,
}

/// Where `kyu serve` listens when nothing says otherwise.
pub const DEFAULT_HTTP: &str = "127.0.0.1:7070";

fn parse_queue(s: &str) -> Result<(String, usize), String> {
    let accepted = "accepted: NAME=N with N at least 1, e.g. default=8";
    let (name, n) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?} is not a queue setting; {accepted}"))?;
    let n: usize = n
        .parse()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| format!("{s:?}: {n:?} is not a concurrency; {accepted}"))?;
    kyu::validate::queue_name("--queue", name).map_err(|e| e.to_string())?;
    Ok((name.to_string(), n))
}

pub async fn run(ctx: &Ctx, args: ServeArgs, serve: bool) -> CmdResult {
    let url = ctx.database()?;
    let loaded = ctx.config()?;
    let kyu = ctx.connect().await?;
    let (config, base) =
        loaded.unwrap_or_else(|| (Default::default(), std::path::PathBuf::from(".")));

    let mut queues: BTreeMap<String, usize> = BTreeMap::new();
    for (name, q) in &config.queues {
        queues.insert(name.clone(), q.concurrency);
        if q.paused {
            kyu.pause(name).await?;
        }
        if let Some(limits) = q.limits() {
            kyu.set_queue_limits(name, limits).await?;
        }
    }
    for kind in config.jobs.values() {
        queues.entry(kind.queue.clone()).or_insert(10);
    }
    for (name, n) in args.queues {
        queues.insert(name, n);
    }
    if queues.is_empty() {
        queues.insert("default".into(), 10);
    }

    // The listener first: a port in use fails here, before any job is
    // claimed; and the recorder before the worker, which takes its handles.
    let listen = match args.http {
        Some(l) => l,
        None if serve => config
            .http
            .listen
            .unwrap_or_else(|| Listen::At(DEFAULT_HTTP.parse().expect("a valid address"))),
        None => Listen::Off,
    };
    let http = match listen {
        Listen::Off => None,
        Listen::At(addr) => {
            let listener = kyu_server::bind(addr).await.map_err(|e| {
                anyhow::anyhow!(
                    "{e}; choose another address with --http ADDR (or KYU_HTTP, or [http] \
                     listen in kyu.toml for kyu serve), or turn the listener off with --http off"
                )
            })?;
            let metrics = kyu_server::install_recorder()?;
            let options = if serve {
                kyu_server::Options {
                    kind_defaults: config.kind_defaults(),
                    ..config.http.server_options()
                }
            } else {
                kyu_server::Options::default()
            }
            .metrics(metrics);
            let control = options.worker_control.clone();
            let app = kyu_server::router(kyu.clone(), options);
            Some((listener, app, control))
        }
    };

    let mut worker_config = WorkerConfig::default();
    if let Some(g) = config.worker.shutdown_grace {
        worker_config.shutdown_grace = g;
    }
    if let Some(l) = config.worker.lease {
        worker_config.lease = l;
        worker_config.heartbeat_every = l / 3;
    }
    if let Some(m) = worker_config.maintenance.as_mut() {
        let r = &config.retention;
        m.keep_completed = r.completed.unwrap_or(m.keep_completed);
        m.keep_failed = r.failed.unwrap_or(m.keep_failed);
        m.retention_every = r.every.unwrap_or(m.retention_every);
        m.keep_events = config.events.retention.unwrap_or(m.keep_events);
    }
    if !serve {
        // Lease recovery stays on in `kyu worker`: a fleet of workers alone
        // must still rescue the jobs of one that died. Retention is left to
        // `kyu serve`.
        if let Some(m) = worker_config.maintenance.as_mut() {
            m.retention = false;
        }
    }
    // Commands run in their own directory: the URL is absolute
    // (`Ctx::database`), so they open the same database.
    let child_url = url.clone();
    // Where commands report (KYU_API_URL, with a KYU_JOB_TOKEN per attempt):
    // as asked, else this process's own API, which is on this host.
    let api_url = args.api_url.or(config.api.url.clone()).or_else(|| {
        http.as_ref()
            .and_then(|(listener, _, _)| listener.local_addr().ok())
            .map(local_api_url)
    });
    let mut worker = Worker::new(&kyu);
    let mut longest_stop = std::time::Duration::ZERO;
    for name in config.jobs.keys() {
        let mut spec = config
            .command_spec(name, &base)
            .expect("the kind is in the config");
        spec.env
            .entry("KYU_DATABASE_URL".into())
            .or_insert_with(|| child_url.clone());
        spec.api_url = api_url.clone();
        longest_stop = longest_stop.max(spec.stop_grace);
        worker = worker.command(name.clone(), spec);
    }
    // A cancelled command gets its whole SIGTERM grace before the worker gives up on it.
    worker_config.cancel_grace = worker_config
        .cancel_grace
        .max(longest_stop + std::time::Duration::from_secs(2));
    for (name, n) in &queues {
        worker = worker.queue(name.clone(), *n);
    }
    // `kyu serve` declares the [[schedules]] of kyu.toml (upsert by name: a
    // restart neither skips nor repeats a fire time) and runs the scheduler;
    // any number of `kyu serve` processes may do so on one database.
    let (scheduler, schedules) = if serve {
        let (scheduler, line) = super::schedules::start_scheduler(&kyu, &config).await?;
        (Some(scheduler), line)
    } else {
        (None, "none (kyu serve runs them)".to_string())
    };
    let handle = worker.config(worker_config).try_start()?;
    let (http_line, http) = match http {
        None => ("off".to_string(), None),
        Some((listener, app, control)) => {
            // The bound address: the one asked for, with the port the system
            // chose for port 0.
            let at = listener
                .local_addr()
                .map(|a| a.to_string())
                .unwrap_or_else(|_| listen.to_string());
            let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
            let task = tokio::spawn(kyu_server::serve(listener, app, async move {
                let _ = stop_rx.await;
            }));
            if serve {
                announce_first_token(&kyu, &at).await?;
            }
            if listener_is_public(&listen) {
                eprintln!(
                    "warning: kyu serves plain HTTP on {at}, beyond loopback: put it behind a \
                     TLS-terminating proxy (see README, HTTP API) so tokens never cross a network in clear"
                );
            }
            (
                format!("{at} (dashboard http://{at}/, API /v1, /openapi.json, /metrics, /healthz, /readyz)"),
                Some((stop_tx, task, control)),
            )
        }
    };
    let kinds: Vec<&String> = config.jobs.keys().collect();
    let queue_list: Vec<String> = queues.iter().map(|(q, n)| format!("{q}={n}")).collect();
    let line = format!(
        "kyu {} started: database {}; queues {}; command kinds {}; schedules {}; http {}; commands report to {}",
        if serve { "serve" } else { "worker" },
        kyu::postgres::redact_url(&url),
        queue_list.join(", "),
        if kinds.is_empty() {
            "none".to_string()
        } else {
            kinds
                .iter()
                .map(|k| k.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        },
        schedules,
        http_line,
        api_url.as_deref().unwrap_or("none (no --api-url, [api] url or --http)"),
    );
    // Listen for SIGTERM and Ctrl-C before saying "started": a signal sent
    // as soon as the line is seen must stop the process gracefully, not by
    // the signal's default action.
    let stop = stop_signal();
    tracing::info!("{line}");
    eprintln!("{line}");
    stop.await;
    // Remote workers (HTTP) claim nothing more and finish what they hold.
    if let Some((_, _, control)) = &http {
        control.set(kyu_server::api::workers::WorkerCommand::Quiet);
    }
    if let Some(s) = scheduler {
        s.shutdown().await;
    }
    handle.shutdown().await;
    // The listener last: /healthz answers while running jobs finish.
    if let Some((stop, task, control)) = http {
        control.set(kyu_server::api::workers::WorkerCommand::Stop);
        let _ = stop.send(());
        match task.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "the HTTP listener stopped with an error"),
            Err(e) => tracing::warn!(error = %e, "the HTTP listener's task failed"),
        }
    }
    eprintln!("kyu stopped");
    Ok(())
}

/// Completes on SIGTERM or SIGINT; both are listened for from the call on
/// (not from the first poll, as [`kyu::wait_for_signal`] does).
fn stop_signal() -> impl std::future::Future<Output = ()> {
    use tokio::signal::unix::{signal, SignalKind};
    let term = signal(SignalKind::terminate());
    let int = signal(SignalKind::interrupt());
    async move {
        match (term, int) {
            (Ok(mut term), Ok(mut int)) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                }
            }
            _ => kyu::wait_for_signal().await,
        }
    }
}

/// On the first `kyu serve` of a database without any token, makes the
/// admin token and prints it once with a ready command, as Jupyter prints
/// its login URL: the newcomer's path stays one command.
async fn announce_first_token(kyu: &kyu::Kyu, at: &str) -> Result<(), crate::Failure> {
    if let Some(made) = kyu.create_first_token().await? {
        eprintln!(
            "kyu: this database had no API token; created the admin token (shown this once, store it now):\n    {}\n  dashboard: open http://{at}/login?token={} to log in\n  try: curl -H 'Authorization: Bearer {}' http://{at}/v1/queues\n  more tokens: kyu tokens create --name NAME --scope produce --queues 'tenant-a.*'",
            made.secret, made.secret, made.secret
        );
    }
    Ok(())
}

/// The address a command on this host reaches this process's listener at:
/// a wildcard address (`0.0.0.0`, `::`) is reached through loopback.
fn local_api_url(addr: std::net::SocketAddr) -> String {
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
    let ip = match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    format!("http://{}", SocketAddr::new(ip, addr.port()))
}

/// Whether the listener is reachable from other hosts.
fn listener_is_public(listen: &Listen) -> bool {
    match listen {
        Listen::At(addr) => !addr.ip().is_loopback(),
        Listen::Off => false,
    }
}
