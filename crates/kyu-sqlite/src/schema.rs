//! The schema and its migrations, applied in order on open and recorded in
//! `PRAGMA user_version`.

use rusqlite::Connection;

use kyu_core::StoreError;

use crate::db;

/// The migrations, oldest first. Migration `i` brings the schema from version
/// `i` to `i + 1`. Never edit a released migration: append a new one.
pub(crate) const MIGRATIONS: &[&str] = &[
    // 1: jobs, queues, attempt logs.
    r#"
CREATE TABLE jobs (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    queue            TEXT    NOT NULL,
    kind             TEXT    NOT NULL,
    args             TEXT    NOT NULL,
    priority         INTEGER NOT NULL DEFAULT 0,
    state            TEXT    NOT NULL,
    attempt          INTEGER NOT NULL DEFAULT 0,
    max_attempts     INTEGER NOT NULL,
    retry            TEXT    NOT NULL,
    timeout_ms       INTEGER,
    unique_key       TEXT,
    unique_window_ms INTEGER,
    tags             TEXT    NOT NULL DEFAULT '[]',
    created_at       INTEGER NOT NULL,
    run_at           INTEGER NOT NULL,
    attempted_at     INTEGER,
    finished_at      INTEGER,
    lease_expires_at INTEGER,
    worker           TEXT,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    progress_percent INTEGER,
    progress_message TEXT,
    result           TEXT,
    errors           TEXT    NOT NULL DEFAULT '[]'
);
CREATE INDEX jobs_claim     ON jobs (queue, priority, run_at, id) WHERE state = 'available';
CREATE INDEX jobs_scheduled ON jobs (run_at) WHERE state = 'scheduled';
CREATE INDEX jobs_lease     ON jobs (lease_expires_at) WHERE state = 'running';
CREATE INDEX jobs_unique    ON jobs (unique_key, id) WHERE unique_key IS NOT NULL;
CREATE INDEX jobs_finished  ON jobs (finished_at) WHERE finished_at IS NOT NULL;
CREATE TABLE queues (
    name   TEXT    PRIMARY KEY,
    paused INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
CREATE TABLE job_logs (
    job_id       INTEGER NOT NULL,
    attempt      INTEGER NOT NULL,
    stdout       TEXT    NOT NULL,
    stderr       TEXT    NOT NULL,
    stdout_bytes INTEGER NOT NULL,
    stderr_bytes INTEGER NOT NULL,
    PRIMARY KEY (job_id, attempt)
) WITHOUT ROWID;
"#,
    // 2: schedules.
    crate::schedule::MIGRATION,
    // 3: schedules declared by a config file.
    crate::schedule::MIGRATION_FROM_CONFIG,
    // 4: claim by kind (the claim index gains the kind, so a claim walks
    //    each (queue, kind) in claim order and skips other kinds unread), and
    //    the worker registry.
    r#"
DROP INDEX jobs_claim;
CREATE INDEX jobs_claim ON jobs (queue, kind, priority, run_at, id) WHERE state = 'available';
CREATE TABLE workers (
    id         TEXT    PRIMARY KEY,
    queues     TEXT    NOT NULL,
    kinds      TEXT,
    last_seen  INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
) WITHOUT ROWID;
"#,
    // 5: API tokens (hashes only) and per-database secrets.
    crate::tokens::MIGRATION,
    // 6: the event log.
    crate::events::MIGRATION,
    // 7: queue limits (global concurrency, rate) and the rate window's starts.
    crate::limits::MIGRATION,
    // 8: batches (counts, callbacks) and the batch of a job.
    crate::batches::MIGRATION,
    // 9: jobs claimed ahead (a worker's prefetch) and not started yet.
    crate::prefetch::MIGRATION,
    // 10: rate keys: the key of each job and of each recorded start.
    crate::rate_keys::MIGRATION,
    // 11: the failed and the cancelled jobs, newest first. Lists and bulk
    // counts of those states read them instead of walking every row (at a
    // million jobs and none failed, a dry-run count of "all failed" read the
    // whole table); only jobs entering those states pay the index write.
    r#"
CREATE INDEX jobs_failed    ON jobs (id) WHERE state = 'failed';
CREATE INDEX jobs_cancelled ON jobs (id) WHERE state = 'cancelled';
"#,
];

/// Brings the database up to the latest schema, in one `BEGIN IMMEDIATE`
/// transaction so that processes opening the same new file at once do not race.
pub(crate) fn migrate(conn: &Connection) -> Result<(), StoreError> {
    conn.execute_batch("BEGIN IMMEDIATE").map_err(db)?;
    let result = (|| {
        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(db)?;
        let latest = MIGRATIONS.len() as i64;
        if version > latest {
            return Err(StoreError::Database(format!(
                "the database schema is version {version}, newer than this kyu understands \
                 (up to {latest}); upgrade kyu"
            )));
        }
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
            tracing::info!(version = i + 1, "applying kyu-sqlite migration");
            conn.execute_batch(sql).map_err(db)?;
        }
        if version < latest {
            conn.execute_batch(&format!("PRAGMA user_version = {latest}"))
                .map_err(db)?;
        }
        Ok(())
    })();
    match result {
        Ok(()) => conn.execute_batch("COMMIT").map_err(db),
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK");
            Err(e)
        }
    }
}
