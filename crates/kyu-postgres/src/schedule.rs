//! Schedules: the `schedules` table and the exactly-once fire.
//!
//! A fire is one transaction: the compare-and-set on `next_fire_at`, the
//! overlap check and the job insert commit together or not at all. The
//! compare-and-set is an `UPDATE … WHERE next_fire_at = expected`: schedulers
//! racing for one fire time queue on the row lock, and when the first commits
//! the others re-check the condition against the new row, find it changed
//! and lose (invariant 3, across any number of hosts).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use kyu_core::schedule::{
    self, Existing, Fire, FireResult, OverlapDecision, ScheduleRecord, ScheduleSpec, SkipReason,
};
use kyu_core::{EventType, JobId, JobState, Limits, NewEvent, ScheduleStore, StoreError};
use sqlx::postgres::PgRow;
use sqlx::{Connection, PgConnection, Row};

use crate::row::{db, parse_state};
use crate::PgStore;

/// The columns [`record_from_row`] reads, in order (`s` is schedules, `j` the last job).
fn columns(schema: &str) -> String {
    format!(
        "s.name, s.cron, s.zone, s.job, s.overlap, s.misfire, s.enabled, \
         s.next_fire_at, s.last_fire_at, s.last_job_id, j.state, s.buffered_fire_at, \
         s.created_at, s.updated_at, s.from_config \
         FROM {schema}.schedules s LEFT JOIN {schema}.jobs j ON j.id = s.last_job_id"
    )
}

fn record_from_row(r: &PgRow) -> Result<ScheduleRecord, StoreError> {
    let name: String = r.try_get(0).map_err(db)?;
    let text = |i: usize| -> Result<String, StoreError> { r.try_get(i).map_err(db) };
    let spec = schedule::spec_from_stored(
        name.clone(),
        &text(1)?,
        &text(2)?,
        &text(3)?,
        &text(4)?,
        &text(5)?,
        r.try_get(6).map_err(db)?,
    )
    .map_err(|e| StoreError::Database(format!("stored schedule {name:?} is unreadable: {e}")))?;
    let last_job_state: Option<String> = r.try_get(10).map_err(db)?;
    Ok(ScheduleRecord {
        spec,
        next_fire_at: r.try_get(7).map_err(db)?,
        last_fire_at: r.try_get(8).map_err(db)?,
        last_job_id: r.try_get(9).map_err(db)?,
        last_job_state: last_job_state.as_deref().map(parse_state).transpose()?,
        buffered_fire_at: r.try_get(11).map_err(db)?,
        created_at: r.try_get(12).map_err(db)?,
        updated_at: r.try_get(13).map_err(db)?,
        from_config: r.try_get(14).map_err(db)?,
    })
}

async fn get(
    conn: &mut PgConnection,
    schema: &str,
    name: &str,
) -> Result<Option<ScheduleRecord>, StoreError> {
    let sql = format!("SELECT {} WHERE s.name = $1", columns(schema));
    let row = sqlx::query(&sql)
        .bind(name)
        .fetch_optional(conn)
        .await
        .map_err(db)?;
    row.as_ref().map(record_from_row).transpose()
}

/// The id and state of a job, if it still exists.
async fn job_state(
    conn: &mut PgConnection,
    schema: &str,
    id: Option<JobId>,
) -> Result<Option<(JobId, JobState)>, StoreError> {
    let Some(id) = id else { return Ok(None) };
    let state: Option<String> =
        sqlx::query_scalar(&format!("SELECT state FROM {schema}.jobs WHERE id = $1"))
            .bind(id)
            .fetch_optional(conn)
            .await
            .map_err(db)?;
    state.map(|s| Ok((id, parse_state(&s)?))).transpose()
}

/// Inserts the job of `fire_time` from the stored template, inside the
/// caller's transaction, and records it as the schedule's last job.
async fn insert_job(
    conn: &mut PgConnection,
    store: &PgStore,
    limits: &Limits,
    name: &str,
    template: &str,
    fire_time: DateTime<Utc>,
) -> Result<JobId, StoreError> {
    let job = schedule::JobTemplate::stored_job_for(template, name, fire_time, limits)?;
    let (queue, kind) = (job.queue.clone(), job.kind.clone());
    let out = store.enqueue_in(conn, vec![job]).await?;
    let id = out[0].id;
    let mut e = NewEvent::job(store.now(), EventType::ScheduleFired, id, &queue, &kind);
    e.facts.schedule = Some(name.to_string());
    e.facts.fire_time = Some(fire_time);
    crate::events::write_one(conn, store.schema(), &e).await?;
    if out[0].duplicate {
        tracing::warn!(schedule = name, fire_time = %fire_time, job_id = id, "a job for this fire time already exists; not enqueued again");
    }
    sqlx::query(&format!(
        "UPDATE {}.schedules SET last_fire_at = $2, last_job_id = $3 WHERE name = $1",
        store.schema()
    ))
    .bind(name)
    .bind(fire_time)
    .bind(id)
    .execute(conn)
    .await
    .map_err(db)?;
    Ok(id)
}

