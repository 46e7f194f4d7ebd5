//! Schedules: the `schedules` table and the exactly-once fire.
//!
//! A fire is one write operation, so it runs inside one `BEGIN IMMEDIATE`
//! transaction (the writer's group commit puts it in its own savepoint): the
//! compare-and-set on `next_fire_at`, the overlap check and the job insert
//! commit together or not at all. Stores in other processes on the same file
//! take the same database lock, so of several schedulers racing for one fire
//! time exactly one sees its expected `next_fire_at` (invariant 3).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use kyu_core::schedule::{
    self, Existing, Fire, FireResult, OverlapDecision, ScheduleRecord, ScheduleSpec, SkipReason,
};
use kyu_core::{EventType, JobId, JobState, Limits, NewEvent, ScheduleStore, StoreError};
use rusqlite::{params, Connection, OptionalExtension, Row};

use crate::row::{db, from_us, parse_state, us};
use crate::{never, SqliteStore};

/// Migration 2: the schedules table (appended to `schema::MIGRATIONS`).
pub(crate) const MIGRATION: &str = r#"
CREATE TABLE schedules (
    name             TEXT    PRIMARY KEY,
    cron             TEXT    NOT NULL,
    zone             TEXT    NOT NULL,
    job              TEXT    NOT NULL,
    overlap          TEXT    NOT NULL,
    misfire          TEXT    NOT NULL,
    enabled          INTEGER NOT NULL,
    next_fire_at     INTEGER,
    last_fire_at     INTEGER,
    last_job_id      INTEGER,
    buffered_fire_at INTEGER,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX schedules_due ON schedules (next_fire_at) WHERE enabled = 1;
"#;

/// Migration 3: which schedules a config file declared (appended to
/// `schema::MIGRATIONS`).
pub(crate) const MIGRATION_FROM_CONFIG: &str =
    "ALTER TABLE schedules ADD COLUMN from_config INTEGER NOT NULL DEFAULT 0;";

/// The columns [`record_from_row`] reads, in order (`s` is schedules, `j` the last job).
const COLUMNS: &str = "s.name, s.cron, s.zone, s.job, s.overlap, s.misfire, s.enabled, \
    s.next_fire_at, s.last_fire_at, s.last_job_id, j.state, s.buffered_fire_at, \
    s.created_at, s.updated_at, s.from_config \
    FROM schedules s LEFT JOIN jobs j ON j.id = s.last_job_id";

/// A row as read, before its text columns are parsed.
struct Raw {
    name: String,
    cron: String,
    zone: String,
    job: String,
    overlap: String,
    misfire: String,
    enabled: bool,
    next_fire_at: Option<i64>,
    last_fire_at: Option<i64>,
    last_job_id: Option<i64>,
    last_job_state: Option<String>,
    buffered_fire_at: Option<i64>,
    created_at: i64,
    updated_at: i64,
    from_config: bool,
}

fn raw_from_row(r: &Row<'_>) -> rusqlite::Result<Raw> {
    Ok(Raw {
        name: r.get(0)?,
        cron: r.get(1)?,
        zone: r.get(2)?,
        job: r.get(3)?,
        overlap: r.get(4)?,
        misfire: r.get(5)?,
        enabled: r.get(6)?,
        next_fire_at: r.get(7)?,
        last_fire_at: r.get(8)?,
        last_job_id: r.get(9)?,
        last_job_state: r.get(10)?,
        buffered_fire_at: r.get(11)?,
        created_at: r.get(12)?,
        updated_at: r.get(13)?,
        from_config: r.get(14)?,
    })
}

impl Raw {
    fn into_record(self) -> Result<ScheduleRecord, StoreError> {
        let spec = schedule::spec_from_stored(
            self.name.clone(),
            &self.cron,
            &self.zone,
            &self.job,
            &self.overlap,
            &self.misfire,
            self.enabled,
        )
        .map_err(|e| {
            StoreError::Database(format!(
                "stored schedule {:?} is unreadable: {e}",
                self.name
            ))
        })?;
        let last_job_state = match self.last_job_state {
            Some(s) => Some(parse_state(&s).map_err(db)?),
            None => None,
        };
        Ok(ScheduleRecord {
            spec,
            next_fire_at: self.next_fire_at.map(from_us),
            last_fire_at: self.last_fire_at.map(from_us),
            last_job_id: self.last_job_id,
            last_job_state,
            buffered_fire_at: self.buffered_fire_at.map(from_us),
            created_at: from_us(self.created_at),
            updated_at: from_us(self.updated_at),
            from_config: self.from_config,
        })
    }
}

fn query(
    conn: &Connection,
    filter: &str,
    p: &[&dyn rusqlite::ToSql],
) -> Result<Vec<ScheduleRecord>, StoreError> {
    let sql = format!("SELECT {COLUMNS} {filter}");
    let raws = conn
        .prepare_cached(&sql)
        .and_then(|mut s| {
            s.query_map(p, raw_from_row)?
                .collect::<rusqlite::Result<Vec<_>>>()
        })
        .map_err(db)?;
    raws.into_iter().map(Raw::into_record).collect()
}

fn get(conn: &Connection, name: &str) -> Result<Option<ScheduleRecord>, StoreError> {
    Ok(query(conn, "WHERE s.name = ?1", &[&name])?.pop())
}

fn upsert(
    conn: &Connection,
    now: DateTime<Utc>,
    spec: &ScheduleSpec,
) -> Result<ScheduleRecord, StoreError> {
    upsert_from(conn, now, spec, false)
}

/// Upserts `spec`, marked as declared by a config file or not.
fn upsert_from(
    conn: &Connection,
    now: DateTime<Utc>,
    spec: &ScheduleSpec,
    from_config: bool,
) -> Result<ScheduleRecord, StoreError> {
    let existing: Option<(String, String, bool, Option<i64>)> = conn
        .prepare_cached("SELECT cron, zone, enabled, next_fire_at FROM schedules WHERE name = ?1")
        .and_then(|mut s| {
            s.query_row([&spec.name], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
            })
            .optional()
        })
        .map_err(db)?;
    let next = schedule::next_fire_on_upsert(
        existing
            .as_ref()
            .map(|(cron, zone, enabled, next)| Existing {
                cron,
                zone,
                enabled: *enabled,
                next_fire_at: next.map(from_us),
            }),
        spec,
        now,
    );
    conn.prepare_cached(
        "INSERT INTO schedules (name, cron, zone, job, overlap, misfire, enabled, next_fire_at, \
         created_at, updated_at, from_config) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?9, ?10) \
         ON CONFLICT (name) DO UPDATE SET cron = excluded.cron, zone = excluded.zone, \
         job = excluded.job, overlap = excluded.overlap, misfire = excluded.misfire, \
         enabled = excluded.enabled, next_fire_at = excluded.next_fire_at, \
         updated_at = excluded.updated_at, from_config = excluded.from_config",
    )
    .and_then(|mut s| {
        s.execute(params![
            spec.name,
            spec.cron.as_str(),
            spec.zone.name(),
            spec.job.to_json(),
            spec.overlap.as_str(),
            spec.misfire.as_str(),
            spec.enabled,
            next.map(us),
            us(now),
            from_config,
        ])
    })
    .map_err(db)?;
    get(conn, &spec.name)?
        .ok_or_else(|| StoreError::Database("the upserted schedule is missing".into()))
}

