//! Rate limits per key (`kyu_core::rate_key`): each key has its own window,
//! an exhausted key does not hold back other keys' jobs behind it, a key
//! given at enqueue wins over the queue's path, jobs without a key share
//! one window, and `next_start` waits for the first key to open.

use std::time::Duration;

use super::{claim_kinds, job, Ctx, Harness};
use crate::limits::{KeyUse, LimitsUpdate, RateKeyPath, RateLimit};
use crate::{JobId, JobState, NewJob, StoreError};

fn per_key(starts: u32, secs: u64, path: &str) -> LimitsUpdate {
    LimitsUpdate {
        rate: Some(Some(RateLimit {
            starts,
            per: Duration::from_secs(secs),
        })),
        rate_key: Some(Some(RateKeyPath::parse("rate_key", path).expect("a path"))),
        ..LimitsUpdate::default()
    }
}

async fn set(c: &Ctx, queue: &str, u: LimitsUpdate) {
    c.store
        .set_queue_limits(queue, u)
        .await
        .expect("set limits");
}

/// A job of queue `q` with args `{"api": api}`.
async fn api_job(c: &Ctx, q: &str, api: serde_json::Value) -> JobId {
    c.add(NewJob::new("call", serde_json::json!({ "api": api })).queue(q))
        .await
}

fn sorted(mut ids: Vec<JobId>) -> Vec<JobId> {
    ids.sort();
    ids
}

/// Each key has its own window of N starts: a full key waits, the others
/// start; each key's window slides on its own.
pub async fn rate_key_windows_are_independent(h: &dyn Harness) {
    let c = Ctx::new(h).await;
    set(&c, "r", per_key(2, 10, "args.api")).await;
    let a: Vec<JobId> = futures_ids(&c, "a", 3).await;
    let b: Vec<JobId> = futures_ids(&c, "b", 3).await;
    let other_kind = c
        .store
        .claim(claim_kinds("w1", &["r"], &["other"], 10))
        .await
        .expect("claim");
    assert!(
        other_kind.is_empty(),
        "a claim of other kinds takes none and uses no start"
    );
    assert_eq!(
        c.claim_ids(&["r"], 2).await,
        vec![a[0], a[1]],
        "key a's window is full"
    );
    assert_eq!(
        sorted(c.claim_ids(&["r"], 10).await),
        vec![b[0], b[1]],
        "key b's window is its own: two of b"
    );
    assert!(c.claim(&["r"], 10).await.is_empty(), "both keys are full");
    assert_eq!(c.job(a[2]).await.state, JobState::Available);
    assert_eq!(c.job(a[2]).await.attempt, 0, "held back without an attempt");
    let listed = c.store.queue_limits().await.expect("list");
    assert_eq!(listed[0].rate_used, 4, "starts of every key");
    assert_eq!(listed[0].keys_at_limit, 2);
    let keys: Vec<(Option<&str>, u64)> = listed[0]
        .busiest_keys
        .iter()
        .map(|k| (k.key.as_deref(), k.used))
        .collect();
    assert_eq!(keys, [(Some("a"), 2), (Some("b"), 2)]);
    c.advance(10);
    assert_eq!(
        sorted(c.claim_ids(&["r"], 10).await),
        vec![a[2], b[2]],
        "each window slid"
    );
}

/// Enqueues `n` jobs with `api` = `key` in queue `r`.
async fn futures_ids(c: &Ctx, key: &str, n: usize) -> Vec<JobId> {
    let mut ids = Vec::new();
    for _ in 0..n {
        ids.push(api_job(c, "r", serde_json::json!(key)).await);
    }
    ids
}

