//! Counting jobs by filter ([`Store::count_jobs`](crate::Store::count_jobs)):
//! the same jobs the list selects, the snapshot bound of bulk actions, and
//! the cap with its `more` flag.

use super::{errored, job, secs, Ctx, Harness};
use crate::{FinishOutcome, JobCount, JobFilter, JobId, JobState, StoreError};

/// An exact count (no cap in the way).
fn exact(n: u64) -> JobCount {
    JobCount { n, more: false }
}

/// How many jobs the list returns for `filter`, paging to the end.
async fn listed(c: &Ctx, filter: &JobFilter) -> u64 {
    let mut f = filter.clone();
    f.limit = 3;
    let mut n = 0;
    loop {
        let page = c.store.list(&f).await.expect("list");
        n += page.jobs.len() as u64;
        match page.next {
            Some(next) => f.before = Some(next),
            None => return n,
        }
    }
}

/// Counts `filter` exactly, asserting the list pages through as many jobs.
async fn count(c: &Ctx, filter: JobFilter) -> JobCount {
    let got = c
        .store
        .count_jobs(&filter, u64::MAX)
        .await
        .expect("count_jobs");
    assert_eq!(
        got.n,
        listed(c, &filter).await,
        "count and list select the same jobs for {filter:?}"
    );
    got
}

/// A job failed for good (one attempt, a permanent error).
async fn failed(c: &Ctx, queue: &str) -> JobId {
    let id = c.add(job("k").queue(queue).max_attempts(1)).await;
    let cl = c.claim_one(queue).await;
    assert_eq!(cl.id, id);
    c.finish(
        cl.lease(),
        FinishOutcome::Errored {
            message: "boom".into(),
            retry_at: c.now(),
            permanent: true,
        },
    )
    .await;
    assert_eq!(c.state(id).await, JobState::Failed);
    id
}

/// count_jobs filters by states, queue, kind, tag, created range and id
/// cursor exactly as list does.
pub async fn count_jobs_filters(h: &dyn Harness) {
    let c = Ctx::new(h).await;
    let a1 = c.add(job("x").queue("a").tag("red")).await;
    c.add(job("y").queue("a").tag("blue").tag("red")).await;
    c.advance(10);
    let mid = c.now();
    let b1 = c.add(job("x").queue("b")).await;
    c.add(job("y").queue("b").run_at(c.now() + secs(60))).await;
    let cancelled = c.add(job("y").queue("c")).await;
    c.store.cancel(&[cancelled]).await.expect("cancel");
    let cl = c.claim_one("b").await;
    assert_eq!(cl.id, b1);
    failed(&c, "c").await;
    let f = JobFilter::default;
    for (filter, n, what) in [
        (f(), 6, "every job"),
        (
            JobFilter {
                queue: Some("a".into()),
                ..f()
            },
            2,
            "queue",
        ),
        (
            JobFilter {
                kind: Some("x".into()),
                ..f()
            },
            2,
            "kind",
        ),
        (
            JobFilter {
                tag: Some("red".into()),
                ..f()
            },
            2,
            "tag",
        ),
        (
            JobFilter {
                states: vec![JobState::Available],
                ..f()
            },
            2,
            "available",
        ),
        (
            JobFilter {
                states: vec![JobState::Scheduled],
                ..f()
            },
            1,
            "scheduled",
        ),
        (
            JobFilter {
                states: vec![JobState::Running],
                ..f()
            },
            1,
            "running",
        ),
        (
            JobFilter {
                states: vec![JobState::Cancelled],
                ..f()
            },
            1,
            "cancelled",
        ),
        (
            JobFilter {
                states: vec![JobState::Failed],
                ..f()
            },
            1,
            "failed",
        ),
        (
            JobFilter {
                states: vec![JobState::Completed],
                ..f()
            },
            0,
            "completed",
        ),
        (
            JobFilter {
                states: vec![JobState::Failed, JobState::Cancelled],
                ..f()
            },
            2,
            "two states",
        ),
        (
            JobFilter {
                states: vec![JobState::Available],
                queue: Some("a".into()),
                kind: Some("y".into()),
                tag: Some("red".into()),
                ..f()
            },
            1,
            "every filter at once",
        ),
        (
            JobFilter {
                created_after: Some(mid),
                ..f()
            },
            4,
            "created after",
        ),
        (
            JobFilter {
                created_before: Some(mid),
                ..f()
            },
            2,
            "created before",
        ),
        (
            JobFilter {
                before: Some(b1),
                ..f()
            },
            2,
            "only jobs older than the cursor",
        ),
        (
            JobFilter {
                queue: Some("zzz".into()),
                ..f()
            },
            0,
            "no such queue",
        ),
    ] {
        assert_eq!(count(&c, filter).await, exact(n), "{what}");
    }
    // The page size plays no part in a count.
    assert_eq!(
        c.store
            .count_jobs(
                &JobFilter {
                    limit: 1,
                    before: Some(a1 + 1),
                    ..Default::default()
                },
                u64::MAX
            )
            .await
            .expect("count_jobs"),
        exact(1)
    );
}

