//! Enqueue: inserting jobs, all or none, with race-free unique keys.
//!
//! A batch without unique keys is ONE statement (its own transaction): an
//! `INSERT … SELECT FROM unnest(…)` whose ids follow the request order, and
//! one `pg_notify` for the whole batch.
//!
//! A batch with unique keys runs in a transaction (a savepoint inside the
//! caller's transaction for [`PgStore::enqueue_in`](crate::PgStore::enqueue_in)):
//! first `pg_advisory_xact_lock` on every key (hashed, in hash order, so two
//! batches cannot deadlock), then each key is looked up, then the jobs that
//! are not duplicates are inserted. The locks are held until the transaction
//! ends, so a concurrent enqueue of the same key, in any process, waits and
//! then sees the committed job: no two unfinished jobs share a
//! `WhileUnfinished` key, and no two jobs share a `Within` key inside the window.

use chrono::{DateTime, Utc};
use kyu_core::{Enqueued, JobId, NewJob, StoreError, Uniqueness};
use sqlx::{Connection, PgConnection};

use crate::row::{db, ms, retry_json};

/// Where a job of the request ends up.
enum Slot {
    /// Inserted: the i-th inserted row.
    Insert(usize),
    /// A duplicate of a stored job.
    Existing(JobId),
    /// A duplicate of a job inserted by this batch (its slot index).
    SameBatch(usize),
}

/// Whether any job of the batch has a unique key.
pub(crate) fn has_keys(jobs: &[NewJob]) -> bool {
    jobs.iter().any(|j| j.unique_key.is_some())
}

/// Inserts `jobs` (validated; duplicates already resolved) in one statement; sends one notification on `channel` when `notify`.
/// Returns the new ids in request order.
async fn insert_rows(
    conn: &mut PgConnection,
    schema: &str,
    channel: &str,
    now: DateTime<Utc>,
    jobs: &[&NewJob],
) -> Result<Vec<JobId>, StoreError> {
    let n = jobs.len();
    let mut queue = Vec::with_capacity(n);
    let mut kind = Vec::with_capacity(n);
    let mut args = Vec::with_capacity(n);
    let mut priority = Vec::with_capacity(n);
    let mut max_attempts = Vec::with_capacity(n);
    let mut retry = Vec::with_capacity(n);
    let mut timeout = Vec::with_capacity(n);
    let mut key = Vec::with_capacity(n);
    let mut window = Vec::with_capacity(n);
    let mut tags = Vec::with_capacity(n);
    let mut run_at = Vec::with_capacity(n);
    let mut rate_key = Vec::with_capacity(n);
    for j in jobs {
        rate_key.push(j.rate_key.as_deref());
        queue.push(j.queue.as_str());
        kind.push(j.kind.as_str());
        args.push(j.args.as_str());
        priority.push(j.priority);
        max_attempts.push(i32::try_from(j.max_attempts).unwrap_or(i32::MAX));
        retry.push(retry_json(&j.retry));
        timeout.push(j.timeout.map(ms));
        key.push(j.unique_key.as_deref());
        window.push(match j.uniqueness {
            Uniqueness::WhileUnfinished => None,
            Uniqueness::Within(w) => Some(ms(w)),
        });
        tags.push(if j.tags.is_empty() {
            None
        } else {
            Some(serde_json::to_string(&j.tags).map_err(StoreError::database)?)
        });
        run_at.push(j.run_at.unwrap_or(now));
    }
    // Each job's `enqueued` event comes from the insert's RETURNING, so its
    // id is drawn after the row was written (module `events`).
    let insert_events = crate::events::insert(schema);
    let facts = crate::events::facts(&[
        ("state", "state"),
        ("run_at", "CASE WHEN state = 'scheduled' THEN run_at END"),
    ]);
    let rate_key_of = crate::rate_keys::key_of(schema, "u.rate_key", "u.queue", "u.args");
    let sql = format!(
        "WITH ins AS (\
           INSERT INTO {schema}.jobs (queue, kind, args, priority, state, max_attempts, retry, \
             timeout_ms, unique_key, unique_window_ms, tags, created_at, run_at, rate_key) \
           SELECT u.queue, u.kind, u.args, u.priority, \
             CASE WHEN u.run_at > $12 THEN 'scheduled' ELSE 'available' END, \
             u.max_attempts, u.retry, u.timeout_ms, u.unique_key, u.unique_window_ms, \
             CASE WHEN u.tags IS NULL THEN '{{}}'::text[] \
               ELSE ARRAY(SELECT json_array_elements_text(u.tags::json)) END, \
             $12, u.run_at, {rate_key_of} \
           FROM unnest($1::text[], $2::text[], $3::text[], $4::int[], $5::int[], $6::text[], \
             $7::bigint[], $8::text[], $9::bigint[], $10::text[], $11::timestamptz[], \
             $14::text[]) \
             WITH ORDINALITY AS u(queue, kind, args, priority, max_attempts, retry, timeout_ms, \
             unique_key, unique_window_ms, tags, run_at, rate_key, ord) \
           ORDER BY u.ord \
           RETURNING id, queue, kind, state, run_at), \
         ev AS ({insert_events} \
           SELECT $12, 'enqueued', id, queue, kind, NULL, {facts} FROM ins ORDER BY id) \
         SELECT COALESCE(array_agg(id ORDER BY id), '{{}}'::bigint[]), pg_notify($13, '')::text FROM ins"
    );
    let (mut ids, _): (Vec<i64>, Option<String>) = sqlx::query_as(&sql)
        .bind(queue)
        .bind(kind)
        .bind(args)
        .bind(priority)
        .bind(max_attempts)
        .bind(retry)
        .bind(timeout)
        .bind(key)
        .bind(window)
        .bind(tags)
        .bind(run_at)
        .bind(now)
        .bind(channel)
        .bind(rate_key)
        .fetch_one(&mut *conn)
        .await
        .map_err(db)?;
    if ids.len() != n {
        return Err(StoreError::Database(format!(
            "inserted {} jobs of {n}",
            ids.len()
        )));
    }
    // Identity values are drawn in the order the rows are produced (ORDER BY ord).
    ids.sort_unstable();
    Ok(ids)
}