/// Upserts `spec` inside the caller's transaction, marked as declared by a
/// config file or not; returns the stored record.
async fn upsert_in(
    tx: &mut PgConnection,
    s: &str,
    now: DateTime<Utc>,
    spec: &ScheduleSpec,
    from_config: bool,
) -> Result<ScheduleRecord, StoreError> {
    let existing: Option<(String, String, bool, Option<DateTime<Utc>>)> = sqlx::query_as(&format!(
        "SELECT cron, zone, enabled, next_fire_at FROM {s}.schedules WHERE name = $1 FOR UPDATE"
    ))
    .bind(&spec.name)
    .fetch_optional(&mut *tx)
    .await
    .map_err(db)?;
    let next = schedule::next_fire_on_upsert(
        existing
            .as_ref()
            .map(|(cron, zone, enabled, next)| Existing {
                cron,
                zone,
                enabled: *enabled,
                next_fire_at: *next,
            }),
        spec,
        now,
    );
    sqlx::query(&format!(
        "INSERT INTO {s}.schedules (name, cron, zone, job, overlap, misfire, enabled, \
         next_fire_at, created_at, updated_at, from_config) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9, $10) \
         ON CONFLICT (name) DO UPDATE SET cron = excluded.cron, zone = excluded.zone, \
         job = excluded.job, overlap = excluded.overlap, misfire = excluded.misfire, \
         enabled = excluded.enabled, next_fire_at = excluded.next_fire_at, \
         updated_at = excluded.updated_at, from_config = excluded.from_config"
    ))
    .bind(&spec.name)
    .bind(spec.cron.as_str())
    .bind(spec.zone.name())
    .bind(spec.job.to_json())
    .bind(spec.overlap.as_str())
    .bind(spec.misfire.as_str())
    .bind(spec.enabled)
    .bind(next)
    .bind(now)
    .bind(from_config)
    .execute(&mut *tx)
    .await
    .map_err(db)?;
    get(tx, s, &spec.name)
        .await?
        .ok_or_else(|| StoreError::Database("the upserted schedule is missing".into()))
}

/// What the fire's compare-and-set returns: template, overlap policy, last
/// job, buffered fire time.
type FireRow = (String, String, Option<i64>, Option<DateTime<Utc>>);

/// The schedules of a [`PgStore`]: each operation one statement or one
/// transaction.
#[async_trait]
impl ScheduleStore for PgStore {
    async fn upsert_schedule(&self, spec: ScheduleSpec) -> Result<ScheduleRecord, StoreError> {
        self.limit(async {
            spec.validate(&self.inner.limits)?;
            let now = self.now();
            let mut conn = self.conn().await?;
            let mut tx = conn.begin().await.map_err(db)?;
            let rec = upsert_in(&mut tx, self.schema(), now, &spec, false).await?;
            tx.commit().await.map_err(db)?;
            Ok(rec)
        })
        .await
    }

