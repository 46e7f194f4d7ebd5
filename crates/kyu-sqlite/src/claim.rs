//! Claim: promote due scheduled jobs, then take up to N available jobs from
//! unpaused queues in (priority, run_at, id) order, all in one transaction.

use std::fmt::Write as _;
use std::time::Duration;

use chrono::{DateTime, Utc};
use kyu_core::{Claim, ClaimedJob, StoreError};
use rusqlite::types::Value;
use rusqlite::{params_from_iter, Connection};

use crate::row::{db, dur_us, from_us, parse_json, us};

/// Makes scheduled jobs whose run_at has come `available`. Returns how many.
pub(crate) fn promote_due(conn: &Connection, now_us: i64) -> Result<usize, StoreError> {
    conn.prepare_cached(
        "UPDATE jobs SET state = 'available' WHERE state = 'scheduled' AND run_at <= ?1",
    )
    .and_then(|mut s| s.execute([now_us]))
    .map_err(db)
}

/// The queues among `names` that are paused.
fn unpaused(conn: &Connection, names: &[String]) -> Result<Vec<String>, StoreError> {
    let mut paused = conn
        .prepare_cached("SELECT name FROM queues WHERE paused = 1")
        .map_err(db)?;
    let paused: Vec<String> = paused
        .query_map([], |r| r.get(0))
        .and_then(|rows| rows.collect())
        .map_err(db)?;
    let mut out: Vec<String> = Vec::with_capacity(names.len());
    for n in names {
        if !paused.contains(n) && !out.contains(n) {
            out.push(n.clone());
        }
    }
    Ok(out)
}

/// Claims jobs for `claim`.
pub(crate) fn claim(
    conn: &Connection,
    now: DateTime<Utc>,
    claim: &Claim,
) -> Result<Vec<ClaimedJob>, StoreError> {
    if claim.limit == 0 || claim.queues.is_empty() {
        return Ok(Vec::new());
    }
    let now_us = us(now);
    promote_due(conn, now_us)?;
    let queues = unpaused(conn, &claim.queues)?;
    if queues.is_empty() {
        return Ok(Vec::new());
    }
    let limit = i64::try_from(claim.limit).unwrap_or(i64::MAX);
    // ?1 worker, ?2 now, ?3 lease expiry, ?4 limit, ?5.. queues.
    // One queue walks the claim index in order and stops after `limit` rows;
    // several queues each take their first `limit` rows and the union is sorted.
    let mut pick = String::new();
    if queues.len() == 1 {
        pick.push_str(
            "SELECT id FROM jobs WHERE state = 'available' AND queue = ?5 \
             ORDER BY priority, run_at, id LIMIT ?4",
        );
    } else {
        pick.push_str("SELECT id FROM (");
        for i in 0..queues.len() {
            if i > 0 {
                pick.push_str(" UNION ALL ");
            }
            let _ = write!(
                pick,
                "SELECT * FROM (SELECT id, priority, run_at FROM jobs \
                 WHERE state = 'available' AND queue = ?{} \
                 ORDER BY priority, run_at, id LIMIT ?4)",
                i + 5
            );
        }
        pick.push_str(") ORDER BY priority, run_at, id LIMIT ?4");
    }
    let sql = format!(
        "UPDATE jobs SET state = 'running', attempt = attempt + 1, worker = ?1, \
         attempted_at = ?2, lease_expires_at = ?3, progress_percent = NULL, \
         progress_message = NULL \
         WHERE id IN ({pick}) \
         RETURNING id, queue, kind, args, attempt, max_attempts, retry, timeout_ms, \
         priority, run_at, lease_expires_at"
    );
    let lease_until = now_us.saturating_add(dur_us(claim.lease));
    let mut values: Vec<Value> = vec![
        Value::Text(claim.worker.clone()),
        Value::Integer(now_us),
        Value::Integer(lease_until),
        Value::Integer(limit),
    ];
    values.extend(queues.into_iter().map(Value::Text));
    let mut stmt = conn.prepare_cached(&sql).map_err(db)?;
    let mut rows: Vec<(i32, i64, ClaimedJob)> = stmt
        .query_map(params_from_iter(values), |r| {
            let timeout_ms: Option<i64> = r.get(7)?;
            Ok((
                r.get::<_, i32>(8)?,
                r.get::<_, i64>(9)?,
                ClaimedJob {
                    id: r.get(0)?,
                    queue: r.get(1)?,
                    kind: r.get(2)?,
                    args: r.get(3)?,
                    attempt: r.get(4)?,
                    max_attempts: r.get(5)?,
                    retry: parse_json(6, &r.get::<_, String>(6)?)?,
                    timeout: timeout_ms.map(|ms| Duration::from_millis(ms as u64)),
                    lease_expires_at: from_us(r.get(10)?),
                },
            ))
        })
        .and_then(|rows| rows.collect())
        .map_err(db)?;
    // RETURNING order is unspecified.
    rows.sort_by_key(|(p, run_at, j)| (*p, *run_at, j.id));
    Ok(rows.into_iter().map(|(_, _, j)| j).collect())
}
