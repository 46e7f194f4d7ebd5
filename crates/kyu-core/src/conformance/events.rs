//! Events: one per change, with the right fields, written only for changes
//! that committed; ids strictly increasing as readers see them; replay after
//! an id; the gap marker after pruning (DESIGN.md, invariant 6).

use std::collections::BTreeSet;
use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::{claim_of, completed, errored, job, secs, Ctx, Harness, LEASE};
use crate::event::{Event, EventGap, EventId, EventType};
use crate::schedule::{Fire, FireResult, JobTemplate, ScheduleSpec};
use crate::workers::WorkerInfo;
use crate::{Finish, FinishOutcome, FinishResult, JobState, NewJob, Progress, Store};

/// Every event after `after`, read to the end in pages of `page`.
pub async fn read_all_after(store: &dyn Store, after: EventId, page: usize) -> Vec<Event> {
    let mut out = Vec::new();
    let mut at = after;
    loop {
        let r = store.read_events(at, page).await.expect("read_events");
        assert!(r.next >= at, "a read never moves back: {} < {at}", r.next);
        let done = r.events.is_empty() && r.next == at;
        out.extend(r.events);
        if done {
            return out;
        }
        at = r.next;
    }
}

/// Every event in the log.
pub async fn all_events(c: &Ctx) -> Vec<Event> {
    read_all_after(c.store.as_ref(), 0, 1000).await
}

/// The events written since `after`, as (type, job) pairs.
async fn since(c: &Ctx, after: EventId) -> Vec<Event> {
    read_all_after(c.store.as_ref(), after, 1000).await
}

fn types(events: &[Event]) -> Vec<EventType> {
    events.iter().map(|e| e.event_type).collect()
}

fn one(events: &[Event], t: EventType) -> &Event {
    let found: Vec<&Event> = events.iter().filter(|e| e.event_type == t).collect();
    assert_eq!(
        found.len(),
        1,
        "one {t} event expected in {:?}",
        types(events)
    );
    found[0]
}

async fn last(c: &Ctx) -> EventId {
    c.store.last_event_id().await.expect("last_event_id")
}