/// The head of the queue all on an exhausted key does not block the jobs
/// of other keys behind it: claims skip to them, in claim order.
pub async fn rate_key_exhausted_key_does_not_block_others(h: &dyn Harness) {
    let c = Ctx::new(h).await;
    set(&c, "r", per_key(1, 60, "args.api")).await;
    let a = futures_ids(&c, "a", 5).await;
    let b = futures_ids(&c, "b", 1).await;
    let cc = futures_ids(&c, "c", 2).await;
    assert_eq!(c.claim_ids(&["r"], 1).await, vec![a[0]]);
    assert_eq!(
        c.claim_ids(&["r"], 1).await,
        vec![b[0]],
        "past the four jobs of the full key a"
    );
    assert_eq!(c.claim_ids(&["r"], 10).await, vec![cc[0]]);
    assert!(c.claim(&["r"], 10).await.is_empty());
    for id in a[1..].iter().chain(&cc[1..]) {
        assert_eq!(c.state(*id).await, JobState::Available);
    }
    // A key with room gives only that many, even when the claim asks for more.
    set(&c, "r", per_key(3, 60, "args.api")).await;
    assert_eq!(
        sorted(c.claim_ids(&["r"], 10).await),
        vec![a[1], a[2], cc[1]],
        "two more of a (3 in its window), one more of c"
    );
    // A delayed job of another key starts once due, past a's waiting jobs.
    let later = c
        .add(
            NewJob::new("call", serde_json::json!({"api": "d"}))
                .queue("r")
                .run_at(c.now() + chrono::Duration::seconds(5)),
        )
        .await;
    assert!(c.claim(&["r"], 10).await.is_empty(), "a is full, d not due");
    c.advance(5);
    assert_eq!(c.claim_ids(&["r"], 10).await, vec![later]);
}

/// A key given at enqueue wins over the queue's path; a queue's rate keys
/// given at enqueue work without a path; setting a path later gives keys to
/// jobs already waiting without one.
pub async fn rate_key_given_at_enqueue_wins(h: &dyn Harness) {
    let c = Ctx::new(h).await;
    set(&c, "r", per_key(1, 60, "args.api")).await;
    let plain = api_job(&c, "r", serde_json::json!("a")).await;
    let given = c
        .add(
            NewJob::new("call", serde_json::json!({"api": "a"}))
                .queue("r")
                .rate_key("x"),
        )
        .await;
    let third = api_job(&c, "r", serde_json::json!("a")).await;
    assert_eq!(c.job(plain).await.rate_key.as_deref(), Some("a"));
    assert_eq!(c.job(given).await.rate_key.as_deref(), Some("x"));
    assert_eq!(
        sorted(c.claim_ids(&["r"], 10).await),
        vec![plain, given],
        "key a and key x each start one"
    );
    assert_eq!(c.state(third).await, JobState::Available);

    // Keys given at enqueue, no path: each key has its window, jobs without
    // a key share one.
    let q = "t";
    c.store
        .set_queue_limits(
            q,
            LimitsUpdate {
                rate: Some(Some(RateLimit {
                    starts: 1,
                    per: Duration::from_secs(60),
                })),
                ..LimitsUpdate::default()
            },
        )
        .await
        .expect("rate without a path");
    let t1 = c.add(job("call").queue(q).rate_key("tenant:1")).await;
    let t1b = c.add(job("call").queue(q).rate_key("tenant:1")).await;
    let t2 = c.add(job("call").queue(q).rate_key("tenant:2")).await;
    let none = c.add(job("call").queue(q)).await;
    assert_eq!(
        sorted(c.claim_ids(&[q], 10).await),
        vec![t1, t2, none],
        "one per key, one for the jobs without a key"
    );
    assert_eq!(c.state(t1b).await, JobState::Available);

    // Jobs enqueued before the queue had a rate get their key when it does.
    let u = "u";
    let early: Vec<JobId> = {
        let mut v = Vec::new();
        for api in ["a", "a", "b"] {
            v.push(api_job(&c, u, serde_json::json!(api)).await);
        }
        v
    };
    set(&c, u, per_key(1, 60, "args.api")).await;
    assert_eq!(c.job(early[0]).await.rate_key.as_deref(), Some("a"));
    assert_eq!(
        sorted(c.claim_ids(&[u], 10).await),
        vec![early[0], early[2]],
        "one of a, one of b"
    );

    // A path without a rate is refused, and nothing is written.
    let e = c
        .store
        .set_queue_limits(
            "norate",
            LimitsUpdate {
                rate_key: Some(Some("args.api".parse().expect("a path"))),
                ..LimitsUpdate::default()
            },
        )
        .await;
    assert!(
        matches!(e, Err(StoreError::Invalid(ref i)) if i.field == "rate_key"),
        "{e:?}"
    );
    assert!(c
        .store
        .queue_limits()
        .await
        .expect("list")
        .iter()
        .all(|l| l.queue != "norate"));
    // An empty key given at enqueue is refused.
    let e = c
        .store
        .enqueue(vec![job("call").queue("r").rate_key("")])
        .await;
    assert!(
        matches!(e, Err(StoreError::Invalid(ref i)) if i.field == "rate_key"),
        "{e:?}"
    );
}

