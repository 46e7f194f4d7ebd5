//! Live command output on a job's page: the page's one event stream
//! (`GET /live/events?job=ID&attempt=A&stdout=N&stderr=M`, see [`super::live`])
//! also carries `output` events with what the running attempt wrote since
//! the page's own text (its byte counts `N` and `M`), as `kyu jobs logs
//! --follow` prints it. Writing output makes no event, so while the job
//! runs the stream reads the job's recorded output once a second (one read
//! per open page of a running job, none once it finishes); the workers
//! record it every second or so. Needs `read_args`: output is as sensitive
//! as args.

use std::convert::Infallible;
use std::time::Duration;

use axum::response::sse::Event as SseEvent;
use futures_util::Stream;
use kyu::{AttemptLogs, JobId};

use super::DashState;
use crate::api::auth::Caller;

/// How often a running job's output is read.
const EVERY: Duration = Duration::from_secs(1);

/// Where the page's output ends.
#[derive(Debug, Default, serde::Deserialize)]
pub(crate) struct TailQuery {
    /// The job whose output the page shows.
    job: Option<String>,
    /// The attempt it shows.
    attempt: Option<String>,
    /// Bytes of stdout it shows.
    stdout: Option<String>,
    /// Bytes of stderr it shows.
    stderr: Option<String>,
}

struct Follow {
    dash: DashState,
    caller: Caller,
    job: JobId,
    attempt: u32,
    stdout: u64,
    stderr: u64,
    ended: bool,
}

/// The output events of the page's job, or `None` when the page asked
/// for none or may not see output.
pub(crate) fn stream(
    dash: DashState,
    caller: Caller,
    q: TailQuery,
) -> Option<impl Stream<Item = Result<SseEvent, Infallible>>> {
    let num = |s: &Option<String>| s.as_deref().and_then(|s| s.parse::<u64>().ok());
    let job = num(&q.job).filter(|j| *j > 0)? as JobId;
    if !caller.reads_args() {
        return None;
    }
    let follow = Follow {
        dash,
        caller,
        job,
        attempt: num(&q.attempt).unwrap_or(0) as u32,
        stdout: num(&q.stdout).unwrap_or(0),
        stderr: num(&q.stderr).unwrap_or(0),
        ended: false,
    };
    Some(futures_util::stream::unfold(follow, |mut f| async move {
        loop {
            if f.ended {
                return None;
            }
            tokio::time::sleep(EVERY).await;
            // A job the viewer may not see (or one deleted) ends the stream.
            let Ok(job) = f.caller.visible_job(&f.dash.shared.kyu, f.job).await else {
                return None;
            };
            // Read the output after the state, so the last read of a
            // finished job has all of it.
            f.ended = job.state.is_finished();
            let Ok(logs) = f.dash.shared.kyu.logs(f.job).await else {
                continue;
            };
            let Some(l) = logs.into_iter().last() else {
                continue;
            };
            if let Some(e) = f.news(&l) {
                return Some((Ok(e), f));
            }
        }
    }))
}

impl Follow {
    /// The event for what `l` adds to what the page shows, if anything.
    fn news(&mut self, l: &AttemptLogs) -> Option<SseEvent> {
        if l.attempt != self.attempt {
            // Another attempt: the page shows it from its start.
            self.attempt = l.attempt;
            self.stdout = 0;
            self.stderr = 0;
        }
        if l.stdout_bytes == self.stdout && l.stderr_bytes == self.stderr {
            return None;
        }
        let data = serde_json::json!({
            "attempt": l.attempt,
            "stdout": AttemptLogs::new_part(&l.stdout, l.stdout_bytes, self.stdout),
            "stderr": AttemptLogs::new_part(&l.stderr, l.stderr_bytes, self.stderr),
            "stdout_bytes": l.stdout_bytes,
            "stderr_bytes": l.stderr_bytes,
        });
        self.stdout = l.stdout_bytes;
        self.stderr = l.stderr_bytes;
        Some(SseEvent::default().event("output").data(data.to_string()))
    }
}