/// One event per transition of a job's life, each with its fields: enqueued
/// (and duplicate-returned), started (worker, attempt, wait), progress,
/// retrying (error, run_at), completed (duration), and the ending events.
pub async fn events_one_per_transition_with_fields(h: &dyn Harness) {
    let c = Ctx::new(h).await;
    let t0 = c.now();
    let id = c
        .add(job("k").queue("q").max_attempts(3).unique_key("u1"))
        .await;
    let dup = c
        .store
        .enqueue(vec![job("k").queue("q").unique_key("u1")])
        .await
        .expect("enqueue");
    assert!(dup[0].duplicate);
    let ev = since(&c, 0).await;
    assert_eq!(types(&ev), [EventType::Enqueued, EventType::Enqueued]);
    for e in &ev {
        assert_eq!(e.job_id, Some(id));
        assert_eq!(
            (e.queue.as_deref(), e.kind.as_deref()),
            (Some("q"), Some("k"))
        );
        assert_eq!(e.at, t0);
    }
    assert_eq!(ev[0].facts.state, Some(JobState::Available));
    assert_eq!(ev[0].facts.duplicate, None);
    assert_eq!(ev[1].facts.duplicate, Some(true));
    let mark = ev[1].id;

    // Started: worker, attempt and the wait from available to start.
    c.advance(3);
    let cl = c.claim_one("q").await;
    c.store
        .set_progress(
            cl.lease(),
            Progress {
                percent: 40,
                message: "step 2".into(),
            },
        )
        .await
        .expect("set_progress");
    c.advance(2);
    let retry_at = c.now() + secs(10);
    c.finish(cl.lease(), errored(retry_at)).await;
    let ev = since(&c, mark).await;
    assert_eq!(
        types(&ev),
        [EventType::Started, EventType::Progress, EventType::Retrying]
    );
    let started = &ev[0];
    assert_eq!(started.attempt, Some(1));
    assert_eq!(started.facts.worker.as_deref(), Some("w1"));
    assert_eq!(started.facts.wait_ms, Some(3000));
    assert_eq!(started.facts.state, Some(JobState::Running));
    assert_eq!(
        (ev[1].facts.progress, ev[1].facts.message.as_deref()),
        (Some(40), Some("step 2"))
    );
    let retrying = &ev[2];
    assert_eq!(retrying.attempt, Some(1));
    assert_eq!(retrying.facts.error.as_deref(), Some("boom"));
    assert_eq!(retrying.facts.run_at, Some(retry_at));
    assert_eq!(retrying.facts.duration_ms, Some(2000));
    assert_eq!(retrying.facts.state, Some(JobState::Scheduled));
    for e in &ev {
        assert_eq!(e.job_id, Some(id));
        assert_eq!(
            (e.queue.as_deref(), e.kind.as_deref()),
            (Some("q"), Some("k"))
        );
    }
    let mark = ev[2].id;

    // Completed, with the attempt's duration.
    c.advance(10);
    let cl = c.claim_one("q").await;
    assert_eq!(cl.attempt, 2);
    c.advance(4);
    c.finish(cl.lease(), completed()).await;
    let ev = since(&c, mark).await;
    assert_eq!(types(&ev), [EventType::Started, EventType::Completed]);
    assert_eq!(ev[0].facts.wait_ms, Some(0));
    assert_eq!(ev[1].attempt, Some(2));
    assert_eq!(ev[1].facts.duration_ms, Some(4000));
    assert_eq!(ev[1].facts.state, Some(JobState::Completed));
    assert_eq!(ev[1].at, c.now());

    // The other endings: failed (dead), snoozed, cancelled, released.
    let mark = last(&c).await;
    let dead = c.add(job("d").max_attempts(1)).await;
    let cl = c.claim_one("default").await;
    c.finish(cl.lease(), errored(c.now())).await;
    let ev = since(&c, mark).await;
    let failed = one(&ev, EventType::Failed);
    assert_eq!(failed.job_id, Some(dead));
    assert_eq!(failed.facts.error.as_deref(), Some("boom"));
    assert_eq!(failed.facts.state, Some(JobState::Failed));

    let mark = last(&c).await;
    let snoozy = c.add(job("s")).await;
    let cl = c.claim_one("default").await;
    let until = c.now() + secs(60);
    c.finish(cl.lease(), FinishOutcome::Snoozed { until }).await;
    let ev = since(&c, mark).await;
    let snoozed = one(&ev, EventType::Snoozed);
    assert_eq!(
        (snoozed.job_id, snoozed.facts.run_at),
        (Some(snoozy), Some(until))
    );

    let mark = last(&c).await;
    let a = c.add(job("r")).await;
    let b = c.add(job("r")).await;
    let cla = c.claim_one("default").await;
    let clb = c.claim_one("default").await;
    assert_eq!((cla.id, clb.id), (a, b));
    c.finish(
        cla.lease(),
        FinishOutcome::Released {
            message: "worker shut down".into(),
        },
    )
    .await;
    c.finish(
        clb.lease(),
        FinishOutcome::Cancelled {
            message: "stopped".into(),
        },
    )
    .await;
    let ev = since(&c, mark).await;
    let released = one(&ev, EventType::Released);
    assert_eq!(released.job_id, Some(a));
    assert_eq!(released.facts.error.as_deref(), Some("worker shut down"));
    assert_eq!(released.facts.state, Some(JobState::Available));
    let cancelled = one(&ev, EventType::Cancelled);
    assert_eq!(cancelled.job_id, Some(b));
    assert_eq!(cancelled.facts.state, Some(JobState::Cancelled));
}