/// [`ScheduleStore::sync_config_schedules`](kyu_core::ScheduleStore::sync_config_schedules),
/// inside one write (the writer's savepoint makes it all or nothing).
fn sync_config(
    conn: &Connection,
    now: DateTime<Utc>,
    declared: &[schedule::ConfigSchedule],
) -> Result<schedule::ConfigSync, StoreError> {
    let mut out = schedule::ConfigSync::default();
    for d in declared {
        let stored: Option<bool> = conn
            .prepare_cached("SELECT enabled FROM schedules WHERE name = ?1")
            .and_then(|mut s| s.query_row([&d.spec.name], |r| r.get(0)).optional())
            .map_err(db)?;
        let spec = d.spec.clone().enabled(d.enabled_given(stored));
        out.schedules.push(upsert_from(conn, now, &spec, true)?);
    }
    let mut stale: Vec<String> = conn
        .prepare_cached("SELECT name FROM schedules WHERE from_config = 1 ORDER BY name")
        .and_then(|mut s| {
            s.query_map([], |r| r.get(0))?
                .collect::<rusqlite::Result<Vec<String>>>()
        })
        .map_err(db)?;
    stale.retain(|n| !declared.iter().any(|d| &d.spec.name == n));
    for name in &stale {
        conn_execute(conn, "DELETE FROM schedules WHERE name = ?1", name)?;
    }
    out.removed = stale;
    Ok(out)
}

fn set_enabled(
    conn: &Connection,
    now: DateTime<Utc>,
    name: &str,
    enabled: bool,
) -> Result<bool, StoreError> {
    let Some(rec) = get(conn, name)? else {
        return Ok(false);
    };
    if rec.spec.enabled == enabled {
        return Ok(true);
    }
    // Re-enabled: what was missed while disabled is not a misfire.
    let next = if enabled {
        rec.spec.first_fire_after(now)
    } else {
        rec.next_fire_at
    };
    conn.prepare_cached(
        "UPDATE schedules SET enabled = ?2, next_fire_at = ?3, updated_at = ?4 WHERE name = ?1",
    )
    .and_then(|mut s| s.execute(params![name, enabled, next.map(us), us(now)]))
    .map_err(db)?;
    Ok(true)
}

