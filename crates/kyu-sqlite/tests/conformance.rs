//! The backend conformance suite, run against SQLite files in a temporary directory.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use kyu_core::{Clock, Store};
use kyu_sqlite::{SqliteOptions, SqliteStore};

struct SqliteHarness {
    dir: tempfile::TempDir,
    n: AtomicUsize,
}

fn harness() -> SqliteHarness {
    SqliteHarness {
        dir: tempfile::tempdir().expect("tempdir"),
        n: AtomicUsize::new(0),
    }
}

#[async_trait::async_trait]
impl kyu_core::conformance::Harness for SqliteHarness {
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

kyu_core::conformance_tests!(harness());

/// The same suite against `sqlite::memory:` (reads go through the writer).
mod memory {
    use super::*;

    struct MemoryHarness;

    #[async_trait::async_trait]
    impl kyu_core::conformance::Harness for MemoryHarness {
        async fn store(&self, clock: Arc<dyn Clock>) -> Arc<dyn Store> {
            Arc::new(
                SqliteStore::open("sqlite::memory:", SqliteOptions::with_clock(clock))
                    .expect("open"),
            )
        }
    }

    kyu_core::conformance_tests!(MemoryHarness);
}