    async fn sync_config_schedules(
        &self,
        declared: Vec<schedule::ConfigSchedule>,
    ) -> Result<schedule::ConfigSync, StoreError> {
        self.limit(async {
            for d in &declared {
                d.spec.validate(&self.inner.limits)?;
            }
            let s = self.schema();
            let now = self.now();
            let mut conn = self.conn().await?;
            let mut tx = conn.begin().await.map_err(db)?;
            // Rows are locked in name order, so processes syncing at once queue
            // instead of deadlocking.
            let mut order: Vec<&schedule::ConfigSchedule> = declared.iter().collect();
            order.sort_by(|a, b| a.spec.name.cmp(&b.spec.name));
            let mut by_name = std::collections::HashMap::new();
            for d in order {
                let stored: Option<bool> = sqlx::query_scalar(&format!(
                    "SELECT enabled FROM {s}.schedules WHERE name = $1 FOR UPDATE"
                ))
                .bind(&d.spec.name)
                .fetch_optional(&mut *tx)
                .await
                .map_err(db)?;
                let spec = d.spec.clone().enabled(d.enabled_given(stored));
                let rec = upsert_in(&mut tx, s, now, &spec, true).await?;
                by_name.insert(d.spec.name.clone(), rec);
            }
            let names: Vec<String> = declared.iter().map(|d| d.spec.name.clone()).collect();
            let mut removed: Vec<String> = sqlx::query_scalar(&format!(
            "DELETE FROM {s}.schedules WHERE from_config AND NOT (name = ANY($1)) RETURNING name"
        ))
            .bind(&names)
            .fetch_all(&mut *tx)
            .await
            .map_err(db)?;
            tx.commit().await.map_err(db)?;
            removed.sort();
            let schedules = declared
                .iter()
                .filter_map(|d| by_name.remove(&d.spec.name))
                .collect();
            Ok(schedule::ConfigSync { schedules, removed })
        })
        .await
    }

    async fn delete_schedule(&self, name: &str) -> Result<bool, StoreError> {
        self.limit(async {
            let n = sqlx::query(&format!(
                "DELETE FROM {}.schedules WHERE name = $1",
                self.schema()
            ))
            .bind(name)
            .execute(self.pool())
            .await
            .map_err(db)?
            .rows_affected();
            Ok(n > 0)
        })
        .await
    }

    async fn set_schedule_enabled(&self, name: &str, enabled: bool) -> Result<bool, StoreError> {
        self.limit(async {
        let s = self.schema();
        let now = self.now();
        let mut conn = self.conn().await?;
        let mut tx = conn.begin().await.map_err(db)?;
        sqlx::query(&format!(
            "SELECT 1 FROM {s}.schedules WHERE name = $1 FOR UPDATE"
        ))
        .bind(name)
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        let Some(rec) = get(&mut tx, s, name).await? else {
            return Ok(false);
        };
        if rec.spec.enabled != enabled {
            // Re-enabled: what was missed while disabled is not a misfire.
            let next = if enabled {
                rec.spec.first_fire_after(now)
            } else {
                rec.next_fire_at
            };
            sqlx::query(&format!(
                "UPDATE {s}.schedules SET enabled = $2, next_fire_at = $3, updated_at = $4 WHERE name = $1"
            ))
            .bind(name)
            .bind(enabled)
            .bind(next)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        }
        tx.commit().await.map_err(db)?;
        Ok(true)
        })
        .await
    }

    async fn get_schedule(&self, name: &str) -> Result<Option<ScheduleRecord>, StoreError> {
        self.limit(async {
            let mut conn = self.conn().await?;
            get(&mut conn, self.schema(), name).await
        })
        .await
    }

    async fn list_schedules(&self) -> Result<Vec<ScheduleRecord>, StoreError> {
        self.limit(async {
            let sql = format!("SELECT {} ORDER BY s.name", columns(self.schema()));
            let rows = sqlx::query(&sql).fetch_all(self.pool()).await.map_err(db)?;
            rows.iter().map(record_from_row).collect()
        })
        .await
    }

    async fn due_schedules(&self, now: DateTime<Utc>) -> Result<Vec<ScheduleRecord>, StoreError> {
        self.limit(async {
        let sql = format!(
            "SELECT {} WHERE s.enabled AND (s.next_fire_at <= $1 OR (s.buffered_fire_at IS NOT NULL \
             AND (j.state IS NULL OR j.state IN ('completed', 'failed', 'cancelled')))) \
             ORDER BY s.next_fire_at, s.name",
            columns(self.schema())
        );
        let rows = sqlx::query(&sql)
            .bind(now)
            .fetch_all(self.pool())
            .await
            .map_err(db)?;
        rows.iter().map(record_from_row).collect()
        })
        .await
    }

