//! The event log (see `kyu_core::event`): the `events` table, written by
//! each change inside the writer's transaction, so an event exists if and
//! only if its change committed.
//!
//! **One row per batch.** The events of one write (a claim of 100 jobs, a
//! batch of finishes) are one row: ids `first..=id` and their events as
//! JSON, so a batch costs one insert however many events it holds. Readers
//! expand the rows and skip the ids they already have.
//!
//! **What a batch shares is written once.** The events of a claim share
//! their type, queue, kind, attempt, state and worker; written per event
//! they made a claim's row of 100 events about 11 KB, three overflow pages
//! of WAL per commit. A row of several events is therefore
//! `{"s":{shared},"e":[{own},…]}`: those fields, when every event of the
//! row has the same value, are in `s` once (`encode_row`), the rest in each
//! event. Rows of one event, and rows written before this format, are a
//! plain array of whole events; readers accept both.
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

/// One event of a row, without the id and time the row gives it. In a
/// shared row it is also what every event shares (`s`) or what one event
/// has of its own (`e`), so every field may be absent.
#[derive(Debug, Default, PartialEq, Serialize, Deserialize)]
struct Part {
    #[serde(rename = "t", default, skip_serializing_if = "Option::is_none")]
    event_type: Option<EventType>,
    #[serde(rename = "j", default, skip_serializing_if = "Option::is_none")]
    job_id: Option<i64>,
    #[serde(rename = "q", default, skip_serializing_if = "Option::is_none")]
    queue: Option<String>,
    #[serde(rename = "k", default, skip_serializing_if = "Option::is_none")]
    kind: Option<String>,
    #[serde(rename = "a", default, skip_serializing_if = "Option::is_none")]
    attempt: Option<u32>,
    #[serde(rename = "f", default, skip_serializing_if = "no_facts")]
    facts: EventFacts,
}

fn no_facts(f: &EventFacts) -> bool {
    *f == EventFacts::default()
}

/// A row of several events: what they all share, and each one's own.
#[derive(Serialize, Deserialize)]
struct SharedRow {
    s: Part,
    e: Vec<Part>,
}

/// The events of one write, collected and then written as one row by
/// [`EventWriter::finish`], inside the write's transaction.
pub(crate) struct EventWriter<'c> {
    conn: &'c Connection,
    at: Option<i64>,
    events: Vec<Part>,
}

impl<'c> EventWriter<'c> {
    /// A writer on `conn` (the writer's connection, inside its transaction).
    pub(crate) fn new(conn: &'c Connection) -> Result<Self, StoreError> {
        Ok(EventWriter {
            conn,
            at: None,
            events: Vec::new(),
        })
    }

