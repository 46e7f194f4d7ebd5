//! Attempt logs: the `job_logs` table, one row per (job, attempt), deleted
//! with its job by retention (`control::delete_finished`).

use async_trait::async_trait;
use kyu_core::{AttemptLogs, JobId, LogStore, StoreError};

use crate::row::db;
use crate::PgStore;

/// The attempt logs of a [`PgStore`]: one statement each.
#[async_trait]
impl LogStore for PgStore {
    async fn set_logs(&self, id: JobId, logs: AttemptLogs) -> Result<(), StoreError> {
        self.limit(async {
        let schema = self.schema();
        let sql = format!(
            "INSERT INTO {schema}.job_logs (job_id, attempt, stdout, stderr, stdout_bytes, stderr_bytes) \
             SELECT $1, $2, $3, $4, $5, $6 WHERE EXISTS (SELECT 1 FROM {schema}.jobs WHERE id = $1) \
             ON CONFLICT (job_id, attempt) DO UPDATE SET \
               stdout = excluded.stdout, stderr = excluded.stderr, \
               stdout_bytes = excluded.stdout_bytes, stderr_bytes = excluded.stderr_bytes"
        );
        let n = sqlx::query(&sql)
            .bind(id)
            .bind(logs.attempt as i32)
            // PostgreSQL text cannot hold NUL bytes; a command may print them.
            .bind(AttemptLogs::stored_text(&logs.stdout).as_ref())
            .bind(AttemptLogs::stored_text(&logs.stderr).as_ref())
            .bind(i64::try_from(logs.stdout_bytes).unwrap_or(i64::MAX))
            .bind(i64::try_from(logs.stderr_bytes).unwrap_or(i64::MAX))
            .execute(self.pool())
            .await
            .map_err(db)?
            .rows_affected();
        // Nothing inserted: the EXISTS found no job.
        if n == 0 {
            return Err(StoreError::NotFound(id));
        }
        Ok(())
        })
        .await
    }

    async fn logs(&self, id: JobId) -> Result<Vec<AttemptLogs>, StoreError> {
        self.limit(async {
            let rows: Vec<(i32, String, String, i64, i64)> = sqlx::query_as(&format!(
                "SELECT attempt, stdout, stderr, stdout_bytes, stderr_bytes FROM {}.job_logs \
             WHERE job_id = $1 ORDER BY attempt",
                self.schema()
            ))
            .bind(id)
            .fetch_all(self.pool())
            .await
            .map_err(db)?;
            Ok(rows
                .into_iter()
                .map(|(attempt, stdout, stderr, so, se)| AttemptLogs {
                    attempt: attempt as u32,
                    stdout,
                    stderr,
                    stdout_bytes: so.max(0) as u64,
                    stderr_bytes: se.max(0) as u64,
                })
                .collect())
        })
        .await
    }
}
