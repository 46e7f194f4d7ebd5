//! Attempt logs: what [`set_logs`](crate::LogStore::set_logs) records and
//! [`logs`](crate::LogStore::logs) returns. A command job's worker writes its
//! attempt's output while it runs (so `kyu jobs logs --follow` can show it)
//! and once at its end; readers rely on one entry per attempt, in attempt
//! order, that lives exactly as long as its job.

use super::{completed, errored, job, Ctx, Harness};
use crate::{AttemptLogs, JobState, StoreError};

/// The logs of `attempt` with the given text, its byte counts those of the text.
fn out(attempt: u32, stdout: &str, stderr: &str) -> AttemptLogs {
    AttemptLogs {
        attempt,
        stdout: stdout.into(),
        stderr: stderr.into(),
        stdout_bytes: stdout.len() as u64,
        stderr_bytes: stderr.len() as u64,
    }
}

/// The job's recorded logs.
async fn logs_of(c: &Ctx, id: crate::JobId) -> Vec<AttemptLogs> {
    c.store.logs(id).await.expect("logs")
}

/// Records logs, which must be accepted.
async fn set(c: &Ctx, id: crate::JobId, logs: AttemptLogs) {
    c.store.set_logs(id, logs).await.expect("set_logs");
}

/// A second write for one attempt replaces the first (the output so far is
/// written again as it grows), never appends; other attempts are untouched.
pub async fn logs_replace_per_attempt(h: &dyn Harness) {
    let c = Ctx::new(h).await;
    let id = c.add(job("cmd")).await;
    set(&c, id, out(1, "hel", "")).await;
    set(&c, id, out(1, "hello", "warn")).await;
    assert_eq!(logs_of(&c, id).await, vec![out(1, "hello", "warn")]);
    set(&c, id, out(2, "again", "")).await;
    // The kept tail may shrink while the byte counts grow (older output cut).
    let cut = AttemptLogs {
        stdout_bytes: 9_000,
        ..out(1, "tail", "")
    };
    set(&c, id, cut.clone()).await;
    assert_eq!(logs_of(&c, id).await, vec![cut, out(2, "again", "")]);
}

/// Logs come back one entry per attempt, oldest attempt first, whatever the
/// order they were written in.
pub async fn logs_ordered_by_attempt(h: &dyn Harness) {
    let c = Ctx::new(h).await;
    let id = c.add(job("cmd")).await;
    for attempt in [3, 1, 12, 2] {
        set(&c, id, out(attempt, &format!("attempt {attempt}"), "")).await;
    }
    let attempts: Vec<u32> = logs_of(&c, id).await.iter().map(|l| l.attempt).collect();
    assert_eq!(attempts, vec![1, 2, 3, 12], "by attempt, not by write");
    for l in logs_of(&c, id).await {
        assert_eq!(l.stdout, format!("attempt {}", l.attempt));
    }
}

/// A job that wrote no output has no logs: an empty list, not an error. So
/// has an id no job has. Logs are per job: one job's never show in another's.
pub async fn logs_empty_for_job_without_output(h: &dyn Harness) {
    let c = Ctx::new(h).await;
    let quiet = c.add(job("quiet")).await;
    let loud = c.add(job("loud")).await;
    assert!(logs_of(&c, quiet).await.is_empty());
    set(&c, loud, out(1, "noise", "")).await;
    assert!(logs_of(&c, quiet).await.is_empty(), "not another job's");
    assert_eq!(logs_of(&c, loud).await, vec![out(1, "noise", "")]);
    assert!(logs_of(&c, loud + 1000).await.is_empty(), "an unknown id");
    // Empty output recorded is an entry, not nothing: the attempt ran.
    set(&c, quiet, out(1, "", "")).await;
    assert_eq!(logs_of(&c, quiet).await, vec![out(1, "", "")]);
}

/// Logs for a job that does not exist are refused with `NotFound`, and
/// nothing is recorded.
pub async fn logs_of_unknown_job_refused(h: &dyn Harness) {
    let c = Ctx::new(h).await;
    let id = c.add(job("k")).await;
    let unknown = id + 1000;
    match c.store.set_logs(unknown, out(1, "x", "")).await {
        Err(StoreError::NotFound(n)) => assert_eq!(n, unknown),
        other => panic!("set_logs of an unknown job should be NotFound, got {other:?}"),
    }
    assert!(logs_of(&c, unknown).await.is_empty());
    assert!(logs_of(&c, id).await.is_empty());
}

