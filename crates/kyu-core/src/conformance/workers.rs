//! The worker registry and the runnable jobs counted by queue and kind.

use std::time::Duration;

use super::{job, secs, Ctx, Harness};

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
