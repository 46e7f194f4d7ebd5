//! The event log (see `kyu_core::event`): the `events` table, written by
//! each change inside the writer's transaction, so an event exists if and
//! only if its change committed.
//!
//! **One row per batch.** The events of one write (a claim of 100 jobs, a
//! batch of finishes) are one row: ids `first..=id` and their events as a
//! JSON array, so a batch costs one insert however many events it holds.
//! Readers expand the rows and skip the ids they already have.
//!
//! **Ids.** The row key is the batch's last id; the next batch starts after
//! the greatest. The single writer (one lock across processes) assigns them
//! in commit order, so a reader that reads `id > last` never misses an event
//! committed later with a smaller id. Ids are not reused: pruning never
//! deletes the newest row. `event_log.pruned_through` records the highest id
//! pruned, so a reader asking for older ids is told it missed them.
//!
//! After a commit that wrote events the writer wakes event readers (module
//! `notify`).

use std::cell::Cell;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use kyu_core::{
    Event, EventFacts, EventGap, EventId, EventLog, EventRead, EventType, NewEvent, StoreError,
};
use rusqlite::{params, Connection, OptionalExtension};
use serde::{Deserialize, Serialize};

use crate::row::{db, from_us, us};
use crate::{never, SqliteStore};

/// The migration that makes the log.
pub(crate) const MIGRATION: &str = r#"
CREATE TABLE events (
    id    INTEGER PRIMARY KEY,
    first INTEGER NOT NULL,
    at    INTEGER NOT NULL,
    data  TEXT    NOT NULL
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

/// One event of a batch row, without the id and time the row gives it.
#[derive(Serialize, Deserialize)]
struct Packed<'a> {
    #[serde(rename = "t")]
    event_type: EventType,
    #[serde(rename = "j", default, skip_serializing_if = "Option::is_none")]
    job_id: Option<i64>,
    #[serde(rename = "q", default, skip_serializing_if = "Option::is_none", borrow)]
    queue: Option<std::borrow::Cow<'a, str>>,
    #[serde(rename = "k", default, skip_serializing_if = "Option::is_none", borrow)]
    kind: Option<std::borrow::Cow<'a, str>>,
    #[serde(rename = "a", default, skip_serializing_if = "Option::is_none")]
    attempt: Option<u32>,
    #[serde(rename = "f", default)]
    facts: std::borrow::Cow<'a, EventFacts>,
}

/// The events of one write, collected and then written as one row by
/// [`EventWriter::finish`], inside the write's transaction.
pub(crate) struct EventWriter<'c> {
    conn: &'c Connection,
    at: Option<i64>,
    data: Vec<u8>,
    count: i64,
}

impl<'c> EventWriter<'c> {
    /// A writer on `conn` (the writer's connection, inside its transaction).
    pub(crate) fn new(conn: &'c Connection) -> Result<Self, StoreError> {
        Ok(EventWriter {
            conn,
            at: None,
            data: Vec::new(),
            count: 0,
        })
    }

    fn push(&mut self, at_us: i64, p: &Packed<'_>) -> Result<(), StoreError> {
        // Every event of one write has the write's time.
        self.at.get_or_insert(at_us);
        self.data.push(if self.count == 0 { b'[' } else { b',' });
        serde_json::to_writer(&mut self.data, p).map_err(StoreError::database)?;
        self.count += 1;
        Ok(())
    }