/// Operator actions and the reaper: cancel (waiting: cancelled; running:
/// cancel requested), retry, pause and resume, a lease that ran out.
pub async fn events_of_control_and_leases(h: &dyn Harness) {
    let c = Ctx::new(h).await;
    let waiting = c.add(job("k")).await;
    let running = c.add(job("k")).await;
    let mark = last(&c).await;
    c.store.cancel(&[waiting]).await.expect("cancel");
    let cl = c.claim_one("default").await;
    assert_eq!(cl.id, running);
    c.store.cancel(&[running]).await.expect("cancel");
    c.store.retry(&[waiting]).await.expect("retry");
    c.store.pause_queue("default").await.expect("pause");
    c.store.resume_queue("default").await.expect("resume");
    let ev = since(&c, mark).await;
    assert_eq!(
        types(&ev),
        [
            EventType::Cancelled,
            EventType::Started,
            EventType::CancelRequested,
            EventType::Retried,
            EventType::QueuePaused,
            EventType::QueueResumed
        ]
    );
    assert_eq!(ev[0].job_id, Some(waiting));
    assert_eq!(ev[0].facts.state, Some(JobState::Cancelled));
    assert_eq!(ev[2].job_id, Some(running));
    assert_eq!(ev[3].job_id, Some(waiting));
    assert_eq!(ev[3].facts.state, Some(JobState::Available));
    for e in &ev[4..] {
        assert_eq!((e.queue.as_deref(), e.job_id), (Some("default"), None));
    }

    // The lease runs out: the job is rescued (lease_expired) with the lost
    // attempt's error; the cancel asked for ends it cancelled instead.
    let mark = last(&c).await;
    let lost = c.add(job("k").queue("l")).await;
    let cl = c.claim_one("l").await;
    assert_eq!(cl.id, lost);
    c.advance(LEASE.as_secs() + 1);
    c.store.reap_expired(10).await.expect("reap");
    let ev = since(&c, mark).await;
    let ends: Vec<&Event> = ev
        .iter()
        .filter(|e| matches!(e.event_type, EventType::LeaseExpired | EventType::Cancelled))
        .collect();
    assert_eq!(ends.len(), 2, "{:?}", types(&ev));
    let rescued = ends
        .iter()
        .find(|e| e.job_id == Some(lost))
        .expect("rescued");
    assert_eq!(rescued.event_type, EventType::LeaseExpired);
    assert_eq!(rescued.attempt, Some(1));
    assert_eq!(rescued.facts.state, Some(JobState::Available));
    assert!(rescued.facts.error.is_some());
    let ended = ends
        .iter()
        .find(|e| e.job_id == Some(running))
        .expect("cancelled");
    assert_eq!(ended.event_type, EventType::Cancelled);

    // Workers starting and stopping; a heartbeat of a known worker is no event.
    let mark = last(&c).await;
    let info = WorkerInfo {
        id: "w9".into(),
        queues: vec!["default".into()],
        kinds: None,
    };
    c.store.worker_seen(&info, LEASE).await.expect("seen");
    c.store.worker_seen(&info, LEASE).await.expect("seen again");
    c.store.worker_gone("w9").await.expect("gone");
    c.store.worker_gone("w9").await.expect("gone again");
    let ev = since(&c, mark).await;
    assert_eq!(
        types(&ev),
        [EventType::WorkerStarted, EventType::WorkerStopped]
    );
    assert!(ev.iter().all(|e| e.facts.worker.as_deref() == Some("w9")));
}

/// A schedule's fire times: fired (with the job), skipped (overlap), misfired.
pub async fn events_of_schedules(h: &dyn Harness) {
    let c = Ctx::new(h).await;
    let at = |s: &str| -> DateTime<Utc> { s.parse().expect("time") };
    c.store
        .upsert_schedule(ScheduleSpec::new(
            "s",
            "* * * * *",
            JobTemplate::new("tick", serde_json::json!({})),
        ))
        .await
        .expect("upsert");
    let mark = last(&c).await;
    c.advance(60);
    let fire = |e: &str, n: &str, enqueue: bool| Fire {
        name: "s".into(),
        expected_next_fire_at: at(e),
        new_next_fire_at: Some(at(n)),
        fire_time: at(e),
        enqueue,
    };
    let FireResult::Fired { job } = c
        .store
        .fire_schedule(fire("2030-01-01T00:01:00Z", "2030-01-01T00:02:00Z", true))
        .await
        .expect("fire")
    else {
        panic!("expected a fire")
    };
    c.advance(60);
    let skipped = c
        .store
        .fire_schedule(fire("2030-01-01T00:02:00Z", "2030-01-01T00:03:00Z", true))
        .await
        .expect("fire");
    assert!(matches!(skipped, FireResult::Skipped { .. }), "{skipped:?}");
    let misfired = c
        .store
        .fire_schedule(fire("2030-01-01T00:03:00Z", "2030-01-01T00:04:00Z", false))
        .await
        .expect("fire");
    assert!(
        matches!(misfired, FireResult::Skipped { .. }),
        "{misfired:?}"
    );
    // A lost compare-and-set wrote nothing, so it writes no event.
    let lost = c
        .store
        .fire_schedule(fire("2030-01-01T00:03:00Z", "2030-01-01T00:04:00Z", true))
        .await
        .expect("fire");
    assert_eq!(lost, FireResult::Lost);
    let ev = since(&c, mark).await;
    assert_eq!(
        types(&ev),
        [
            EventType::Enqueued,
            EventType::ScheduleFired,
            EventType::ScheduleSkipped,
            EventType::ScheduleMisfired
        ]
    );
    assert_eq!(ev[0].job_id, Some(job));
    assert_eq!(ev[1].job_id, Some(job));
    for e in &ev[1..] {
        assert_eq!(e.facts.schedule.as_deref(), Some("s"));
    }
    assert_eq!(ev[1].facts.fire_time, Some(at("2030-01-01T00:01:00Z")));
    assert_eq!(ev[2].facts.fire_time, Some(at("2030-01-01T00:02:00Z")));
    assert!(ev[2].facts.reason.is_some());
    assert_eq!(ev[3].facts.fire_time, Some(at("2030-01-01T00:03:00Z")));
}

