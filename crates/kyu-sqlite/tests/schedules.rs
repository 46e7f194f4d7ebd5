//! Schedules on SQLite beyond the conformance suite (which runs in
//! `conformance.rs`): migrating a database made before schedules existed.

use kyu_core::{ScheduleStore, Store};
use kyu_sqlite::{SqliteOptions, SqliteStore};

/// A database made before schedules existed (schema version 1) gains the
/// schedules table on open, its jobs kept.
#[tokio::test]
async fn version_1_database_is_migrated() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("old.db");
    let url = path.to_str().expect("utf-8 path").to_string();
    let id = {
        let store = SqliteStore::open(&url, SqliteOptions::default()).expect("open");
        store
            .enqueue(vec![kyu_core::NewJob::new("k", serde_json::json!({}))])
            .await
            .expect("enqueue")[0]
            .id
    };
    // Back to what migration 1 alone made.
    rusqlite::Connection::open(&path)
        .expect("open raw")
        .execute_batch(
            "DROP INDEX jobs_failed; DROP INDEX jobs_cancelled; \
             DROP INDEX jobs_rate_key; ALTER TABLE jobs DROP COLUMN rate_key; \
             ALTER TABLE queues DROP COLUMN rate_key; \
             DROP TABLE schedules; DROP TABLE workers; DROP TABLE api_tokens; DROP TABLE secrets; \
             DROP TABLE events; DROP TABLE event_log; DROP TABLE queue_starts; \
             ALTER TABLE queues DROP COLUMN global_concurrency; \
             ALTER TABLE queues DROP COLUMN rate_starts; ALTER TABLE queues DROP COLUMN rate_per_ms; \
             DROP TABLE batches; DROP INDEX jobs_batch; ALTER TABLE jobs DROP COLUMN batch_id; \
             ALTER TABLE jobs DROP COLUMN unstarted; \
             DROP INDEX jobs_claim; \
             CREATE INDEX jobs_claim ON jobs (queue, priority, run_at, id) \
             WHERE state = 'available'; PRAGMA user_version = 1;",
        )
        .expect("downgrade");
    let store = SqliteStore::open(&url, SqliteOptions::default()).expect("reopen");
    assert!(store.get(id).await.expect("get").is_some(), "jobs kept");
    let spec = kyu_core::conformance::schedules::spec("s", "* * * * *");
    store.upsert_schedule(spec).await.expect("schedules work");
    assert_eq!(store.list_schedules().await.expect("list").len(), 1);
    let claimed = store
        .claim(kyu_core::conformance::claim_kinds(
            "w",
            &["default"],
            &["k"],
            1,
        ))
        .await
        .expect("claim on the migrated claim index");
    assert_eq!(claimed[0].id, id);
}

/// A database of schema version 9 (before rate keys) with a rated queue:
/// its waiting jobs join the "no key" bucket on open and keep the queue's
/// rate.
#[tokio::test]
async fn version_9_rated_queue_keeps_its_rate_after_migration() {
    use kyu_core::{LimitStore, LimitsUpdate};
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("v9.db");
    let url = path.to_str().expect("utf-8 path").to_string();
    {
        let store = SqliteStore::open(&url, SqliteOptions::default()).expect("open");
        store
            .set_queue_limits(
                "r",
                LimitsUpdate {
                    rate: Some(Some("2/1h".parse().expect("a rate"))),
                    ..LimitsUpdate::default()
                },
            )
            .await
            .expect("rate");
        for _ in 0..3 {
            store
                .enqueue(vec![
                    kyu_core::NewJob::new("k", serde_json::json!({})).queue("r")
                ])
                .await
                .expect("enqueue");
        }
    }
    // Back to what migrations 1 to 9 made.
    rusqlite::Connection::open(&path)
        .expect("open raw")
        .execute_batch(
            "DROP INDEX jobs_failed; DROP INDEX jobs_cancelled; \
             DROP INDEX jobs_rate_key; DROP INDEX queue_starts_key; \
             ALTER TABLE jobs DROP COLUMN rate_key; ALTER TABLE queues DROP COLUMN rate_key; \
             ALTER TABLE queue_starts DROP COLUMN rate_key; PRAGMA user_version = 9;",
        )
        .expect("downgrade");
    let store = SqliteStore::open(&url, SqliteOptions::default()).expect("reopen");
    let claimed = store
        .claim(kyu_core::conformance::claim_of("w", &["r"], 10))
        .await
        .expect("claim");
    assert_eq!(
        claimed.len(),
        2,
        "the rate of 2 holds; the waiting jobs are claimable"
    );
    assert_eq!(store.queue_limits().await.expect("list")[0].rate_used, 2);
}
