//! Command jobs: any script or program runs as a job.
//!
//! Each attempt runs the command as a child in its own process group, with
//! the job in its environment (`KYU_JOB_ID`, `KYU_ATTEMPT`, `KYU_QUEUE`,
//! `KYU_KIND`, and `KYU_ARGS` when the args are at most [`ARGS_ENV_LIMIT`]
//! bytes) and the args as JSON on stdin, whatever their size. With
//! [`CommandSpec::api_url`] set, also `KYU_API_URL` and `KYU_JOB_TOKEN`: a
//! token for kyu's HTTP API that can only report on this job (its progress,
//! reading it) and stops working when this attempt ends
//! ([`crate::job_token`]). stdout and
//! stderr are captured as they come, as UTF-8 text; the last
//! [`CommandSpec::log_limit`] bytes of each are kept. A stdout line
//! `::kyu-progress 40 step 2 of 5` records progress.
//!
//! Outcome: exit 0 completes the job (with the last stdout line that is JSON
//! as its result, if [`CommandSpec::result_from_stdout`]); an exit code in
//! [`CommandSpec::permanent_exit_codes`] (default 65) fails it for good; any
//! other exit fails the attempt, which is retried by the job's policy. The
//! attempt ends when the command exits: output still in flight is read for
//! at most a moment more, even if a process that left the group holds the
//! pipes open.
//!
//! Time limit: the job's own timeout if it has one, else
//! [`CommandSpec::timeout`].
//!
//! Stop: on timeout, cancel or the worker's shutdown (once its grace ran
//! out) the whole process group gets SIGTERM, then SIGKILL after
//! [`CommandSpec::stop_grace`]. Whenever the attempt ends, whatever the
//! command left running in its group is killed, and the attempt's result is
//! written (or its job released) only once nothing of the group runs. If the
//! worker process itself dies, a keeper process kills the group (Unix; see
//! `group.rs`), so nothing of the attempt runs beside the job's next one.
//! A process that leaves the group (`setsid`) is not tracked.

mod group;
mod output;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::AsyncWriteExt;

use kyu_core::AttemptLogs;

use crate::{JobContext, JobError, JobResult, Outcome};
use group::Group;
use output::{read_stream, Capture};

/// Largest args (bytes of JSON) also passed in `KYU_ARGS`; larger ones arrive
/// on stdin only, with `KYU_ARGS` unset. Linux refuses to start a program
/// with one variable over 128 KiB, so half of that leaves room to spare.
pub const ARGS_ENV_LIMIT: usize = 64 * 1024;

/// After the command ends, how long its output pipes are still read.
const DRAIN: Duration = Duration::from_millis(500);

/// The exit code that marks a permanent failure by default (65, `EX_DATAERR`:
/// "the input was wrong", so retrying cannot help).
pub const DEFAULT_PERMANENT_EXIT: i32 = 65;

/// How to run one kind of command job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandSpec {
    /// The program and its arguments, e.g. `["python3", "-u", "scripts/sync.py"]`.
    pub command: Vec<String>,
    /// Working directory; default: the worker's.
    pub cwd: Option<PathBuf>,
    /// Extra environment variables (the worker's environment is inherited).
    pub env: BTreeMap<String, String>,
    /// Time limit of one attempt: then the group gets SIGTERM, SIGKILL after
    /// `stop_grace`, and the attempt fails with "timed out after …". Default none.
    pub timeout: Option<Duration>,
    /// After SIGTERM, how long the command gets before SIGKILL. Default 10 s.
    pub stop_grace: Duration,
    /// Bytes of stdout and of stderr kept (the last ones). Default 64 KiB.
    pub log_limit: usize,
    /// On exit 0, take the last stdout line that is valid JSON as the result.
    pub result_from_stdout: bool,
    /// Exit codes that fail the job without retry. Default `[65]`.
    pub permanent_exit_codes: Vec<i32>,
    /// The address of kyu's HTTP API (e.g. `http://127.0.0.1:7070`), given to
    /// the command as `KYU_API_URL` with a job token (`KYU_JOB_TOKEN`) for
    /// this attempt. Default none: neither is set.
    pub api_url: Option<String>,
}

