//! Claim: promote due scheduled jobs, then take up to N available jobs of
//! the claim's kinds from unpaused queues in (priority, run_at, id) order,
//! all in one transaction. The claim index is (queue, kind, priority,
//! run_at, id) over available jobs, so each (queue, kind) is walked in claim
//! order and jobs of kinds the worker cannot run are never read.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::time::Duration;

use chrono::{DateTime, Utc};
use kyu_core::{Claim, ClaimedJob, JobId, StoreError};
use rusqlite::types::Value;
use rusqlite::{params, params_from_iter, Connection, OptionalExtension};

use crate::events::EventWriter;
use crate::row::{db, dur_us, from_us, parse_json, us};

/// Writes the `started` event of each claimed job (`run_at_us`: when it
/// became available, for the wait); `ahead`: the jobs were claimed ahead,
/// not started (the event's `reason` says so).
fn started(
    conn: &Connection,
    now_us: i64,
    worker: &str,
    jobs: &[(i64, &ClaimedJob)],
    ahead: bool,
) -> Result<(), StoreError> {
    let mut events = EventWriter::new(conn)?;
    for (run_at_us, j) in jobs {
        let facts = kyu_core::EventFacts {
            state: Some(kyu_core::JobState::Running),
            worker: Some(worker.to_string()),
            wait_ms: Some(now_us.saturating_sub(*run_at_us).max(0) / 1000),
            reason: ahead.then(|| kyu_core::lifecycle::CLAIMED_AHEAD_REASON.to_string()),
            ..kyu_core::EventFacts::default()
        };
        events.job(
            now_us,
            kyu_core::EventType::Started,
            j.id,
            &j.queue,
            &j.kind,
            Some(j.attempt),
            &facts,
        )?;
    }
    events.finish()
}

/// Makes scheduled jobs whose run_at has come `available`. Returns how many.
pub(crate) fn promote_due(conn: &Connection, now_us: i64) -> Result<usize, StoreError> {
    conn.prepare_cached(
        "UPDATE jobs SET state = 'available' WHERE state = 'scheduled' AND run_at <= ?1",
    )
    .and_then(|mut s| s.execute([now_us]))
    .map_err(db)
}

/// The most (queue, kind) pairs a claim walks one by one. Beyond it the
/// claim first narrows the pairs to the kinds that have available jobs, and
/// if there are still more, reads them all in one statement and sorts.
const MAX_WALKS: usize = 32;

/// The kinds with available jobs in `queue`: a loose scan of the claim
/// index, one seek per distinct kind however many jobs each has.
fn present_kinds(conn: &Connection, queue: &str) -> Result<Vec<String>, StoreError> {
    conn.prepare_cached(
        "WITH RECURSIVE k(kind) AS (\
           SELECT (SELECT kind FROM jobs WHERE state = 'available' AND queue = ?1 \
                   ORDER BY kind LIMIT 1) \
           UNION ALL \
           SELECT (SELECT kind FROM jobs WHERE state = 'available' AND queue = ?1 \
                   AND kind > k.kind ORDER BY kind LIMIT 1) FROM k WHERE k.kind IS NOT NULL) \
         SELECT kind FROM k WHERE kind IS NOT NULL",
    )
    .and_then(|mut s| s.query_map([queue], |r| r.get(0))?.collect())
    .map_err(db)
}

/// The (queue, kind) pairs a claim reads: every queue with every kind it
/// names when they are few; otherwise only the kinds that have available
/// jobs in each queue (and that it names, unless it takes every kind).
fn pairs(
    conn: &Connection,
    queues: &[String],
    kinds: Option<&Vec<String>>,
) -> Result<Vec<(String, String)>, StoreError> {
    let named: Option<BTreeSet<&str>> = kinds.map(|ks| ks.iter().map(String::as_str).collect());
    if let Some(named) = &named {
        if queues.len() * named.len() <= MAX_WALKS {
            return Ok(queues
                .iter()
                .flat_map(|q| named.iter().map(move |k| (q.clone(), k.to_string())))
                .collect());
        }
    }
    let mut out = Vec::new();
    for q in queues {
        for k in present_kinds(conn, q)? {
            if named.as_ref().map_or(true, |n| n.contains(k.as_str())) {
                out.push((q.clone(), k));
            }
        }
    }
    Ok(out)
}

