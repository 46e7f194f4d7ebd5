//! Rate keys on PostgreSQL beyond the conformance suite: a job enqueued in
//! a transaction that commits after its queue got a rate (so the key it
//! got at enqueue and the queue's re-keying both missed it) is not left
//! waiting unseen.

mod common;

use kyu_core::conformance::claim_of;
use kyu_core::{LimitStore, LimitsUpdate, NewJob, Store};
use kyu_postgres::{PgOptions, PgStore};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_enqueued_as_its_queue_got_a_rate_is_still_claimed() {
    let store = PgStore::connect(&common::fresh_url("t_rate_keys"), PgOptions::default())
        .await
        .expect("connect to the test PostgreSQL (see README: PostgreSQL tests)");
    // The job is written while the queue has no rate: no key.
    let mut tx = store.pool().begin().await.expect("begin");
    let id = store
        .enqueue_in(
            &mut tx,
            vec![NewJob::new("k", serde_json::json!({"api": "a"})).queue("r")],
        )
        .await
        .expect("enqueue_in")[0]
        .id;
    // The rate and its path arrive before that transaction commits: the
    // re-keying of waiting jobs cannot see the job.
    store
        .set_queue_limits(
            "r",
            LimitsUpdate {
                rate: Some(Some("1/1h".parse().expect("a rate"))),
                rate_key: Some(Some("args.api".parse().expect("a path"))),
                ..LimitsUpdate::default()
            },
        )
        .await
        .expect("set the rate");
    tx.commit().await.expect("commit");
    assert_eq!(
        store.get(id).await.expect("get").expect("job").rate_key,
        None
    );
    let got = store.claim(claim_of("w", &["r"], 5)).await.expect("claim");
    assert_eq!(
        got.iter().map(|j| j.id).collect::<Vec<_>>(),
        vec![id],
        "the job joins the no-key bucket and starts"
    );
    let more = store
        .enqueue(vec![NewJob::new("k", serde_json::json!({})).queue("r")])
        .await
        .expect("enqueue");
    assert!(
        store
            .claim(claim_of("w", &["r"], 5))
            .await
            .expect("claim")
            .is_empty(),
        "the no-key bucket is full: job {} waits",
        more[0].id
    );
}
