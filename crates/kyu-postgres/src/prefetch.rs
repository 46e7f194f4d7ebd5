//! Prefetch: jobs claimed ahead of a worker's free slots
//! ([`Claim::unstarted`](kyu_core::Claim::unstarted)) carry `unstarted`
//! until the worker marks them started, here, one statement per batch.
//! While a job is unstarted, a release or a lease expiry gives its attempt
//! back and records no error (`kyu_core::lifecycle`): only started attempts
//! count. The flag is only meaningful while the job is `running`; every
//! write that ends an attempt clears it.

use std::collections::HashSet;

use kyu_core::{LeaseRef, StoreError};
use sqlx::PgPool;

use crate::row::db;

/// Migration 9: the flag of jobs claimed ahead and not started.
pub(crate) const MIGRATION: &str =
    "ALTER TABLE {s}.jobs ADD COLUMN unstarted boolean NOT NULL DEFAULT false;";

/// Marks the attempts `leases` started; returns those no longer held (the
/// job is not running that attempt), in the order given.
pub(crate) async fn mark_started(
    pool: &PgPool,
    schema: &str,
    leases: &[LeaseRef],
) -> Result<Vec<LeaseRef>, StoreError> {
    let mut sorted = leases.to_vec();
    // Lock rows in id order, as every batch statement does: no deadlocks.
    sorted.sort();
    let (ids, attempts): (Vec<i64>, Vec<i32>) =
        sorted.iter().map(|l| (l.id, l.attempt as i32)).unzip();
    let sql = format!(
        "UPDATE {schema}.jobs j SET unstarted = false \
         FROM unnest($1::bigint[], $2::int[]) AS u(id, attempt) \
         WHERE j.id = u.id AND j.attempt = u.attempt AND j.state = 'running' \
         RETURNING j.id, j.attempt"
    );
    let held: HashSet<(i64, i32)> = sqlx::query_as::<_, (i64, i32)>(&sql)
        .bind(ids)
        .bind(attempts)
        .fetch_all(pool)
        .await
        .map_err(db)?
        .into_iter()
        .collect();
    Ok(leases
        .iter()
        .filter(|l| !held.contains(&(l.id, l.attempt as i32)))
        .copied()
        .collect())
}
