//! Reads: one job, pages of jobs, queue statistics, the next scheduled time.
//! These run on read connections, beside the writer (WAL).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use kyu_core::{
    count_args_refused, JobCount, JobFilter, JobId, JobPage, JobRecord, QueueStats, Searched,
    StoreError,
};
use rusqlite::types::Value;
use rusqlite::{params_from_iter, Connection, OptionalExtension};

use crate::row::{db, from_us, job_from_row, parse_state, us, JOB_COLUMNS};

/// One job.
pub(crate) fn get(conn: &Connection, id: JobId) -> Result<Option<JobRecord>, StoreError> {
    conn.prepare_cached(&format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = ?1"))
        .and_then(|mut s| s.query_row([id], job_from_row).optional())
        .map_err(db)
}

/// The newest job with unique key `key` (the `jobs_unique` index).
pub(crate) fn get_by_unique_key(
    conn: &Connection,
    key: &str,
) -> Result<Option<JobRecord>, StoreError> {
    conn.prepare_cached(&format!(
        "SELECT {JOB_COLUMNS} FROM jobs WHERE unique_key = ?1 ORDER BY id DESC LIMIT 1"
    ))
    .and_then(|mut s| s.query_row([key], job_from_row).optional())
    .map_err(db)
}

/// A page of jobs, newest first.
pub(crate) fn list(conn: &Connection, filter: &JobFilter) -> Result<JobPage, StoreError> {
    let limit = filter.limit.max(1);
    for m in &filter.args {
        m.check("args")?;
    }
    // A search inside args reads only its window: the newest
    // `search_window` jobs below the cursor.
    let window = if filter.args.is_empty() {
        None
    } else {
        match search_window(conn, filter)? {
            Some(w) => Some(w),
            None => {
                return Ok(JobPage {
                    jobs: Vec::new(),
                    next: None,
                    searched: None,
                })
            }
        }
    };
    let from = if window.is_some() {
        // NOT INDEXED with a window: the window's id range bounds the rows
        // read, where an index on another filter (e.g. the queue's) could
        // lead the planner through far more rows than the window holds.
        "jobs NOT INDEXED"
    } else {
        source(filter)
    };
    let mut sql = format!("SELECT {JOB_COLUMNS} FROM {from} WHERE 1 = 1");
    let mut values: Vec<Value> = Vec::new();
    push_filter(filter, &mut sql, &mut values);
    if let Some(w) = window.flatten() {
        bind(
            &mut sql,
            &mut values,
            " AND id >= ?",
            Value::Integer(w.oldest),
        );
    }
    bind(
        &mut sql,
        &mut values,
        " ORDER BY id DESC LIMIT ?",
        Value::Integer(i64::try_from(limit).unwrap_or(i64::MAX - 1) + 1),
    );
    let mut stmt = conn.prepare_cached(&sql).map_err(db)?;
    let jobs: Vec<JobRecord> = stmt
        .query_map(params_from_iter(values), job_from_row)
        .and_then(|rows| rows.collect())
        .map_err(db)?;
    Ok(JobPage::of_rows(jobs, limit, window.flatten()))
}

/// How many jobs match `filter`, up to `cap`: the page's conditions in a
/// subquery that stops at `cap` + 1 rows and selects no column, so SQLite
/// reads what the conditions need (an index, and a row only for the
/// snapshot bound's times) and decodes no job.
pub(crate) fn count(
    conn: &Connection,
    filter: &JobFilter,
    cap: u64,
) -> Result<JobCount, StoreError> {
    if !filter.args.is_empty() {
        return Err(count_args_refused().into());
    }
    let mut sql = format!(
        "SELECT COUNT(*) FROM (SELECT 1 FROM {} WHERE 1 = 1",
        source(filter)
    );
    let mut values: Vec<Value> = Vec::new();
    push_filter(filter, &mut sql, &mut values);
    bind(
        &mut sql,
        &mut values,
        " LIMIT ?)",
        Value::Integer(JobCount::sql_limit(cap)),
    );
    let found: i64 = conn
        .prepare_cached(&sql)
        .and_then(|mut s| s.query_row(params_from_iter(values), |r| r.get(0)))
        .map_err(db)?;
    Ok(JobCount::capped(u64::try_from(found).unwrap_or(0), cap))
}

/// The table a filter's read goes through (without a search inside args).
fn source(filter: &JobFilter) -> &'static str {
    if filter.states == [kyu_core::JobState::Running] {
        // Running jobs are few (each holds a worker's slot): read them
        // through their partial index and sort them. Left to itself, SQLite
        // walks every row in id order for `state = 'running' ORDER BY id
        // DESC LIMIT n`, which at a million jobs and none running reads the
        // whole table.
        "jobs INDEXED BY jobs_lease"
    } else {
        "jobs"
    }
}