/// Jobs whose args lack the key (missing, `null`, `""`) share one "no key"
/// window; a number and the same digits as a string are one key.
pub async fn rate_key_missing_shares_one_bucket(h: &dyn Harness) {
    let c = Ctx::new(h).await;
    set(&c, "r", per_key(1, 60, "args.api")).await;
    let missing = c.add(job("call").queue("r")).await;
    let null = api_job(&c, "r", serde_json::Value::Null).await;
    let empty = api_job(&c, "r", serde_json::json!("")).await;
    let number = api_job(&c, "r", serde_json::json!(7)).await;
    let text = api_job(&c, "r", serde_json::json!("7")).await;
    let nested = c
        .add(NewJob::new("call", serde_json::json!({"api": {"x": 1}})).queue("r"))
        .await;
    assert_eq!(c.job(missing).await.rate_key, None);
    assert_eq!(c.job(number).await.rate_key.as_deref(), Some("7"));
    let got = sorted(c.claim_ids(&["r"], 10).await);
    assert_eq!(
        got,
        vec![missing, number, nested],
        "one without a key, one of key 7, one of the object's key"
    );
    for id in [null, empty, text] {
        assert_eq!(c.state(id).await, JobState::Available);
    }
    let listed = c.store.queue_limits().await.expect("list");
    assert!(
        listed[0].busiest_keys.contains(&KeyUse {
            key: None,
            used: 1,
            next_start_at: Some(c.now() + chrono::Duration::seconds(60)),
        }),
        "{:?}",
        listed[0].busiest_keys
    );
}

/// `next_start` of a queue with keys: `None` while a key of its waiting jobs
/// has room; else when the first of those keys opens (keys without waiting
/// jobs do not count).
pub async fn rate_key_next_start(h: &dyn Harness) {
    let c = Ctx::new(h).await;
    set(&c, "r", per_key(2, 10, "args.api")).await;
    let queues = vec!["r".to_string()];
    let next = || async { c.store.next_start(&queues).await.expect("next") };
    let t0 = c.now();
    let at = |s: i64| t0 + chrono::Duration::seconds(s);
    let a = futures_ids(&c, "a", 3).await;
    assert_eq!(next().await, None, "key a has room");
    assert_eq!(c.claim_ids(&["r"], 10).await, vec![a[0], a[1]]);
    assert_eq!(next().await, Some(at(10)), "a is full until t=10");
    c.advance(4); // t=4
    let b = futures_ids(&c, "b", 1).await;
    assert_eq!(next().await, None, "key b has room");
    assert_eq!(c.claim_ids(&["r"], 10).await, vec![b[0]]);
    assert_eq!(
        next().await,
        Some(at(10)),
        "b has room but no job waiting: a decides"
    );
    let b2 = futures_ids(&c, "b", 2).await;
    assert_eq!(c.claim_ids(&["r"], 10).await, vec![b2[0]]);
    assert_eq!(next().await, Some(at(10)), "a opens at 10, b at 14");
    let status = &c.store.queue_limits().await.expect("list")[0];
    assert_eq!(status.next_start_at, Some(at(10)));
    assert_eq!(status.keys_at_limit, 2);
    c.advance(6); // t=10: a opens
    assert_eq!(c.claim_ids(&["r"], 10).await, vec![a[2]]);
    assert_eq!(next().await, Some(at(14)), "only b waits now");
    c.advance(4); // t=14
    assert_eq!(c.claim_ids(&["r"], 10).await, vec![b2[1]]);
    assert_eq!(next().await, None, "nothing waits");
}
