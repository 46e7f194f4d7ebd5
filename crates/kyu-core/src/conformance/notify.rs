//! Wake-ups: `subscribe()` changes when jobs may have become available.

use std::time::Duration;

use super::{errored, job, Ctx, Harness};
use crate::RetryResult;

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