/// Only committed changes write events: an invalid enqueue, a stale finish
/// fenced out, progress or a heartbeat for a lost attempt, a cancel of a
/// finished job and a retry refused write none.
pub async fn events_only_for_committed_changes(h: &dyn Harness) {
    let c = Ctx::new(h).await;
    let id = c.add(job("k").max_attempts(2)).await;
    let cl = c.claim_one("default").await;
    c.advance(LEASE.as_secs() + 1);
    c.store.reap_expired(10).await.expect("reap");
    let rescued = c.claim_one("default").await;
    assert_eq!(rescued.attempt, 2);
    let mark = last(&c).await;

    // The first attempt's late writes are fenced out: nothing changes, no event.
    assert_eq!(c.finish(cl.lease(), completed()).await, FinishResult::Stale);
    assert_eq!(
        c.finish(cl.lease(), errored(c.now())).await,
        FinishResult::Stale
    );
    let progressed = c
        .store
        .set_progress(
            cl.lease(),
            Progress {
                percent: 5,
                message: String::new(),
            },
        )
        .await
        .expect("progress");
    assert!(!progressed);
    c.store
        .heartbeat("w1", &[cl.lease(), rescued.lease()], LEASE)
        .await
        .expect("heartbeat");
    let too_big = NewJob::new("k", serde_json::json!({})).max_attempts(0);
    assert!(c.store.enqueue(vec![job("k"), too_big]).await.is_err());
    assert!(c.store.enqueue(vec![]).await.expect("empty").is_empty());
    c.store.retry(&[id]).await.expect("retry of a running job");
    assert!(c.claim(&["default"], 10).await.is_empty());
    assert_eq!(
        since(&c, mark).await,
        Vec::<Event>::new(),
        "no change, no event"
    );
    assert_eq!(last(&c).await, mark);

    // The live attempt's finish does write.
    c.finish(rescued.lease(), completed()).await;
    c.store
        .cancel(&[id])
        .await
        .expect("cancel of a finished job");
    let ev = since(&c, mark).await;
    assert_eq!(types(&ev), [EventType::Completed]);
    assert_eq!(ev[0].attempt, Some(2));
}

/// Replay after an id gives exactly the events after it, in id order, whatever
/// the page size; `last_event_id` marks the end.
pub async fn events_replay_after_since(h: &dyn Harness) {
    let c = Ctx::new(h).await;
    assert_eq!(last(&c).await, 0, "an empty log");
    assert_eq!(since(&c, 0).await, Vec::<Event>::new());
    for i in 0..5 {
        c.store
            .enqueue((0..3).map(|_| job(&format!("k{i}"))).collect())
            .await
            .expect("enqueue");
        c.claim(&["default"], 2).await;
    }
    let all = since(&c, 0).await;
    assert_eq!(all.len(), 25, "{:?}", types(&all));
    assert!(
        all.windows(2).all(|w| w[0].id < w[1].id),
        "strictly increasing"
    );
    assert_eq!(last(&c).await, all.last().expect("events").id);
    for (i, e) in all.iter().enumerate() {
        for page in [1, 4, 100] {
            let after = read_all_after(c.store.as_ref(), e.id, page).await;
            assert_eq!(
                after,
                all[i + 1..].to_vec(),
                "after {} in pages of {page}",
                e.id
            );
        }
    }
    let r = c.store.read_events(all[3].id, 2).await.expect("read");
    assert_eq!(r.events, all[4..6].to_vec());
    assert_eq!(r.next, all[5].id);
    assert_eq!(r.gap, None);
}

