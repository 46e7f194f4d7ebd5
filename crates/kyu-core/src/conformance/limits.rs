//! Queue limits (`kyu_core::limits`): global concurrency and rate, enforced
//! by the claim; setting, clearing and reporting them.

use std::time::Duration;

use super::{claim_of, completed, job, Ctx, Harness};
use crate::limits::{LimitsUpdate, QueueLimits, RateLimit};
use crate::{EventType, FinishResult, JobState, StoreError};

fn concurrency(n: u32) -> LimitsUpdate {
    LimitsUpdate {
        global_concurrency: Some(Some(n)),
        ..LimitsUpdate::default()
    }
}

fn rate(starts: u32, secs: u64) -> LimitsUpdate {
    LimitsUpdate {
        rate: Some(Some(RateLimit {
            starts,
            per: Duration::from_secs(secs),
        })),
        ..LimitsUpdate::default()
    }
}

async fn set(c: &Ctx, queue: &str, u: LimitsUpdate) -> QueueLimits {
    c.store
        .set_queue_limits(queue, u)
        .await
        .expect("set limits")
}

/// Limits are set, kept field by field, cleared, listed with their use,
/// refused when invalid (nothing written), and each change is an event.
pub async fn limits_set_clear_and_list(h: &dyn Harness) {
    let c = Ctx::new(h).await;
    let mark = c.store.last_event_id().await.expect("last id");
    assert!(c.store.queue_limits().await.expect("list").is_empty());
    let l = set(&c, "a", concurrency(2)).await;
    assert_eq!(l.global_concurrency, Some(2));
    assert_eq!(l.rate, None);
    let l = set(&c, "a", rate(5, 60)).await;
    assert_eq!(l.global_concurrency, Some(2), "a field not named is kept");
    assert_eq!(l.rate.expect("rate").to_string(), "5/1m");
    let same = set(&c, "a", concurrency(2)).await;
    assert_eq!(same, l, "setting the same value changes nothing");
    for bad in [concurrency(0), rate(0, 60), rate(1, 0)] {
        assert!(matches!(
            c.store.set_queue_limits("a", bad).await,
            Err(StoreError::Invalid(_))
        ));
    }
    assert!(matches!(
        c.store.set_queue_limits("", concurrency(1)).await,
        Err(StoreError::Invalid(_))
    ));
    let listed = c.store.queue_limits().await.expect("list");
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].queue, "a");
    assert_eq!(listed[0].limits, l);
    assert_eq!((listed[0].running, listed[0].rate_used), (0, 0));
    assert_eq!(listed[0].next_start_at, None);
    // A queue's limits do not show it paused, nor unpause it.
    c.store.pause_queue("a").await.expect("pause");
    let l = set(
        &c,
        "a",
        LimitsUpdate {
            global_concurrency: Some(None),
            rate: Some(None),
            ..LimitsUpdate::default()
        },
    )
    .await;
    assert!(!l.is_limited());
    assert!(c.store.queue_limits().await.expect("list").is_empty());
    let stats = c.store.queue_stats().await.expect("stats");
    assert!(stats.iter().any(|s| s.queue == "a" && s.paused));
    let ev = super::events::read_all_after(c.store.as_ref(), mark, 100).await;
    let changes: Vec<(&str, Option<&str>)> = ev
        .iter()
        .filter(|e| e.event_type == EventType::QueueLimitsChanged)
        .map(|e| (e.queue.as_deref().unwrap_or(""), e.facts.message.as_deref()))
        .collect();
    assert_eq!(
        changes,
        [
            ("a", Some("global_concurrency 2")),
            ("a", Some("global_concurrency 2, rate 5/1m")),
            ("a", Some("no limits")),
        ]
    );
}