/// What a claim returns of each job, after `UPDATE … SET state = 'running'`.
const RETURNING: &str = "RETURNING id, queue, kind, args, attempt, max_attempts, retry, \
    timeout_ms, priority, run_at, lease_expires_at, tags, unique_key";

/// A claimed job from a row of [`RETURNING`].
fn claimed(r: &rusqlite::Row<'_>) -> rusqlite::Result<ClaimedJob> {
    let timeout_ms: Option<i64> = r.get(7)?;
    Ok(ClaimedJob {
        id: r.get(0)?,
        queue: r.get(1)?,
        kind: r.get(2)?,
        args: r.get(3)?,
        attempt: r.get(4)?,
        max_attempts: r.get(5)?,
        retry: parse_json(6, &r.get::<_, String>(6)?)?,
        timeout: timeout_ms.map(|ms| Duration::from_millis(ms as u64)),
        lease_expires_at: from_us(r.get(10)?),
        run_at: from_us(r.get(9)?),
        tags: parse_json(11, &r.get::<_, String>(11)?)?,
        unique_key: r.get(12)?,
    })
}

/// Claims the one job `id` if it is available or scheduled, whatever its
/// run_at or queue: one conditional update, so of two claims one gets it.
pub(crate) fn claim_job(
    conn: &Connection,
    now: DateTime<Utc>,
    id: JobId,
    worker: &str,
    lease: Duration,
) -> Result<Option<ClaimedJob>, StoreError> {
    let now_us = us(now);
    let got: Option<(i64, ClaimedJob)> = conn
        .prepare_cached(&format!(
            "UPDATE jobs SET state = 'running', attempt = attempt + 1, worker = ?1, \
             attempted_at = ?2, lease_expires_at = ?3, progress_percent = NULL, \
             progress_message = NULL \
             WHERE id = ?4 AND state IN ('available', 'scheduled') {RETURNING}"
        ))
        .and_then(|mut s| {
            s.query_row(
                params![worker, now_us, now_us.saturating_add(dur_us(lease)), id],
                |r| Ok((r.get(9)?, claimed(r)?)),
            )
            .optional()
        })
        .map_err(db)?;
    if let Some((run_at_us, j)) = &got {
        started(conn, now_us, worker, &[(*run_at_us, j)], false)?;
    }
    Ok(got.map(|(_, j)| j))
}

/// Claims jobs for `claim`: from the queues without limits at once, then
/// from each limited queue up to what its limits leave (module `limits`).
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
    let (free, limited) = crate::limits::split(conn, &claim.queues)?;
    let mut rows = claim_from(conn, now_us, claim, free)?;
    if !limited.is_empty() && rows.len() < claim.limit {
        let more =
            crate::limits::claim_limited(conn, now_us, claim, limited, rows.len(), |c, one| {
                claim_from(c, now_us, one, one.queues.clone())
            })?;
        rows.extend(more);
        rows.sort_by_key(|(p, run_at, j)| (*p, *run_at, j.id));
    }
    Ok(rows.into_iter().map(|(_, _, j)| j).collect())
}