/// The id and state of a job, if it still exists.
fn job_state(
    conn: &Connection,
    id: Option<JobId>,
) -> Result<Option<(JobId, JobState)>, StoreError> {
    let Some(id) = id else { return Ok(None) };
    let state: Option<String> = conn
        .prepare_cached("SELECT state FROM jobs WHERE id = ?1")
        .and_then(|mut s| s.query_row([id], |r| r.get(0)).optional())
        .map_err(db)?;
    match state {
        Some(s) => Ok(Some((id, parse_state(&s).map_err(db)?))),
        None => Ok(None),
    }
}

/// Inserts the job of `fire_time` from the stored template and records it as
/// the last job.
fn insert_job(
    conn: &Connection,
    now: DateTime<Utc>,
    limits: &Limits,
    name: &str,
    template: &str,
    fire_time: DateTime<Utc>,
) -> Result<JobId, StoreError> {
    let job = schedule::JobTemplate::stored_job_for(template, name, fire_time, limits)?;
    let (queue, kind) = (job.queue.clone(), job.kind.clone());
    let out = crate::enqueue::enqueue(conn, now, vec![job])?;
    let id = out[0].id;
    let mut e = NewEvent::job(now, EventType::ScheduleFired, id, &queue, &kind);
    e.facts.schedule = Some(name.to_string());
    e.facts.fire_time = Some(fire_time);
    crate::events::write_one(conn, &e)?;
    if out[0].duplicate {
        tracing::warn!(schedule = name, fire_time = %fire_time, job_id = id, "a job for this fire time already exists; not enqueued again");
    }
    conn.prepare_cached("UPDATE schedules SET last_fire_at = ?2, last_job_id = ?3 WHERE name = ?1")
        .and_then(|mut s| s.execute(params![name, us(fire_time), id]))
        .map_err(db)?;
    Ok(id)
}

