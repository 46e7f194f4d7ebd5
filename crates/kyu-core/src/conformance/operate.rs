//! Operator actions by id (delete, run now) and the list filters operators
//! select with: created range, search inside args, and the snapshot bound
//! that keeps a bulk action to the jobs that were there when the operator looked.

use super::events::read_all_after;
use super::{completed, errored, job, secs, Ctx, Harness};
use crate::event::EventType;
use crate::store::{ArgMatch, DeleteResult, RunNowResult};
use crate::{AttemptLogs, FinishOutcome, JobFilter, JobId, JobState, NewJob};

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

fn ids(p: crate::JobPage) -> Vec<JobId> {
    p.jobs.iter().map(|j| j.id).collect()
}

/// delete removes jobs in every state but running, with their logs, each
/// with a `deleted` event naming the state it was in.
pub async fn delete_each_state(h: &dyn Harness) {
    let c = Ctx::new(h).await;
    let scheduled = c.add(job("k").run_at(c.now() + secs(60))).await;
    let done = c.add(job("k")).await;
    let cl = c.claim_one("default").await;
    c.store
        .set_logs(
            done,
            AttemptLogs {
                attempt: 1,
                stdout: "out".into(),
                ..AttemptLogs::default()
            },
        )
        .await
        .expect("set_logs");
    c.finish(cl.lease(), completed()).await;
    let running = c.add(job("k")).await;
    let cl = c.claim_one("default").await;
    assert_eq!(cl.id, running);
    let available = c.add(job("k")).await;
    let mark = c.store.last_event_id().await.expect("last_event_id");
    let out = c
        .store
        .delete_jobs(&[scheduled, done, running, available, 99_999])
        .await
        .expect("delete_jobs");
    assert_eq!(
        out,
        [
            DeleteResult::Deleted(JobState::Scheduled),
            DeleteResult::Deleted(JobState::Completed),
            DeleteResult::Running,
            DeleteResult::Deleted(JobState::Available),
            DeleteResult::NotFound,
        ]
    );
    for id in [scheduled, done, available] {
        assert!(c.store.get(id).await.expect("get").is_none(), "{id} gone");
    }
    assert!(
        c.store.logs(done).await.expect("logs").is_empty(),
        "logs gone"
    );
    assert_eq!(
        c.state(running).await,
        JobState::Running,
        "running untouched"
    );
    let ev = read_all_after(c.store.as_ref(), mark, 100).await;
    let deleted: Vec<_> = ev
        .iter()
        .map(|e| (e.event_type, e.job_id, e.facts.state))
        .collect();
    assert_eq!(
        deleted,
        [
            (
                EventType::Deleted,
                Some(scheduled),
                Some(JobState::Scheduled)
            ),
            (EventType::Deleted, Some(done), Some(JobState::Completed)),
            (
                EventType::Deleted,
                Some(available),
                Some(JobState::Available)
            ),
        ]
    );
    assert_eq!(ev[0].queue.as_deref(), Some("default"));
    let again = c.store.delete_jobs(&[scheduled]).await.expect("delete");
    assert_eq!(again, [DeleteResult::NotFound]);
}

/// run_now makes a scheduled job available at once (claimable now), with
/// a `run_now` event; other states are left alone.
pub async fn run_now_makes_scheduled_available(h: &dyn Harness) {
    let c = Ctx::new(h).await;
    let later = c.add(job("k").run_at(c.now() + secs(3600))).await;
    let ready = c.add(job("k")).await;
    assert!(
        c.claim_ids(&["default"], 10).await == [ready],
        "only the ready one"
    );
    let other = c.add(job("k")).await;
    let mut wake = c.store.subscribe();
    wake.borrow_and_update();
    let mark = c.store.last_event_id().await.expect("last_event_id");
    let out = c
        .store
        .run_now(&[later, ready, other, 99_999])
        .await
        .expect("run_now");
    assert_eq!(
        out,
        [
            RunNowResult::MadeAvailable,
            RunNowResult::NotScheduled(JobState::Running),
            RunNowResult::NotScheduled(JobState::Available),
            RunNowResult::NotFound,
        ]
    );
    assert!(wake.has_changed().unwrap_or(false), "workers are woken");
    let j = c.job(later).await;
    assert_eq!(
        (j.state, j.run_at, j.attempt),
        (JobState::Available, c.now(), 0)
    );
    let ev = read_all_after(c.store.as_ref(), mark, 100).await;
    assert_eq!(ev.len(), 1, "{ev:?}");
    assert_eq!(
        (ev[0].event_type, ev[0].job_id),
        (EventType::RunNow, Some(later))
    );
    assert_eq!(ev[0].facts.state, Some(JobState::Available));
    let got = c.claim_ids(&["default"], 10).await;
    assert!(got.contains(&later), "claimable now: {got:?}");
}

