//! The backend conformance suite, run against the real PostgreSQL server,
//! each case in a fresh schema.

mod common;

use std::sync::Arc;

use kyu_core::{Clock, Store};
use kyu_postgres::{PgOptions, PgStore};

struct PgHarness;

#[async_trait::async_trait]
impl kyu_core::conformance::Harness for PgHarness {
    async fn store(&self, clock: Arc<dyn Clock>) -> Arc<dyn Store> {
        let options = PgOptions {
            max_connections: 4,
            ..PgOptions::with_clock(clock)
        };
        Arc::new(
            PgStore::connect(&common::fresh_url("t_conf"), options)
                .await
                .expect("connect to the test PostgreSQL (see README: PostgreSQL tests)"),
        )
    }
}

kyu_core::conformance_tests!(PgHarness);
