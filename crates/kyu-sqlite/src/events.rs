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
//! `{"s":{shared},"e":[{own},…]}`: every field (and every fact) with the
//! same value in all of the row's events is in `s` once, the rest in each
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
use serde_json::{Map, Value};

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
#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Packed<'a> {
    #[serde(rename = "t")]
    event_type: EventType,
    #[serde(rename = "j", default, skip_serializing_if = "Option::is_none")]
    job_id: Option<i64>,
    #[serde(rename = "q", default, skip_serializing_if = "Option::is_none")]
    queue: Option<std::borrow::Cow<'a, str>>,
    #[serde(rename = "k", default, skip_serializing_if = "Option::is_none")]
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
    events: Vec<Map<String, Value>>,
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

    fn push(&mut self, at_us: i64, p: &Packed<'_>) -> Result<(), StoreError> {
        // Every event of one write has the write's time.
        self.at.get_or_insert(at_us);
        match serde_json::to_value(p).map_err(StoreError::database)? {
            Value::Object(m) => self.events.push(m),
            other => {
                return Err(StoreError::Database(format!(
                    "an event encoded as {other}, not an object"
                )))
            }
        }
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
    pub(crate) fn finish(self) -> Result<(), StoreError> {
        let count = self.events.len() as i64;
        if count == 0 {
            return Ok(());
        }
        let data = encode_row(self.events)?;
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

/// The key of the facts object inside an event.
const FACTS: &str = "f";

/// A row's text: one event as a plain array; several as the values they
/// all share (`s`) and each one's own (`e`).
fn encode_row(mut events: Vec<Map<String, Value>>) -> Result<String, StoreError> {
    if events.len() == 1 {
        return serde_json::to_string(&events).map_err(StoreError::database);
    }
    let mut shared = common(&events);
    let shared_facts = events
        .iter()
        .map(|e| match e.get(FACTS) {
            Some(Value::Object(f)) => f.clone(),
            _ => Map::new(),
        })
        .collect::<Vec<_>>();
    let shared_facts = common(&shared_facts);
    shared.remove(FACTS);
    for e in &mut events {
        e.retain(|k, v| shared.get(k) != Some(v));
        if let Some(Value::Object(f)) = e.get_mut(FACTS) {
            f.retain(|k, v| shared_facts.get(k) != Some(v));
            if f.is_empty() {
                e.remove(FACTS);
            }
        }
    }
    if !shared_facts.is_empty() {
        shared.insert(FACTS.to_string(), Value::Object(shared_facts));
    }
    serde_json::to_string(&serde_json::json!({ "s": shared, "e": events }))
        .map_err(StoreError::database)
}

/// The entries every map holds with the same value.
fn common(maps: &[Map<String, Value>]) -> Map<String, Value> {
    let Some((head, rest)) = maps.split_first() else {
        return Map::new();
    };
    head.iter()
        .filter(|(k, v)| rest.iter().all(|m| m.get(*k) == Some(*v)))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// The events of a row's text, whole: a plain array as it is; a shared
/// row with the shared values put back into each event.
fn decode_row(data: &str) -> Result<Vec<Packed<'static>>, serde_json::Error> {
    if !data.starts_with('{') {
        return serde_json::from_str(data);
    }
    #[derive(Deserialize)]
    struct Shared {
        s: Map<String, Value>,
        e: Vec<Map<String, Value>>,
    }
    let Shared { s, e } = serde_json::from_str(data)?;
    let shared_facts = match s.get(FACTS) {
        Some(Value::Object(f)) => Some(f),
        _ => None,
    };
    e.into_iter()
        .map(|mut own| {
            for (k, v) in &s {
                if k != FACTS {
                    own.entry(k.clone()).or_insert_with(|| v.clone());
                }
            }
            if let Some(sf) = shared_facts {
                let f = own
                    .entry(FACTS.to_string())
                    .or_insert_with(|| Value::Object(Map::new()));
                if let Value::Object(f) = f {
                    for (k, v) in sf {
                        f.entry(k.clone()).or_insert_with(|| v.clone());
                    }
                }
            }
            serde_json::from_value(Value::Object(own))
        })
        .collect()
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::borrow::Cow;

    fn started(id: i64, wait_ms: i64) -> Packed<'static> {
        Packed {
            event_type: EventType::Started,
            job_id: Some(id),
            queue: Some("default".into()),
            kind: Some("email".into()),
            attempt: Some(1),
            facts: Cow::Owned(EventFacts {
                state: Some(kyu_core::JobState::Running),
                worker: Some("host-4242-0f3a9c".into()),
                wait_ms: Some(wait_ms),
                ..EventFacts::default()
            }),
        }
    }

    fn round_trip(events: &[Packed<'static>]) -> (String, Vec<Packed<'static>>) {
        let maps = events
            .iter()
            .map(|p| match serde_json::to_value(p).unwrap() {
                Value::Object(m) => m,
                _ => unreachable!(),
            })
            .collect();
        let data = encode_row(maps).unwrap();
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
        other.event_type = EventType::QueuePaused;
        other.job_id = None;
        other.kind = None;
        other.attempt = None;
        other.facts = Cow::Owned(EventFacts::default());
        let events = vec![started(5, 1), started(6, 1), other];
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
        assert_eq!(back[1].event_type, EventType::Completed);
        assert_eq!(back[1].facts.duration_ms, Some(4));
        assert_eq!(back[0].facts.worker.as_deref(), Some("w"));
        assert_eq!(back[1].facts.worker, None);
    }
}