/// Retention prunes old events; a reader asking for ids the log no longer
/// holds is told so by a gap marker, then reads on from what is kept.
pub async fn events_gap_after_pruning(h: &dyn Harness) {
    let c = Ctx::new(h).await;
    c.store
        .enqueue(vec![job("old"), job("old")])
        .await
        .expect("enqueue");
    let old = since(&c, 0).await;
    c.advance(3600);
    let cutoff = c.now();
    c.advance(1);
    c.add(job("new")).await;
    assert_eq!(
        c.store.prune_events(cutoff).await.expect("prune"),
        2,
        "the two old events"
    );
    let r = c.store.read_events(0, 100).await.expect("read");
    let gap = r.gap.expect("a gap marker for the pruned events");
    assert_eq!(
        gap,
        EventGap {
            after: 0,
            pruned_through: old[1].id
        }
    );
    assert_eq!(types(&r.events), [EventType::Enqueued]);
    assert_eq!(r.events[0].kind.as_deref(), Some("new"));
    // Asking from inside the pruned range is a gap too; from its end, none.
    let r = c.store.read_events(old[0].id, 100).await.expect("read");
    assert_eq!(r.gap.map(|g| g.after), Some(old[0].id));
    let r = c.store.read_events(old[1].id, 100).await.expect("read");
    assert_eq!((r.gap, r.events.len()), (None, 1));
    // Pruning again finds nothing more; new events still get greater ids.
    assert_eq!(c.store.prune_events(cutoff).await.expect("prune"), 0);
    c.store
        .prune_events(c.now() + secs(1))
        .await
        .expect("prune all");
    let id = c.add(job("newer")).await;
    let ev = since(&c, r.events[0].id).await;
    assert_eq!(ev.len(), 1);
    assert!(
        ev[0].id > r.events[0].id,
        "ids are never reused after pruning"
    );
    assert_eq!(ev[0].job_id, Some(id));
}

/// Ids strictly increase as a reader sees them while several writers commit
/// at once: a reader that reads on from its last id while enqueues, claims
/// and finishes run concurrently sees every event exactly once, in id order,
/// the same events as a read of the whole log at the end.
pub async fn events_ids_increase_for_concurrent_writers(h: &dyn Harness) {
    let c = Ctx::new(h).await;
    let store = c.store.clone();
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let store: Arc<dyn Store> = store.clone();
            tokio::spawn(async move {
                for round in 0..15 {
                    let jobs = (0..3).map(|_| job("k").queue(format!("q{w}"))).collect();
                    store.enqueue(jobs).await.expect("enqueue");
                    let got = store
                        .claim(claim_of(&format!("w{w}"), &[&format!("q{w}")], 2))
                        .await
                        .expect("claim");
                    let batch = got
                        .iter()
                        .map(|j| Finish {
                            lease: j.lease(),
                            worker: format!("w{w}"),
                            outcome: completed(),
                        })
                        .collect();
                    store.finish(batch).await.expect("finish");
                    if round % 5 == 0 {
                        tokio::task::yield_now().await;
                    }
                }
            })
        })
        .collect();
    let reader = {
        let store = store.clone();
        tokio::spawn(async move {
            let mut seen: Vec<Event> = Vec::new();
            let mut at = 0;
            for _ in 0..200 {
                let r = store.read_events(at, 7).await.expect("read");
                assert_eq!(r.gap, None);
                for e in r.events {
                    assert!(e.id > at, "id {} after {at}", e.id);
                    at = e.id;
                    seen.push(e);
                }
                at = at.max(r.next);
                tokio::task::yield_now().await;
            }
            (seen, at)
        })
    };
    for w in writers {
        w.await.expect("writer");
    }
    let (mut seen, at) = reader.await.expect("reader");
    seen.extend(read_all_after(store.as_ref(), at, 7).await);
    let all = read_all_after(store.as_ref(), 0, 1000).await;
    assert_eq!(
        all.len(),
        4 * 15 * (3 + 2 + 2),
        "every change has its event"
    );
    assert!(seen.windows(2).all(|w| w[0].id < w[1].id));
    let ids: BTreeSet<EventId> = seen.iter().map(|e| e.id).collect();
    assert_eq!(ids.len(), seen.len(), "nothing twice");
    assert_eq!(seen, all, "the live reader saw exactly the log");
}