/// list filters by created range (from inclusive, before exclusive) and by
/// values inside args at a path; a page follows the cursor.
pub async fn list_filters_created_range_and_args(h: &dyn Harness) {
    let c = Ctx::new(h).await;
    let t0 = c.now();
    let a = c
        .add(NewJob::new(
            "k",
            serde_json::json!({"user": 42, "a": {"b": "x"}, "ok": true}),
        ))
        .await;
    c.advance(10);
    let t1 = c.now();
    let b = c
        .add(NewJob::new(
            "k",
            serde_json::json!({"user": 42.0, "a": {"b": "y"}, "ok": false, "n": null}),
        ))
        .await;
    c.advance(10);
    let cc = c
        .add(NewJob::new(
            "k",
            serde_json::json!({"user": "42", "a": "b"}),
        ))
        .await;
    let list = |f: JobFilter| {
        let store = c.store.clone();
        async move { ids(store.list(&f).await.expect("list")) }
    };
    let m = |text: &str| ArgMatch::parse("arg", text).expect("parses");
    assert_eq!(
        list(JobFilter {
            created_after: Some(t1),
            ..Default::default()
        })
        .await,
        [cc, b]
    );
    assert_eq!(
        list(JobFilter {
            created_after: Some(t0),
            created_before: Some(t1),
            ..Default::default()
        })
        .await,
        [a]
    );
    let cases: [(&[&str], Vec<JobId>); 9] = [
        (&["args.user=42"], vec![b, a]),
        (&["args.user=\"42\""], vec![cc]),
        (&["args.a.b=\"x\""], vec![a]),
        (&["args.a.b=y"], vec![b]),
        (&["args.ok=true"], vec![a]),
        (&["args.ok=false"], vec![b]),
        (&["args.n=null"], vec![b]),
        (&["args.user=42", "args.a.b=x"], vec![a]),
        (&["args.missing=1"], vec![]),
    ];
    for (texts, want) in cases {
        let got = list(JobFilter {
            args: texts.iter().map(|t| m(t)).collect(),
            ..Default::default()
        })
        .await;
        assert_eq!(got, want, "{texts:?}");
    }
    let page = c
        .store
        .list(&JobFilter {
            args: vec![m("args.user=42")],
            limit: 1,
            ..Default::default()
        })
        .await
        .expect("list");
    assert_eq!((ids(page.clone()), page.next), (vec![b], Some(b)));
    assert_eq!(
        list(JobFilter {
            args: vec![m("args.user=42")],
            before: page.next,
            ..Default::default()
        })
        .await,
        [a]
    );
    let bad = ArgMatch {
        path: vec!["a b".into()],
        value: serde_json::json!(1),
    };
    assert!(
        c.store
            .list(&JobFilter {
                args: vec![bad],
                ..Default::default()
            })
            .await
            .is_err(),
        "an unchecked path is refused, not spliced into SQL"
    );
}

