//! The event log on PostgreSQL beyond the conformance suite: what only an
//! application's own transaction can show (module `events` of kyu-postgres
//! explains the ordering rule these tests hold it to).

mod common;

use std::time::Duration;

use kyu_core::{EventLog, EventType, NewJob, Store};
use kyu_postgres::{PgOptions, PgStore};

async fn store() -> PgStore {
    PgStore::connect(&common::fresh_url("t_events"), PgOptions::default())
        .await
        .expect("connect to the test PostgreSQL (see README: PostgreSQL tests)")
}

fn job(kind: &str) -> NewJob {
    NewJob::new(kind, serde_json::json!({}))
}

/// A transaction that drew an event id and has not committed holds back
/// every later id: a reader never hands out id n+1 while n may still
/// commit, so a reader that goes on from its last id cannot skip it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_ids_strictly_increase_as_seen_while_an_earlier_transaction_is_open() {
    let store = store().await;
    store.enqueue(vec![job("first")]).await.expect("enqueue");
    let start = store.read_events(0, 100).await.expect("read");
    assert_eq!(start.events.len(), 1);
    let after = start.next;

    // An application transaction enqueues (drawing the next event id) and waits.
    let mut tx = store.pool().begin().await.expect("begin");
    store
        .enqueue_in(&mut tx, vec![job("held")])
        .await
        .expect("enqueue_in");
    // Meanwhile another enqueue commits with a greater event id.
    store.enqueue(vec![job("later")]).await.expect("enqueue");

    let read = tokio::time::timeout(Duration::from_secs(5), store.read_events(after, 100))
        .await
        .expect("a read returns even while a transaction holds an id")
        .expect("read");
    assert_eq!(
        read.events,
        vec![],
        "the later event must wait for the open transaction's id"
    );
    assert_eq!(read.next, after, "the reader stays before the hole");

    tx.commit().await.expect("commit");
    let read = store.read_events(after, 100).await.expect("read");
    let kinds: Vec<_> = read.events.iter().map(|e| e.kind.as_deref()).collect();
    assert_eq!(kinds, [Some("held"), Some("later")]);
    assert!(read.events[0].id < read.events[1].id);
    assert_eq!(read.next, read.events[1].id);
}

/// A rolled-back `enqueue_in` leaves no job and no event, and the id it
/// drew is skipped for good: readers move past it once it rolled back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rolled_back_enqueue_in_leaves_no_event() {
    let store = store().await;
    let mut tx = store.pool().begin().await.expect("begin");
    let rolled = store
        .enqueue_in(&mut tx, vec![job("rolled_back")])
        .await
        .expect("enqueue_in");
    tx.rollback().await.expect("rollback");
    assert!(store.get(rolled[0].id).await.expect("get").is_none());
    store.enqueue(vec![job("kept")]).await.expect("enqueue");
    // A reader holds back at a hole until it knows the hole's transaction
    // ended; on a loaded machine that can take a moment, so read until the
    // kept event shows (or 10 s pass), then check what was read.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let read = loop {
        let read = store.read_events(0, 100).await.expect("read");
        if !read.events.is_empty() || std::time::Instant::now() > deadline {
            break read;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    assert_eq!(read.events.len(), 1, "{:?}", read.events);
    assert_eq!(read.events[0].event_type, EventType::Enqueued);
    assert_eq!(read.events[0].kind.as_deref(), Some("kept"));
    assert!(
        read.events[0].id > 1,
        "the rolled-back transaction drew id 1"
    );
    assert_eq!(read.next, read.events[0].id);
    assert_eq!(store.last_event_id().await.expect("last"), read.next);
}