    async fn fire_schedule(&self, f: Fire) -> Result<FireResult, StoreError> {
        self.limit(async {
            let s = self.schema();
            let limits = self.inner.limits;
            let mut conn = self.conn().await?;
            let mut tx = conn.begin().await.map_err(db)?;
            // The compare-and-set: only the scheduler that read the current next fire time wins.
            let row: Option<FireRow> = sqlx::query_as(&format!(
                "UPDATE {s}.schedules SET next_fire_at = $3 \
             WHERE name = $1 AND next_fire_at = $2 AND enabled \
             RETURNING job, overlap, last_job_id, buffered_fire_at"
            ))
            .bind(&f.name)
            .bind(f.expected_next_fire_at)
            .bind(f.new_next_fire_at)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db)?;
            let Some((template, overlap, last_job_id, buffered)) = row else {
                return Ok(FireResult::Lost);
            };
            let result = if !f.enqueue {
                let e =
                    schedule::skip_event(self.now(), &f.name, f.fire_time, &SkipReason::Misfire);
                crate::events::write_one(&mut tx, s, &e).await?;
                FireResult::Skipped {
                    reason: SkipReason::Misfire,
                }
            } else {
                let overlap: schedule::OverlapPolicy = overlap.parse()?;
                let last = job_state(&mut tx, s, last_job_id).await?;
                match overlap.decide(last, buffered.is_some()) {
                    OverlapDecision::Enqueue => {
                        let job =
                            insert_job(&mut tx, self, &limits, &f.name, &template, f.fire_time)
                                .await?;
                        FireResult::Fired { job }
                    }
                    OverlapDecision::Buffer => {
                        sqlx::query(&format!(
                            "UPDATE {s}.schedules SET buffered_fire_at = $2 WHERE name = $1"
                        ))
                        .bind(&f.name)
                        .bind(f.fire_time)
                        .execute(&mut *tx)
                        .await
                        .map_err(db)?;
                        let e = schedule::buffer_event(
                            self.now(),
                            &f.name,
                            f.fire_time,
                            last.map(|(id, _)| id),
                        );
                        crate::events::write_one(&mut tx, s, &e).await?;
                        FireResult::Buffered
                    }
                    OverlapDecision::Skip(reason) => {
                        let e = schedule::skip_event(self.now(), &f.name, f.fire_time, &reason);
                        crate::events::write_one(&mut tx, s, &e).await?;
                        FireResult::Skipped { reason }
                    }
                }
            };
            tx.commit().await.map_err(db)?;
            if matches!(result, FireResult::Fired { .. }) {
                self.wake();
            }
            self.events_written();
            Ok(result)
        })
        .await
    }

    async fn fire_buffered(
        &self,
        name: &str,
        fire_time: DateTime<Utc>,
    ) -> Result<FireResult, StoreError> {
        self.limit(async {
            let s = self.schema();
            let limits = self.inner.limits;
            let mut conn = self.conn().await?;
            let mut tx = conn.begin().await.map_err(db)?;
            let row: Option<(String, Option<i64>)> = sqlx::query_as(&format!(
                "SELECT job, last_job_id FROM {s}.schedules \
             WHERE name = $1 AND buffered_fire_at = $2 AND enabled FOR UPDATE"
            ))
            .bind(name)
            .bind(fire_time)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db)?;
            let Some((template, last_job_id)) = row else {
                return Ok(FireResult::Lost);
            };
            if let Some((id, state)) = job_state(&mut tx, s, last_job_id)
                .await?
                .filter(|(_, st)| !st.is_finished())
            {
                return Ok(FireResult::Skipped {
                    reason: SkipReason::Overlap {
                        last_job: id,
                        state,
                    },
                });
            }
            sqlx::query(&format!(
                "UPDATE {s}.schedules SET buffered_fire_at = NULL WHERE name = $1"
            ))
            .bind(name)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
            let job = insert_job(&mut tx, self, &limits, name, &template, fire_time).await?;
            tx.commit().await.map_err(db)?;
            self.wake();
            self.events_written();
            Ok(FireResult::Fired { job })
        })
        .await
    }

    async fn trigger_schedule(&self, name: &str) -> Result<Option<JobId>, StoreError> {
        self.limit(async {
            let s = self.schema();
            let limits = self.inner.limits;
            let now = self.now();
            let mut conn = self.conn().await?;
            let mut tx = conn.begin().await.map_err(db)?;
            let template: Option<String> = sqlx::query_scalar(&format!(
                "SELECT job FROM {s}.schedules WHERE name = $1 FOR UPDATE"
            ))
            .bind(name)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db)?;
            let Some(t) = template else { return Ok(None) };
            let job = insert_job(&mut tx, self, &limits, name, &t, now).await?;
            tx.commit().await.map_err(db)?;
            self.wake();
            self.events_written();
            Ok(Some(job))
        })
        .await
    }
}
