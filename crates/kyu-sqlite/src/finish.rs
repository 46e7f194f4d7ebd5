//! Finish: record how attempts ended. Every write is fenced by the attempt
//! (`WHERE id = ? AND attempt = ? AND state = 'running'`), so a late finish
//! from a worker whose lease expired changes nothing. What each ending does to
//! the job is decided by `kyu_core::lifecycle`.

use chrono::{DateTime, Utc};
use kyu_core::event;
use kyu_core::lifecycle::{self, Facts};
use kyu_core::{EventFacts, EventType, Finish, FinishOutcome, FinishResult, JobState, StoreError};
use rusqlite::{params, Connection, OptionalExtension};

use crate::batches::Tally;
use crate::events::EventWriter;
use crate::row::{db, error_json, from_us, us};

/// Records every finish of `batch`, one result per item, each applied one
/// with its event (named by `kyu_core::event::for_ending`); a stale one
/// writes nothing.
///
/// A job of a batch that reached a final state is counted in its batch, in
/// the same transaction; the bool is true if that made a batch done and its
/// callbacks were enqueued.
pub(crate) fn finish(
    conn: &Connection,
    now: DateTime<Utc>,
    batch: &[Finish],
) -> Result<(Vec<FinishResult>, bool), StoreError> {
    let now_us = us(now);
    let mut out = Vec::with_capacity(batch.len());
    let mut select = conn
        .prepare_cached(
            "SELECT attempt, max_attempts, cancel_requested, queue, kind, attempted_at, batch_id, \
             unstarted FROM jobs WHERE id = ?1 AND state = 'running'",
        )
        .map_err(db)?;
    let mut update = conn
        .prepare_cached(
            "UPDATE jobs SET state = ?1, run_at = COALESCE(?2, run_at), \
             finished_at = ?3, lease_expires_at = NULL, \
             errors = CASE WHEN ?4 IS NULL THEN errors ELSE json_insert(errors, '$[#]', json(?4)) END, \
             attempt = attempt - ?5, unstarted = 0 \
             WHERE id = ?6 AND attempt = ?7 AND state = 'running'",
        )
        .map_err(db)?;
    let mut complete = conn
        .prepare_cached(
            "UPDATE jobs SET state = 'completed', finished_at = ?1, lease_expires_at = NULL, \
             result = ?2 WHERE id = ?3 AND attempt = ?4 AND state = 'running' \
             RETURNING queue, kind, attempted_at, batch_id",
        )
        .map_err(db)?;
    let mut events = EventWriter::new(conn)?;
    let mut tally = Tally::default();
    let duration = |attempted_at: Option<i64>| attempted_at.map(|t| (now_us - t).max(0) / 1000);
    for f in batch {
        // The hot path: one fenced statement, nothing to read first (the
        // lifecycle rule for a completion needs no fact about the row).
        if let FinishOutcome::Completed { result } = &f.outcome {
            #[allow(clippy::type_complexity)]
            let row: Option<(String, String, Option<i64>, Option<i64>)> = complete
                .query_row(params![now_us, result, f.lease.id, f.lease.attempt], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
                })
                .optional()
                .map_err(db)?;
            let Some((queue, kind, attempted_at, batch_id)) = row else {
                out.push(FinishResult::Stale);
                continue;
            };
            tally.add(batch_id, JobState::Completed, 1);
            let facts = EventFacts {
                state: Some(JobState::Completed),
                duration_ms: duration(attempted_at),
                ..EventFacts::default()
            };
            events.job(
                now_us,
                EventType::Completed,
                f.lease.id,
                &queue,
                &kind,
                Some(f.lease.attempt),
                &facts,
            )?;
            out.push(FinishResult::Applied(JobState::Completed));
            continue;
        }
        #[allow(clippy::type_complexity)]
        let row: Option<(
            u32,
            u32,
            bool,
            String,
            String,
            Option<i64>,
            Option<i64>,
            bool,
        )> = select
            .query_row([f.lease.id], |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                    r.get(6)?,
                    r.get(7)?,
                ))
            })
            .optional()
            .map_err(db)?;
        let Some((
            attempt,
            max_attempts,
            cancel_requested,
            queue,
            kind,
            attempted_at,
            batch_id,
            unstarted,
        )) = row
        else {
            out.push(FinishResult::Stale);
            continue;
        };
        if attempt != f.lease.attempt {
            out.push(FinishResult::Stale);
            continue;
        }
        let run_again_at = f.outcome.run_again_at(now).map(us);
        let facts = Facts {
            attempt,
            max_attempts,
            cancel_requested,
            run_at_in_future: run_again_at.is_some_and(|t| t > now_us),
            unstarted,
        };
        let t = lifecycle::end_running(f.outcome.ending(), facts);
        let error = f
            .outcome
            .error_message()
            .filter(|_| t.records_error)
            .map(|m| error_json(now, attempt, m, &f.worker));
        let finished_at = t.state.is_finished().then_some(now_us);
        let n = update
            .execute(params![
                t.state.as_str(),
                run_again_at.filter(|_| t.runs_again()),
                finished_at,
                error,
                u32::from(t.uncount),
                f.lease.id,
                f.lease.attempt,
            ])
            .map_err(db)?;
        if n != 1 {
            out.push(FinishResult::Stale);
            continue;
        }
        tally.add(batch_id, t.state, 1);
        let ending = f.outcome.ending();
        let facts = EventFacts {
            state: Some(t.state),
            error: f
                .outcome
                .error_message()
                .filter(|_| t.records_error)
                .map(str::to_string),
            // A job released before it started: why, without an error.
            reason: f
                .outcome
                .error_message()
                .filter(|_| !t.records_error)
                .map(str::to_string),
            run_at: run_again_at.filter(|_| t.runs_again()).map(from_us),
            duration_ms: duration(attempted_at),
            ..EventFacts::default()
        };
        events.job(
            now_us,
            event::for_ending(ending.kind(), t.state),
            f.lease.id,
            &queue,
            &kind,
            Some(attempt),
            &facts,
        )?;
        out.push(FinishResult::Applied(t.state));
    }
    events.finish()?;
    let fired = tally.count(conn, now)?;
    Ok((out, fired))
}
