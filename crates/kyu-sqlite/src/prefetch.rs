//! Prefetch: jobs claimed ahead of a worker's free slots
//! ([`Claim::unstarted`](kyu_core::Claim::unstarted)) carry `unstarted = 1`
//! until the worker marks them started, here. While a job is unstarted, a
//! release or a lease expiry gives its attempt back and records no error
//! (`kyu_core::lifecycle`): only started attempts count. The flag is only
//! meaningful while the job is `running`; every write that ends an attempt
//! clears it.

use kyu_core::{LeaseRef, StoreError};
use rusqlite::{params, Connection};

use crate::row::db;

/// Migration 9: the flag of jobs claimed ahead and not started.
pub(crate) const MIGRATION: &str =
    "ALTER TABLE jobs ADD COLUMN unstarted INTEGER NOT NULL DEFAULT 0;";

/// Marks the attempts `leases` started; returns those no longer held (the
/// job is not running that attempt), in the order given.
pub(crate) fn mark_started(
    conn: &Connection,
    leases: &[LeaseRef],
) -> Result<Vec<LeaseRef>, StoreError> {
    let mut stmt = conn
        .prepare_cached(
            "UPDATE jobs SET unstarted = 0 WHERE id = ?1 AND attempt = ?2 AND state = 'running'",
        )
        .map_err(db)?;
    let mut lost = Vec::new();
    for l in leases {
        if stmt.execute(params![l.id, l.attempt]).map_err(db)? == 0 {
            lost.push(*l);
        }
    }
    Ok(lost)
}
