//! The store conformance suite: the semantics of [`Store`], stated as tests.
//!
//! Every backend runs all of it. A backend's `tests/conformance.rs` is a
//! [`Harness`] (a way to make a fresh, empty store with a given clock) and one
//! line of [`store_conformance_tests!`](crate::store_conformance_tests):
//!
//! ```ignore
//! struct MyHarness(tempfile::TempDir);
//! #[async_trait::async_trait]
//! impl kyu_core::testkit::Harness for MyHarness {
//!     async fn store(&self, clock: Arc<dyn Clock>) -> Arc<dyn Store> { /* a fresh store */ }
//! }
//! kyu_core::store_conformance_tests!(MyHarness(tempfile::tempdir().unwrap()));
//! ```
//!
//! The macro makes one `#[test]` per case; each builds its own harness and a
//! single-threaded tokio runtime. Time is moved with a [`ManualClock`] that
//! starts at [`T0`]; no case sleeps. Stores must check enqueued jobs against
//! [`Limits::default`].

use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::{
    CancelResult, Claim, ClaimedJob, Clock, Finish, FinishOutcome, FinishResult, JobFilter, JobId,
    JobRecord, JobState, LeaseRef, Limits, ManualClock, NewJob, Progress, RetryPolicy, RetryResult,
    Store, StoreError,
};

/// Makes the stores the suite runs against.
#[async_trait]
pub trait Harness: Send + Sync {
    /// A fresh, empty store that reads "now" from `clock`.
    async fn store(&self, clock: Arc<dyn Clock>) -> Arc<dyn Store>;
}

/// Where every case's clock starts: 2030-01-01T00:00:00Z.
pub const T0: &str = "2030-01-01T00:00:00Z";

/// The lease every case claims with.
pub const LEASE: Duration = Duration::from_secs(30);

/// Runs one case on a fresh single-threaded runtime (used by the macro).
pub fn run<F: std::future::Future<Output = ()>>(f: F) {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
        .block_on(f)
}

/// One case's store and the clock it reads.
pub struct Ctx {
    /// The clock; move it with `advance`.
    pub clock: ManualClock,
    /// The store under test.
    pub store: Arc<dyn Store>,
}

impl Ctx {
    /// A fresh store from `h`, with a manual clock at [`T0`].
    pub async fn new(h: &dyn Harness) -> Ctx {
        let clock = ManualClock::new(T0.parse().expect("T0 parses"));
        let store = h.store(Arc::new(clock.clone())).await;
        Ctx { clock, store }
    }

    /// Now, as the store sees it.
    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// Moves time forward by `secs` seconds.
    pub fn advance(&self, secs: u64) {
        self.clock.advance(Duration::from_secs(secs));
    }

    /// Enqueues one job; returns its id (asserting it was inserted).
    pub async fn add(&self, job: NewJob) -> JobId {
        let out = self.store.enqueue(vec![job]).await.expect("enqueue");
        assert_eq!(out.len(), 1, "one reply per job");
        assert!(
            !out[0].duplicate,
            "a job without a clash is not a duplicate"
        );
        out[0].id
    }

    /// The job, which must exist.
    pub async fn job(&self, id: JobId) -> JobRecord {
        self.store
            .get(id)
            .await
            .expect("get")
            .unwrap_or_else(|| panic!("job {id} should exist"))
    }

    /// The job's state.
    pub async fn state(&self, id: JobId) -> JobState {
        self.job(id).await.state
    }

    /// Claims up to `limit` from `queues` as worker `w1`.
    pub async fn claim(&self, queues: &[&str], limit: usize) -> Vec<ClaimedJob> {
        self.store
            .claim(claim_of("w1", queues, limit))
            .await
            .expect("claim")
    }

    /// Claims exactly one job from `queue`.
    pub async fn claim_one(&self, queue: &str) -> ClaimedJob {
        let mut got = self.claim(&[queue], 1).await;
        assert_eq!(got.len(), 1, "expected one claimable job in {queue:?}");
        got.remove(0)
    }

    /// Ids claimable now from `queue` (claims them).
    pub async fn claim_ids(&self, queues: &[&str], limit: usize) -> Vec<JobId> {
        self.claim(queues, limit)
            .await
            .iter()
            .map(|j| j.id)
            .collect()
    }

    /// Finishes one attempt as worker `w1`.
    pub async fn finish(&self, lease: LeaseRef, outcome: FinishOutcome) -> FinishResult {
        let out = self
            .store
            .finish(vec![Finish {
                lease,
                worker: "w1".into(),
                outcome,
            }])
            .await
            .expect("finish");
        assert_eq!(out.len(), 1, "one result per finish");
        out[0]
    }

    /// Every job in the store (up to 10 000), newest first.
    pub async fn all(&self) -> Vec<JobRecord> {
        self.store
            .list(&JobFilter {
                limit: 10_000,
                ..JobFilter::default()
            })
            .await
            .expect("list")
            .jobs
    }
}

/// A claim request with the suite's lease, for every kind.
pub fn claim_of(worker: &str, queues: &[&str], limit: usize) -> Claim {
    Claim {
        worker: worker.into(),
        queues: queues.iter().map(|q| q.to_string()).collect(),
        kinds: None,
        limit,
        lease: LEASE,
    }
}

/// A claim request with the suite's lease, for the kinds `kinds` only.
pub fn claim_kinds(worker: &str, queues: &[&str], kinds: &[&str], limit: usize) -> Claim {
    Claim {
        kinds: Some(kinds.iter().map(|k| k.to_string()).collect()),
        ..claim_of(worker, queues, limit)
    }
}

/// A job of kind `k` in queue `default` with args `{}`.
pub fn job(kind: &str) -> NewJob {
    NewJob::new(kind, serde_json::json!({}))
}

fn secs(n: u64) -> chrono::Duration {
    chrono::Duration::seconds(n as i64)
}

fn completed() -> FinishOutcome {
    FinishOutcome::Completed { result: None }
}

fn errored(retry_at: DateTime<Utc>) -> FinishOutcome {
    FinishOutcome::Errored {
        message: "boom".into(),
        retry_at,
        permanent: false,
    }
}

// ---------------------------------------------------------------- enqueue

