//! Reads: one job, pages of jobs, queue statistics, the next scheduled time.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use kyu_core::{
    count_args_refused, JobCount, JobFilter, JobId, JobPage, JobRecord, QueueStats, Searched,
    StoreError,
};
use sqlx::{PgPool, Row};

use crate::row::{db, job_from_row, parse_state, JOB_COLUMNS};

/// One job.
pub(crate) async fn get(
    pool: &PgPool,
    schema: &str,
    id: JobId,
) -> Result<Option<JobRecord>, StoreError> {
    let sql = format!("SELECT {JOB_COLUMNS} FROM {schema}.jobs WHERE id = $1");
    let row = sqlx::query(&sql)
        .bind(id)
        .fetch_optional(pool)
        .await
        .map_err(db)?;
    row.as_ref().map(job_from_row).transpose()
}

/// The newest job with unique key `key` (the `jobs_unique` index).
pub(crate) async fn get_by_unique_key(
    pool: &PgPool,
    schema: &str,
    key: &str,
) -> Result<Option<JobRecord>, StoreError> {
    let sql = format!(
        "SELECT {JOB_COLUMNS} FROM {schema}.jobs WHERE unique_key = $1 ORDER BY id DESC LIMIT 1"
    );
    let row = sqlx::query(&sql)
        .bind(key)
        .fetch_optional(pool)
        .await
        .map_err(db)?;
    row.as_ref().map(job_from_row).transpose()
}