/// Binds `v` as the `?` of `clause`, appended to `sql`; returns its number.
fn bind(sql: &mut String, values: &mut Vec<Value>, clause: &str, v: Value) -> usize {
    values.push(v);
    sql.push_str(&clause.replace('?', &format!("?{}", values.len())));
    values.len()
}

/// Appends `filter`'s conditions (` AND …` after a WHERE) to `sql`, its
/// values to `values`: one builder for pages and counts, so both select
/// the same jobs.
fn push_filter(filter: &JobFilter, sql: &mut String, values: &mut Vec<Value>) {
    if !filter.states.is_empty() {
        // Written as literals, not bound: the states are kyu's own words, and
        // only a literal `state = 'running'` lets SQLite use the partial
        // indexes (jobs_lease, jobs_claim, jobs_scheduled) instead of reading
        // every row of a big table.
        let states: Vec<String> = filter
            .states
            .iter()
            .map(|s| format!("'{}'", s.as_str()))
            .collect();
        if let [one] = states.as_slice() {
            // `IN` of one value is not matched to a partial index; `=` is.
            sql.push_str(&format!(" AND state = {one}"));
        } else {
            sql.push_str(&format!(" AND state IN ({})", states.join(", ")));
        }
    }
    if let Some(q) = &filter.queue {
        bind(sql, values, " AND queue = ?", Value::Text(q.clone()));
    }
    if let Some(k) = &filter.kind {
        bind(sql, values, " AND kind = ?", Value::Text(k.clone()));
    }
    if let Some(t) = &filter.tag {
        bind(
            sql,
            values,
            " AND EXISTS (SELECT 1 FROM json_each(jobs.tags) WHERE json_each.value = ?)",
            Value::Text(t.clone()),
        );
    }
    if let Some(t) = filter.created_after {
        bind(sql, values, " AND created_at >= ?", Value::Integer(us(t)));
    }
    if let Some(t) = filter.created_before {
        bind(sql, values, " AND created_at < ?", Value::Integer(us(t)));
    }
    for m in &filter.args {
        let path = Value::Text(m.sqlite_path());
        let n = bind(sql, values, " AND json_type(args, ?)", path);
        match &m.value {
            serde_json::Value::String(v) => {
                sql.push_str(" = 'text'");
                sql.push_str(&format!(" AND json_extract(args, ?{n})"));
                bind(sql, values, " = ?", Value::Text(v.clone()));
            }
            serde_json::Value::Number(v) => {
                sql.push_str(" IN ('integer', 'real')");
                let v = match v.as_i64() {
                    Some(i) => Value::Integer(i),
                    None => Value::Real(v.as_f64().unwrap_or(f64::NAN)),
                };
                sql.push_str(&format!(" AND json_extract(args, ?{n})"));
                bind(sql, values, " = ?", v);
            }
            serde_json::Value::Bool(true) => sql.push_str(" = 'true'"),
            serde_json::Value::Bool(false) => sql.push_str(" = 'false'"),
            _ => sql.push_str(" = 'null'"),
        }
    }
    if let Some(t) = filter.changed_by {
        let n = bind(
            sql,
            values,
            " AND COALESCE(finished_at, attempted_at, created_at) <= ?",
            Value::Integer(us(t)),
        );
        sql.push_str(&format!(" AND (state <> 'available' OR run_at <= ?{n})"));
    }
    if let Some(b) = filter.before {
        bind(sql, values, " AND id < ?", Value::Integer(b));
    }
}