/// Logs stay with their job through its attempts (an error and its retry, a
/// retry by hand, the last attempt's success) and through a retention pass
/// that keeps the job; they are deleted with the job, and only then.
pub async fn logs_kept_with_the_job(h: &dyn Harness) {
    let c = Ctx::new(h).await;
    let id = c.add(job("cmd").max_attempts(2)).await;
    let cl = c.claim_one("default").await;
    set(&c, id, out(1, "first try", "boom")).await;
    c.finish(cl.lease(), errored(c.now())).await;
    let cl = c.claim_one("default").await;
    assert_eq!(cl.attempt, 2);
    set(&c, id, out(2, "second try", "boom")).await;
    c.finish(cl.lease(), errored(c.now())).await;
    assert_eq!(c.state(id).await, JobState::Failed);
    let both = vec![out(1, "first try", "boom"), out(2, "second try", "boom")];
    assert_eq!(logs_of(&c, id).await, both, "kept through failing");

    c.store.retry(&[id]).await.expect("retry");
    let cl = c.claim_one("default").await;
    set(&c, id, out(cl.attempt, "third time lucky", "")).await;
    c.finish(cl.lease(), completed()).await;
    let all = logs_of(&c, id).await;
    assert_eq!(all.len(), 3, "kept through a retry by hand: {all:?}");
    assert_eq!(all[..2], both[..]);

    // Another job's logs, finished later, must outlive this one's deletion.
    let other = c.add(job("other")).await;
    let cl = c.claim_one("default").await;
    set(&c, other, out(1, "other", "")).await;
    c.advance(10);
    let between = c.now();
    c.advance(10);
    c.finish(cl.lease(), completed()).await;
    c.advance(10);

    let before = between - chrono::Duration::seconds(3600);
    assert_eq!(
        c.store
            .delete_finished(before, before)
            .await
            .expect("delete"),
        0
    );
    assert_eq!(logs_of(&c, id).await.len(), 3, "kept with the kept job");
    assert_eq!(
        c.store
            .delete_finished(between, between)
            .await
            .expect("delete"),
        1
    );
    assert!(c.store.get(id).await.expect("get").is_none());
    assert!(logs_of(&c, id).await.is_empty(), "deleted with the job");
    assert_eq!(logs_of(&c, other).await, vec![out(1, "other", "")]);
}

/// The text comes back exactly as written (any UTF-8, U+FFFD included,
/// line ends as they were, a large tail), and the byte counts as written,
/// beyond 32 bits too: a log can outgrow 4 GiB while its tail stays small.
pub async fn logs_text_and_counts_round_trip(h: &dyn Harness) {
    let c = Ctx::new(h).await;
    let id = c.add(job("cmd")).await;
    let logs = AttemptLogs {
        attempt: 1,
        stdout: "héllo ✓ 日本 \u{FFFD} 🦀\r\nline two\n\ttab".into(),
        stderr: "e".repeat(256 * 1024),
        stdout_bytes: 5_000_000_000,
        stderr_bytes: 1 << 40,
    };
    set(&c, id, logs.clone()).await;
    assert_eq!(logs_of(&c, id).await, vec![logs]);
}

/// A NUL character (a command may print one) is recorded as U+FFFD, as an
/// undecodable byte is: PostgreSQL text cannot hold NUL, and every backend
/// answers alike, so a reader sees the same text wherever the job ran.
pub async fn logs_record_nul_as_replacement_character(h: &dyn Harness) {
    let c = Ctx::new(h).await;
    let id = c.add(job("cmd")).await;
    let sent = AttemptLogs {
        attempt: 1,
        stdout: "a\0b".into(),
        stderr: "\0".into(),
        stdout_bytes: 5,
        stderr_bytes: 3,
    };
    set(&c, id, sent).await;
    let got = logs_of(&c, id).await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].stdout, "a\u{FFFD}b");
    assert_eq!(got[0].stderr, "\u{FFFD}");
    assert_eq!((got[0].stdout_bytes, got[0].stderr_bytes), (5, 3));
}