/// A page of jobs, newest first. Every filter is a parameter that may be
/// NULL, so the statement text is the same for every filter (a search
/// inside args adds its window's id range).
pub(crate) async fn list(
    pool: &PgPool,
    schema: &str,
    filter: &JobFilter,
) -> Result<JobPage, StoreError> {
    let limit = filter.limit.max(1);
    for m in &filter.args {
        m.check("args")?;
    }
    // A search inside args reads only its window: the newest
    // `search_window` jobs below the cursor, as a plain id range (not a
    // NULL-able parameter) so that a generic plan walks the primary key
    // through that range alone.
    let window = if filter.args.is_empty() {
        None
    } else {
        match search_window(pool, schema, filter).await? {
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
    let range = match window {
        Some(_) => " AND id >= $11 AND id < $12",
        None => "",
    };
    let sql = format!(
        "SELECT {JOB_COLUMNS} FROM {schema}.jobs WHERE {}{range} ORDER BY id DESC LIMIT $6",
        conditions(filter)
    );
    let mut query = bind_filter(
        &sql,
        filter,
        i64::try_from(limit).unwrap_or(i64::MAX - 1) + 1,
    );
    if window.is_some() {
        query = query
            .bind(window.flatten().map_or(i64::MIN, |w| w.oldest))
            .bind(filter.before.unwrap_or(i64::MAX));
    }
    let rows = query.fetch_all(pool).await.map_err(db)?;
    let jobs = rows
        .iter()
        .map(job_from_row)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(JobPage::of_rows(jobs, limit, window.flatten()))
}

/// How many jobs match `filter`, up to `cap`: the page's conditions in a
/// subquery that stops at `cap` + 1 rows and selects no column, so no job
/// is decoded and the scan ends at the cap.
pub(crate) async fn count(
    pool: &PgPool,
    schema: &str,
    filter: &JobFilter,
    cap: u64,
) -> Result<JobCount, StoreError> {
    if !filter.args.is_empty() {
        return Err(count_args_refused().into());
    }
    let sql = format!(
        "SELECT count(*) FROM (SELECT 1 FROM {schema}.jobs WHERE {} LIMIT $6) c",
        conditions(filter)
    );
    let found: i64 = bind_filter(&sql, filter, JobCount::sql_limit(cap))
        .fetch_one(pool)
        .await
        .map_err(db)?
        .try_get(0)
        .map_err(db)?;
    Ok(JobCount::capped(u64::try_from(found).unwrap_or(0), cap))
}

/// The conditions of `filter` after a WHERE, one text for pages and
/// counts so both select the same jobs. Every filter is a parameter that
/// may be NULL ($1 to $10, bound by [`bind_filter`]; $6 is the caller's
/// LIMIT), so the text is the same for every filter but those of one
/// state below.
fn conditions(filter: &JobFilter) -> String {
    // A condition the planner can match to an index, for the states whose
    // jobs are few among many. Running jobs each hold a worker's slot and
    // every one has a lease: saying so lets the planner read them through
    // jobs_lease instead of scanning every job (at a million jobs and none
    // running it read the whole table). Failed and cancelled jobs have
    // partial indexes by id (migration 11), which a generic plan uses only
    // when the state is in the text.
    let indexed = match filter.states.as_slice() {
        [kyu_core::JobState::Running] => "AND lease_expires_at IS NOT NULL ",
        [kyu_core::JobState::Failed] => "AND state = 'failed' ",
        [kyu_core::JobState::Cancelled] => "AND state = 'cancelled' ",
        _ => "",
    };
    format!(
        "($1::text[] IS NULL OR state = ANY($1)) {indexed}\
           AND ($2::text IS NULL OR queue = $2) \
           AND ($3::text IS NULL OR kind = $3) \
           AND ($4::text IS NULL OR $4 = ANY(tags)) \
           AND ($5::bigint IS NULL OR id < $5) \
           AND ($7::timestamptz IS NULL OR created_at >= $7) \
           AND ($8::timestamptz IS NULL OR created_at < $8) \
           AND ($9::text IS NULL OR NOT EXISTS (\
             SELECT 1 FROM jsonb_array_elements($9::text::jsonb) m \
             WHERE (args::jsonb #> ARRAY(SELECT jsonb_array_elements_text(m->'p'))) \
               IS DISTINCT FROM m->'v')) \
           AND ($10::timestamptz IS NULL OR (COALESCE(finished_at, attempted_at, created_at) <= $10 \
             AND (state <> 'available' OR run_at <= $10)))"
    )
}

/// `sql` (with [`conditions`]) with `filter`'s parameters bound, and
/// `limit` as $6.
fn bind_filter<'q>(
    sql: &'q str,
    filter: &'q JobFilter,
    limit: i64,
) -> sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments> {
    let states: Option<Vec<&str>> =
        (!filter.states.is_empty()).then(|| filter.states.iter().map(|s| s.as_str()).collect());
    let args = (!filter.args.is_empty()).then(|| {
        serde_json::Value::Array(
            filter
                .args
                .iter()
                .map(|m| serde_json::json!({"p": m.path, "v": m.value}))
                .collect(),
        )
        .to_string()
    });
    sqlx::query(sql)
        .bind(states)
        .bind(filter.queue.as_deref())
        .bind(filter.kind.as_deref())
        .bind(filter.tag.as_deref())
        .bind(filter.before)
        .bind(limit)
        .bind(filter.created_after)
        .bind(filter.created_before)
        .bind(args)
        .bind(filter.changed_by)
}

/// The window of `filter`'s search inside args, read from the primary key
/// alone (whatever the other filters), so finding it costs at most
/// `search_window` steps: `None` when no job is below the cursor;
/// `Some(None)` when fewer than `search_window` are (the search reads them
/// all); else the window's newest and oldest ids.
async fn search_window(
    pool: &PgPool,
    schema: &str,
    filter: &JobFilter,
) -> Result<Option<Option<Searched>>, StoreError> {
    let size = i64::try_from(filter.search_window.max(1)).unwrap_or(i64::MAX);
    let (newest, oldest, n): (Option<i64>, Option<i64>, i64) = sqlx::query_as(&format!(
        "SELECT max(id), min(id), count(*) FROM \
         (SELECT id FROM {schema}.jobs WHERE id < $1 ORDER BY id DESC LIMIT $2) w"
    ))
    .bind(filter.before.unwrap_or(i64::MAX))
    .bind(size)
    .fetch_one(pool)
    .await
    .map_err(db)?;
    Ok(newest.map(|newest| {
        oldest
            .filter(|_| n >= size)
            .map(|oldest| Searched { newest, oldest })
    }))
}

/// Counts by queue and state, and paused flags.
pub(crate) async fn queue_stats(
    pool: &PgPool,
    schema: &str,
    now: DateTime<Utc>,
) -> Result<Vec<QueueStats>, StoreError> {
    // With the counts, from the same scan: when each queue's oldest runnable
    // job (available, or scheduled and due) became runnable.
    let counts: Vec<(String, String, i64, Option<DateTime<Utc>>)> = sqlx::query_as(&format!(
        "SELECT queue, state, count(*), \
           min(run_at) FILTER (WHERE state = 'available' OR (state = 'scheduled' AND run_at <= $1)) \
         FROM {schema}.jobs GROUP BY queue, state"
    ))
    .bind(now)
    .fetch_all(pool)
    .await
    .map_err(db)?;
    let paused: Vec<String> =
        sqlx::query_scalar(&format!("SELECT name FROM {schema}.queues WHERE paused"))
            .fetch_all(pool)
            .await
            .map_err(db)?;
    let mut by_queue: BTreeMap<String, QueueStats> = BTreeMap::new();
    fn entry(m: &mut BTreeMap<String, QueueStats>, q: String) -> &mut QueueStats {
        m.entry(q.clone()).or_insert_with(|| QueueStats {
            queue: q,
            paused: false,
            counts: BTreeMap::new(),
            oldest_runnable_at: None,
        })
    }
    for (queue, state, n, oldest) in counts {
        let q = entry(&mut by_queue, queue);
        q.counts.insert(parse_state(&state)?, n as u64);
        if let Some(t) = oldest {
            q.oldest_runnable_at = Some(q.oldest_runnable_at.map_or(t, |o| o.min(t)));
        }
    }
    for q in paused {
        entry(&mut by_queue, q).paused = true;
    }
    Ok(by_queue.into_values().collect())
}

/// The earliest run_at of a scheduled job in `queues`.
pub(crate) async fn next_scheduled(
    pool: &PgPool,
    schema: &str,
    queues: &[String],
) -> Result<Option<DateTime<Utc>>, StoreError> {
    if queues.is_empty() {
        return Ok(None);
    }
    sqlx::query_scalar(&format!(
        "SELECT min(run_at) FROM {schema}.jobs WHERE state = 'scheduled' AND queue = ANY($1)"
    ))
    .bind(queues)
    .fetch_one(pool)
    .await
    .map_err(db)
}