/// Enqueue one job with every option set; `get` returns it all, fresh.
pub async fn enqueue_and_get(h: &dyn Harness) {
    let c = Ctx::new(h).await;
    let new = NewJob::from_json_text("email", r#"{"to": "a@example.com", "n": [1, 2.5]}"#)
        .queue("mail")
        .priority(-3)
        .max_attempts(7)
        .retry(RetryPolicy::fixed(Duration::from_millis(1500)))
        .timeout(Duration::from_secs(9))
        .unique_key("k1")
        .tag("t1")
        .tag("t2");
    let id = c.add(new).await;
    let j = c.job(id).await;
    assert_eq!(j.id, id);
    assert_eq!(j.queue, "mail");
    assert_eq!(j.kind, "email");
    assert_eq!(
        j.args, r#"{"to": "a@example.com", "n": [1, 2.5]}"#,
        "args are kept as the exact JSON text"
    );
    assert_eq!(j.priority, -3);
    assert_eq!(j.state, JobState::Available);
    assert_eq!(j.attempt, 0);
    assert_eq!(j.max_attempts, 7);
    assert_eq!(j.retry, RetryPolicy::fixed(Duration::from_millis(1500)));
    assert_eq!(j.timeout, Some(Duration::from_secs(9)));
    assert_eq!(j.unique_key.as_deref(), Some("k1"));
    assert_eq!(j.tags, vec!["t1".to_string(), "t2".to_string()]);
    assert_eq!(j.created_at, c.now());
    assert_eq!(j.run_at, c.now(), "no run_at means now");
    assert_eq!(j.attempted_at, None);
    assert_eq!(j.finished_at, None);
    assert_eq!(j.worker, None);
    assert_eq!(j.lease_expires_at, None);
    assert!(!j.cancel_requested);
    assert_eq!(j.progress, None);
    assert_eq!(j.result, None);
    assert!(j.errors.is_empty());

    // Defaults.
    let id2 = c.add(job("plain")).await;
    assert!(id2 > id, "ids increase in enqueue order");
    let j2 = c.job(id2).await;
    assert_eq!(j2.queue, "default");
    assert_eq!(j2.priority, 0);
    assert_eq!(j2.max_attempts, 5);
    assert_eq!(j2.retry, RetryPolicy::default());
    assert_eq!(j2.timeout, None);
    assert_eq!(j2.unique_key, None);
    assert!(j2.tags.is_empty());
}

/// A bulk enqueue inserts every job, one reply per job in order, ids increasing.
pub async fn enqueue_bulk(h: &dyn Harness) {
    let c = Ctx::new(h).await;
    let out = c
        .store
        .enqueue(vec![job("a"), job("b").queue("q2"), job("c")])
        .await
        .expect("enqueue");
    assert_eq!(out.len(), 3);
    assert!(out.iter().all(|e| !e.duplicate));
    assert!(out[0].id < out[1].id && out[1].id < out[2].id, "{out:?}");
    for (e, kind) in out.iter().zip(["a", "b", "c"]) {
        assert_eq!(c.job(e.id).await.kind, kind, "reply order is request order");
    }
    assert_eq!(c.job(out[1].id).await.queue, "q2");
    assert!(c
        .store
        .enqueue(vec![])
        .await
        .expect("empty enqueue")
        .is_empty());
    assert_eq!(c.all().await.len(), 3);
}

/// Invalid jobs are refused with a typed error naming the field, and nothing
/// of the batch is written.
pub async fn enqueue_invalid_writes_nothing(h: &dyn Harness) {
    let c = Ctx::new(h).await;
    let big = format!("\"{}\"", "x".repeat(Limits::default().max_args_bytes));
    let cases: Vec<(NewJob, &str)> = vec![
        (NewJob::from_json_text("k", "{\"a\": "), "args"),
        (NewJob::from_json_text("k", "not json"), "args"),
        (NewJob::from_json_text("k", big), "args"),
        (job(""), "kind"),
        (job("k").queue(""), "queue"),
        (job("k").max_attempts(0), "max_attempts"),
    ];
    for (bad, field) in cases {
        // Alone.
        match c.store.enqueue(vec![bad.clone()]).await {
            Err(StoreError::Invalid(e)) => {
                assert!(e.field.contains(field), "field {field:?} expected in {e}")
            }
            other => panic!("invalid job ({field}) should be refused, got {other:?}"),
        }
        // Among valid jobs: the whole batch is refused.
        match c.store.enqueue(vec![job("ok1"), bad, job("ok2")]).await {
            Err(StoreError::Invalid(e)) => {
                assert!(e.field.contains(field), "field {field:?} expected in {e}")
            }
            other => panic!("batch with an invalid job ({field}) should be refused, got {other:?}"),
        }
    }
    assert!(c.all().await.is_empty(), "nothing may be written");
    assert!(c.claim(&["default"], 10).await.is_empty());
}

/// A job whose run_at is in the future is scheduled, and claimable only once
/// the clock reaches it. A run_at in the past is available at once.
pub async fn enqueue_future_is_scheduled(h: &dyn Harness) {
    let c = Ctx::new(h).await;
    let at = c.now() + secs(60);
    let id = c.add(job("later").run_at(at)).await;
    let j = c.job(id).await;
    assert_eq!(j.state, JobState::Scheduled);
    assert_eq!(j.run_at, at);
    assert!(c.claim(&["default"], 10).await.is_empty());
    c.advance(59);
    assert!(c.claim(&["default"], 10).await.is_empty(), "1 s early");
    c.advance(1);
    let got = c.claim_ids(&["default"], 10).await;
    assert_eq!(got, vec![id], "claimable when the clock reaches run_at");
    assert_eq!(c.state(id).await, JobState::Running);

    let past = c.add(job("past").run_at(c.now() - secs(3600))).await;
    assert_eq!(c.state(past).await, JobState::Available);
}

// ---------------------------------------------------------------- claim

/// Claims come in priority, then run_at, then id order, at most `limit` at a time.
pub async fn claim_order_and_limit(h: &dyn Harness) {
    let c = Ctx::new(h).await;
    let now = c.now();
    let low = c.add(job("low").priority(5)).await;
    let c1 = c.add(job("c1")).await;
    let c2 = c.add(job("c2")).await;
    let early = c.add(job("early").run_at(now - secs(10))).await;
    let urgent = c.add(job("urgent").priority(-1)).await;
    let late = c.add(job("late").run_at(now + secs(5))).await;
    c.advance(5);
    let first = c.claim_ids(&["default"], 2).await;
    assert_eq!(first, vec![urgent, early], "priority first, then run_at");
    let second = c.claim_ids(&["default"], 3).await;
    assert_eq!(second, vec![c1, c2, late], "then run_at, then id");
    let third = c.claim_ids(&["default"], 3).await;
    assert_eq!(third, vec![low]);
    assert!(c.claim(&["default"], 3).await.is_empty());
    assert!(
        c.claim(&["default"], 0).await.is_empty(),
        "limit 0 claims nothing"
    );
}

/// A claim takes only from the queues it names.
pub async fn claim_only_listed_queues(h: &dyn Harness) {
    let c = Ctx::new(h).await;
    let a = c.add(job("x").queue("a")).await;
    let b = c.add(job("x").queue("b")).await;
    let other = c.add(job("x").queue("c")).await;
    let mut got = c.claim_ids(&["a", "b"], 10).await;
    got.sort();
    assert_eq!(got, vec![a, b]);
    assert_eq!(c.state(other).await, JobState::Available);
    assert!(c.claim(&["nope"], 10).await.is_empty());
    assert!(c.claim(&[], 10).await.is_empty());
    assert_eq!(c.claim_ids(&["c"], 10).await, vec![other]);
}

/// Paused queues are skipped; running jobs go on; resuming makes them claimable.
pub async fn paused_queue_is_skipped(h: &dyn Harness) {
    let c = Ctx::new(h).await;
    let running = c.add(job("x").queue("a")).await;
    let claimed = c.claim_one("a").await;
    assert_eq!(claimed.id, running);
    let a = c.add(job("x").queue("a")).await;
    let b = c.add(job("x").queue("b")).await;
    c.store.pause_queue("a").await.expect("pause");
    c.store
        .pause_queue("a")
        .await
        .expect("pausing twice is fine");
    c.store
        .pause_queue("empty")
        .await
        .expect("pause a queue with no jobs");
    assert_eq!(c.claim_ids(&["a", "b"], 10).await, vec![b]);
    assert!(c.claim(&["a"], 10).await.is_empty());
    let stats = c.store.queue_stats().await.expect("stats");
    let qa = stats
        .iter()
        .find(|s| s.queue == "a")
        .expect("queue a listed");
    assert!(qa.paused);
    assert!(stats.iter().any(|s| s.queue == "empty" && s.paused));
    assert!(
        !stats
            .iter()
            .find(|s| s.queue == "b")
            .expect("b listed")
            .paused
    );
    // A running job of a paused queue still finishes.
    assert_eq!(
        c.finish(claimed.lease(), completed()).await,
        FinishResult::Applied(JobState::Completed)
    );
    c.store.resume_queue("a").await.expect("resume");
    c.store
        .resume_queue("b")
        .await
        .expect("resuming an unpaused queue is fine");
    assert_eq!(c.claim_ids(&["a"], 10).await, vec![a]);
    let stats = c.store.queue_stats().await.expect("stats");
    assert!(!stats.iter().find(|s| s.queue == "a").expect("a").paused);
    assert!(matches!(
        c.store.pause_queue("").await,
        Err(StoreError::Invalid(_))
    ));
}

/// Claims from several tasks at once never hand out one job twice.
pub async fn concurrent_claims_are_disjoint(h: &dyn Harness) {
    let c = Ctx::new(h).await;
    let jobs: Vec<NewJob> = (0..300).map(|i| job(&format!("k{i}"))).collect();
    let ids: BTreeSet<JobId> = c
        .store
        .enqueue(jobs)
        .await
        .expect("enqueue")
        .iter()
        .map(|e| e.id)
        .collect();
    let mut tasks = Vec::new();
    for w in 0..6 {
        let store = c.store.clone();
        tasks.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            loop {
                let got = store
                    .claim(claim_of(&format!("w{w}"), &["default"], 7))
                    .await
                    .expect("claim");
                if got.is_empty() {
                    break;
                }
                mine.extend(got.into_iter().map(|j| j.id));
                tokio::task::yield_now().await;
            }
            mine
        }));
    }
    let mut seen = HashSet::new();
    for t in tasks {
        for id in t.await.expect("task") {
            assert!(seen.insert(id), "job {id} was claimed twice");
        }
    }
    assert_eq!(
        seen.into_iter().collect::<BTreeSet<_>>(),
        ids,
        "every job claimed once"
    );
}

