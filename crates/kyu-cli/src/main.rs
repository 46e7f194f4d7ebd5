//! `kyu`: the command-line face of kyu. Thin commands over the kyu crate.

mod bench;
mod commands;
mod config;
mod database;
mod output;
mod parse;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// The default database: a SQLite file in the current directory.
pub const DEFAULT_DATABASE: &str = "sqlite://kyu.db";

#[derive(Parser, Debug)]
#[command(
    name = "kyu",
    version,
    about = "Durable background jobs and cron: enqueue, inspect, cancel, retry, pause, benchmark",
    long_about = "kyu is a durable background-job queue. It keeps jobs in one SQLite file by \
default (no set-up) and runs them with at-least-once delivery.\n\n\
The database is chosen by --database, else the KYU_DATABASE_URL environment variable, \
else `database` in kyu.toml, else sqlite://kyu.db. A relative SQLite path is relative to \
the current directory in --database and KYU_DATABASE_URL, and to the config file's \
directory in kyu.toml (and for the default, when a kyu.toml is used). Commands that only \
read or act on existing jobs and schedules never create a database.",
    after_help = "Examples:\n  \
kyu enqueue send_email '{\"to\":\"ada@example.com\"}' --queue mail --max-attempts 3\n  \
kyu jobs ls --state failed\n  \
kyu jobs show 42\n  \
kyu jobs retry --all-failed --queue mail\n  \
kyu queues pause mail\n  \
kyu schedules add nightly '0 3 * * *' report --tz Asia/Tokyo\n  \
kyu bench --workload w1 --jobs 20000 --concurrency 10\n\n\
Exit status: 0 success, 1 failure, 2 invalid input or usage, 3 a job, queue or schedule was not found."
)]
struct Cli {
    /// Database URL, e.g. sqlite://kyu.db (relative to the current directory)
    /// or sqlite:///var/lib/kyu/kyu.db [default: the config file's `database`,
    /// relative to that file, else kyu.db beside it, else ./kyu.db]
    #[arg(long, global = true, env = "KYU_DATABASE_URL", value_name = "URL")]
    database: Option<String>,

    /// Config file [default: ./kyu.toml if it exists]
    #[arg(long, global = true, env = "KYU_CONFIG", value_name = "PATH")]
    config: Option<std::path::PathBuf>,

    /// Print JSON instead of tables (one document per command; JSON lines for bench).
    #[arg(long, global = true)]
    json: bool,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Enqueue one job.
    Enqueue(commands::enqueue::EnqueueArgs),
    /// List, show, cancel and retry jobs.
    #[command(subcommand)]
    Jobs(commands::jobs::JobsCommand),
    /// Print the event log (every change of jobs, queues, schedules and
    /// workers); --follow tails it live.
    Events(commands::events::EventsArgs),
    /// List queues with their counts; pause and resume them.
    #[command(subcommand)]
    Queues(commands::queues::QueuesCommand),
    /// Batches: show one's counts, list them, seal an open one.
    #[command(subcommand)]
    Batches(commands::batches::BatchesCommand),
    /// Cron schedules: list, add, remove, enable, disable, trigger; preview an expression.
    #[command(subcommand)]
    Schedules(commands::schedules::SchedulesCommand),
    /// API tokens for `kyu serve`: create (shown once), ls, revoke.
    #[command(subcommand)]
    Tokens(commands::tokens::TokensCommand),
    /// Run the scheduler, lease recovery, retention and workers for the
    /// configured command jobs, until SIGTERM or Ctrl-C.
    Serve(commands::serve::ServeArgs),
    /// Run workers (and lease recovery) only: more processes or hosts on the
    /// same database. No scheduler, no retention.
    Worker(commands::serve::ServeArgs),
    /// Report progress from inside a command job: `kyu progress 40 "step 2 of 5"`.
    Progress(commands::progress::ProgressArgs),
    /// Apply pending schema migrations (PostgreSQL: to the URL's schema, or --schema).
    Migrate(commands::migrate::MigrateArgs),
    /// Check a config file and print what it understood.
    #[command(subcommand)]
    Config(commands::config::ConfigCommand),
    /// Measure throughput (w1) or latency (w2), producer and worker in separate processes.
    Bench(bench::BenchArgs),
    /// The worker half of `kyu bench` (started by it; not for direct use).
    #[command(name = "bench-worker", hide = true)]
    BenchWorker(bench::WorkerArgs),
}