/// A search inside args reads at most its window of jobs per page (the
/// newest `search_window` below the cursor, whatever the other filters): a
/// page the window ends is short, even empty, with `next` the window's
/// oldest id and `searched` naming the ids read; paging on returns every
/// match exactly once, newest first.
pub async fn list_args_search_window(h: &dyn Harness) {
    let c = Ctx::new(h).await;
    let mut all = Vec::new();
    let mut want = Vec::new();
    let mut want_a = Vec::new();
    for i in 0..50 {
        // A match every 7th job; every other job in another queue, so the
        // window counts jobs the queue filter skips too.
        let queue = if i % 2 == 0 { "a" } else { "b" };
        let id = c
            .add(NewJob::new("k", serde_json::json!({"m": i % 7 == 3})).queue(queue))
            .await;
        all.push(id);
        if i % 7 == 3 {
            want.push(id);
            if queue == "a" {
                want_a.push(id);
            }
        }
    }
    all.reverse();
    want.reverse();
    want_a.reverse();
    let m = ArgMatch::parse("args", "args.m=true").expect("parses");
    for (window, limit, queue) in [
        (10, 2, None),
        (3, 2, None),
        (10, 1, Some("a")),
        (100, 50, None),
    ] {
        let mut got = Vec::new();
        let mut before = None;
        let mut pages = 0;
        loop {
            let page = c
                .store
                .list(&JobFilter {
                    args: vec![m.clone()],
                    queue: queue.map(str::to_string),
                    search_window: window,
                    before,
                    limit,
                    ..Default::default()
                })
                .await
                .expect("list");
            pages += 1;
            assert!(page.jobs.len() <= limit);
            let below: Vec<JobId> = all
                .iter()
                .copied()
                .filter(|id| before.map_or(true, |b| *id < b))
                .collect();
            match page.searched {
                Some(s) => {
                    // The window: exactly the newest `window` jobs below
                    // the cursor, and the page goes on after it.
                    assert_eq!((s.newest, s.oldest), (below[0], below[window - 1]));
                    assert_eq!(page.next, Some(s.oldest));
                    assert!(page
                        .jobs
                        .iter()
                        .all(|j| j.id >= s.oldest && j.id <= s.newest));
                }
                None if page.jobs.len() < limit => {
                    assert_eq!(page.next, None, "a short page without a window is the last");
                    assert!(
                        below.len() <= window,
                        "the last window reached the oldest job"
                    );
                }
                None => {}
            }
            got.extend(ids(page.clone()));
            match page.next {
                Some(n) => before = Some(n),
                None => break,
            }
            assert!(pages < 100, "paging ends");
        }
        let expect = if queue.is_some() { &want_a } else { &want };
        assert_eq!(
            &got, expect,
            "window {window}, limit {limit}, queue {queue:?}"
        );
    }
    // With the window of 3 some pages found nothing yet: empty, and still
    // a cursor.
    let page = c
        .store
        .list(&JobFilter {
            args: vec![m.clone()],
            search_window: 3,
            limit: 5,
            ..Default::default()
        })
        .await
        .expect("list");
    assert!(page.jobs.is_empty(), "the newest 3 jobs hold no match");
    assert_eq!(page.next, Some(all[2]));
    // Without a search inside args the window does not apply.
    let page = c
        .store
        .list(&JobFilter {
            search_window: 3,
            limit: 5,
            ..Default::default()
        })
        .await
        .expect("list");
    assert_eq!((page.jobs.len(), page.searched), (5, None));
}

/// The snapshot bound (`changed_by` with `before`): only jobs that were
/// already in their state when the operator looked. A job that failed a
/// second later, a new job, and a job retried and failed again afterwards
/// are not in it.
pub async fn list_snapshot_bound_excludes_later_changes(h: &dyn Harness) {
    let c = Ctx::new(h).await;
    let early = failed(&c, "q").await;
    let again = failed(&c, "q").await;
    let was_running = c.add(job("k").queue("r").max_attempts(1)).await;
    let cl = c.claim_one("r").await;
    let waiting = c.add(job("k").queue("w")).await;
    let retried_later = failed(&c, "w2").await;
    c.advance(1);
    // The operator looks.
    let looked = c.now();
    let highest = c
        .store
        .list(&JobFilter::default())
        .await
        .expect("list")
        .jobs[0]
        .id;
    c.advance(1);
    // A second later: one running job fails, a new one fails, one is retried
    // and fails again, one failed job is retried (now available).
    c.finish(cl.lease(), errored(c.now())).await;
    assert_eq!(c.state(was_running).await, JobState::Failed);
    let newer = failed(&c, "q").await;
    c.store.retry(&[again]).await.expect("retry");
    let cl2 = c.claim_one("q").await;
    assert_eq!(cl2.id, again);
    c.finish(
        cl2.lease(),
        FinishOutcome::Errored {
            message: "again".into(),
            retry_at: c.now(),
            permanent: true,
        },
    )
    .await;
    c.store.retry(&[retried_later]).await.expect("retry");
    let snapshot = |states: Vec<JobState>| JobFilter {
        states,
        changed_by: Some(looked),
        before: Some(highest + 1),
        ..Default::default()
    };
    let failed_then = ids(c
        .store
        .list(&snapshot(vec![JobState::Failed]))
        .await
        .expect("list"));
    assert_eq!(
        failed_then,
        [early],
        "only the job failed when the operator looked"
    );
    let all_failed = ids(c
        .store
        .list(&JobFilter {
            states: vec![JobState::Failed],
            ..Default::default()
        })
        .await
        .expect("list"));
    assert_eq!(all_failed.len(), 4, "{all_failed:?} {newer}");
    let available_then = ids(c
        .store
        .list(&snapshot(vec![JobState::Available]))
        .await
        .expect("list"));
    assert_eq!(
        available_then,
        [waiting],
        "a failed job retried after the look was not available then"
    );
}
