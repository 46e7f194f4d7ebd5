//! Enqueue: inserting jobs, all or none, with unique-key checks.

use chrono::{DateTime, Utc};
use kyu_core::{Enqueued, EventFacts, EventType, JobState, NewJob, StoreError, Uniqueness};
use rusqlite::{params, Connection, OptionalExtension};

use crate::events::EventWriter;
use crate::row::{db, dur_us, from_us, retry_json, us};

/// Inserts `jobs` (already validated), each with its `enqueued` event (a
/// duplicate too, marked so). Runs inside the writer's savepoint, so an
/// error undoes every insert of the batch and its events.
pub(crate) fn enqueue(
    conn: &Connection,
    now: DateTime<Utc>,
    jobs: Vec<NewJob>,
) -> Result<Vec<Enqueued>, StoreError> {
    let now_us = us(now);
    let mut out = Vec::with_capacity(jobs.len());
    let mut insert = conn
        .prepare_cached(
            "INSERT INTO jobs (queue, kind, args, priority, state, max_attempts, retry, \
             timeout_ms, unique_key, unique_window_ms, tags, created_at, run_at, rate_key) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
        )
        .map_err(db)?;
    let keys = crate::rate_keys::keys_of(conn, &jobs)?;
    let mut events = EventWriter::new(conn)?;
    for (job, rate_key) in jobs.into_iter().zip(keys) {
        if let Some(key) = &job.unique_key {
            if let Some(id) = existing(conn, key, job.uniqueness, now_us)? {
                let facts = EventFacts {
                    duplicate: Some(true),
                    ..EventFacts::default()
                };
                events.job(
                    now_us,
                    EventType::Enqueued,
                    id,
                    &job.queue,
                    &job.kind,
                    None,
                    &facts,
                )?;
                out.push(Enqueued {
                    id,
                    duplicate: true,
                });
                continue;
            }
        }
        let run_at = job.run_at.map(us).unwrap_or(now_us);
        let state = if run_at > now_us {
            JobState::Scheduled
        } else {
            JobState::Available
        };
        let window = match job.uniqueness {
            Uniqueness::WhileUnfinished => None,
            Uniqueness::Within(w) => Some(dur_us(w) / 1000),
        };
        let tags = if job.tags.is_empty() {
            "[]".to_string()
        } else {
            serde_json::to_string(&job.tags).map_err(StoreError::database)?
        };
        insert
            .execute(params![
                job.queue,
                job.kind,
                job.args,
                job.priority,
                state.as_str(),
                job.max_attempts,
                retry_json(&job.retry),
                job.timeout.map(|t| t.as_millis() as i64),
                job.unique_key,
                window,
                tags,
                now_us,
                run_at,
                rate_key,
            ])
            .map_err(db)?;
        let id = conn.last_insert_rowid();
        let facts = EventFacts {
            state: Some(state),
            run_at: (state == JobState::Scheduled).then(|| from_us(run_at)),
            ..EventFacts::default()
        };
        events.job(
            now_us,
            EventType::Enqueued,
            id,
            &job.queue,
            &job.kind,
            None,
            &facts,
        )?;
        out.push(Enqueued {
            id,
            duplicate: false,
        });
    }
    events.finish()?;
    Ok(out)
}

/// The first job that makes a new job with `key` a duplicate.
///
/// The new job's uniqueness decides: `WhileUnfinished` matches an unfinished
/// job with the key; `Within(w)` matches any job with the key enqueued less
/// than `w` ago, whatever its state.
fn existing(
    conn: &Connection,
    key: &str,
    uniqueness: Uniqueness,
    now_us: i64,
) -> Result<Option<i64>, StoreError> {
    match uniqueness {
        Uniqueness::WhileUnfinished => conn
            .prepare_cached(
                "SELECT id FROM jobs WHERE unique_key = ?1 \
                 AND state IN ('scheduled', 'available', 'running') ORDER BY id LIMIT 1",
            )
            .and_then(|mut s| s.query_row([key], |r| r.get(0)).optional())
            .map_err(db),
        Uniqueness::Within(w) => conn
            .prepare_cached(
                "SELECT id FROM jobs WHERE unique_key = ?1 AND created_at > ?2 \
                 ORDER BY id LIMIT 1",
            )
            .and_then(|mut s| {
                s.query_row(params![key, now_us.saturating_sub(dur_us(w))], |r| r.get(0))
                    .optional()
            })
            .map_err(db),
    }
}
