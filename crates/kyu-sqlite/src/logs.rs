//! Attempt logs: the `job_logs` table, one row per (job, attempt), deleted
//! with its job by retention.

use async_trait::async_trait;
use kyu_core::{AttemptLogs, JobId, LogStore, StoreError};
use rusqlite::{params, Connection, OptionalExtension};

use crate::row::db;
use crate::{never, SqliteStore};

/// Records (replaces) the logs of one attempt of job `id`.
fn set_logs(conn: &Connection, id: JobId, logs: &AttemptLogs) -> Result<(), StoreError> {
    let exists: Option<i64> = conn
        .prepare_cached("SELECT 1 FROM jobs WHERE id = ?1")
        .and_then(|mut s| s.query_row([id], |r| r.get(0)).optional())
        .map_err(db)?;
    if exists.is_none() {
        return Err(StoreError::NotFound(id));
    }
    conn.prepare_cached(
        "INSERT INTO job_logs (job_id, attempt, stdout, stderr, stdout_bytes, stderr_bytes) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (job_id, attempt) DO UPDATE SET \
         stdout = excluded.stdout, stderr = excluded.stderr, \
         stdout_bytes = excluded.stdout_bytes, stderr_bytes = excluded.stderr_bytes",
    )
    .and_then(|mut s| {
        s.execute(params![
            id,
            logs.attempt,
            AttemptLogs::stored_text(&logs.stdout),
            AttemptLogs::stored_text(&logs.stderr),
            logs.stdout_bytes as i64,
            logs.stderr_bytes as i64
        ])
    })
    .map(|_| ())
    .map_err(db)
}

/// The recorded output of every attempt of job `id`, oldest first.
fn logs(conn: &Connection, id: JobId) -> Result<Vec<AttemptLogs>, StoreError> {
    conn.prepare_cached(
        "SELECT attempt, stdout, stderr, stdout_bytes, stderr_bytes FROM job_logs \
         WHERE job_id = ?1 ORDER BY attempt",
    )
    .and_then(|mut s| {
        s.query_map([id], |r| {
            Ok(AttemptLogs {
                attempt: r.get(0)?,
                stdout: r.get(1)?,
                stderr: r.get(2)?,
                stdout_bytes: r.get::<_, i64>(3)? as u64,
                stderr_bytes: r.get::<_, i64>(4)? as u64,
            })
        })?
        .collect()
    })
    .map_err(db)
}

/// The attempt logs of a [`SqliteStore`]: a write in the group commit, a read.
#[async_trait]
impl LogStore for SqliteStore {
    async fn set_logs(&self, id: JobId, logs: AttemptLogs) -> Result<(), StoreError> {
        self.write(never, move |c| set_logs(c, id, &logs)).await
    }

    async fn logs(&self, id: JobId) -> Result<Vec<AttemptLogs>, StoreError> {
        self.read(move |c| logs(c, id)).await
    }
}