/// The window of `filter`'s search inside args, read from the id order
/// alone (the table's own b-tree, whatever the other filters), so finding
/// it costs at most `search_window` steps: `None` when no job is below the
/// cursor; `Some(None)` when fewer than `search_window` are (the search
/// reads them all); else the window's newest and oldest ids.
fn search_window(
    conn: &Connection,
    filter: &JobFilter,
) -> Result<Option<Option<Searched>>, StoreError> {
    let size = filter.search_window.max(1);
    let (newest, oldest, n): (Option<i64>, Option<i64>, i64) = conn
        .prepare_cached(
            "SELECT MAX(id), MIN(id), COUNT(*) FROM \
             (SELECT id FROM jobs WHERE id < ?1 ORDER BY id DESC LIMIT ?2)",
        )
        .and_then(|mut s| {
            s.query_row(
                [
                    filter.before.unwrap_or(i64::MAX),
                    i64::try_from(size).unwrap_or(i64::MAX),
                ],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
        })
        .map_err(db)?;
    let full = usize::try_from(n).is_ok_and(|n| n >= size);
    Ok(newest.map(|newest| {
        oldest
            .filter(|_| full)
            .map(|oldest| Searched { newest, oldest })
    }))
}

/// Counts by queue and state, paused flags, and when the oldest runnable
/// job of each queue became runnable (the earliest run_at of its available
/// jobs and of its scheduled ones that are due at `now_us`), from the same scan.
pub(crate) fn queue_stats(conn: &Connection, now_us: i64) -> Result<Vec<QueueStats>, StoreError> {
    let mut by_queue: BTreeMap<String, QueueStats> = BTreeMap::new();
    let entry = |m: &mut BTreeMap<String, QueueStats>, q: String| {
        m.entry(q.clone())
            .or_insert_with(|| QueueStats {
                queue: q,
                paused: false,
                counts: BTreeMap::new(),
                oldest_runnable_at: None,
            })
            .counts
            .len()
    };
    let mut stmt = conn
        .prepare_cached(
            "SELECT queue, state, COUNT(*), \
               MIN(CASE WHEN state = 'available' OR (state = 'scheduled' AND run_at <= ?1) \
                   THEN run_at END) \
             FROM jobs GROUP BY queue, state",
        )
        .map_err(db)?;
    let rows: Vec<(String, String, i64, Option<i64>)> = stmt
        .query_map([now_us], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
        })
        .and_then(|rows| rows.collect())
        .map_err(db)?;
    for (queue, state, n, oldest) in rows {
        let state = parse_state(&state).map_err(db)?;
        entry(&mut by_queue, queue.clone());
        if let Some(s) = by_queue.get_mut(&queue) {
            s.counts.insert(state, n as u64);
            if let Some(t) = oldest.map(from_us) {
                s.oldest_runnable_at = Some(s.oldest_runnable_at.map_or(t, |o| o.min(t)));
            }
        }
    }
    let mut stmt = conn
        .prepare_cached("SELECT name FROM queues WHERE paused = 1")
        .map_err(db)?;
    let paused: Vec<String> = stmt
        .query_map([], |r| r.get(0))
        .and_then(|rows| rows.collect())
        .map_err(db)?;
    for q in paused {
        entry(&mut by_queue, q.clone());
        if let Some(s) = by_queue.get_mut(&q) {
            s.paused = true;
        }
    }
    Ok(by_queue.into_values().collect())
}

/// The earliest run_at of a scheduled job in `queues`.
pub(crate) fn next_scheduled(
    conn: &Connection,
    queues: &[String],
) -> Result<Option<DateTime<Utc>>, StoreError> {
    if queues.is_empty() {
        return Ok(None);
    }
    let marks: Vec<String> = (1..=queues.len()).map(|i| format!("?{i}")).collect();
    let sql = format!(
        "SELECT MIN(run_at) FROM jobs WHERE state = 'scheduled' AND queue IN ({})",
        marks.join(", ")
    );
    let v: Option<i64> = conn
        .prepare_cached(&sql)
        .and_then(|mut s| s.query_row(params_from_iter(queues.iter()), |r| r.get(0)))
        .map_err(db)?;
    Ok(v.map(from_us))
}