impl CommandSpec {
    /// A spec for `command` with every other setting at its default.
    pub fn new(command: Vec<String>) -> CommandSpec {
        CommandSpec {
            command,
            cwd: None,
            env: BTreeMap::new(),
            timeout: None,
            stop_grace: Duration::from_secs(10),
            log_limit: 64 * 1024,
            result_from_stdout: false,
            permanent_exit_codes: vec![DEFAULT_PERMANENT_EXIT],
            api_url: None,
        }
    }
}

/// Parses a progress line: `::kyu-progress PERCENT [MESSAGE]`.
pub fn parse_progress_line(line: &str) -> Option<(u8, String)> {
    let rest = line.trim_end().strip_prefix("::kyu-progress ")?;
    let (pct, msg) = rest.split_once(' ').unwrap_or((rest, ""));
    let pct: u8 = pct.trim().parse().ok().filter(|p| *p <= 100)?;
    Some((pct, msg.trim().to_string()))
}

/// Runs one attempt of a command job. `on_logs` is called with the output so
/// far about every `flush_every` while it changes, and once at the end.
pub async fn run_command(
    spec: &CommandSpec,
    ctx: &JobContext,
    flush_every: Duration,
    on_logs: impl Fn(AttemptLogs) + Send + Sync + 'static,
) -> JobResult {
    let Some((program, args)) = spec.command.split_first() else {
        return Err(JobError::permanent("the command is empty"));
    };
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(args)
        .env("KYU_JOB_ID", ctx.id().to_string())
        .env("KYU_ATTEMPT", ctx.attempt().to_string())
        .env("KYU_QUEUE", ctx.queue())
        .env("KYU_KIND", ctx.kind())
        .env("PYTHONUNBUFFERED", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // A variable over 128 KiB cannot reach a program on Linux (the whole
    // start fails with "Argument list too long"); stdin carries any size.
    if ctx.args().len() <= ARGS_ENV_LIMIT {
        cmd.env("KYU_ARGS", ctx.args());
    } else {
        cmd.env_remove("KYU_ARGS");
    }
    match &spec.api_url {
        Some(url) => {
            let token = ctx
                .kyu()
                .job_token(ctx.id(), ctx.attempt())
                .await
                .map_err(|e| {
                    JobError::retryable(format!("could not make the job's API token: {e}"))
                })?;
            cmd.env("KYU_API_URL", url).env("KYU_JOB_TOKEN", token);
        }
        // A token this process inherited (a worker started by a command
        // job) belongs to another job: never pass it on.
        None => {
            cmd.env_remove("KYU_JOB_TOKEN");
        }
    }
    cmd.envs(&spec.env);
    if let Some(dir) = &spec.cwd {
        cmd.current_dir(dir);
    }
    #[cfg(target_os = "linux")]
    // SAFETY: prctl is async-signal-safe; the closure touches nothing else.
    unsafe {
        // Besides the group's keeper (see `group`): should the keeper be
        // gone, the command itself still dies with the worker.
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    let mut group = Group::spawn(cmd).map_err(|e| {
        let msg = format!("could not start {:?}: {e}", spec.command.join(" "));
        match e.kind() {
            std::io::ErrorKind::NotFound | std::io::ErrorKind::PermissionDenied => {
                JobError::permanent(msg)
            }
            _ => JobError::retryable(msg),
        }
    })?;
    tracing::info!(pgid = group.pgid(), command = ?spec.command, "command started");

    let stdin = group.child.stdin.take().map(|mut stdin| {
        let args = ctx.args().as_bytes().to_vec();
        tokio::spawn(async move {
            // A command that never reads stdin must not block the job.
            let _ = stdin.write_all(&args).await;
            let _ = stdin.shutdown().await;
        })
    });
    let capture = Arc::new(Mutex::new(Capture::default()));
    let mut out = tokio::spawn(read_stream(
        group.child.stdout.take().expect("piped stdout"),
        capture.clone(),
        spec.log_limit,
        Some(ctx.clone()),
    ));
    let mut err = tokio::spawn(read_stream(
        group.child.stderr.take().expect("piped stderr"),
        capture.clone(),
        spec.log_limit,
        None,
    ));
    let on_logs = Arc::new(on_logs);
    let attempt = ctx.attempt();
    let flusher = {
        let capture = capture.clone();
        let on_logs = on_logs.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(flush_every);
            loop {
                tick.tick().await;
                let logs = {
                    let mut c = capture.lock().expect("capture lock");
                    if !c.changed {
                        continue;
                    }
                    c.changed = false;
                    c.logs(attempt)
                };
                on_logs(logs);
            }
        })
    };

    let mut stopped = None;
    // One rule for every reader: the job's own timeout if it has one, else the kind's.
    let limit = ctx.timeout.or(spec.timeout);
    let deadline = async {
        match limit {
            Some(t) => tokio::time::sleep(t).await,
            None => std::future::pending().await,
        }
    };
    let status = tokio::select! {
        s = group.child.wait() => s,
        _ = deadline => {
            let limit = limit.unwrap_or_default();
            stopped = Some(format!("timed out after {}", crate::humanize::humanize(limit)));
            group.stop(spec.stop_grace).await
        }
        _ = ctx.cancelled() => {
            stopped = Some("stopped: the command was sent SIGTERM on cancel".to_string());
            group.stop(spec.stop_grace).await
        }
        _ = ctx.stopping.cancelled() => {
            stopped = Some("stopped: the worker is shutting down".to_string());
            group.stop(spec.stop_grace).await
        }
    };
    // The job ends with the command: whatever it left running in its group
    // goes now, and is gone before the attempt's result is written.
    group.end().await;
    // Output still buffered in the pipes is read for a moment more; a
    // process that left the group may hold them open, but not the job.
    let drained = tokio::time::timeout(DRAIN, async {
        let _ = (&mut out).await;
        let _ = (&mut err).await;
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            "a process outside the command's group still holds its output open; output from it is not recorded"
        );
        out.abort();
        err.abort();
    }
    if let Some(stdin) = stdin {
        stdin.abort();
    }
    flusher.abort();
    let (logs, last_json) = {
        let mut c = capture.lock().expect("capture lock");
        c.stdout.finish(spec.log_limit);
        c.stderr.finish(spec.log_limit);
        (c.logs(attempt), c.last_json_line.clone())
    };
    let last_err_line = logs
        .stderr
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .map(|l| format!(": {}", l.trim()))
        .unwrap_or_default();
    on_logs(logs);

    let status =
        status.map_err(|e| JobError::retryable(format!("waiting for the command: {e}")))?;
    if let Some(why) = stopped {
        return Err(JobError::retryable(why));
    }
    match status.code() {
        Some(0) => match (spec.result_from_stdout, last_json) {
            (true, Some(line)) => Ok(Outcome::Result(
                serde_json::from_str(&line).expect("checked as JSON when read"),
            )),
            _ => Ok(Outcome::Done),
        },
        Some(code) if spec.permanent_exit_codes.contains(&code) => Err(JobError::permanent(
            format!("exited with status {code} (a permanent failure){last_err_line}"),
        )),
        Some(code) => Err(JobError::retryable(format!(
            "exited with status {code}{last_err_line}"
        ))),
        None => {
            use std::os::unix::process::ExitStatusExt;
            Err(JobError::retryable(format!(
                "killed by signal {}{last_err_line}",
                status.signal().unwrap_or(0)
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_lines_parse() {
        assert_eq!(
            parse_progress_line("::kyu-progress 40 step 2 of 5\n"),
            Some((40, "step 2 of 5".into()))
        );
        assert_eq!(
            parse_progress_line("::kyu-progress 100"),
            Some((100, "".into()))
        );
        assert_eq!(
            parse_progress_line("::kyu-progress 250 x"),
            None,
            "out of u8 range"
        );
        assert_eq!(parse_progress_line("progress 40"), None);
        assert_eq!(parse_progress_line("::kyu-progress abc"), None);
    }
}