/// Inserts a batch without unique keys: one statement, its own transaction
/// when `conn` is not in one.
pub(crate) async fn enqueue_plain(
    conn: &mut PgConnection,
    schema: &str,
    channel: &str,
    now: DateTime<Utc>,
    jobs: &[NewJob],
) -> Result<Vec<Enqueued>, StoreError> {
    let refs: Vec<&NewJob> = jobs.iter().collect();
    let ids = insert_rows(conn, schema, channel, now, &refs).await?;
    Ok(ids
        .into_iter()
        .map(|id| Enqueued {
            id,
            duplicate: false,
        })
        .collect())
}

/// Writes the `enqueued` event (marked duplicate) of every job of the batch
/// that returned an existing job, in one statement inside the batch's
/// transaction, after the batch's inserts (so the transaction has its xid).
async fn duplicate_events(
    conn: &mut PgConnection,
    schema: &str,
    now: DateTime<Utc>,
    jobs: &[NewJob],
    slots: &[Slot],
    ids: &[JobId],
) -> Result<(), StoreError> {
    let mut id = Vec::new();
    let mut queue = Vec::new();
    let mut kind = Vec::new();
    for (job, slot) in jobs.iter().zip(slots) {
        let existing = match slot {
            Slot::Insert(_) => continue,
            Slot::Existing(e) => *e,
            Slot::SameBatch(i) => match &slots[*i] {
                Slot::Insert(k) => ids[*k],
                _ => continue,
            },
        };
        id.push(existing);
        queue.push(job.queue.as_str());
        kind.push(job.kind.as_str());
    }
    if id.is_empty() {
        return Ok(());
    }
    // With only duplicates the transaction wrote nothing yet: draw no event
    // id before it has an xid (module `events`); pg_current_xact_id() in the
    // joined CTE assigns it before any row is produced.
    let sql = format!(
        "WITH x AS (SELECT pg_current_xact_id()) {} \
         SELECT $4, 'enqueued', u.id, u.queue, u.kind, NULL, '{{\"duplicate\":true}}' \
         FROM x, unnest($1::bigint[], $2::text[], $3::text[]) WITH ORDINALITY AS u(id, queue, kind, ord) \
         ORDER BY u.ord",
        crate::events::insert(schema)
    );
    sqlx::query(&sql)
        .bind(id)
        .bind(queue)
        .bind(kind)
        .bind(now)
        .execute(&mut *conn)
        .await
        .map_err(db)?;
    Ok(())
}