impl Command {
    /// Whether the command prints its answer and exits (as opposed to running
    /// until stopped and managing child processes: serve, worker, bench).
    fn prints_and_exits(&self) -> bool {
        !matches!(
            self,
            Command::Serve(_) | Command::Worker(_) | Command::Bench(_) | Command::BenchWorker(_)
        )
    }
}

/// `kyu jobs show 1 | head -c 300`: when the reader closes the pipe, end as
/// Unix tools do, by SIGPIPE, silently. Rust ignores SIGPIPE, which turns the
/// next print into a "failed printing to stdout: Broken pipe" panic (exit 101).
fn die_quietly_on_closed_pipe() {
    #[cfg(unix)]
    // SAFETY: restores the default disposition of one signal before any
    // thread is started; no handler is installed.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

/// A failure with its exit status.
#[derive(Debug)]
pub struct Failure {
    /// 1 failure, 2 invalid input, 3 not found.
    pub code: u8,
    /// What to print.
    pub error: anyhow::Error,
}

impl<E: Into<anyhow::Error>> From<E> for Failure {
    fn from(e: E) -> Self {
        let error: anyhow::Error = e.into();
        let code = match error.downcast_ref::<kyu::Error>() {
            Some(kyu::Error::Invalid(_)) => 2,
            Some(kyu::Error::NotFound(_)) => 3,
            Some(kyu::Error::Store(kyu::StoreError::BadUrl { .. })) => 2,
            _ => 1,
        };
        Failure { code, error }
    }
}

impl Failure {
    /// Invalid input (exit 2).
    pub fn invalid(msg: impl std::fmt::Display) -> Failure {
        Failure {
            code: 2,
            error: anyhow::anyhow!("{msg}"),
        }
    }
    /// Not found (exit 3).
    pub fn not_found(msg: impl std::fmt::Display) -> Failure {
        Failure {
            code: 3,
            error: anyhow::anyhow!("{msg}"),
        }
    }
}

/// The result of a command.
pub type CmdResult = Result<(), Failure>;

fn main() -> ExitCode {
    let cli = Cli::parse();
    if cli.command.prints_and_exits() {
        die_quietly_on_closed_pipe();
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("KYU_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: could not start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            eprintln!("error: {:#}", f.error);
            ExitCode::from(f.code)
        }
    }
}

async fn run(cli: Cli) -> CmdResult {
    let ctx = commands::Ctx::new(cli.database, cli.config, cli.json);
    match cli.command {
        Command::Serve(args) => commands::serve::run(&ctx, args, true).await,
        Command::Worker(args) => commands::serve::run(&ctx, args, false).await,
        Command::Progress(args) => commands::progress::run(&ctx, args).await,
        Command::Config(cmd) => commands::config::run(&ctx, cmd).await,
        Command::Migrate(args) => commands::migrate::run(&ctx, args).await,
        Command::Enqueue(args) => commands::enqueue::run(&ctx, args).await,
        Command::Jobs(cmd) => commands::jobs::run(&ctx, cmd).await,
        Command::Events(args) => commands::events::run(&ctx, args).await,
        Command::Queues(cmd) => commands::queues::run(&ctx, cmd).await,
        Command::Batches(cmd) => commands::batches::run(&ctx, cmd).await,
        Command::Tokens(cmd) => commands::tokens::run(&ctx, cmd).await,
        Command::Schedules(cmd) => commands::schedules::run(&ctx, cmd).await,
        Command::Bench(args) => bench::run(&ctx, args).await,
        Command::BenchWorker(args) => bench::worker(&ctx, args).await,
    }
}
