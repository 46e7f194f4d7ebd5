//! Reads: one job, filtered and paged lists, queue counts, the next scheduled run.

use std::time::Duration;

use super::{completed, job, secs, Ctx, Harness};
use crate::{JobFilter, JobId, JobState, NewJob};

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

/// queue_stats says when each queue's oldest runnable job became runnable
/// (available, or scheduled with its run_at reached): the queue latency.
pub async fn queue_stats_oldest_runnable(h: &dyn Harness) {
    let c = Ctx::new(h).await;
    let t0 = c.now();
    // Queue a: one job available since t0, one since t0 + 5 s (enqueued later).
    c.add(job("k").queue("a")).await;
    c.advance(5);
    c.add(job("k").queue("a")).await;
    // Queue b: a job due at t0 + 10 s, not runnable yet; queue c: a running job only.
    c.add(job("k").queue("b").run_at(t0 + secs(10))).await;
    c.add(job("k").queue("c")).await;
    c.claim_one("c").await;
    let stats = c.store.queue_stats().await.expect("stats");
    let of = |q: &str| stats.iter().find(|s| s.queue == q).expect("queue").clone();
    assert_eq!(of("a").oldest_runnable_at, Some(t0));
    assert_eq!(of("a").latency(c.now()), Duration::from_secs(5));
    assert_eq!(of("b").oldest_runnable_at, None, "not runnable yet");
    assert_eq!(of("b").latency(c.now()), Duration::ZERO);
    assert_eq!(of("c").oldest_runnable_at, None, "running jobs do not wait");

    // At t0 + 12 s b's job is runnable (due, not claimed yet) since t0 + 10 s.
    c.advance(7);
    let stats = c.store.queue_stats().await.expect("stats");
    let b = stats.iter().find(|s| s.queue == "b").expect("b");
    assert_eq!(b.oldest_runnable_at, Some(t0 + secs(10)));
    assert_eq!(b.latency(c.now()), Duration::from_secs(2));
    // Claiming a's oldest job leaves the one available since t0 + 5 s.
    c.claim_one("a").await;
    let stats = c.store.queue_stats().await.expect("stats");
    let a = stats.iter().find(|s| s.queue == "a").expect("a");
    assert_eq!(a.oldest_runnable_at, Some(t0 + secs(5)));
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
