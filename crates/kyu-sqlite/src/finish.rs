//! Finish: record how attempts ended. Every write is fenced by the attempt
//! (`WHERE id = ? AND attempt = ? AND state = 'running'`), so a late finish
//! from a worker whose lease expired changes nothing. What each ending does to
//! the job is decided by `kyu_core::lifecycle`.

use chrono::{DateTime, Utc};
use kyu_core::lifecycle::{self, Facts};
use kyu_core::{Finish, FinishOutcome, FinishResult, JobState, StoreError};
use rusqlite::{params, Connection, OptionalExtension};

use crate::row::{db, error_json, us};

/// Records every finish of `batch`, one result per item.
pub(crate) fn finish(
    conn: &Connection,
    now: DateTime<Utc>,
    batch: &[Finish],
) -> Result<Vec<FinishResult>, StoreError> {
    let now_us = us(now);
    let mut out = Vec::with_capacity(batch.len());
    let mut select = conn
        .prepare_cached(
            "SELECT attempt, max_attempts, cancel_requested FROM jobs \
             WHERE id = ?1 AND state = 'running'",
        )
        .map_err(db)?;
    let mut update = conn
        .prepare_cached(
            "UPDATE jobs SET state = ?1, run_at = COALESCE(?2, run_at), \
             finished_at = ?3, lease_expires_at = NULL, \
             errors = CASE WHEN ?4 IS NULL THEN errors ELSE json_insert(errors, '$[#]', json(?4)) END, \
             attempt = attempt - ?5 \
             WHERE id = ?6 AND attempt = ?7 AND state = 'running'",
        )
        .map_err(db)?;
    let mut complete = conn
        .prepare_cached(
            "UPDATE jobs SET state = 'completed', finished_at = ?1, lease_expires_at = NULL, \
             result = ?2 WHERE id = ?3 AND attempt = ?4 AND state = 'running'",
        )
        .map_err(db)?;
    for f in batch {
        // The hot path: one fenced statement, nothing to read first (the
        // lifecycle rule for a completion needs no fact about the row).
        if let FinishOutcome::Completed { result } = &f.outcome {
            let n = complete
                .execute(params![now_us, result, f.lease.id, f.lease.attempt])
                .map_err(db)?;
            out.push(if n == 1 {
                FinishResult::Applied(JobState::Completed)
            } else {
                FinishResult::Stale
            });
            continue;
        }
        let row: Option<(u32, u32, bool)> = select
            .query_row([f.lease.id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .optional()
            .map_err(db)?;
        let Some((attempt, max_attempts, cancel_requested)) = row else {
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
        out.push(if n == 1 {
            FinishResult::Applied(t.state)
        } else {
            FinishResult::Stale
        });
    }
    Ok(out)
}
