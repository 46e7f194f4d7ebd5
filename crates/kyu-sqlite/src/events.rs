//! The event log (see `kyu_core::event`): the `events` table, written by
//! each change inside the writer's transaction, so an event exists if and
//! only if its change committed.
//!
//! Ids are rowids: the single writer (one lock across processes) assigns
//! them in commit order, so a reader that reads `id > last` never misses an
//! event committed later with a smaller id. Rowids are not reused: pruning
//! never deletes the newest row, so the next id is always above every id
//! ever handed out. `event_log.pruned_through` records the highest id
//! pruned, so a reader asking for older ids is told it missed them.
//!
//! Writes are prepared statements on the writer's connection, in the same
//! transaction as the change, with no round trip; after a commit that wrote
//! events the writer wakes event readers (module `notify`).

use std::cell::Cell;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use kyu_core::{
    Event, EventFacts, EventGap, EventId, EventLog, EventRead, EventType, NewEvent, StoreError,
};
use rusqlite::{params, CachedStatement, Connection, OptionalExtension};

use crate::row::{db, from_us, parse_json, us};
use crate::{never, SqliteStore};

/// The migration that makes the log.
pub(crate) const MIGRATION: &str = r#"
CREATE TABLE events (
    id      INTEGER PRIMARY KEY,
    at      INTEGER NOT NULL,
    type    TEXT    NOT NULL,
    job_id  INTEGER,
    queue   TEXT,
    kind    TEXT,
    attempt INTEGER,
    data    TEXT    NOT NULL
);
CREATE TABLE event_log (
    one            INTEGER PRIMARY KEY CHECK (one = 1),
    pruned_through INTEGER NOT NULL
);
INSERT INTO event_log (one, pruned_through) VALUES (1, 0);
"#;

thread_local! {
    /// Set by every event insert on the writer thread; the writer reads and
    /// clears it after each group, to wake event readers after the commit.
    static WRITTEN: Cell<bool> = const { Cell::new(false) };
}

/// Whether events were written since the last call (on this thread).
pub(crate) fn take_written() -> bool {
    WRITTEN.with(|w| w.replace(false))
}

/// Writes events inside the open transaction with one cached statement.
pub(crate) struct EventWriter<'c> {
    insert: CachedStatement<'c>,
}

impl<'c> EventWriter<'c> {
    /// A writer on `conn` (the writer's connection, inside its transaction).
    pub(crate) fn new(conn: &'c Connection) -> Result<Self, StoreError> {
        Ok(EventWriter {
            insert: conn
                .prepare_cached(
                    "INSERT INTO events (at, type, job_id, queue, kind, attempt, data) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                )
                .map_err(db)?,
        })
    }

    /// Writes one event about job `id`.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn job(
        &mut self,
        at_us: i64,
        t: EventType,
        id: i64,
        queue: &str,
        kind: &str,
        attempt: Option<u32>,
        facts: &EventFacts,
    ) -> Result<(), StoreError> {
        WRITTEN.with(|w| w.set(true));
        self.insert
            .execute(params![
                at_us,
                t.as_str(),
                id,
                queue,
                kind,
                attempt,
                facts.to_json()
            ])
            .map(|_| ())
            .map_err(db)
    }

    /// Writes one event.
    pub(crate) fn write(&mut self, e: &NewEvent) -> Result<(), StoreError> {
        WRITTEN.with(|w| w.set(true));
        self.insert
            .execute(params![
                us(e.at),
                e.event_type.as_str(),
                e.job_id,
                e.queue,
                e.kind,
                e.attempt,
                e.facts.to_json()
            ])
            .map(|_| ())
            .map_err(db)
    }
}

/// Writes one event (for changes that write one or two).
pub(crate) fn write_one(conn: &Connection, e: &NewEvent) -> Result<(), StoreError> {
    EventWriter::new(conn)?.write(e)
}