/// Global concurrency: a claim takes at most N minus the queue's running
/// jobs, whatever it asks for; a finish frees a slot; other queues in the
/// same claim are not held back; claim order holds within the limit.
pub async fn global_concurrency_caps_claims(h: &dyn Harness) {
    let c = Ctx::new(h).await;
    set(&c, "a", concurrency(2)).await;
    let mut a = Vec::new();
    for _ in 0..5 {
        a.push(c.add(job("x").queue("a")).await);
    }
    let b1 = c.add(job("x").queue("b")).await;
    let b2 = c.add(job("x").queue("b")).await;
    let first = c.claim(&["a", "b"], 10).await;
    let mut ids: Vec<_> = first.iter().map(|j| j.id).collect();
    ids.sort();
    assert_eq!(
        ids,
        vec![a[0], a[1], b1, b2],
        "two of a (in order), all of b"
    );
    assert!(c.claim(&["a"], 10).await.is_empty(), "a is full");
    assert_eq!(c.state(a[2]).await, JobState::Available);
    assert_eq!(
        c.job(a[2]).await.attempt,
        0,
        "a job held back uses no attempt"
    );
    let one = first.iter().find(|j| j.id == a[0]).expect("a0");
    assert_eq!(
        c.finish(one.lease(), completed()).await,
        FinishResult::Applied(JobState::Completed)
    );
    assert_eq!(c.claim_ids(&["a"], 10).await, vec![a[2]], "one slot freed");
    assert!(c.claim(&["a"], 10).await.is_empty());
    let listed = c.store.queue_limits().await.expect("list");
    assert_eq!(listed[0].running, 2);
    // Raising the limit lets more start; clearing it lets all start.
    set(&c, "a", concurrency(3)).await;
    assert_eq!(c.claim_ids(&["a"], 10).await, vec![a[3]]);
    set(
        &c,
        "a",
        LimitsUpdate {
            global_concurrency: Some(None),
            ..LimitsUpdate::default()
        },
    )
    .await;
    assert_eq!(c.claim_ids(&["a"], 10).await, vec![a[4]]);
}

/// Many claims at once from many workers take N jobs in all, never more.
pub async fn global_concurrency_holds_for_concurrent_claims(h: &dyn Harness) {
    let c = Ctx::new(h).await;
    set(&c, "a", concurrency(3)).await;
    for _ in 0..20 {
        c.add(job("x").queue("a")).await;
    }
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let store = c.store.clone();
            tokio::spawn(async move {
                let mut n = 0;
                for _ in 0..3 {
                    n += store
                        .claim(claim_of(&format!("w{i}"), &["a"], 2))
                        .await
                        .expect("claim")
                        .len();
                    tokio::task::yield_now().await;
                }
                n
            })
        })
        .collect();
    let mut total = 0;
    for t in tasks {
        total += t.await.expect("a claim task");
    }
    assert_eq!(total, 3, "three slots, however many claims race for them");
}

/// A running job whose lease expired holds its slot until it is rescued;
/// the rescue frees it.
pub async fn global_concurrency_rescue_frees_slot(h: &dyn Harness) {
    let c = Ctx::new(h).await;
    set(&c, "a", concurrency(1)).await;
    let lost = c.add(job("x").queue("a").max_attempts(3)).await;
    let next = c.add(job("x").queue("a")).await;
    assert_eq!(c.claim_ids(&["a"], 5).await, vec![lost]);
    c.advance(super::LEASE.as_secs() + 1);
    assert!(
        c.claim(&["a"], 5).await.is_empty(),
        "an expired lease not yet rescued still holds its slot"
    );
    let reaped = c.store.reap_expired(10).await.expect("reap");
    assert_eq!(reaped.len(), 1);
    assert_eq!(c.state(lost).await, JobState::Available);
    // The rescued job waits behind `next` (its run_at is the rescue's time).
    assert_eq!(
        c.claim_ids(&["a"], 5).await,
        vec![next],
        "the slot is free again"
    );
    assert!(c.claim(&["a"], 5).await.is_empty());
    assert_eq!(c.state(lost).await, JobState::Available);
}