    /// Adds one event about job `id`.
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
        self.push(
            at_us,
            &Packed {
                event_type: t,
                job_id: Some(id),
                queue: Some(queue.into()),
                kind: Some(kind.into()),
                attempt,
                facts: std::borrow::Cow::Borrowed(facts),
            },
        )
    }

    /// Adds one event.
    pub(crate) fn write(&mut self, e: &NewEvent) -> Result<(), StoreError> {
        self.push(
            us(e.at),
            &Packed {
                event_type: e.event_type,
                job_id: e.job_id,
                queue: e.queue.as_deref().map(Into::into),
                kind: e.kind.as_deref().map(Into::into),
                attempt: e.attempt,
                facts: std::borrow::Cow::Borrowed(&e.facts),
            },
        )
    }

    /// Writes the collected events as one row (nothing when there are none).
    /// Every write that adds events calls it before it returns.
    pub(crate) fn finish(mut self) -> Result<(), StoreError> {
        if self.count == 0 {
            return Ok(());
        }
        self.data.push(b']');
        let data =
            String::from_utf8(std::mem::take(&mut self.data)).map_err(StoreError::database)?;
        let last: EventId = self
            .conn
            .prepare_cached("SELECT COALESCE(max(id), 0) FROM events")
            .and_then(|mut s| s.query_row([], |r| r.get(0)))
            .map_err(db)?;
        let first = last + 1;
        self.conn
            .prepare_cached("INSERT INTO events (id, first, at, data) VALUES (?1, ?2, ?3, ?4)")
            .and_then(|mut s| {
                s.execute(params![
                    first + self.count - 1,
                    first,
                    self.at.unwrap_or(0),
                    data
                ])
            })
            .map_err(db)?;
        WRITTEN.with(|w| w.set(true));
        Ok(())
    }
}

/// Writes one event (for changes that write one or two).
pub(crate) fn write_one(conn: &Connection, e: &NewEvent) -> Result<(), StoreError> {
    let mut w = EventWriter::new(conn)?;
    w.write(e)?;
    w.finish()
}

/// The events of one stored row whose ids are above `after`.
fn expand(
    id: EventId,
    first: EventId,
    at: i64,
    data: &str,
    after: EventId,
    out: &mut Vec<Event>,
) -> Result<(), StoreError> {
    let packed: Vec<Packed<'_>> = serde_json::from_str(data).map_err(|e| {
        StoreError::Database(format!(
            "stored events {first}..={id} are not readable: {e}"
        ))
    })?;
    let at = from_us(at);
    for (i, p) in packed.into_iter().enumerate() {
        let eid = first + i as EventId;
        if eid <= after {
            continue;
        }
        out.push(Event {
            id: eid,
            at,
            event_type: p.event_type,
            job_id: p.job_id,
            queue: p.queue.map(|q| q.into_owned()),
            kind: p.kind.map(|k| k.into_owned()),
            attempt: p.attempt,
            facts: p.facts.into_owned(),
        });
    }
    Ok(())
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
    let rows: Vec<(EventId, EventId, i64, String)> = conn
        .prepare_cached("SELECT id, first, at, data FROM events WHERE id > ?1 ORDER BY id LIMIT ?2")
        .and_then(|mut s| {
            s.query_map(
                params![from, i64::try_from(limit).unwrap_or(i64::MAX)],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )?
            .collect()
        })
        .map_err(db)?;
    let mut events = Vec::new();
    for (id, first, at, data) in &rows {
        expand(*id, *first, *at, data, from, &mut events)?;
        if events.len() >= limit {
            events.truncate(limit);
            break;
        }
    }
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

/// Deletes the event rows before the first one written at or after
/// `before`, never the newest (its id keeps new ids above every old one).
/// Returns how many events.
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
    let n: i64 = conn
        .prepare_cached("SELECT COALESCE(sum(id - first + 1), 0) FROM events WHERE id < ?1")
        .and_then(|mut s| s.query_row([bound], |r| r.get(0)))
        .map_err(db)?;
    if n > 0 {
        conn.prepare_cached("DELETE FROM events WHERE id < ?1")
            .and_then(|mut s| s.execute([bound]))
            .map_err(db)?;
        // The kept rows start at the bound's row: every id before its first is gone.
        conn.prepare_cached(
            "UPDATE event_log SET pruned_through = \
             max(pruned_through, (SELECT first - 1 FROM events WHERE id = ?1))",
        )
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