/// A claim takes only the kinds it names, in claim order across queues and
/// kinds; jobs of other kinds are left as they are (available, attempt 0),
/// even when they are first in line. `Some(empty)` claims nothing; `None`
/// claims every kind. A due scheduled job of another kind does not stay
/// due-and-scheduled (an idle worker would wake for it at once, forever).
pub async fn claim_only_listed_kinds(h: &dyn Harness) {
    let c = Ctx::new(h).await;
    let b = c.add(job("b").priority(-5)).await;
    let a = c.add(job("a")).await;
    let x = c.add(job("x").queue("q2").priority(-1)).await;
    let a2 = c.add(job("a").queue("q2")).await;
    let late_b = c.add(job("b").run_at(c.now() + secs(10))).await;
    let claim = |kinds: &[&str], limit| claim_kinds("w1", &["default", "q2"], kinds, limit);
    assert!(c
        .store
        .claim(claim(&[], 10))
        .await
        .expect("claim")
        .is_empty());
    let got: Vec<JobId> = c
        .store
        .claim(claim(&["a", "x"], 2))
        .await
        .expect("claim")
        .iter()
        .map(|j| j.id)
        .collect();
    assert_eq!(got, vec![x, a], "claim order across queues and kinds");
    c.advance(20);
    let got: Vec<JobId> = c
        .store
        .claim(claim(&["a", "zzz"], 10))
        .await
        .expect("claim")
        .iter()
        .map(|j| j.id)
        .collect();
    assert_eq!(got, vec![a2]);
    for id in [b, late_b] {
        let j = c.job(id).await;
        assert_eq!(j.attempt, 0, "never claimed: {j:?}");
        assert!(
            matches!(j.state, JobState::Available | JobState::Scheduled),
            "{j:?}"
        );
    }
    assert_eq!(
        c.store
            .next_scheduled(&["default".into()])
            .await
            .expect("next"),
        None,
        "no due job is left scheduled for a worker to wake for"
    );
    // More kinds than the claim walks one by one.
    let many: Vec<String> = (0..50).map(|i| format!("k{i:02}")).collect();
    let mut kinds: Vec<&str> = many.iter().map(String::as_str).collect();
    kinds.push("b");
    let got: Vec<JobId> = c
        .store
        .claim(claim(&kinds, 10))
        .await
        .expect("claim")
        .iter()
        .map(|j| j.id)
        .collect();
    assert_eq!(got, vec![b, late_b]);
    // Every kind.
    let other = c.add(job("other")).await;
    assert_eq!(c.claim_ids(&["default"], 10).await, vec![other]);
}