fn fire(
    conn: &Connection,
    now: DateTime<Utc>,
    limits: &Limits,
    f: &Fire,
) -> Result<FireResult, StoreError> {
    // The compare-and-set: only the scheduler that read the current next fire time wins.
    let row: Option<(String, String, Option<i64>, Option<i64>)> = conn
        .prepare_cached(
            "UPDATE schedules SET next_fire_at = ?3 \
             WHERE name = ?1 AND next_fire_at = ?2 AND enabled = 1 \
             RETURNING job, overlap, last_job_id, buffered_fire_at",
        )
        .and_then(|mut s| {
            s.query_row(
                params![
                    f.name,
                    us(f.expected_next_fire_at),
                    f.new_next_fire_at.map(us)
                ],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .optional()
        })
        .map_err(db)?;
    let Some((template, overlap, last_job_id, buffered)) = row else {
        return Ok(FireResult::Lost);
    };
    if !f.enqueue {
        crate::events::write_one(
            conn,
            &schedule::skip_event(now, &f.name, f.fire_time, &SkipReason::Misfire),
        )?;
        return Ok(FireResult::Skipped {
            reason: SkipReason::Misfire,
        });
    }
    let overlap: schedule::OverlapPolicy = overlap.parse()?;
    let last = job_state(conn, last_job_id)?;
    match overlap.decide(last, buffered.is_some()) {
        OverlapDecision::Enqueue => {
            let job = insert_job(conn, now, limits, &f.name, &template, f.fire_time)?;
            Ok(FireResult::Fired { job })
        }
        OverlapDecision::Buffer => {
            conn.prepare_cached("UPDATE schedules SET buffered_fire_at = ?2 WHERE name = ?1")
                .and_then(|mut s| s.execute(params![f.name, us(f.fire_time)]))
                .map_err(db)?;
            crate::events::write_one(
                conn,
                &schedule::buffer_event(now, &f.name, f.fire_time, last.map(|(id, _)| id)),
            )?;
            Ok(FireResult::Buffered)
        }
        OverlapDecision::Skip(reason) => {
            crate::events::write_one(
                conn,
                &schedule::skip_event(now, &f.name, f.fire_time, &reason),
            )?;
            Ok(FireResult::Skipped { reason })
        }
    }
}

fn fire_buffered(
    conn: &Connection,
    now: DateTime<Utc>,
    limits: &Limits,
    name: &str,
    fire_time: DateTime<Utc>,
) -> Result<FireResult, StoreError> {
    let row: Option<(String, Option<i64>)> = conn
        .prepare_cached(
            "SELECT job, last_job_id FROM schedules \
             WHERE name = ?1 AND buffered_fire_at = ?2 AND enabled = 1",
        )
        .and_then(|mut s| {
            s.query_row(params![name, us(fire_time)], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()
        })
        .map_err(db)?;
    let Some((template, last_job_id)) = row else {
        return Ok(FireResult::Lost);
    };
    if let Some((id, state)) = job_state(conn, last_job_id)?.filter(|(_, s)| !s.is_finished()) {
        return Ok(FireResult::Skipped {
            reason: SkipReason::Overlap {
                last_job: id,
                state,
            },
        });
    }
    conn.prepare_cached("UPDATE schedules SET buffered_fire_at = NULL WHERE name = ?1")
        .and_then(|mut s| s.execute([name]))
        .map_err(db)?;
    let job = insert_job(conn, now, limits, name, &template, fire_time)?;
    Ok(FireResult::Fired { job })
}

fn trigger(
    conn: &Connection,
    now: DateTime<Utc>,
    limits: &Limits,
    name: &str,
) -> Result<Option<JobId>, StoreError> {
    let template: Option<String> = conn
        .prepare_cached("SELECT job FROM schedules WHERE name = ?1")
        .and_then(|mut s| s.query_row([name], |r| r.get(0)).optional())
        .map_err(db)?;
    match template {
        Some(t) => Ok(Some(insert_job(conn, now, limits, name, &t, now)?)),
        None => Ok(None),
    }
}

fn fired(r: &FireResult) -> bool {
    matches!(r, FireResult::Fired { .. })
}

fn triggered(r: &Option<JobId>) -> bool {
    r.is_some()
}

/// The schedules of a [`SqliteStore`]: each operation one read, or one
/// write in the writer's group commit.
#[async_trait]
impl ScheduleStore for SqliteStore {
    async fn upsert_schedule(&self, spec: ScheduleSpec) -> Result<ScheduleRecord, StoreError> {
        spec.validate(&self.inner.limits)?;
        let clock = self.now_fn();
        self.write(never, move |c| upsert(c, clock.now(), &spec))
            .await
    }

    async fn sync_config_schedules(
        &self,
        declared: Vec<schedule::ConfigSchedule>,
    ) -> Result<schedule::ConfigSync, StoreError> {
        for d in &declared {
            d.spec.validate(&self.inner.limits)?;
        }
        let clock = self.now_fn();
        self.write(never, move |c| sync_config(c, clock.now(), &declared))
            .await
    }

    async fn delete_schedule(&self, name: &str) -> Result<bool, StoreError> {
        let name = name.to_string();
        self.write(never, move |c| {
            conn_execute(c, "DELETE FROM schedules WHERE name = ?1", &name).map(|n| n > 0)
        })
        .await
    }

    async fn set_schedule_enabled(&self, name: &str, enabled: bool) -> Result<bool, StoreError> {
        let clock = self.now_fn();
        let name = name.to_string();
        self.write(never, move |c| set_enabled(c, clock.now(), &name, enabled))
            .await
    }

    async fn get_schedule(&self, name: &str) -> Result<Option<ScheduleRecord>, StoreError> {
        let name = name.to_string();
        self.read(move |c| get(c, &name)).await
    }

    async fn list_schedules(&self) -> Result<Vec<ScheduleRecord>, StoreError> {
        self.read(|c| query(c, "ORDER BY s.name", &[])).await
    }

    async fn due_schedules(&self, now: DateTime<Utc>) -> Result<Vec<ScheduleRecord>, StoreError> {
        let now = us(now);
        self.read(move |c| {
            query(
                c,
                "WHERE s.enabled = 1 AND (s.next_fire_at <= ?1 OR (s.buffered_fire_at IS NOT NULL \
                 AND (j.state IS NULL OR j.state IN ('completed', 'failed', 'cancelled')))) \
                 ORDER BY s.next_fire_at, s.name",
                &[&now],
            )
        })
        .await
    }

    async fn fire_schedule(&self, f: Fire) -> Result<FireResult, StoreError> {
        self.check_space()?;
        let clock = self.now_fn();
        let limits = self.inner.limits;
        self.write(fired, move |c| fire(c, clock.now(), &limits, &f))
            .await
    }

    async fn fire_buffered(
        &self,
        name: &str,
        fire_time: DateTime<Utc>,
    ) -> Result<FireResult, StoreError> {
        self.check_space()?;
        let clock = self.now_fn();
        let limits = self.inner.limits;
        let name = name.to_string();
        self.write(fired, move |c| {
            fire_buffered(c, clock.now(), &limits, &name, fire_time)
        })
        .await
    }

    async fn trigger_schedule(&self, name: &str) -> Result<Option<JobId>, StoreError> {
        self.check_space()?;
        let clock = self.now_fn();
        let limits = self.inner.limits;
        let name = name.to_string();
        self.write(triggered, move |c| trigger(c, clock.now(), &limits, &name))
            .await
    }
}

fn conn_execute(c: &Connection, sql: &str, name: &str) -> Result<usize, StoreError> {
    c.prepare_cached(sql)
        .and_then(|mut s| s.execute([name]))
        .map_err(db)
}