fn event_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Event> {
    let t: String = r.get(2)?;
    Ok(Event {
        id: r.get(0)?,
        at: from_us(r.get(1)?),
        event_type: t.parse().map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(2, rusqlite::types::Type::Text, Box::new(e))
        })?,
        job_id: r.get(3)?,
        queue: r.get(4)?,
        kind: r.get(5)?,
        attempt: r.get(6)?,
        facts: parse_json(7, &r.get::<_, String>(7)?)?,
    })
}

/// Up to `limit` events after `after`. Every committed event is final here
/// (one writer, commit order = id order), so no horizon is needed.
fn read(conn: &Connection, after: EventId, limit: usize) -> Result<EventRead, StoreError> {
    let pruned: EventId = conn
        .prepare_cached("SELECT pruned_through FROM event_log")
        .and_then(|mut s| s.query_row([], |r| r.get(0)))
        .map_err(db)?;
    let (gap, from) = if after < pruned {
        (
            Some(EventGap {
                after,
                pruned_through: pruned,
            }),
            pruned,
        )
    } else {
        (None, after)
    };
    let events: Vec<Event> = conn
        .prepare_cached(
            "SELECT id, at, type, job_id, queue, kind, attempt, data FROM events \
             WHERE id > ?1 ORDER BY id LIMIT ?2",
        )
        .and_then(|mut s| {
            s.query_map(
                params![from, i64::try_from(limit).unwrap_or(i64::MAX)],
                event_from_row,
            )?
            .collect()
        })
        .map_err(db)?;
    let next = events.last().map_or(from, |e| e.id);
    Ok(EventRead { gap, events, next })
}

fn last_id(conn: &Connection) -> Result<EventId, StoreError> {
    let max: Option<EventId> = conn
        .prepare_cached("SELECT max(id) FROM events")
        .and_then(|mut s| s.query_row([], |r| r.get(0)))
        .map_err(db)?;
    let pruned: EventId = conn
        .prepare_cached("SELECT pruned_through FROM event_log")
        .and_then(|mut s| s.query_row([], |r| r.get(0)))
        .map_err(db)?;
    Ok(max.unwrap_or(0).max(pruned))
}

/// Deletes the events before the first one written at or after `before`,
/// never the newest (its rowid keeps new ids above every old one).
fn prune(conn: &Connection, before: DateTime<Utc>) -> Result<u64, StoreError> {
    let Some(max): Option<EventId> = conn
        .prepare_cached("SELECT max(id) FROM events")
        .and_then(|mut s| s.query_row([], |r| r.get(0)))
        .map_err(db)?
    else {
        return Ok(0);
    };
    // Events are in time order by id, so the kept ones start at the first
    // written at or after `before`; the scan reads only the rows it deletes.
    let bound: EventId = conn
        .prepare_cached("SELECT id FROM events WHERE at >= ?1 ORDER BY id LIMIT 1")
        .and_then(|mut s| s.query_row([us(before)], |r| r.get(0)).optional())
        .map_err(db)?
        .unwrap_or(max)
        .min(max);
    let n = conn
        .prepare_cached("DELETE FROM events WHERE id < ?1")
        .and_then(|mut s| s.execute([bound]))
        .map_err(db)?;
    if n > 0 {
        conn.prepare_cached("UPDATE event_log SET pruned_through = max(pruned_through, ?1 - 1)")
            .and_then(|mut s| s.execute([bound]))
            .map_err(db)?;
    }
    Ok(n as u64)
}

#[async_trait]
impl EventLog for SqliteStore {
    fn subscribe_events(&self) -> tokio::sync::watch::Receiver<u64> {
        self.inner.events.subscribe()
    }

    async fn read_events(&self, after: EventId, limit: usize) -> Result<EventRead, StoreError> {
        let limit = limit.max(1);
        self.read(move |c| read(c, after, limit)).await
    }

    async fn last_event_id(&self) -> Result<EventId, StoreError> {
        self.read(last_id).await
    }

    async fn prune_events(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        self.write(never, move |c| prune(c, before)).await
    }
}