/// Takes the transaction-scoped advisory locks of unique `keys` (hashed, in
/// hash order, so two lockers cannot deadlock). Every writer that can make a
/// job with a key unfinished (enqueue, retry) takes them first, so a
/// concurrent one waits and then sees the committed job.
pub(crate) async fn lock_keys(
    conn: &mut PgConnection,
    schema: &str,
    keys: &[&str],
) -> Result<(), StoreError> {
    if keys.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "SELECT count(pg_advisory_xact_lock(h)) FROM \
         (SELECT DISTINCT hashtextextended($1 || k, 0) AS h FROM unnest($2::text[]) AS k ORDER BY h) AS x",
    )
    .bind(format!("kyu-unique:{schema}:"))
    .bind(keys)
    .execute(&mut *conn)
    .await
    .map_err(db)?;
    Ok(())
}

/// Inserts a batch with unique keys in a transaction (a savepoint when `conn`
/// is already in one): lock the keys, look them up, insert the rest.
pub(crate) async fn enqueue_keyed(
    conn: &mut PgConnection,
    schema: &str,
    channel: &str,
    now: DateTime<Utc>,
    jobs: &[NewJob],
) -> Result<Vec<Enqueued>, StoreError> {
    let mut tx = conn.begin().await.map_err(db)?;
    let keys: Vec<&str> = jobs
        .iter()
        .filter_map(|j| j.unique_key.as_deref())
        .collect();
    lock_keys(&mut tx, schema, &keys).await?;

    let unfinished = format!(
        "SELECT id FROM {schema}.jobs WHERE unique_key = $1 \
         AND state IN ('scheduled', 'available', 'running') ORDER BY id LIMIT 1"
    );
    let within = format!(
        "SELECT id FROM {schema}.jobs WHERE unique_key = $1 AND created_at > $2 \
         ORDER BY id LIMIT 1"
    );
    let mut slots = Vec::with_capacity(jobs.len());
    let mut to_insert: Vec<&NewJob> = Vec::new();
    for job in jobs {
        let Some(key) = job.unique_key.as_deref() else {
            slots.push(Slot::Insert(to_insert.len()));
            to_insert.push(job);
            continue;
        };
        let (stored, batch_counts): (Option<i64>, bool) = match job.uniqueness {
            Uniqueness::WhileUnfinished => (
                sqlx::query_scalar(&unfinished)
                    .bind(key)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(db)?,
                true,
            ),
            Uniqueness::Within(w) => {
                let since = chrono::Duration::from_std(w)
                    .ok()
                    .and_then(|w| now.checked_sub_signed(w))
                    .unwrap_or(DateTime::<Utc>::MIN_UTC);
                (
                    sqlx::query_scalar(&within)
                        .bind(key)
                        .bind(since)
                        .fetch_optional(&mut *tx)
                        .await
                        .map_err(db)?,
                    !w.is_zero(),
                )
            }
        };
        if let Some(id) = stored {
            slots.push(Slot::Existing(id));
            continue;
        }
        // An earlier job of this batch with the same key, inserted now.
        let earlier = jobs.iter().zip(&slots).position(|(j, s)| {
            batch_counts && matches!(s, Slot::Insert(_)) && j.unique_key.as_deref() == Some(key)
        });
        match earlier {
            Some(i) => slots.push(Slot::SameBatch(i)),
            None => {
                slots.push(Slot::Insert(to_insert.len()));
                to_insert.push(job);
            }
        }
    }
    let ids = if to_insert.is_empty() {
        Vec::new()
    } else {
        insert_rows(&mut tx, schema, channel, now, &to_insert).await?
    };
    duplicate_events(&mut tx, schema, now, jobs, &slots, &ids).await?;
    tx.commit().await.map_err(db)?;
    let id_of = |slot: &Slot| match slot {
        Slot::Insert(i) => ids[*i],
        Slot::Existing(id) => *id,
        Slot::SameBatch(_) => unreachable!("resolved below"),
    };
    Ok(slots
        .iter()
        .map(|s| match s {
            Slot::Insert(_) => Enqueued {
                id: id_of(s),
                duplicate: false,
            },
            Slot::Existing(id) => Enqueued {
                id: *id,
                duplicate: true,
            },
            Slot::SameBatch(i) => Enqueued {
                id: id_of(&slots[*i]),
                duplicate: true,
            },
        })
        .collect())
}