/// A paused queue's running jobs keep their slots: after a resume, only
/// the slots left free can be taken.
pub async fn global_concurrency_paused_queue_holds_slots(h: &dyn Harness) {
    let c = Ctx::new(h).await;
    set(&c, "a", concurrency(2)).await;
    for _ in 0..4 {
        c.add(job("x").queue("a")).await;
    }
    let running = c.claim(&["a"], 1).await;
    assert_eq!(running.len(), 1);
    c.store.pause_queue("a").await.expect("pause");
    assert!(c.claim(&["a"], 5).await.is_empty(), "paused");
    let listed = c.store.queue_limits().await.expect("list");
    assert_eq!(
        listed[0].running, 1,
        "the paused queue's running job holds its slot"
    );
    c.store.resume_queue("a").await.expect("resume");
    assert_eq!(c.claim(&["a"], 5).await.len(), 1, "one slot left");
    assert!(c.claim(&["a"], 5).await.is_empty());
}

/// Rate: at most N starts in any window of the period; a job over the limit
/// stays available without using an attempt; the window slides (each start
/// frees its place one period later); `next_start` and `queue_limits` say
/// when the next start is allowed.
pub async fn rate_limit_window_slides(h: &dyn Harness) {
    let c = Ctx::new(h).await;
    set(&c, "r", rate(3, 10)).await;
    let t0 = c.now();
    let mut ids = Vec::new();
    for _ in 0..10 {
        ids.push(c.add(job("x").queue("r")).await);
    }
    let queues = vec!["r".to_string()];
    assert_eq!(c.store.next_start(&queues).await.expect("next"), None);
    assert_eq!(c.claim_ids(&["r"], 2).await, vec![ids[0], ids[1]]); // t=0
    c.advance(4);
    assert_eq!(c.claim_ids(&["r"], 10).await, vec![ids[2]]); // t=4: the 3rd
    assert!(c.claim(&["r"], 10).await.is_empty(), "window full");
    assert_eq!(c.job(ids[3]).await.state, JobState::Available);
    assert_eq!(c.job(ids[3]).await.attempt, 0);
    let at = |s: i64| t0 + chrono::Duration::seconds(s);
    assert_eq!(
        c.store.next_start(&queues).await.expect("next"),
        Some(at(10))
    );
    let status = &c.store.queue_limits().await.expect("list")[0];
    assert_eq!((status.rate_used, status.next_start_at), (3, Some(at(10))));
    assert_eq!(status.running, 3);
    c.advance(5); // t=9
    assert!(
        c.claim(&["r"], 10).await.is_empty(),
        "t=0 starts are still in the window"
    );
    c.advance(1); // t=10: the two starts at t=0 leave the window
    assert_eq!(c.claim_ids(&["r"], 10).await, vec![ids[3], ids[4]]);
    assert_eq!(
        c.store.next_start(&queues).await.expect("next"),
        Some(at(14))
    );
    c.advance(4); // t=14: the start at t=4 leaves
    assert_eq!(c.claim_ids(&["r"], 10).await, vec![ids[5]]);
    assert_eq!(
        c.store.next_start(&queues).await.expect("next"),
        Some(at(20))
    );
    // next_start is only for queues with jobs waiting, and not for other queues.
    assert_eq!(
        c.store
            .next_start(&["other".to_string()])
            .await
            .expect("next"),
        None
    );
    c.store.cancel(&ids[6..]).await.expect("cancel the rest");
    assert_eq!(c.store.next_start(&queues).await.expect("next"), None);
}

/// Both limits at once: the tighter one decides.
pub async fn rate_and_concurrency_together(h: &dyn Harness) {
    let c = Ctx::new(h).await;
    set(&c, "a", concurrency(1)).await;
    set(&c, "a", rate(2, 60)).await;
    for _ in 0..5 {
        c.add(job("x").queue("a")).await;
    }
    let one = c.claim(&["a"], 5).await;
    assert_eq!(one.len(), 1, "concurrency 1");
    c.finish(one[0].lease(), completed()).await;
    let two = c.claim(&["a"], 5).await;
    assert_eq!(two.len(), 1);
    c.finish(two[0].lease(), completed()).await;
    assert!(c.claim(&["a"], 5).await.is_empty(), "rate 2/1m used up");
    c.advance(60);
    assert_eq!(c.claim(&["a"], 5).await.len(), 1);
}
