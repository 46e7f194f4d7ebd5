//! The schedule conformance suite, run against SQLite files and `:memory:`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use kyu_core::{Clock, Store};
use kyu_sqlite::{SqliteOptions, SqliteStore};

struct FileHarness {
    dir: tempfile::TempDir,
    n: AtomicUsize,
}

fn harness() -> FileHarness {
    FileHarness {
        dir: tempfile::tempdir().expect("tempdir"),
        n: AtomicUsize::new(0),
    }
}

#[async_trait::async_trait]
impl kyu_core::testkit::Harness for FileHarness {
    async fn store(&self, clock: Arc<dyn Clock>) -> Arc<dyn Store> {
        let n = self.n.fetch_add(1, Ordering::Relaxed);
        let path = self.dir.path().join(format!("kyu-{n}.db"));
        Arc::new(
            SqliteStore::open(
                path.to_str().expect("utf-8 path"),
                SqliteOptions::with_clock(clock),
            )
            .expect("open"),
        )
    }
}

kyu_core::schedule_conformance_tests!(harness());

/// The same suite against `sqlite::memory:`.
mod memory {
    use super::*;

    struct MemoryHarness;

    #[async_trait::async_trait]
    impl kyu_core::testkit::Harness for MemoryHarness {
        async fn store(&self, clock: Arc<dyn Clock>) -> Arc<dyn Store> {
            Arc::new(
                SqliteStore::open("sqlite::memory:", SqliteOptions::with_clock(clock))
                    .expect("open"),
            )
        }
    }

    kyu_core::schedule_conformance_tests!(MemoryHarness);
}

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
        .execute_batch("DROP TABLE schedules; PRAGMA user_version = 1;")
        .expect("downgrade");
    let store = SqliteStore::open(&url, SqliteOptions::default()).expect("reopen");
    assert!(store.get(id).await.expect("get").is_some(), "jobs kept");
    let spec = kyu_core::schedule_suite::spec("s", "* * * * *");
    store.upsert_schedule(spec).await.expect("schedules work");
    assert_eq!(store.list_schedules().await.expect("list").len(), 1);
}