/// A claim counts the attempt, sets the lease and records the worker.
pub async fn claim_counts_attempt_and_sets_lease(h: &dyn Harness) {
    let c = Ctx::new(h).await;
    let id = c
        .add(
            NewJob::from_json_text("k", r#"{"a":1}"#)
                .max_attempts(3)
                .timeout(Duration::from_secs(4))
                .retry(RetryPolicy::fixed(Duration::from_secs(2))),
        )
        .await;
    let cl = c
        .store
        .claim(claim_of("worker-9", &["default"], 1))
        .await
        .expect("claim")
        .remove(0);
    assert_eq!(cl.id, id);
    assert_eq!(cl.queue, "default");
    assert_eq!(cl.kind, "k");
    assert_eq!(cl.args, r#"{"a":1}"#);
    assert_eq!(cl.attempt, 1);
    assert_eq!(cl.max_attempts, 3);
    assert_eq!(cl.retry, RetryPolicy::fixed(Duration::from_secs(2)));
    assert_eq!(cl.timeout, Some(Duration::from_secs(4)));
    assert_eq!(cl.lease_expires_at, c.now() + secs(30));
    assert_eq!(cl.lease(), LeaseRef { id, attempt: 1 });
    let j = c.job(id).await;
    assert_eq!(j.state, JobState::Running);
    assert_eq!(j.attempt, 1);
    assert_eq!(j.worker.as_deref(), Some("worker-9"));
    assert_eq!(j.attempted_at, Some(c.now()));
    assert_eq!(j.lease_expires_at, Some(c.now() + secs(30)));
    assert!(
        c.claim(&["default"], 1).await.is_empty(),
        "a running job is not claimable"
    );
}

// ---------------------------------------------------------------- finish

/// Completed: the result is stored and the job is finished.
pub async fn finish_completed(h: &dyn Harness) {
    let c = Ctx::new(h).await;
    let id = c.add(job("k")).await;
    let cl = c.claim_one("default").await;
    c.advance(2);
    let r = c
        .finish(
            cl.lease(),
            FinishOutcome::Completed {
                result: Some(r#"{"ok":true}"#.into()),
            },
        )
        .await;
    assert_eq!(r, FinishResult::Applied(JobState::Completed));
    let j = c.job(id).await;
    assert_eq!(j.state, JobState::Completed);
    assert_eq!(j.result.as_deref(), Some(r#"{"ok":true}"#));
    assert_eq!(j.finished_at, Some(c.now()));
    assert_eq!(j.attempt, 1);
    assert!(j.errors.is_empty());
    assert!(c.claim(&["default"], 10).await.is_empty());
}

/// Errored with attempts left: scheduled at retry_at (available if that is not
/// in the future), with the error recorded.
pub async fn finish_errored_retries(h: &dyn Harness) {
    let c = Ctx::new(h).await;
    let id = c.add(job("k").max_attempts(3)).await;
    let cl = c.claim_one("default").await;
    c.advance(1);
    let retry_at = c.now() + secs(10);
    assert_eq!(
        c.finish(cl.lease(), errored(retry_at)).await,
        FinishResult::Applied(JobState::Scheduled)
    );
    let j = c.job(id).await;
    assert_eq!(j.state, JobState::Scheduled);
    assert_eq!(j.run_at, retry_at);
    assert_eq!(j.finished_at, None);
    assert_eq!(j.errors.len(), 1);
    let e = &j.errors[0];
    assert_eq!(e.at, c.now());
    assert_eq!(e.attempt, 1);
    assert_eq!(e.message, "boom");
    assert_eq!(e.worker, "w1");
    assert!(
        c.claim(&["default"], 1).await.is_empty(),
        "not before retry_at"
    );
    c.advance(10);
    let cl2 = c.claim_one("default").await;
    assert_eq!(cl2.attempt, 2);
    // retry_at not in the future: available at once.
    assert_eq!(
        c.finish(cl2.lease(), errored(c.now())).await,
        FinishResult::Applied(JobState::Available)
    );
    assert_eq!(c.state(id).await, JobState::Available);
    let cl3 = c.claim_one("default").await;
    assert_eq!(cl3.attempt, 3);
    assert_eq!(c.job(id).await.errors.len(), 2);
}

/// Errored on the last attempt, or permanently: failed.
pub async fn finish_errored_fails(h: &dyn Harness) {
    let c = Ctx::new(h).await;
    let last = c.add(job("k").max_attempts(1)).await;
    let cl = c.claim_one("default").await;
    assert_eq!(cl.id, last);
    assert_eq!(
        c.finish(cl.lease(), errored(c.now() + secs(5))).await,
        FinishResult::Applied(JobState::Failed)
    );
    let j = c.job(last).await;
    assert_eq!(j.state, JobState::Failed);
    assert_eq!(j.finished_at, Some(c.now()));
    assert_eq!(j.errors.len(), 1);

    let perm = c.add(job("k").max_attempts(5)).await;
    let cl = c.claim_one("default").await;
    assert_eq!(cl.id, perm);
    let r = c
        .finish(
            cl.lease(),
            FinishOutcome::Errored {
                message: "bad input".into(),
                retry_at: c.now(),
                permanent: true,
            },
        )
        .await;
    assert_eq!(r, FinishResult::Applied(JobState::Failed));
    let j = c.job(perm).await;
    assert_eq!(j.state, JobState::Failed);
    assert_eq!(j.errors[0].message, "bad input");
    assert!(c.claim(&["default"], 10).await.is_empty());
}

/// Snoozed: scheduled at `until`, the attempt not used.
pub async fn finish_snoozed(h: &dyn Harness) {
    let c = Ctx::new(h).await;
    let id = c.add(job("k").max_attempts(1)).await;
    let cl = c.claim_one("default").await;
    let until = c.now() + secs(60);
    assert_eq!(
        c.finish(cl.lease(), FinishOutcome::Snoozed { until }).await,
        FinishResult::Applied(JobState::Scheduled)
    );
    let j = c.job(id).await;
    assert_eq!(j.state, JobState::Scheduled);
    assert_eq!(j.run_at, until);
    assert_eq!(j.attempt, 0, "a snooze gives the attempt back");
    assert!(c.claim(&["default"], 1).await.is_empty());
    c.advance(60);
    let cl = c.claim_one("default").await;
    assert_eq!(cl.attempt, 1, "still the first attempt");
    // Snoozing again and again never exhausts the single attempt.
    let until = c.now() + secs(1);
    c.finish(cl.lease(), FinishOutcome::Snoozed { until }).await;
    c.advance(1);
    let cl = c.claim_one("default").await;
    assert_eq!(cl.attempt, 1);
    assert_eq!(
        c.finish(cl.lease(), completed()).await,
        FinishResult::Applied(JobState::Completed)
    );
}

/// Cancelled by the handler: cancelled.
pub async fn finish_cancelled(h: &dyn Harness) {
    let c = Ctx::new(h).await;
    let id = c.add(job("k")).await;
    let cl = c.claim_one("default").await;
    let r = c
        .finish(
            cl.lease(),
            FinishOutcome::Cancelled {
                message: "cancelled by operator".into(),
            },
        )
        .await;
    assert_eq!(r, FinishResult::Applied(JobState::Cancelled));
    let j = c.job(id).await;
    assert_eq!(j.state, JobState::Cancelled);
    assert_eq!(j.finished_at, Some(c.now()));
    assert!(c.claim(&["default"], 10).await.is_empty());
}

/// Released (worker shutting down): available now, the attempt not counted,
/// the interruption recorded.
pub async fn finish_released(h: &dyn Harness) {
    let c = Ctx::new(h).await;
    let id = c
        .add(job("k").max_attempts(1).run_at(c.now() - secs(100)))
        .await;
    let cl = c.claim_one("default").await;
    c.advance(3);
    let r = c
        .finish(
            cl.lease(),
            FinishOutcome::Released {
                message: "worker shut down".into(),
            },
        )
        .await;
    assert_eq!(r, FinishResult::Applied(JobState::Available));
    let j = c.job(id).await;
    assert_eq!(j.state, JobState::Available);
    assert_eq!(j.attempt, 0, "a released attempt is not counted");
    assert_eq!(j.finished_at, None);
    assert!(j.run_at <= c.now());
    let e = j.errors.last().expect("the interruption is recorded");
    assert_eq!(e.message, "worker shut down");
    assert_eq!(e.attempt, 1);
    assert_eq!(e.at, c.now());
    let cl = c.claim_one("default").await;
    assert_eq!(cl.attempt, 1, "the single attempt is still there");
}

/// A finish for an attempt that is not running any more is Stale and changes nothing.
pub async fn finish_stale(h: &dyn Harness) {
    let c = Ctx::new(h).await;
    let id = c.add(job("k")).await;
    let cl = c.claim_one("default").await;
    let before = c.job(id).await;
    let wrong = LeaseRef { id, attempt: 2 };
    assert_eq!(c.finish(wrong, completed()).await, FinishResult::Stale);
    assert_eq!(c.finish(wrong, errored(c.now())).await, FinishResult::Stale);
    assert_eq!(c.job(id).await, before, "a stale finish changes nothing");
    let unknown = LeaseRef {
        id: id + 1000,
        attempt: 1,
    };
    assert_eq!(c.finish(unknown, completed()).await, FinishResult::Stale);

    // Mixed batch: results in order.
    let other = c.add(job("k2")).await;
    let cl2 = c.claim_one("default").await;
    assert_eq!(cl2.id, other);
    let out = c
        .store
        .finish(vec![
            Finish {
                lease: cl.lease(),
                worker: "w1".into(),
                outcome: completed(),
            },
            Finish {
                lease: wrong,
                worker: "w1".into(),
                outcome: completed(),
            },
            Finish {
                lease: cl2.lease(),
                worker: "w1".into(),
                outcome: FinishOutcome::Cancelled {
                    message: "stop".into(),
                },
            },
        ])
        .await
        .expect("finish");
    assert_eq!(
        out,
        vec![
            FinishResult::Applied(JobState::Completed),
            FinishResult::Stale,
            FinishResult::Applied(JobState::Cancelled)
        ]
    );
    // The job is no longer running: every outcome is stale now.
    let done = c.job(id).await;
    for o in [
        completed(),
        errored(c.now()),
        FinishOutcome::Snoozed { until: c.now() },
        FinishOutcome::Released {
            message: "x".into(),
        },
        FinishOutcome::Cancelled {
            message: "x".into(),
        },
    ] {
        assert_eq!(c.finish(cl.lease(), o).await, FinishResult::Stale);
    }
    assert_eq!(c.job(id).await, done);
}

// ---------------------------------------------------------------- leases

/// A heartbeat extends held leases and reports lost leases and cancel requests.
pub async fn heartbeat_extends_and_reports(h: &dyn Harness) {
    let c = Ctx::new(h).await;
    let a = c.add(job("a")).await;
    let b = c.add(job("b")).await;
    let done = c.add(job("c")).await;
    let got = c.claim(&["default"], 3).await;
    assert_eq!(got.len(), 3);
    let lease_of = |id: JobId| got.iter().find(|j| j.id == id).expect("claimed").lease();
    c.finish(lease_of(done), completed()).await;
    c.store.cancel(&[b]).await.expect("cancel");
    c.advance(20);
    let leases = [
        lease_of(a),
        lease_of(b),
        lease_of(done),
        LeaseRef { id: a, attempt: 7 },
    ];
    let reply = c
        .store
        .heartbeat("w1", &leases, Duration::from_secs(60))
        .await
        .expect("heartbeat");
    let lost: BTreeSet<JobId> = reply.lost.iter().copied().collect();
    assert_eq!(
        lost,
        BTreeSet::from([done, a]),
        "the finished job and the wrong attempt"
    );
    assert_eq!(reply.cancel_requested, vec![b]);
    let j = c.job(a).await;
    assert_eq!(j.lease_expires_at, Some(c.now() + secs(60)));
    // The extended lease is not reaped at the old expiry.
    c.advance(30);
    assert!(c.store.reap_expired(100).await.expect("reap").is_empty());
    assert_eq!(c.state(a).await, JobState::Running);
    let empty = c
        .store
        .heartbeat("w1", &[], LEASE)
        .await
        .expect("empty heartbeat");
    assert!(empty.lost.is_empty() && empty.cancel_requested.is_empty());
}

/// cancel_requests lists held jobs whose cancel was asked for.
pub async fn cancel_requests_lists_requested(h: &dyn Harness) {
    let c = Ctx::new(h).await;
    let a = c.add(job("a")).await;
    let b = c.add(job("b")).await;
    let got = c.claim(&["default"], 2).await;
    let leases: Vec<LeaseRef> = got.iter().map(|j| j.lease()).collect();
    assert!(c
        .store
        .cancel_requests(&leases)
        .await
        .expect("read")
        .is_empty());
    assert_eq!(
        c.store.cancel(&[b]).await.expect("cancel"),
        vec![CancelResult::Requested]
    );
    assert_eq!(
        c.store.cancel_requests(&leases).await.expect("read"),
        vec![b]
    );
    let wrong = LeaseRef { id: b, attempt: 9 };
    assert!(c
        .store
        .cancel_requests(&[wrong])
        .await
        .expect("read")
        .is_empty());
    assert!(c.job(b).await.cancel_requested);
    assert!(!c.job(a).await.cancel_requested);
}

/// Progress is recorded for a running attempt; false once it is not running.
pub async fn set_progress_records(h: &dyn Harness) {
    let c = Ctx::new(h).await;
    let id = c.add(job("k")).await;
    let cl = c.claim_one("default").await;
    let p = Progress {
        percent: 40,
        message: "step 2 of 5".into(),
    };
    assert!(c
        .store
        .set_progress(cl.lease(), p.clone())
        .await
        .expect("progress"));
    assert_eq!(c.job(id).await.progress, Some(p.clone()));
    let wrong = LeaseRef { id, attempt: 2 };
    assert!(!c
        .store
        .set_progress(wrong, p.clone())
        .await
        .expect("progress"));
    c.finish(cl.lease(), completed()).await;
    let later = Progress {
        percent: 90,
        message: "late".into(),
    };
    assert!(!c
        .store
        .set_progress(cl.lease(), later)
        .await
        .expect("progress"));
    assert_eq!(
        c.job(id).await.progress,
        Some(p),
        "a stale progress changes nothing"
    );
}

/// Expired leases are reaped: available with the lost attempt recorded, failed
/// with no attempts left, cancelled when a cancel was asked for. Leases not yet
/// expired are left alone, and a late finish is stale (fencing).
pub async fn reap_expired_leases(h: &dyn Harness) {
    let c = Ctx::new(h).await;
    let again = c.add(job("again").max_attempts(2)).await;
    let last = c.add(job("last").max_attempts(1)).await;
    let cancel = c.add(job("cancel")).await;
    let got = c.claim(&["default"], 3).await;
    assert_eq!(got.len(), 3);
    let lease_of = |id: JobId| got.iter().find(|j| j.id == id).expect("claimed").lease();
    c.store.cancel(&[cancel]).await.expect("cancel");
    c.advance(10);
    let fresh = c.add(job("fresh")).await;
    let fresh_claim = c.claim_one("default").await;
    assert_eq!(fresh_claim.id, fresh);
    c.advance(19);
    assert!(
        c.store.reap_expired(100).await.expect("reap").is_empty(),
        "nothing expired 1 s before the lease ends"
    );
    c.advance(2);
    let mut reaped = c.store.reap_expired(100).await.expect("reap");
    reaped.sort_by_key(|r| r.id);
    let summary: Vec<(JobId, u32, JobState)> =
        reaped.iter().map(|r| (r.id, r.attempt, r.state)).collect();
    assert_eq!(
        summary,
        vec![
            (again, 1, JobState::Available),
            (last, 1, JobState::Failed),
            (cancel, 1, JobState::Cancelled)
        ]
    );
    assert_eq!(
        c.state(fresh).await,
        JobState::Running,
        "unexpired lease untouched"
    );
    let j = c.job(again).await;
    assert_eq!(j.state, JobState::Available);
    assert_eq!(j.attempt, 1, "the lost attempt counts");
    assert_eq!(j.lease_expires_at, None);
    let e = j.errors.last().expect("lost attempt recorded");
    assert_eq!(e.message, "lease expired");
    assert_eq!(e.attempt, 1);
    assert_eq!(e.worker, "w1");
    assert_eq!(e.at, c.now());
    let j = c.job(last).await;
    assert_eq!(j.finished_at, Some(c.now()));
    assert_eq!(j.errors.last().expect("recorded").message, "lease expired");
    assert_eq!(c.job(cancel).await.finished_at, Some(c.now()));

    // Fencing: the first worker's late finish is stale, before and after a re-claim.
    assert_eq!(
        c.finish(lease_of(again), completed()).await,
        FinishResult::Stale
    );
    let re = c.claim_one("default").await;
    assert_eq!((re.id, re.attempt), (again, 2));
    assert_eq!(
        c.finish(lease_of(again), completed()).await,
        FinishResult::Stale
    );
    assert_eq!(c.job(again).await.state, JobState::Running);
    assert_eq!(
        c.finish(re.lease(), completed()).await,
        FinishResult::Applied(JobState::Completed)
    );
    assert_eq!(
        c.finish(lease_of(last), completed()).await,
        FinishResult::Stale
    );
    assert_eq!(c.state(last).await, JobState::Failed);
}

/// reap_expired takes at most `limit` jobs per call.
pub async fn reap_expired_respects_limit(h: &dyn Harness) {
    let c = Ctx::new(h).await;
    for i in 0..5 {
        c.add(job(&format!("k{i}"))).await;
    }
    assert_eq!(c.claim(&["default"], 5).await.len(), 5);
    c.advance(31);
    assert_eq!(c.store.reap_expired(2).await.expect("reap").len(), 2);
    assert_eq!(c.store.reap_expired(2).await.expect("reap").len(), 2);
    assert_eq!(c.store.reap_expired(2).await.expect("reap").len(), 1);
    assert!(c.store.reap_expired(2).await.expect("reap").is_empty());
    assert_eq!(c.claim(&["default"], 10).await.len(), 5);
}

// ---------------------------------------------------------------- cancel

/// Cancel: scheduled and available jobs are cancelled and never run; running
/// jobs get a request; finished jobs and unknown ids are reported.
pub async fn cancel_each_state(h: &dyn Harness) {
    let c = Ctx::new(h).await;
    let done = c.add(job("done")).await;
    let cl = c.claim_one("default").await;
    c.finish(cl.lease(), completed()).await;
    let running = c.add(job("running")).await;
    let run_claim = c.claim_one("default").await;
    let sched = c.add(job("sched").run_at(c.now() + secs(30))).await;
    let avail = c.add(job("avail")).await;
    let out = c
        .store
        .cancel(&[sched, avail, running, done, 999_999])
        .await
        .expect("cancel");
    assert_eq!(
        out,
        vec![
            CancelResult::Cancelled,
            CancelResult::Cancelled,
            CancelResult::Requested,
            CancelResult::AlreadyFinished(JobState::Completed),
            CancelResult::NotFound
        ]
    );
    for id in [sched, avail] {
        let j = c.job(id).await;
        assert_eq!(j.state, JobState::Cancelled);
        assert_eq!(j.finished_at, Some(c.now()));
    }
    let r = c.job(running).await;
    assert_eq!(
        r.state,
        JobState::Running,
        "a running job runs on until its worker stops it"
    );
    assert!(r.cancel_requested);
    c.advance(60);
    assert!(
        c.claim(&["default"], 10).await.is_empty(),
        "cancelled jobs never run"
    );
    assert_eq!(
        c.store.cancel(&[sched]).await.expect("cancel"),
        vec![CancelResult::AlreadyFinished(JobState::Cancelled)]
    );
    assert_eq!(
        c.finish(run_claim.lease(), completed()).await,
        FinishResult::Applied(JobState::Completed),
        "work that finished is completed even if a cancel was asked for"
    );
}

/// A running job whose cancel was asked for ends cancelled when its attempt
/// errors or is released.
pub async fn cancel_running_then_finish(h: &dyn Harness) {
    let c = Ctx::new(h).await;
    let e = c.add(job("errors").max_attempts(5)).await;
    let r = c.add(job("released")).await;
    let got = c.claim(&["default"], 2).await;
    let lease_of = |id: JobId| got.iter().find(|j| j.id == id).expect("claimed").lease();
    c.store.cancel(&[e, r]).await.expect("cancel");
    assert_eq!(
        c.finish(lease_of(e), errored(c.now() + secs(5))).await,
        FinishResult::Applied(JobState::Cancelled)
    );
    assert_eq!(
        c.finish(
            lease_of(r),
            FinishOutcome::Released {
                message: "worker shut down".into()
            }
        )
        .await,
        FinishResult::Applied(JobState::Cancelled)
    );
    for id in [e, r] {
        let j = c.job(id).await;
        assert_eq!(j.state, JobState::Cancelled);
        assert_eq!(j.finished_at, Some(c.now()));
    }
    c.advance(10);
    assert!(c.claim(&["default"], 10).await.is_empty());
}

// ---------------------------------------------------------------- retry

/// Retry: failed and cancelled jobs become available with an attempt left;
/// other states are not retryable.
pub async fn retry_each_state(h: &dyn Harness) {
    let c = Ctx::new(h).await;
    let failed = c.add(job("f").max_attempts(1)).await;
    let cl = c.claim_one("default").await;
    c.finish(cl.lease(), errored(c.now())).await;
    assert_eq!(c.state(failed).await, JobState::Failed);
    let cancelled = c.add(job("c")).await;
    c.store.cancel(&[cancelled]).await.expect("cancel");
    let done = c.add(job("d")).await;
    let cl = c.claim_one("default").await;
    c.finish(cl.lease(), completed()).await;
    let running = c.add(job("r")).await;
    let run_claim = c.claim_one("default").await;
    let avail = c.add(job("a")).await;
    c.advance(5);
    let out = c
        .store
        .retry(&[failed, cancelled, done, running, avail, 999_999])
        .await
        .expect("retry");
    assert_eq!(
        out,
        vec![
            RetryResult::Retried,
            RetryResult::Retried,
            RetryResult::NotRetryable(JobState::Completed),
            RetryResult::NotRetryable(JobState::Running),
            RetryResult::NotRetryable(JobState::Available),
            RetryResult::NotFound
        ]
    );
    let j = c.job(failed).await;
    assert_eq!(j.state, JobState::Available);
    assert_eq!(j.finished_at, None);
    assert!(
        j.max_attempts > j.attempt,
        "at least one attempt left: {j:?}"
    );
    assert_eq!(j.errors.len(), 1, "the history is kept");
    assert_eq!(c.state(cancelled).await, JobState::Available);
    assert_eq!(c.state(running).await, JobState::Running);
    let mut ids = c.claim_ids(&["default"], 10).await;
    ids.sort();
    assert_eq!(ids, vec![failed, cancelled, avail]);
    // The retried failed job gets a real attempt 2.
    let j = c.job(failed).await;
    assert_eq!(j.attempt, 2);
    drop(run_claim);
}

/// retry_failed retries failed jobs by queue, kind or all, and counts them.
pub async fn retry_failed_by_queue_and_kind(h: &dyn Harness) {
    let c = Ctx::new(h).await;
    let specs = [("a", "x"), ("a", "y"), ("b", "x"), ("b", "y"), ("b", "y")];
    for (q, k) in specs {
        c.add(job(k).queue(q).max_attempts(1)).await;
        let cl = c.claim_one(q).await;
        c.finish(cl.lease(), errored(c.now())).await;
    }
    let cancelled = c.add(job("x").queue("a")).await;
    c.store.cancel(&[cancelled]).await.expect("cancel");
    assert_eq!(
        c.store
            .retry_failed(Some("a"), Some("x"))
            .await
            .expect("retry")
            .retried,
        1
    );
    assert_eq!(
        c.store
            .retry_failed(Some("a"), None)
            .await
            .expect("retry")
            .retried,
        1
    );
    assert_eq!(
        c.store
            .retry_failed(None, Some("y"))
            .await
            .expect("retry")
            .retried,
        2
    );
    assert_eq!(
        c.store
            .retry_failed(None, None)
            .await
            .expect("retry")
            .retried,
        1
    );
    assert_eq!(
        c.store
            .retry_failed(None, None)
            .await
            .expect("retry")
            .retried,
        0
    );
    assert_eq!(
        c.state(cancelled).await,
        JobState::Cancelled,
        "only failed jobs"
    );
    assert_eq!(c.claim(&["a", "b"], 10).await.len(), 5);
}

/// Fails one attempt of the next claimable job of `default` for good.
async fn fail_next(c: &Ctx) -> JobId {
    let cl = c.claim_one("default").await;
    c.finish(
        cl.lease(),
        FinishOutcome::Errored {
            message: "boom".into(),
            retry_at: c.now(),
            permanent: true,
        },
    )
    .await;
    cl.id
}

/// The unfinished jobs holding each unique key, by key.
async fn unfinished_by_key(c: &Ctx) -> std::collections::BTreeMap<String, Vec<JobId>> {
    let mut by_key = std::collections::BTreeMap::<String, Vec<JobId>>::new();
    for j in c.all().await {
        if let (Some(k), false) = (j.unique_key, j.state.is_finished()) {
            by_key.entry(k).or_default().push(j.id);
        }
    }
    by_key
}

/// A retry never makes two unfinished jobs with one key: a failed job whose
/// key another unfinished job holds is refused, naming the holder, and left
/// failed; once the holder finishes it can be retried. In one call, the
/// first of two jobs with one key is retried and the second refused.
pub async fn retry_refuses_while_another_job_holds_the_key(h: &dyn Harness) {
    let c = Ctx::new(h).await;
    let first = c.add(job("k").unique_key("U1").max_attempts(1)).await;
    assert_eq!(fail_next(&c).await, first);
    let second = c.add(job("k").unique_key("U1")).await;
    let out = c.store.retry(&[first]).await.expect("retry");
    assert_eq!(
        out,
        vec![RetryResult::KeyHeld {
            key: "U1".into(),
            holder: second
        }]
    );
    assert_eq!(c.state(first).await, JobState::Failed, "left as it was");
    assert_eq!(unfinished_by_key(&c).await["U1"], vec![second]);
    // The holder finishes: the key is free, the retry goes through.
    let cl = c.claim_one("default").await;
    assert_eq!(cl.id, second);
    c.finish(cl.lease(), completed()).await;
    assert_eq!(
        c.store.retry(&[first]).await.expect("retry"),
        vec![RetryResult::Retried]
    );
    let dup = c
        .store
        .enqueue(vec![job("k").unique_key("U1")])
        .await
        .expect("enqueue");
    assert_eq!(
        (dup[0].id, dup[0].duplicate),
        (first, true),
        "the retried job holds its key again"
    );
    // Two failed jobs with one key, retried in one call.
    let a = c.add(job("k").unique_key("U3").max_attempts(1)).await;
    c.claim_one("default").await; // `first`, now running, out of the way
    assert_eq!(fail_next(&c).await, a);
    let b = c.add(job("k").unique_key("U3").max_attempts(1)).await;
    assert_eq!(fail_next(&c).await, b);
    let out = c.store.retry(&[a, b]).await.expect("retry");
    assert_eq!(
        out,
        vec![
            RetryResult::Retried,
            RetryResult::KeyHeld {
                key: "U3".into(),
                holder: a
            }
        ]
    );
    assert_eq!(c.state(b).await, JobState::Failed);
    for (key, ids) in unfinished_by_key(&c).await {
        assert_eq!(ids.len(), 1, "one unfinished job per key {key}: {ids:?}");
    }
}

/// retry_failed keeps one unfinished job per key: of failed jobs sharing a
/// key only the lowest id is retried, none when an unfinished job holds the
/// key, and those left failed are reported with their holder.
pub async fn retry_failed_keeps_one_unfinished_job_per_key(h: &dyn Harness) {
    let c = Ctx::new(h).await;
    let mut failed = Vec::new();
    for key in [Some("U1"), Some("U1"), Some("U2"), None] {
        let mut j = job("k").max_attempts(1);
        if let Some(k) = key {
            j = j.unique_key(k);
        }
        let id = c.add(j).await;
        assert_eq!(fail_next(&c).await, id);
        failed.push(id);
    }
    let holder = c.add(job("k").unique_key("U2")).await;
    let out = c.store.retry_failed(None, None).await.expect("retry");
    assert_eq!(out.retried, 2, "{out:?}");
    assert_eq!(
        out.key_held,
        vec![
            crate::KeyHeld {
                id: failed[1],
                key: "U1".into(),
                holder: failed[0]
            },
            crate::KeyHeld {
                id: failed[2],
                key: "U2".into(),
                holder
            },
        ]
    );
    assert_eq!(c.state(failed[0]).await, JobState::Available);
    assert_eq!(c.state(failed[1]).await, JobState::Failed);
    assert_eq!(c.state(failed[2]).await, JobState::Failed);
    assert_eq!(c.state(failed[3]).await, JobState::Available);
    for (key, ids) in unfinished_by_key(&c).await {
        assert_eq!(ids.len(), 1, "one unfinished job per key {key}: {ids:?}");
    }
    // Nothing changes on a second call: the same two are still held.
    let again = c.store.retry_failed(None, None).await.expect("retry");
    assert_eq!((again.retried, again.key_held.len()), (0, 2));
}

// ---------------------------------------------------------------- reads

/// get of an unknown id is None.
pub async fn get_unknown_is_none(h: &dyn Harness) {
    let c = Ctx::new(h).await;
    assert!(c.store.get(12345).await.expect("get").is_none());
    let id = c.add(job("k")).await;
    assert!(c.store.get(id + 1).await.expect("get").is_none());
}

/// list filters by states, queue, kind and tag, newest first.
pub async fn list_filters(h: &dyn Harness) {
    let c = Ctx::new(h).await;
    let a1 = c.add(job("x").queue("a").tag("red")).await;
    let a2 = c.add(job("y").queue("a").tag("blue").tag("red")).await;
    let b1 = c.add(job("x").queue("b")).await;
    let b2 = c.add(job("y").queue("b").run_at(c.now() + secs(60))).await;
    let cl = c.claim_one("b").await;
    assert_eq!(cl.id, b1);
    let ids = |p: crate::JobPage| p.jobs.iter().map(|j| j.id).collect::<Vec<_>>();
    let f = |f: JobFilter| f;
    let l = |filter: JobFilter| {
        let store = c.store.clone();
        async move { store.list(&filter).await.expect("list") }
    };
    assert_eq!(ids(l(JobFilter::default()).await), vec![b2, b1, a2, a1]);
    assert_eq!(
        ids(l(f(JobFilter {
            queue: Some("a".into()),
            ..Default::default()
        }))
        .await),
        vec![a2, a1]
    );
    assert_eq!(
        ids(l(JobFilter {
            kind: Some("x".into()),
            ..Default::default()
        })
        .await),
        vec![b1, a1]
    );
    assert_eq!(
        ids(l(JobFilter {
            tag: Some("red".into()),
            ..Default::default()
        })
        .await),
        vec![a2, a1]
    );
    assert_eq!(
        ids(l(JobFilter {
            tag: Some("blue".into()),
            ..Default::default()
        })
        .await),
        vec![a2]
    );
    assert_eq!(
        ids(l(JobFilter {
            states: vec![JobState::Running],
            ..Default::default()
        })
        .await),
        vec![b1]
    );
    assert_eq!(
        ids(l(JobFilter {
            states: vec![JobState::Scheduled, JobState::Available],
            ..Default::default()
        })
        .await),
        vec![b2, a2, a1]
    );
    assert_eq!(
        ids(l(JobFilter {
            states: vec![JobState::Available],
            queue: Some("a".into()),
            kind: Some("y".into()),
            tag: Some("red".into()),
            ..Default::default()
        })
        .await),
        vec![a2]
    );
    assert!(l(JobFilter {
        states: vec![JobState::Failed],
        ..Default::default()
    })
    .await
    .jobs
    .is_empty());
    assert!(l(JobFilter {
        queue: Some("zzz".into()),
        ..Default::default()
    })
    .await
    .jobs
    .is_empty());
}

/// list pages newest first with a `next` cursor, None on the last page.
pub async fn list_pages(h: &dyn Harness) {
    let c = Ctx::new(h).await;
    let jobs: Vec<NewJob> = (0..25).map(|i| job(&format!("k{i}"))).collect();
    let mut all: Vec<JobId> = c
        .store
        .enqueue(jobs)
        .await
        .expect("enqueue")
        .iter()
        .map(|e| e.id)
        .collect();
    all.reverse();
    let mut seen = Vec::new();
    let mut before = None;
    let mut sizes = Vec::new();
    loop {
        let page = c
            .store
            .list(&JobFilter {
                before,
                limit: 10,
                ..Default::default()
            })
            .await
            .expect("list");
        sizes.push(page.jobs.len());
        seen.extend(page.jobs.iter().map(|j| j.id));
        match page.next {
            Some(n) => {
                assert_eq!(
                    Some(n),
                    page.jobs.last().map(|j| j.id),
                    "next is the last id"
                );
                before = Some(n);
            }
            None => break,
        }
        assert!(sizes.len() < 10, "paging must end");
    }
    assert_eq!(sizes, vec![10, 10, 5]);
    assert_eq!(seen, all, "every job once, newest first");
    // An exact multiple: the second page is the last.
    let p1 = c
        .store
        .list(&JobFilter {
            limit: 25,
            ..Default::default()
        })
        .await
        .expect("list");
    assert_eq!(p1.jobs.len(), 25);
    assert_eq!(p1.next, None, "no next when nothing is left");
    let p = c
        .store
        .list(&JobFilter {
            limit: 5,
            before: Some(all[19]),
            ..Default::default()
        })
        .await
        .expect("list");
    assert_eq!(p.jobs.len(), 5);
    assert_eq!(p.next, None);
}

/// queue_stats counts jobs by queue and state.
pub async fn queue_stats_counts(h: &dyn Harness) {
    let c = Ctx::new(h).await;
    assert!(c.store.queue_stats().await.expect("stats").is_empty());
    for _ in 0..3 {
        c.add(job("k").queue("a")).await;
    }
    c.add(job("k").queue("a").run_at(c.now() + secs(10))).await;
    c.add(job("k").queue("b")).await;
    let cl = c.claim_one("a").await;
    c.finish(cl.lease(), completed()).await;
    c.claim_one("a").await;
    let stats = c.store.queue_stats().await.expect("stats");
    let names: Vec<&str> = stats.iter().map(|s| s.queue.as_str()).collect();
    assert_eq!(names, vec!["a", "b"], "by name");
    let a = &stats[0];
    assert!(!a.paused);
    assert_eq!(a.count(JobState::Available), 1);
    assert_eq!(a.count(JobState::Scheduled), 1);
    assert_eq!(a.count(JobState::Running), 1);
    assert_eq!(a.count(JobState::Completed), 1);
    assert_eq!(a.count(JobState::Failed), 0);
    assert!(
        !a.counts.contains_key(&JobState::Failed),
        "states with no job are absent"
    );
    assert_eq!(stats[1].count(JobState::Available), 1);
    assert_eq!(stats[1].counts.len(), 1);
}

/// next_scheduled is the earliest run_at of a scheduled job in the queues.
pub async fn next_scheduled_earliest(h: &dyn Harness) {
    let c = Ctx::new(h).await;
    let a_q = vec!["a".to_string()];
    let both = vec!["a".to_string(), "b".to_string()];
    assert_eq!(c.store.next_scheduled(&both).await.expect("read"), None);
    c.add(job("k").queue("a")).await;
    assert_eq!(
        c.store.next_scheduled(&both).await.expect("read"),
        None,
        "available jobs are not scheduled"
    );
    let t10 = c.now() + secs(10);
    let t5 = c.now() + secs(5);
    c.add(job("k").queue("a").run_at(t10)).await;
    c.add(job("k").queue("a").run_at(c.now() + secs(20))).await;
    c.add(job("k").queue("b").run_at(t5)).await;
    assert_eq!(c.store.next_scheduled(&a_q).await.expect("read"), Some(t10));
    assert_eq!(c.store.next_scheduled(&both).await.expect("read"), Some(t5));
    assert_eq!(
        c.store
            .next_scheduled(&["c".to_string()])
            .await
            .expect("read"),
        None
    );
}

// ---------------------------------------------------------------- retention

/// delete_finished deletes completed jobs finished before one time and failed
/// or cancelled jobs finished before another; unfinished jobs never.
pub async fn delete_finished_retention(h: &dyn Harness) {
    let c = Ctx::new(h).await;
    let t = c.now();
    let completed_id = c.add(job("c")).await;
    let cl = c.claim_one("default").await;
    c.finish(cl.lease(), completed()).await;
    let failed_id = c.add(job("f").max_attempts(1)).await;
    let cl = c.claim_one("default").await;
    c.finish(cl.lease(), errored(t)).await;
    let cancelled_id = c.add(job("x")).await;
    c.store.cancel(&[cancelled_id]).await.expect("cancel");
    let running = c.add(job("r")).await;
    let run_claim = c.claim_one("default").await;
    assert_eq!(run_claim.id, running);
    let avail = c.add(job("a")).await;
    let sched = c.add(job("s").run_at(t + secs(1_000_000))).await;
    c.advance(100);
    let later = c.now();
    // Finished exactly at t is not "before t".
    assert_eq!(c.store.delete_finished(t, t).await.expect("delete"), 0);
    assert_eq!(c.store.delete_finished(later, t).await.expect("delete"), 1);
    assert!(c.store.get(completed_id).await.expect("get").is_none());
    assert!(c.store.get(failed_id).await.expect("get").is_some());
    assert_eq!(
        c.store.delete_finished(later, later).await.expect("delete"),
        2
    );
    assert!(c.store.get(failed_id).await.expect("get").is_none());
    assert!(c.store.get(cancelled_id).await.expect("get").is_none());
    let far = later + chrono::Duration::days(10_000);
    assert_eq!(c.store.delete_finished(far, far).await.expect("delete"), 0);
    for id in [avail, sched, running] {
        assert!(
            c.store.get(id).await.expect("get").is_some(),
            "unfinished job {id} kept"
        );
    }
}

/// Retention keeps a finished job while its `unique_for` window is open, so
/// the key keeps holding: deleting it would let the same enqueue insert a
/// second job inside the window. Once the window closes it is deleted.
pub async fn retention_keeps_job_inside_unique_window(h: &dyn Harness) {
    let c = Ctx::new(h).await;
    let week = Duration::from_secs(7 * 24 * 3600);
    let first = c.add(job("ok").unique_for("wk", week)).await;
    let cl = c.claim_one("default").await;
    c.finish(cl.lease(), completed()).await;
    let failed = c
        .add(job("f").unique_for("wk-f", week).max_attempts(1))
        .await;
    let cl = c.claim_one("default").await;
    c.finish(cl.lease(), errored(c.now())).await;
    let plain = c.add(job("p")).await;
    let cl = c.claim_one("default").await;
    c.finish(cl.lease(), completed()).await;
    // Two days on: past the default keep of completed jobs (24 h); with
    // failed jobs kept for one day here, past theirs too.
    c.advance(2 * 24 * 3600);
    let day_ago = c.now() - secs(24 * 3600);
    assert_eq!(
        c.store
            .delete_finished(day_ago, day_ago)
            .await
            .expect("delete"),
        1,
        "only the job without a window is deleted"
    );
    assert!(c.store.get(plain).await.expect("get").is_none());
    for id in [first, failed] {
        assert!(
            c.store.get(id).await.expect("get").is_some(),
            "job {id} is kept while its unique window is open"
        );
    }
    let again = c
        .store
        .enqueue(vec![job("ok").unique_for("wk", week)])
        .await
        .expect("enqueue");
    assert_eq!(
        (again[0].id, again[0].duplicate),
        (first, true),
        "the key still holds inside the window"
    );
    // Past the window: deleted, and the key is free.
    c.advance(5 * 24 * 3600 + 1);
    let day_ago = c.now() - secs(24 * 3600);
    assert_eq!(
        c.store
            .delete_finished(day_ago, day_ago)
            .await
            .expect("delete"),
        2
    );
    let fresh = c
        .store
        .enqueue(vec![job("ok").unique_for("wk", week)])
        .await
        .expect("enqueue");
    assert!(!fresh[0].duplicate);
}

// ---------------------------------------------------------------- unique

/// A unique key returns the first job while it is unfinished; after it
/// finishes a new job is inserted.
pub async fn unique_while_unfinished(h: &dyn Harness) {
    let c = Ctx::new(h).await;
    let first = c.add(job("k").unique_key("u1")).await;
    let dup = c
        .store
        .enqueue(vec![job("k").unique_key("u1")])
        .await
        .expect("enqueue");
    assert_eq!(dup[0].id, first);
    assert!(dup[0].duplicate);
    // In one batch: the second is a duplicate of the first.
    let batch = c
        .store
        .enqueue(vec![
            job("k").unique_key("u2"),
            job("k").unique_key("u2"),
            job("k"),
        ])
        .await
        .expect("enqueue");
    assert!(!batch[0].duplicate);
    assert!(batch[1].duplicate);
    assert_eq!(batch[1].id, batch[0].id);
    assert!(!batch[2].duplicate);
    assert_eq!(c.all().await.len(), 3, "duplicates insert nothing");
    // Still a duplicate while running.
    let cl = c.claim_one("default").await;
    assert_eq!(cl.id, first);
    let dup = c
        .store
        .enqueue(vec![job("k").unique_key("u1")])
        .await
        .expect("enqueue");
    assert_eq!((dup[0].id, dup[0].duplicate), (first, true));
    c.finish(cl.lease(), completed()).await;
    let again = c
        .store
        .enqueue(vec![job("k").unique_key("u1")])
        .await
        .expect("enqueue");
    assert!(
        !again[0].duplicate,
        "a finished job no longer holds the key"
    );
    assert!(again[0].id > first);
}

/// A key with a window holds for the window after the first enqueue,
/// whatever the first job's state.
pub async fn unique_within_window(h: &dyn Harness) {
    let c = Ctx::new(h).await;
    let w = Duration::from_secs(60);
    let first = c.add(job("k").unique_for("daily", w)).await;
    let cl = c.claim_one("default").await;
    c.finish(cl.lease(), completed()).await;
    c.advance(59);
    let dup = c
        .store
        .enqueue(vec![job("k").unique_for("daily", w)])
        .await
        .expect("enqueue");
    assert_eq!(
        (dup[0].id, dup[0].duplicate),
        (first, true),
        "finished but within the window"
    );
    c.advance(2);
    let fresh = c
        .store
        .enqueue(vec![job("k").unique_for("daily", w)])
        .await
        .expect("enqueue");
    assert!(
        !fresh[0].duplicate,
        "after the window a new job is inserted"
    );
    assert!(fresh[0].id > first);
}

// ---------------------------------------------------------------- workers

fn info(id: &str, queues: &[&str], kinds: Option<&[&str]>) -> crate::WorkerInfo {
    crate::WorkerInfo {
        id: id.into(),
        queues: queues.iter().map(|q| q.to_string()).collect(),
        kinds: kinds.map(|ks| ks.iter().map(|k| k.to_string()).collect()),
    }
}

/// Workers record themselves and count as alive until their registration
/// expires or they say they are gone; seeing one again replaces what it
/// claims.
pub async fn workers_register_expire_and_leave(h: &dyn Harness) {
    let c = Ctx::new(h).await;
    let ttl = Duration::from_secs(90);
    let w1 = info("w1", &["default"], Some(&["a", "b"]));
    let w2 = info("w2", &["mail"], None);
    c.store.worker_seen(&w2, ttl).await.expect("seen");
    c.store.worker_seen(&w1, ttl).await.expect("seen");
    let live = c.store.live_workers().await.expect("live");
    let infos: Vec<_> = live.iter().map(|l| l.info.clone()).collect();
    assert_eq!(infos, vec![w1.clone(), w2.clone()], "by id");
    assert_eq!(live[0].last_seen, c.now());
    c.store.worker_gone("w2").await.expect("gone");
    c.advance(60);
    let w1b = info("w1", &["default", "mail"], Some(&["c"]));
    c.store.worker_seen(&w1b, ttl).await.expect("seen");
    let live = c.store.live_workers().await.expect("live");
    assert_eq!(live.len(), 1);
    assert_eq!((live[0].info.clone(), live[0].last_seen), (w1b, c.now()));
    c.advance(91);
    assert!(
        c.store.live_workers().await.expect("live").is_empty(),
        "a worker not seen within its ttl is not alive"
    );
    c.store
        .worker_gone("nobody")
        .await
        .expect("gone is idempotent");
}

/// waiting_kinds counts runnable jobs (available, or scheduled and due) by
/// queue and kind; running, finished and future jobs are not waiting.
pub async fn waiting_kinds_counts_runnable_jobs(h: &dyn Harness) {
    let c = Ctx::new(h).await;
    c.add(job("a")).await;
    c.add(job("a")).await;
    c.add(job("b")).await;
    c.add(job("c").queue("mail").run_at(c.now() + secs(10)))
        .await;
    let run = c.add(job("r").queue("q")).await;
    assert_eq!(c.claim_one("q").await.id, run);
    let w = |q: &str, k: &str, n| crate::WaitingKind {
        queue: q.into(),
        kind: k.into(),
        count: n,
    };
    assert_eq!(
        c.store.waiting_kinds().await.expect("waiting"),
        vec![w("default", "a", 2), w("default", "b", 1)]
    );
    c.advance(10);
    assert_eq!(
        c.store.waiting_kinds().await.expect("waiting"),
        vec![
            w("default", "a", 2),
            w("default", "b", 1),
            w("mail", "c", 1)
        ]
    );
}

// ---------------------------------------------------------------- notify

/// subscribe() changes after an enqueue and after a retry.
pub async fn subscribe_sees_enqueue(h: &dyn Harness) {
    let c = Ctx::new(h).await;
    let mut rx = c.store.subscribe();
    rx.borrow_and_update();
    assert!(!rx.has_changed().expect("sender alive"));
    let id = c.add(job("k").max_attempts(1)).await;
    tokio::time::timeout(Duration::from_secs(5), rx.changed())
        .await
        .expect("a wake-up after enqueue")
        .expect("sender alive");
    let cl = c.claim_one("default").await;
    c.finish(cl.lease(), errored(c.now())).await;
    rx.borrow_and_update();
    assert_eq!(
        c.store.retry(&[id]).await.expect("retry"),
        vec![RetryResult::Retried]
    );
    tokio::time::timeout(Duration::from_secs(5), rx.changed())
        .await
        .expect("a wake-up after retry")
        .expect("sender alive");
}

/// Makes one `#[test]` per conformance case, each with a fresh harness from
/// `$harness` (an expression that builds a [`Harness`](crate::testkit::Harness)).
#[macro_export]
macro_rules! store_conformance_tests {
    ($harness:expr) => {
        $crate::store_conformance_tests!(@cases $harness;
            enqueue_and_get,
            enqueue_bulk,
            enqueue_invalid_writes_nothing,
            enqueue_future_is_scheduled,
            claim_order_and_limit,
            claim_only_listed_queues,
            paused_queue_is_skipped,
            concurrent_claims_are_disjoint,
            claim_only_listed_kinds,
            claim_counts_attempt_and_sets_lease,
            finish_completed,
            finish_errored_retries,
            finish_errored_fails,
            finish_snoozed,
            finish_cancelled,
            finish_released,
            finish_stale,
            heartbeat_extends_and_reports,
            cancel_requests_lists_requested,
            set_progress_records,
            reap_expired_leases,
            reap_expired_respects_limit,
            cancel_each_state,
            cancel_running_then_finish,
            retry_each_state,
            retry_failed_by_queue_and_kind,
            retry_refuses_while_another_job_holds_the_key,
            retry_failed_keeps_one_unfinished_job_per_key,
            get_unknown_is_none,
            list_filters,
            list_pages,
            queue_stats_counts,
            next_scheduled_earliest,
            delete_finished_retention,
            retention_keeps_job_inside_unique_window,
            unique_while_unfinished,
            unique_within_window,
            workers_register_expire_and_leave,
            waiting_kinds_counts_runnable_jobs,
            subscribe_sees_enqueue,
            claim_job_takes_exactly_that_job,
        );
    };
    (@cases $harness:expr; $($case:ident),* $(,)?) => {
        $(
            #[test]
            fn $case() {
                $crate::testkit::run(async {
                    let harness = $harness;
                    $crate::testkit::$case(&harness).await;
                });
            }
        )*
    };
}

// ---------------------------------------------------------------- claim_job

/// claim_job claims exactly the job it names, whatever its run_at, queue
/// pause or priority, as a claim would (attempt counted, lease set, fenced);
/// it leaves running, finished and unknown jobs as they are, and of two
/// claims of one job only one gets it.
pub async fn claim_job_takes_exactly_that_job(h: &dyn Harness) {
    let c = Ctx::new(h).await;
    let first = c.add(job("k").priority(-5)).await;
    let later = c
        .add(
            NewJob::from_json_text("k", r#"{"a":1}"#)
                .queue("paused")
                .priority(9)
                .max_attempts(3)
                .timeout(Duration::from_secs(4))
                .run_at(c.now() + secs(3600)),
        )
        .await;
    c.store.pause_queue("paused").await.expect("pause");
    assert_eq!(c.state(later).await, JobState::Scheduled);

    let cl = c
        .store
        .claim_job(later, "tester", LEASE)
        .await
        .expect("claim_job")
        .expect("a scheduled job in a paused queue is claimed by id");
    assert_eq!(cl.id, later);
    assert_eq!(
        (cl.queue.as_str(), cl.kind.as_str(), cl.args.as_str()),
        ("paused", "k", r#"{"a":1}"#)
    );
    assert_eq!((cl.attempt, cl.max_attempts), (1, 3));
    assert_eq!(cl.timeout, Some(Duration::from_secs(4)));
    assert_eq!(cl.lease_expires_at, c.now() + secs(30));
    let j = c.job(later).await;
    assert_eq!(j.state, JobState::Running);
    assert_eq!(j.worker.as_deref(), Some("tester"));
    assert_eq!(j.attempted_at, Some(c.now()));
    assert_eq!(j.lease_expires_at, Some(c.now() + secs(30)));
    assert_eq!(
        c.state(first).await,
        JobState::Available,
        "only the named job is claimed, not the one first in line"
    );

    // Running: not taken from its lease holder.
    assert_eq!(
        c.store
            .claim_job(later, "thief", LEASE)
            .await
            .expect("claim_job"),
        None
    );
    assert_eq!(c.job(later).await.worker.as_deref(), Some("tester"));
    // The claim is a real lease: the attempt finishes through it.
    assert_eq!(
        c.finish(cl.lease(), completed()).await,
        FinishResult::Applied(JobState::Completed)
    );
    // Finished and unknown jobs: nothing to claim.
    assert_eq!(
        c.store
            .claim_job(later, "tester", LEASE)
            .await
            .expect("claim_job"),
        None
    );
    assert_eq!(c.state(later).await, JobState::Completed);
    assert_eq!(
        c.store
            .claim_job(first + later + 1000, "tester", LEASE)
            .await
            .expect("claim_job"),
        None
    );

    // Two claims of one job at once: one gets it.
    let (a, b) = tokio::join!(
        c.store.claim_job(first, "a", LEASE),
        c.store.claim_job(first, "b", LEASE)
    );
    let got: Vec<ClaimedJob> = [a.expect("claim_job"), b.expect("claim_job")]
        .into_iter()
        .flatten()
        .collect();
    assert_eq!(got.len(), 1, "one of two claims of one job gets it");
    assert_eq!(got[0].attempt, 1);
    assert_eq!(c.state(first).await, JobState::Running);
}
