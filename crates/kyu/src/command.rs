//! Command jobs: any script or program runs as a job.
//!
//! Each attempt runs the command as a child in its own process group, with
//! the job in its environment (`KYU_JOB_ID`, `KYU_ATTEMPT`, `KYU_QUEUE`,
//! `KYU_KIND`, `KYU_ARGS`) and the args as JSON on stdin. stdout and stderr
//! are captured as they come; the last [`CommandSpec::log_limit`] bytes of
//! each are kept. A stdout line `::kyu-progress 40 step 2 of 5` records
//! progress.
//!
//! Outcome: exit 0 completes the job (with the last stdout line that is JSON
//! as its result, if [`CommandSpec::result_from_stdout`]); an exit code in
//! [`CommandSpec::permanent_exit_codes`] (default 65) fails it for good; any
//! other exit fails the attempt, which is retried by the job's policy.
//!
//! Stop: on cancel the whole process group gets SIGTERM, then SIGKILL after
//! [`CommandSpec::stop_grace`]. If the attempt is abandoned any other way
//! (timeout, worker shutdown) the same happens from a drop guard. After the
//! command exits, whatever it left running in its group is killed: a job
//! leaves no orphans. If the worker process itself dies, the kernel kills the
//! command (Linux: `PR_SET_PDEATHSIG`), since its job will run again elsewhere.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

use kyu_core::AttemptLogs;

use crate::{JobContext, JobError, JobResult, Outcome};

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

#[derive(Default)]
struct Capture {
    stdout: Vec<u8>,
    stderr: Vec<u8>,
    stdout_bytes: u64,
    stderr_bytes: u64,
    last_json_line: Option<String>,
    changed: bool,
}

impl Capture {
    fn logs(&self, attempt: u32) -> AttemptLogs {
        AttemptLogs {
            attempt,
            stdout: String::from_utf8_lossy(&self.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&self.stderr).into_owned(),
            stdout_bytes: self.stdout_bytes,
            stderr_bytes: self.stderr_bytes,
        }
    }
}

fn keep_tail(buf: &mut Vec<u8>, chunk: &[u8], limit: usize) {
    buf.extend_from_slice(chunk);
    if buf.len() > limit {
        let cut = buf.len() - limit;
        buf.drain(..cut);
    }
}

/// Kills the process group when the attempt is abandoned without a clean end.
struct GroupGuard {
    pgid: i32,
    grace: Duration,
    armed: bool,
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let (pgid, grace) = (self.pgid, self.grace);
        signal_group(pgid, libc::SIGTERM);
        // Not async: the runtime may be going away.
        std::thread::spawn(move || {
            let end = std::time::Instant::now() + grace;
            while std::time::Instant::now() < end && group_alive(pgid) {
                std::thread::sleep(Duration::from_millis(50));
            }
            signal_group(pgid, libc::SIGKILL);
        });
    }
}

fn signal_group(pgid: i32, sig: i32) {
    // SAFETY: kill(2) with a negative pid signals the process group we created.
    unsafe {
        libc::kill(-pgid, sig);
    }
}