/// A fire time buffered behind an unfinished job (overlap `buffer_one`) is
/// a `schedule_buffered` event; the buffered fire, once the job finished,
/// is an enqueue and a `schedule_fired` event of that fire time. A
/// `fire_buffered` refused while the job still runs changes nothing and
/// writes no event.
pub async fn events_of_buffered_fire(h: &dyn Harness) {
    use crate::schedule::OverlapPolicy;
    let c = Ctx::new(h).await;
    let at = |s: &str| -> DateTime<Utc> { s.parse().expect("time") };
    c.store
        .upsert_schedule(
            ScheduleSpec::new(
                "b",
                "* * * * *",
                JobTemplate::new("tick", serde_json::json!({})),
            )
            .overlap(OverlapPolicy::BufferOne),
        )
        .await
        .expect("upsert");
    let fire = |e: &str, n: &str| Fire {
        name: "b".into(),
        expected_next_fire_at: at(e),
        new_next_fire_at: Some(at(n)),
        fire_time: at(e),
        enqueue: true,
    };
    c.advance(60);
    let FireResult::Fired { job: first } = c
        .store
        .fire_schedule(fire("2030-01-01T00:01:00Z", "2030-01-01T00:02:00Z"))
        .await
        .expect("fire")
    else {
        panic!("expected a fire")
    };
    let cl = c.claim_one("default").await;
    let mark = last(&c).await;
    c.advance(60);
    let buffered = c
        .store
        .fire_schedule(fire("2030-01-01T00:02:00Z", "2030-01-01T00:03:00Z"))
        .await
        .expect("fire");
    assert_eq!(buffered, FireResult::Buffered);
    let refused = c
        .store
        .fire_buffered("b", at("2030-01-01T00:02:00Z"))
        .await
        .expect("fire_buffered");
    assert!(matches!(refused, FireResult::Skipped { .. }), "{refused:?}");
    let ev = since(&c, mark).await;
    assert_eq!(types(&ev), [EventType::ScheduleBuffered]);
    assert_eq!(ev[0].facts.schedule.as_deref(), Some("b"));
    assert_eq!(ev[0].facts.fire_time, Some(at("2030-01-01T00:02:00Z")));
    assert!(
        ev[0]
            .facts
            .reason
            .as_deref()
            .is_some_and(|r| r.contains(&first.to_string())),
        "the reason names the job it waits for: {:?}",
        ev[0].facts.reason
    );

    c.finish(cl.lease(), completed()).await;
    let mark = last(&c).await;
    let FireResult::Fired { job: second } = c
        .store
        .fire_buffered("b", at("2030-01-01T00:02:00Z"))
        .await
        .expect("fire_buffered")
    else {
        panic!("expected the buffered fire")
    };
    let ev = since(&c, mark).await;
    assert_eq!(
        types(&ev),
        [EventType::Enqueued, EventType::ScheduleFired],
        "{ev:?}"
    );
    assert_eq!(ev[1].job_id, Some(second));
    assert_eq!(ev[1].facts.fire_time, Some(at("2030-01-01T00:02:00Z")));
}

/// `read_committed_events` reads what is committed, in id order, up to
/// `committed_event_id`, and stops there: a reader that prints the log
/// and exits.
pub async fn events_read_committed_up_to_now(h: &dyn Harness) {
    let c = Ctx::new(h).await;
    let start = last(&c).await;
    for i in 0..5 {
        c.add(job(&format!("k{i}"))).await;
    }
    let end = c
        .store
        .committed_event_id()
        .await
        .expect("committed_event_id");
    assert!(end >= start + 5, "{end} after {start} and five enqueues");
    let mut after = start;
    let mut seen = Vec::new();
    loop {
        let r = c
            .store
            .read_committed_events(after, 2)
            .await
            .expect("read_committed_events");
        assert!(r.gap.is_none());
        if r.events.is_empty() {
            break;
        }
        assert!(r.events.len() <= 2);
        seen.extend(r.events.iter().map(|e| (e.id, e.kind.clone())));
        after = r.next;
    }
    let ids: Vec<EventId> = seen.iter().map(|(id, _)| *id).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
    assert_eq!(ids.last(), Some(&end));
    let kinds: Vec<String> = seen.into_iter().filter_map(|(_, k)| k).collect();
    assert_eq!(kinds, ["k0", "k1", "k2", "k3", "k4"]);
}
