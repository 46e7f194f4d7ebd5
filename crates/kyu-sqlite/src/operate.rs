//! Operator actions on jobs by id: delete (with their logs) and run now.

use chrono::{DateTime, Utc};
use kyu_core::{DeleteResult, EventFacts, EventType, JobId, JobState, RunNowResult, StoreError};
use rusqlite::{params, Connection, OptionalExtension};

use crate::batches::{batch_of, Tally};
use crate::events::EventWriter;
use crate::row::{db, parse_state, us};

/// The state, queue and kind of a job.
fn state_of(
    conn: &Connection,
    id: JobId,
) -> Result<Option<(JobState, String, String)>, StoreError> {
    conn.prepare_cached("SELECT state, queue, kind FROM jobs WHERE id = ?1")
        .and_then(|mut s| {
            s.query_row([id], |r| {
                Ok((parse_state(&r.get::<_, String>(0)?)?, r.get(1)?, r.get(2)?))
            })
            .optional()
        })
        .map_err(db)
}

/// Deletes each id that is not running, with its logs: see [`DeleteResult`].
pub(crate) fn delete_jobs(
    conn: &Connection,
    now: DateTime<Utc>,
    ids: &[JobId],
) -> Result<(Vec<DeleteResult>, bool), StoreError> {
    let now_us = us(now);
    let mut out = Vec::with_capacity(ids.len());
    let mut events = EventWriter::new(conn)?;
    let mut tally = Tally::default();
    for &id in ids {
        let r = match state_of(conn, id)? {
            None => DeleteResult::NotFound,
            Some((JobState::Running, _, _)) => DeleteResult::Running,
            Some((state, queue, kind)) => {
                if !state.is_finished() {
                    // A batch's job deleted before it finished counts as cancelled.
                    tally.add(batch_of(conn, id)?, JobState::Cancelled, 1);
                }
                conn.prepare_cached("DELETE FROM job_logs WHERE job_id = ?1")
                    .and_then(|mut s| s.execute([id]))
                    .map_err(db)?;
                conn.prepare_cached("DELETE FROM jobs WHERE id = ?1 AND state <> 'running'")
                    .and_then(|mut s| s.execute([id]))
                    .map_err(db)?;
                let facts = EventFacts {
                    state: Some(state),
                    ..EventFacts::default()
                };
                events.job(now_us, EventType::Deleted, id, &queue, &kind, None, &facts)?;
                DeleteResult::Deleted(state)
            }
        };
        out.push(r);
    }
    events.finish()?;
    let fired = tally.count(conn, now)?;
    Ok((out, fired))
}

/// Makes each scheduled id available now: see [`RunNowResult`].
pub(crate) fn run_now(
    conn: &Connection,
    now: DateTime<Utc>,
    ids: &[JobId],
) -> Result<Vec<RunNowResult>, StoreError> {
    let now_us = us(now);
    let mut out = Vec::with_capacity(ids.len());
    let mut events = EventWriter::new(conn)?;
    for &id in ids {
        let r = match state_of(conn, id)? {
            None => RunNowResult::NotFound,
            Some((JobState::Scheduled, queue, kind)) => {
                conn.prepare_cached(
                    "UPDATE jobs SET state = 'available', run_at = ?1 \
                     WHERE id = ?2 AND state = 'scheduled'",
                )
                .and_then(|mut s| s.execute(params![now_us, id]))
                .map_err(db)?;
                let facts = EventFacts {
                    state: Some(JobState::Available),
                    run_at: Some(now),
                    ..EventFacts::default()
                };
                events.job(now_us, EventType::RunNow, id, &queue, &kind, None, &facts)?;
                RunNowResult::MadeAvailable
            }
            Some((other, _, _)) => RunNowResult::NotScheduled(other),
        };
        out.push(r);
    }
    events.finish()?;
    Ok(out)
}