fn group_alive(pgid: i32) -> bool {
    // SAFETY: signal 0 only checks that the group exists.
    unsafe { libc::kill(-pgid, 0) == 0 }
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
        .env("KYU_ARGS", ctx.args())
        .env("PYTHONUNBUFFERED", "1")
        .envs(&spec.env)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    if let Some(dir) = &spec.cwd {
        cmd.current_dir(dir);
    }
    #[cfg(target_os = "linux")]
    // SAFETY: prctl is async-signal-safe; the closure touches nothing else.
    unsafe {
        // If the worker dies (even by SIGKILL), the kernel kills the command:
        // its job is about to run again elsewhere.
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    let mut child = cmd.spawn().map_err(|e| {
        let msg = format!("could not start {:?}: {e}", spec.command.join(" "));
        match e.kind() {
            std::io::ErrorKind::NotFound | std::io::ErrorKind::PermissionDenied => {
                JobError::permanent(msg)
            }
            _ => JobError::retryable(msg),
        }
    })?;
    let pgid = child.id().map(|p| p as i32).unwrap_or(0);
    let mut guard = GroupGuard {
        pgid,
        grace: spec.stop_grace,
        armed: pgid > 0,
    };
    tracing::info!(pid = pgid, command = ?spec.command, "command started");

    if let Some(mut stdin) = child.stdin.take() {
        let args = ctx.args().as_bytes().to_vec();
        tokio::spawn(async move {
            // A command that never reads stdin must not block the job.
            let _ = stdin.write_all(&args).await;
            let _ = stdin.shutdown().await;
        });
    }
    let capture = Arc::new(Mutex::new(Capture::default()));
    let out = tokio::spawn(read_stream(
        child.stdout.take().expect("piped stdout"),
        capture.clone(),
        spec.log_limit,
        Some(ctx.clone()),
    ));
    let err = tokio::spawn(read_stream(
        child.stderr.take().expect("piped stderr"),
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
    let deadline = async {
        match spec.timeout {
            Some(t) => tokio::time::sleep(t).await,
            None => std::future::pending().await,
        }
    };
    let status = tokio::select! {
        s = child.wait() => s,
        _ = deadline => {
            let limit = spec.timeout.unwrap_or_default();
            stopped = Some(format!("timed out after {}", crate::worker::humanize(limit)));
            stop(&mut child, pgid, spec.stop_grace).await
        }
        _ = ctx.cancelled() => {
            stopped = Some("stopped: the command was sent SIGTERM on cancel".to_string());
            stop(&mut child, pgid, spec.stop_grace).await
        }
    };
    // Whatever the command left behind in its group goes too.
    signal_group(pgid, libc::SIGKILL);
    guard.armed = false;
    let _ = out.await;
    let _ = err.await;
    flusher.abort();
    let (logs, last_json) = {
        let c = capture.lock().expect("capture lock");
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

/// SIGTERM to the group, SIGKILL after `grace`; returns the exit status.
async fn stop(
    child: &mut tokio::process::Child,
    pgid: i32,
    grace: Duration,
) -> std::io::Result<std::process::ExitStatus> {
    tracing::info!(pid = pgid, "stopping the command: SIGTERM");
    signal_group(pgid, libc::SIGTERM);
    match tokio::time::timeout(grace, child.wait()).await {
        Ok(s) => s,
        Err(_) => {
            tracing::warn!(pid = pgid, grace = ?grace, "the command ignored SIGTERM; SIGKILL");
            signal_group(pgid, libc::SIGKILL);
            child.wait().await
        }
    }
}

/// Reads one stream to its end into the capture. For stdout (`progress` is
/// the job context), whole lines are also checked for progress and JSON.
async fn read_stream(
    mut stream: impl AsyncRead + Unpin,
    capture: Arc<Mutex<Capture>>,
    limit: usize,
    progress: Option<JobContext>,
) {
    let mut buf = vec![0u8; 8192];
    let mut line = Vec::new();
    loop {
        let n = match stream.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let chunk = &buf[..n];
        let mut lines_done = Vec::new();
        if progress.is_some() {
            for &b in chunk {
                if b == b'\n' {
                    lines_done.push(String::from_utf8_lossy(&line).into_owned());
                    line.clear();
                } else if line.len() < 64 * 1024 {
                    line.push(b);
                }
            }
        }
        {
            let mut c = capture.lock().expect("capture lock");
            c.changed = true;
            if progress.is_some() {
                keep_tail(&mut c.stdout, chunk, limit);
                c.stdout_bytes += n as u64;
                for l in &lines_done {
                    if serde_json::from_str::<serde::de::IgnoredAny>(l).is_ok()
                        && !l.trim().is_empty()
                    {
                        c.last_json_line = Some(l.clone());
                    }
                }
            } else {
                keep_tail(&mut c.stderr, chunk, limit);
                c.stderr_bytes += n as u64;
            }
        }
        if let Some(ctx) = &progress {
            for l in &lines_done {
                if let Some((pct, msg)) = parse_progress_line(l) {
                    ctx.set_progress(pct, msg).await;
                }
            }
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

    #[test]
    fn tails_keep_the_last_bytes() {
        let mut b = Vec::new();
        keep_tail(&mut b, b"hello ", 8);
        keep_tail(&mut b, b"world", 8);
        assert_eq!(b, b"lo world");
    }
}