/// Claims up to `claim.limit` jobs from `queues` (unpaused, and either
/// without limits or with room for that many), in claim order, with the
/// priority and run_at of each.
fn claim_from(
    conn: &Connection,
    now_us: i64,
    claim: &Claim,
    queues: Vec<String>,
) -> Result<Vec<(i32, i64, ClaimedJob)>, StoreError> {
    if queues.is_empty() {
        return Ok(Vec::new());
    }
    let pairs = pairs(conn, &queues, claim.kinds.as_ref())?;
    if pairs.is_empty() {
        return Ok(Vec::new());
    }
    // ?1 worker, ?2 now, ?3 lease expiry, ?4 limit, then the pairs.
    // One (queue, kind) walks the claim index in order and stops after
    // `limit` rows; a few each take their first `limit` rows and the union
    // is sorted; many are read at once (jobs of other kinds never are).
    let mut pick = String::new();
    let mut values: Vec<Value> = Vec::new();
    if pairs.len() == 1 {
        pick.push_str(
            "SELECT id FROM jobs WHERE state = 'available' AND queue = ?5 AND kind = ?6 \
             ORDER BY priority, run_at, id LIMIT ?4",
        );
        values.extend(pairs.into_iter().flat_map(|(q, k)| [q, k]).map(Value::Text));
    } else if pairs.len() <= MAX_WALKS {
        pick.push_str("SELECT id FROM (");
        for i in 0..pairs.len() {
            if i > 0 {
                pick.push_str(" UNION ALL ");
            }
            let _ = write!(
                pick,
                "SELECT * FROM (SELECT id, priority, run_at FROM jobs \
                 WHERE state = 'available' AND queue = ?{} AND kind = ?{} \
                 ORDER BY priority, run_at, id LIMIT ?4)",
                2 * i + 5,
                2 * i + 6
            );
        }
        pick.push_str(") ORDER BY priority, run_at, id LIMIT ?4");
        values.extend(pairs.into_iter().flat_map(|(q, k)| [q, k]).map(Value::Text));
    } else {
        pick.push_str(
            "SELECT id FROM jobs WHERE state = 'available' AND (queue, kind) IN \
             (SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]') FROM json_each(?5)) \
             ORDER BY priority, run_at, id LIMIT ?4",
        );
        values.push(Value::Text(
            serde_json::to_string(&pairs).map_err(StoreError::database)?,
        ));
    }
    claim_picked(conn, now_us, claim, &pick, values)
}

/// Claims the jobs `ids` (available ones of the claim's queue, picked by
/// the caller under the claim's write transaction), in claim order.
pub(crate) fn claim_ids(
    conn: &Connection,
    now_us: i64,
    claim: &Claim,
    ids: &[i64],
) -> Result<Vec<(i32, i64, ClaimedJob)>, StoreError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let ids = serde_json::to_string(ids).map_err(StoreError::database)?;
    claim_picked(
        conn,
        now_us,
        claim,
        "SELECT value FROM json_each(?5)",
        vec![Value::Text(ids)],
    )
}

/// Makes the jobs `pick` selects (a SELECT of ids; ?1 worker, ?2 now, ?3
/// lease expiry and ?4 limit are bound, `values` from ?5 on) `running`
/// for `claim`, with their `started` events; in claim order, with the
/// priority and run_at of each.
fn claim_picked(
    conn: &Connection,
    now_us: i64,
    claim: &Claim,
    pick: &str,
    mut values: Vec<Value>,
) -> Result<Vec<(i32, i64, ClaimedJob)>, StoreError> {
    let limit = i64::try_from(claim.limit).unwrap_or(i64::MAX);
    // Jobs claimed ahead are flagged until the worker marks them started
    // (module `prefetch`); an ordinary claim writes nothing more.
    let ahead = if claim.unstarted {
        "unstarted = 1, "
    } else {
        ""
    };
    let sql = format!(
        "UPDATE jobs SET state = 'running', attempt = attempt + 1, worker = ?1, \
         attempted_at = ?2, lease_expires_at = ?3, progress_percent = NULL, \
         {ahead}progress_message = NULL \
         WHERE id IN ({pick}) {RETURNING}"
    );
    let lease_until = now_us.saturating_add(dur_us(claim.lease));
    let mut head: Vec<Value> = vec![
        Value::Text(claim.worker.clone()),
        Value::Integer(now_us),
        Value::Integer(lease_until),
        Value::Integer(limit),
    ];
    head.append(&mut values);
    let values = head;
    let mut stmt = conn.prepare_cached(&sql).map_err(db)?;
    let mut rows: Vec<(i32, i64, ClaimedJob)> = stmt
        .query_map(params_from_iter(values), |r| {
            Ok((r.get::<_, i32>(8)?, r.get::<_, i64>(9)?, claimed(r)?))
        })
        .and_then(|rows| rows.collect())
        .map_err(db)?;
    // RETURNING order is unspecified.
    rows.sort_by_key(|(p, run_at, j)| (*p, *run_at, j.id));
    let claimed: Vec<(i64, &ClaimedJob)> = rows.iter().map(|(_, r, j)| (*r, j)).collect();
    started(conn, now_us, &claim.worker, &claimed, claim.unstarted)?;
    Ok(rows)
}
