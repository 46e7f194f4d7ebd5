//! Leases: heartbeats, progress, cancel requests, and reaping expired leases.

use std::time::Duration;

use chrono::{DateTime, Utc};
use kyu_core::lifecycle::{self, Ending, Facts};
use kyu_core::{
    event, EventFacts, EventType, HeartbeatReply, JobId, LeaseRef, Progress, Reaped, StoreError,
};
use rusqlite::{params, Connection, OptionalExtension};

use crate::events::EventWriter;
use crate::row::{db, dur_us, error_json, us};

/// The message recorded for an attempt whose lease ran out.
pub const LEASE_EXPIRED: &str = "lease expired";

/// Extends the leases still held to now + `lease`.
pub(crate) fn heartbeat(
    conn: &Connection,
    now: DateTime<Utc>,
    leases: &[LeaseRef],
    lease: Duration,
) -> Result<HeartbeatReply, StoreError> {
    let until = us(now).saturating_add(dur_us(lease));
    let mut stmt = conn
        .prepare_cached(
            "UPDATE jobs SET lease_expires_at = ?1 \
             WHERE id = ?2 AND attempt = ?3 AND state = 'running' RETURNING cancel_requested",
        )
        .map_err(db)?;
    let mut reply = HeartbeatReply::default();
    for l in leases {
        let cancel: Option<bool> = stmt
            .query_row(params![until, l.id, l.attempt], |r| r.get(0))
            .optional()
            .map_err(db)?;
        match cancel {
            None => reply.lost.push(l.id),
            Some(true) => reply.cancel_requested.push(l.id),
            Some(false) => {}
        }
    }
    Ok(reply)
}

/// The jobs among `leases`, still running that attempt, whose cancel was asked for.
pub(crate) fn cancel_requests(
    conn: &Connection,
    leases: &[LeaseRef],
) -> Result<Vec<JobId>, StoreError> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT cancel_requested FROM jobs WHERE id = ?1 AND attempt = ?2 AND state = 'running'",
        )
        .map_err(db)?;
    let mut out = Vec::new();
    for l in leases {
        let c: Option<bool> = stmt
            .query_row(params![l.id, l.attempt], |r| r.get(0))
            .optional()
            .map_err(db)?;
        if c == Some(true) {
            out.push(l.id);
        }
    }
    Ok(out)
}