    fn push(&mut self, at_us: i64, part: Part) {
        // Every event of one write has the write's time.
        self.at.get_or_insert(at_us);
        self.events.push(part);
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
            Part {
                event_type: Some(t),
                job_id: Some(id),
                queue: Some(queue.to_owned()),
                kind: Some(kind.to_owned()),
                attempt,
                facts: facts.clone(),
            },
        );
        Ok(())
    }

    /// Adds one event.
    pub(crate) fn write(&mut self, e: &NewEvent) -> Result<(), StoreError> {
        self.push(
            us(e.at),
            Part {
                event_type: Some(e.event_type),
                job_id: e.job_id,
                queue: e.queue.clone(),
                kind: e.kind.clone(),
                attempt: e.attempt,
                facts: e.facts.clone(),
            },
        );
        Ok(())
    }

    /// Writes the collected events as one row (nothing when there are none).
    /// Every write that adds events calls it before it returns.
    pub(crate) fn finish(self) -> Result<(), StoreError> {
        let count = self.events.len() as i64;
        if count == 0 {
            return Ok(());
        }
        let data = encode_row(self.events).map_err(StoreError::database)?;
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
                    first + count - 1,
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

/// Moves `field` of every event into `shared` when all events hold the same
/// `Some` value there (each event's copy is then dropped).
fn share<T: PartialEq>(
    events: &mut [Part],
    field: impl Fn(&mut Part) -> &mut Option<T>,
    shared: &mut Option<T>,
) {
    let (head, rest) = events.split_first_mut().expect("a row has events");
    let all_same = field(head).is_some() && rest.iter_mut().all(|e| *field(e) == *field(head));
    if all_same {
        *shared = field(head).take();
        for e in rest {
            *field(e) = None;
        }
    }
}

/// A row's text: one event as a plain array; several as what they all
/// share (`s`) and each one's own (`e`). What a claim's or a finish batch's
/// events share: their type, queue, kind, attempt, and the facts state,
/// worker and reason ([`fill`] puts exactly these back).
fn encode_row(mut events: Vec<Part>) -> Result<String, serde_json::Error> {
    if events.len() == 1 {
        return serde_json::to_string(&events);
    }
    let mut s = Part::default();
    share(&mut events, |e| &mut e.event_type, &mut s.event_type);
    share(&mut events, |e| &mut e.queue, &mut s.queue);
    share(&mut events, |e| &mut e.kind, &mut s.kind);
    share(&mut events, |e| &mut e.attempt, &mut s.attempt);
    share(&mut events, |e| &mut e.facts.state, &mut s.facts.state);
    share(&mut events, |e| &mut e.facts.worker, &mut s.facts.worker);
    share(&mut events, |e| &mut e.facts.reason, &mut s.facts.reason);
    serde_json::to_string(&SharedRow { s, e: events })
}

/// Gives `own` the shared values it lacks: the fields [`encode_row`] shares.
fn fill(own: &mut Part, s: &Part) {
    fn or<T: Clone>(own: &mut Option<T>, shared: &Option<T>) {
        if own.is_none() {
            own.clone_from(shared);
        }
    }
    or(&mut own.event_type, &s.event_type);
    or(&mut own.queue, &s.queue);
    or(&mut own.kind, &s.kind);
    or(&mut own.attempt, &s.attempt);
    or(&mut own.facts.state, &s.facts.state);
    or(&mut own.facts.worker, &s.facts.worker);
    or(&mut own.facts.reason, &s.facts.reason);
}

/// The events of a row's text, whole: a plain array as it is; a shared
/// row with the shared values put back into each event.
fn decode_row(data: &str) -> Result<Vec<Part>, String> {
    let parts = if data.starts_with('{') {
        let SharedRow { s, mut e } = serde_json::from_str(data).map_err(|e| e.to_string())?;
        for own in &mut e {
            fill(own, &s);
        }
        e
    } else {
        serde_json::from_str(data).map_err(|e| e.to_string())?
    };
    match parts.iter().position(|p| p.event_type.is_none()) {
        Some(i) => Err(format!("event {i} of the row has no type")),
        None => Ok(parts),
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
    let packed = decode_row(data).map_err(|e| {
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
            event_type: p.event_type.expect("decode_row checked every type"),
            job_id: p.job_id,
            queue: p.queue,
            kind: p.kind,
            attempt: p.attempt,
            facts: p.facts,
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

#[cfg(test)]
mod tests {
    use super::*;

    fn started(id: i64, wait_ms: i64) -> Part {
        Part {
            event_type: Some(EventType::Started),
            job_id: Some(id),
            queue: Some("default".into()),
            kind: Some("email".into()),
            attempt: Some(1),
            facts: EventFacts {
                state: Some(kyu_core::JobState::Running),
                worker: Some("host-4242-0f3a9c".into()),
                wait_ms: Some(wait_ms),
                ..EventFacts::default()
            },
        }
    }

    fn copy(p: &Part) -> Part {
        serde_json::from_str(&serde_json::to_string(p).unwrap()).unwrap()
    }

    fn round_trip(events: &[Part]) -> (String, Vec<Part>) {
        let data = encode_row(events.iter().map(copy).collect()).unwrap();
        let back = decode_row(&data).unwrap();
        (data, back)
    }

    #[test]
    fn a_claims_shared_values_are_written_once_and_read_back_whole() {
        let events: Vec<_> = (0..100).map(|i| started(1_000_000 + i, i % 7)).collect();
        let (data, back) = round_trip(&events);
        assert_eq!(back, events);
        // The point of the format: a claim of 100 fits in one 4 KiB page.
        assert!(data.len() < 4096, "{} bytes: {data}", data.len());
        assert_eq!(data.matches("host-4242-0f3a9c").count(), 1, "{data}");
    }

    #[test]
    fn values_some_events_lack_are_not_given_to_them() {
        let mut other = started(7, 3);
        other.event_type = Some(EventType::QueuePaused);
        other.job_id = None;
        other.kind = None;
        other.attempt = None;
        other.facts = EventFacts::default();
        let mut retried = started(8, 3);
        retried.facts.worker = None;
        retried.facts.reason = Some("claimed ahead".into());
        let events = vec![started(5, 1), started(6, 1), other, retried];
        let (data, back) = round_trip(&events);
        assert!(data.starts_with('{'), "{data}");
        assert_eq!(back, events);
    }

    #[test]
    fn rows_of_one_event_and_rows_of_the_old_format_read() {
        let one = vec![started(9, 0)];
        let (data, back) = round_trip(&one);
        assert!(data.starts_with('['), "{data}");
        assert_eq!(back, one);
        // As every row was written before the shared format.
        let old = r#"[{"t":"started","j":1,"q":"q","k":"k","a":1,"f":{"state":"running","worker":"w","wait_ms":2}},{"t":"completed","j":1,"q":"q","k":"k","a":1,"f":{"state":"completed","duration_ms":4}}]"#;
        let back = decode_row(old).unwrap();
        assert_eq!(back.len(), 2);
        assert_eq!(back[1].event_type, Some(EventType::Completed));
        assert_eq!(back[1].facts.duration_ms, Some(4));
        assert_eq!(back[0].facts.worker.as_deref(), Some("w"));
        assert_eq!(back[1].facts.worker, None);
        assert!(decode_row(r#"[{"j":1}]"#).unwrap_err().contains("no type"));
    }
}