/// With the snapshot bound (`changed_by` and `before`) count_jobs counts
/// only the jobs that were in their state when the operator looked: not
/// one that failed a second later, nor a newer job, nor one retried since.
pub async fn count_jobs_snapshot_bound(h: &dyn Harness) {
    let c = Ctx::new(h).await;
    failed(&c, "q").await;
    let retried_later = failed(&c, "q").await;
    let was_running = c.add(job("k").queue("r").max_attempts(1)).await;
    let cl = c.claim_one("r").await;
    c.add(job("k").queue("w")).await;
    c.advance(1);
    let looked = c.now();
    let highest = c
        .store
        .list(&JobFilter::default())
        .await
        .expect("list")
        .jobs[0]
        .id;
    c.advance(1);
    c.finish(cl.lease(), errored(c.now())).await;
    assert_eq!(c.state(was_running).await, JobState::Failed);
    failed(&c, "q").await;
    c.store.retry(&[retried_later]).await.expect("retry");
    let snapshot = |states: Vec<JobState>| JobFilter {
        states,
        changed_by: Some(looked),
        before: Some(highest + 1),
        ..Default::default()
    };
    assert_eq!(
        count(&c, snapshot(vec![JobState::Failed])).await,
        exact(1),
        "only the job that was failed when the operator looked and still is"
    );
    assert_eq!(
        count(
            &c,
            JobFilter {
                states: vec![JobState::Failed],
                ..Default::default()
            }
        )
        .await,
        exact(3),
        "without the bound: every failed job"
    );
    assert_eq!(
        count(&c, snapshot(vec![JobState::Available])).await,
        exact(1),
        "the waiting job, not the one retried after the look"
    );
    assert_eq!(count(&c, snapshot(Vec::new())).await, exact(2));
}

/// count_jobs stops at its cap: `n` is the cap and `more` is set when more
/// jobs match, and not when exactly the cap match.
pub async fn count_jobs_cap_and_more(h: &dyn Harness) {
    let c = Ctx::new(h).await;
    let mut ids = Vec::new();
    for _ in 0..12 {
        ids.push(c.add(job("k").queue("q")).await);
    }
    c.add(job("k").queue("other")).await;
    c.store.cancel(&ids).await.expect("cancel");
    let cancelled = JobFilter {
        states: vec![JobState::Cancelled],
        ..Default::default()
    };
    let capped = |cap: u64| {
        let store = c.store.clone();
        let filter = cancelled.clone();
        async move { store.count_jobs(&filter, cap).await.expect("count_jobs") }
    };
    assert_eq!(capped(5).await, JobCount { n: 5, more: true });
    assert_eq!(capped(11).await, JobCount { n: 11, more: true });
    assert_eq!(capped(12).await, exact(12), "exactly the cap: no more");
    assert_eq!(capped(13).await, exact(12));
    assert_eq!(capped(u64::MAX).await, exact(12));
    assert_eq!(capped(0).await, JobCount { n: 0, more: true });
    let none = JobFilter {
        states: vec![JobState::Failed],
        ..Default::default()
    };
    assert_eq!(
        c.store.count_jobs(&none, 0).await.expect("count_jobs"),
        exact(0)
    );
}

/// count_jobs refuses a search inside args (no index serves it) with an
/// error on `args`, rather than read every job.
pub async fn count_jobs_refuses_args_search(h: &dyn Harness) {
    let c = Ctx::new(h).await;
    c.add(job("k")).await;
    let filter = JobFilter {
        args: vec![crate::ArgMatch::parse("args", "args.user=42").expect("parses")],
        ..Default::default()
    };
    match c.store.count_jobs(&filter, 10).await {
        Err(StoreError::Invalid(e)) => assert_eq!(e.field, "args", "{e}"),
        other => panic!("a count with a search inside args should be refused, got {other:?}"),
    }
}