/// Records progress, with its event; false (and no event) if the attempt
/// is no longer running.
pub(crate) fn set_progress(
    conn: &Connection,
    now: DateTime<Utc>,
    lease: LeaseRef,
    progress: &Progress,
) -> Result<bool, StoreError> {
    let row: Option<(String, String)> = conn
        .prepare_cached(
            "UPDATE jobs SET progress_percent = ?1, progress_message = ?2 \
             WHERE id = ?3 AND attempt = ?4 AND state = 'running' RETURNING queue, kind",
        )
        .and_then(|mut s| {
            s.query_row(
                params![
                    progress.percent.min(100),
                    progress.message,
                    lease.id,
                    lease.attempt
                ],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
        })
        .map_err(db)?;
    let Some((queue, kind)) = row else {
        return Ok(false);
    };
    let facts = EventFacts {
        progress: Some(progress.percent.min(100)),
        message: Some(progress.message.clone()).filter(|m| !m.is_empty()),
        ..EventFacts::default()
    };
    let mut events = EventWriter::new(conn)?;
    events.job(
        us(now),
        EventType::Progress,
        lease.id,
        &queue,
        &kind,
        Some(lease.attempt),
        &facts,
    )?;
    events.finish()?;
    Ok(true)
}

/// Makes up to `limit` running jobs whose lease ran out (lease_expires_at <= now)
/// runnable again, failed, or cancelled; the lost attempt is recorded. A job
/// claimed ahead and never started (module `prefetch`) is given back instead:
/// its attempt not counted, no error, a `released` event saying why.
pub(crate) fn reap_expired(
    conn: &Connection,
    now: DateTime<Utc>,
    limit: usize,
) -> Result<(Vec<Reaped>, bool), StoreError> {
    let now_us = us(now);
    #[allow(clippy::type_complexity)]
    let expired: Vec<(
        i64,
        u32,
        u32,
        bool,
        Option<String>,
        String,
        String,
        Option<i64>,
        Option<i64>,
        bool,
    )> = conn
        .prepare_cached(
            "SELECT id, attempt, max_attempts, cancel_requested, worker, queue, kind, \
             attempted_at, batch_id, unstarted FROM jobs \
             WHERE state = 'running' AND lease_expires_at <= ?1 \
             ORDER BY lease_expires_at, id LIMIT ?2",
        )
        .and_then(|mut s| {
            s.query_map(
                params![now_us, i64::try_from(limit).unwrap_or(i64::MAX)],
                |r| {
                    Ok((
                        r.get(0)?,
                        r.get(1)?,
                        r.get(2)?,
                        r.get(3)?,
                        r.get(4)?,
                        r.get(5)?,
                        r.get(6)?,
                        r.get(7)?,
                        r.get(8)?,
                        r.get(9)?,
                    ))
                },
            )?
            .collect()
        })
        .map_err(db)?;
    let mut update = conn
        .prepare_cached(
            "UPDATE jobs SET state = ?1, run_at = CASE WHEN ?1 = 'available' THEN ?2 ELSE run_at END, \
             finished_at = CASE WHEN ?1 = 'available' THEN NULL ELSE ?2 END, \
             lease_expires_at = NULL, \
             errors = CASE WHEN ?3 IS NULL THEN errors ELSE json_insert(errors, '$[#]', json(?3)) END, \
             attempt = attempt - ?6, unstarted = 0 \
             WHERE id = ?4 AND attempt = ?5 AND state = 'running'",
        )
        .map_err(db)?;
    let mut out = Vec::with_capacity(expired.len());
    let mut events = EventWriter::new(conn)?;
    let mut tally = crate::batches::Tally::default();
    for (
        id,
        attempt,
        max_attempts,
        cancel_requested,
        worker,
        queue,
        kind,
        attempted_at,
        batch,
        unstarted,
    ) in expired
    {
        let facts = Facts {
            attempt,
            max_attempts,
            cancel_requested,
            run_at_in_future: false,
            unstarted,
        };
        let t = lifecycle::end_running(Ending::LeaseExpired, facts);
        let state = t.state;
        let worker_name = worker.as_deref().unwrap_or("");
        let error = t
            .records_error
            .then(|| error_json(now, attempt, LEASE_EXPIRED, worker_name));
        update
            .execute(params![
                state.as_str(),
                now_us,
                error,
                id,
                attempt,
                u32::from(t.uncount)
            ])
            .map_err(db)?;
        // A job that never started was given back, not lost: a release.
        let ending = if unstarted {
            Ending::Released
        } else {
            Ending::LeaseExpired
        };
        tally.add(batch, state, 1);
        let facts = EventFacts {
            state: Some(state),
            worker: worker.clone(),
            error: t.records_error.then(|| LEASE_EXPIRED.to_string()),
            reason: unstarted.then(|| lifecycle::never_started_reason(worker_name)),
            duration_ms: attempted_at.map(|t| (now_us - t).max(0) / 1000),
            ..EventFacts::default()
        };
        events.job(
            now_us,
            event::for_ending(ending.kind(), state),
            id,
            &queue,
            &kind,
            Some(attempt),
            &facts,
        )?;
        if unstarted {
            tracing::info!(job_id = id, attempt, state = %state, "kyu-sqlite: gave back a job claimed ahead and never started (its lease ran out)");
        } else {
            tracing::warn!(job_id = id, attempt, state = %state, "kyu-sqlite: reaped an expired lease");
        }
        out.push(Reaped { id, attempt, state });
    }
    events.finish()?;
    let fired = tally.count(conn, now)?;
    Ok((out, fired))
}
