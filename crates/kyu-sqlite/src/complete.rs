//! Complete: record how attempts ended. Every write is fenced by the attempt
//! (`WHERE id = ? AND attempt = ? AND state = 'running'`), so a late finish
//! from a worker whose lease expired changes nothing.

use chrono::{DateTime, Utc};
use kyu_core::{Finish, FinishOutcome, FinishResult, JobState, StoreError};
use rusqlite::{params, Connection, OptionalExtension};

use crate::row::{db, error_json, us};

/// What one finish writes.
struct Write<'a> {
    state: JobState,
    run_at: Option<i64>,
    result: Option<&'a str>,
    error: Option<&'a str>,
    /// 1 when the attempt is given back (snooze, release).
    uncount: u32,
}

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
             finished_at = ?3, lease_expires_at = NULL, result = COALESCE(?4, result), \
             errors = CASE WHEN ?5 IS NULL THEN errors ELSE json_insert(errors, '$[#]', json(?5)) END, \
             attempt = attempt - ?6 \
             WHERE id = ?7 AND attempt = ?8 AND state = 'running'",
        )
        .map_err(db)?;
    let mut complete = conn
        .prepare_cached(
            "UPDATE jobs SET state = 'completed', finished_at = ?1, lease_expires_at = NULL, \
             result = ?2 WHERE id = ?3 AND attempt = ?4 AND state = 'running'",
        )
        .map_err(db)?;
    for f in batch {
        // The hot path: one fenced statement, nothing to read first.
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
        let error_text;
        let w = match &f.outcome {
            FinishOutcome::Completed { result } => Write {
                state: JobState::Completed,
                run_at: None,
                result: result.as_deref(),
                error: None,
                uncount: 0,
            },
            FinishOutcome::Errored {
                message,
                retry_at,
                permanent,
            } => {
                error_text = error_json(now, attempt, message, &f.worker);
                let retry_us = us(*retry_at);
                let state = if cancel_requested {
                    JobState::Cancelled
                } else if *permanent || attempt >= max_attempts {
                    JobState::Failed
                } else if retry_us > now_us {
                    JobState::Scheduled
                } else {
                    JobState::Available
                };
                Write {
                    state,
                    run_at: (!state.is_finished()).then_some(retry_us),
                    result: None,
                    error: Some(&error_text),
                    uncount: 0,
                }
            }
            FinishOutcome::Snoozed { until } => {
                let until_us = us(*until);
                let state = if cancel_requested {
                    JobState::Cancelled
                } else if until_us > now_us {
                    JobState::Scheduled
                } else {
                    JobState::Available
                };
                Write {
                    state,
                    run_at: (!state.is_finished()).then_some(until_us),
                    result: None,
                    error: None,
                    uncount: u32::from(!state.is_finished()),
                }
            }
            FinishOutcome::Cancelled { message } => {
                error_text = error_json(now, attempt, message, &f.worker);
                Write {
                    state: JobState::Cancelled,
                    run_at: None,
                    result: None,
                    error: Some(&error_text),
                    uncount: 0,
                }
            }
            FinishOutcome::Released { message } => {
                error_text = error_json(now, attempt, message, &f.worker);
                let state = if cancel_requested {
                    JobState::Cancelled
                } else {
                    JobState::Available
                };
                Write {
                    state,
                    run_at: (!state.is_finished()).then_some(now_us),
                    result: None,
                    error: Some(&error_text),
                    uncount: u32::from(!state.is_finished()),
                }
            }
        };
        let finished_at = w.state.is_finished().then_some(now_us);
        let n = update
            .execute(params![
                w.state.as_str(),
                w.run_at,
                finished_at,
                w.result,
                w.error,
                w.uncount,
                f.lease.id,
                f.lease.attempt,
            ])
            .map_err(db)?;
        out.push(if n == 1 {
            FinishResult::Applied(w.state)
        } else {
            FinishResult::Stale
        });
    }
    Ok(out)
}
