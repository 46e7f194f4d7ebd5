//! `Kyu::events` across processes: a worker process runs 1,000 jobs while a
//! subscriber in this process, dropped and reconnected at random points with
//! its last id, receives every event exactly once, in order (invariant 6).
//!
//! The worker process is this test binary run again with
//! `KYU_EVENTS_CHILD` set (the `child_event_worker` test). Each test runs on
//! SQLite (same host, shared file) and, when `KYU_TEST_POSTGRES_URL` is
//! set, PostgreSQL.

mod common;

use std::collections::HashSet;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{on_each_backend, quick, Backend};
use futures_util::StreamExt;
use kyu::events::EventItem;
use kyu::{Event, EventFilter, EventType, Kyu, NewJob, Outcome, Worker};
use rand::Rng;

on_each_backend!(
    a_subscriber_in_another_process_sees_every_event_once_in_order(flavor = "multi_thread"),
);

const JOBS: usize = 1000;

/// The worker process: runs every job of kind `work` until it is killed.
#[tokio::test]
async fn child_event_worker() {
    let Ok(url) = std::env::var("KYU_EVENTS_CHILD") else {
        return; // not a child: nothing to do
    };
    let kyu = Kyu::connect(&url).await.unwrap();
    let _worker = Worker::new(&kyu)
        .handle("work", |_ctx| async { Ok(Outcome::Done) })
        .queue("default", 8)
        .configure(|c| {
            quick(c);
            c.id = "event-child".into();
        })
        .start();
    tokio::time::sleep(Duration::from_secs(3600)).await;
}

async fn a_subscriber_in_another_process_sees_every_event_once_in_order(backend: Backend) {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = backend.fresh_url(dir.path());
    let kyu = Kyu::connect(&url).await.expect("connect");
    let start = kyu.last_event_id().await.expect("last id");
    kyu.enqueue_many(
        (0..JOBS)
            .map(|i| NewJob::new("work", serde_json::json!({ "i": i })))
            .collect(),
    )
    .await
    .expect("enqueue");
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "child_event_worker",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("KYU_EVENTS_CHILD", &url)
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn the worker process");

    // The subscriber: reads a random number of items, drops the stream,
    // pauses a random moment, and reconnects with the last id it saw.
    let mut seen: Vec<Event> = Vec::new();
    let mut completed = HashSet::new();
    let mut last = start;
    let mut reconnects = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    while completed.len() < JOBS {
        assert!(
            tokio::time::Instant::now() < deadline,
            "only {} of {JOBS} jobs completed as seen by the subscriber",
            completed.len()
        );
        let take = rand::thread_rng().gen_range(1..300);
        let mut stream = std::pin::pin!(kyu.events(Some(last), EventFilter::default()));
        for _ in 0..take {
            let item = match tokio::time::timeout(Duration::from_secs(10), stream.next()).await {
                Ok(Some(item)) => item.expect("event stream"),
                Ok(None) => panic!("the event stream ended"),
                Err(_) => break, // quiet: reconnect
            };
            let EventItem::Event(e) = item else {
                panic!("no gap expected: {item:?}")
            };
            assert!(
                e.id > last,
                "event {} after {last}: seen twice or out of order",
                e.id
            );
            last = e.id;
            if e.event_type == EventType::Completed {
                completed.insert(e.job_id.expect("a job event"));
            }
            seen.push(*e);
            if completed.len() == JOBS {
                break;
            }
        }
        reconnects += 1;
        let pause = rand::thread_rng().gen_range(0..20);
        tokio::time::sleep(Duration::from_millis(pause)).await;
    }
    let _ = child.kill();
    let _ = child.wait();

    // Exactly the log: every event once, in id order, nothing missing.
    let all: Vec<Event> = {
        let store = kyu.store();
        let mut out = Vec::new();
        let mut at = start;
        loop {
            let r = store.read_events(at, 1000).await.expect("read");
            if r.events.is_empty() && r.next == at {
                break;
            }
            out.extend(r.events);
            at = r.next;
        }
        out
    };
    let seen_ids: Vec<_> = seen.iter().map(|e| e.id).collect();
    let log_ids: Vec<_> = all.iter().map(|e| e.id).take(seen.len()).collect();
    assert_eq!(seen_ids, log_ids, "the subscriber saw the log, in order");
    assert_eq!(seen, all[..seen.len()].to_vec());
    let count = |t: EventType| seen.iter().filter(|e| e.event_type == t).count();
    assert_eq!(count(EventType::Enqueued), JOBS);
    assert_eq!(count(EventType::Started), JOBS);
    assert_eq!(count(EventType::Completed), JOBS);
    assert!(
        seen.iter()
            .filter(|e| e.event_type == EventType::Started)
            .all(|e| e.facts.worker.as_deref() == Some("event-child")),
        "every job ran in the other process"
    );
    assert!(
        reconnects > 5,
        "the subscriber reconnected ({reconnects} times)"
    );
}
