//! Throughput and failures over time, for the overview's charts: a small
//! rollup of the event log, kept in this server's memory and shared by
//! every viewer.
//!
//! The rollup counts, per minute and queue, the `completed` events and the
//! failed attempts (`retrying` and `failed` events) of the last 24 hours.
//! It follows the log from where it last read ([`kyu::store::EventLog::read_events`],
//! [`PAGE`] events per query, in id order: each query is bounded and reads
//! each event once), so a page view costs a walk over at most
//! 1,440 minutes × the queues, never a scan of the jobs or of the log. A
//! new server reads the log it finds (the event retention, a day by
//! default) once, in the background: until it has, the charts say how far
//! they go. Reads start at most every [`FRESH`]; a page waits up to
//! [`WAIT`] for one it started, then shows what is there.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use kyu::{EventId, EventType, Kyu};
use tokio::sync::watch;

/// Events read by one query of the log.
pub(crate) const PAGE: usize = 5_000;

/// How long a reading of the log is shown before the next one starts.
pub(crate) const FRESH: Duration = Duration::from_secs(2);

/// How long a page waits for a reading it started (it shows the last one after).
const WAIT: Duration = Duration::from_millis(100);

/// Minutes kept: a day.
const KEEP_MINUTES: i64 = 24 * 60;

/// Ends of attempts in one bucket.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Tally {
    /// Attempts that succeeded (`completed` events).
    pub(crate) completed: u64,
    /// Attempts that failed (`retrying` and `failed` events).
    pub(crate) failed: u64,
}

impl Tally {
    fn add(&mut self, other: &Tally) {
        self.completed += other.completed;
        self.failed += other.failed;
    }
}

/// Buckets of equal length, oldest first; the last holds now.
#[derive(Debug, Clone)]
pub(crate) struct Series {
    /// The first bucket's start.
    pub(crate) start: DateTime<Utc>,
    /// Each bucket's length.
    pub(crate) step: chrono::Duration,
    /// The tallies.
    pub(crate) buckets: Vec<Tally>,
}

impl Series {
    /// Every bucket's tally summed.
    pub(crate) fn total(&self) -> Tally {
        let mut t = Tally::default();
        for b in &self.buckets {
            t.add(b);
        }
        t
    }
}

/// What one viewer's charts show.
#[derive(Debug, Clone)]
pub(crate) struct Charts {
    /// The last hour by minute.
    pub(crate) hour: Series,
    /// The last day by quarter hour.
    pub(crate) day: Series,
    /// The oldest event time the rollup has read through while it still
    /// catches up with the log (`None` once caught up): the charts are
    /// complete only from then on.
    pub(crate) catching_up: Option<Option<DateTime<Utc>>>,
}

#[derive(Default)]
struct Inner {
    /// Read through this event id.
    after: EventId,
    /// Minute (Unix seconds / 60) → queue → tally.
    minutes: BTreeMap<i64, HashMap<String, Tally>>,
    /// Whether a reading reached the end of the log once.
    caught_up: bool,
    /// The time of the last event read.
    read_through: Option<DateTime<Utc>>,
    /// When the last reading ended.
    refreshed: Option<Instant>,
    /// Whether a reading is under way.
    refreshing: bool,
}

/// The rollup, one per server.
pub(crate) struct Rates {
    kyu: Kyu,
    inner: Arc<Mutex<Inner>>,
    /// Counts finished readings: a page waits for the next one.
    done: watch::Sender<u64>,
}

fn minute_of(t: DateTime<Utc>) -> i64 {
    t.timestamp().div_euclid(60)
}

fn at_minute(m: i64) -> DateTime<Utc> {
    DateTime::<Utc>::from_timestamp(m * 60, 0).unwrap_or_default()
}

impl Rates {
    pub(crate) fn new(kyu: Kyu) -> Rates {
        Rates {
            kyu,
            inner: Arc::default(),
            done: watch::channel(0).0,
        }
    }

    /// The charts of the queues `sees` accepts, as of the last reading; a
    /// reading starts when that one is older than [`FRESH`].
    pub(crate) async fn charts(&self, sees: impl Fn(&str) -> bool) -> Charts {
        let mut finished = self.done.subscribe();
        let wait = {
            let mut inner = self.inner.lock().expect("not poisoned");
            let due = inner.refreshed.map_or(true, |t| t.elapsed() >= FRESH);
            let started = due && !inner.refreshing;
            if started {
                inner.refreshing = true;
                tokio::spawn(read(
                    self.kyu.clone(),
                    self.inner.clone(),
                    self.done.clone(),
                ));
            }
            // Wait for a reading of what is new since the last one, or for
            // the very first (a small log is read at once); never for the
            // rest of a long first reading of the log.
            inner.refreshing && (inner.caught_up || (started && inner.refreshed.is_none()))
        };
        if wait {
            let _ = tokio::time::timeout(WAIT, finished.changed()).await;
        }
        let now = self.kyu.store().clock().now();
        let inner = self.inner.lock().expect("not poisoned");
        view(&inner, now, &sees)
    }
}

/// Reads the log from where the rollup is to its end, a page at a time.
async fn read(kyu: Kyu, cell: Arc<Mutex<Inner>>, done: watch::Sender<u64>) {
    loop {
        let after = cell.lock().expect("not poisoned").after;
        let read = match kyu.store().read_events(after, PAGE).await {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = %e, "dashboard: could not read the event log for the charts");
                break;
            }
        };
        let now = kyu.store().clock().now();
        let oldest = minute_of(now) - KEEP_MINUTES;
        let mut inner = cell.lock().expect("not poisoned");
        let end = read.events.len() < PAGE;
        add_events(&mut inner, &read.events, oldest);
        inner.after = read.next.max(after);
        if end {
            inner.caught_up = true;
            break;
        }
    }
    let mut inner = cell.lock().expect("not poisoned");
    inner.refreshing = false;
    inner.refreshed = Some(Instant::now());
    drop(inner);
    done.send_modify(|n| *n += 1);
}

/// Counts `events` into their minutes (those from minute `oldest` on) and
/// drops the minutes before it.
fn add_events(inner: &mut Inner, events: &[kyu::Event], oldest: i64) {
    for e in events {
        let failed = match e.event_type {
            EventType::Completed => false,
            EventType::Retrying | EventType::Failed => true,
            _ => continue,
        };
        let (Some(queue), m) = (&e.queue, minute_of(e.at)) else {
            continue;
        };
        if m < oldest {
            continue;
        }
        let tally = inner
            .minutes
            .entry(m)
            .or_default()
            .entry(queue.clone())
            .or_default();
        if failed {
            tally.failed += 1;
        } else {
            tally.completed += 1;
        }
    }
    if let Some(last) = events.last() {
        inner.read_through = Some(last.at);
    }
    inner.minutes = inner.minutes.split_off(&oldest);
}

fn view(inner: &Inner, now: DateTime<Utc>, sees: &impl Fn(&str) -> bool) -> Charts {
    let now_min = minute_of(now);
    let hour_start = now_min - 59;
    // Quarter hours aligned to the clock; the last one holds now.
    let day_start = now_min.div_euclid(15) * 15 - 95 * 15;
    let mut hour = vec![Tally::default(); 60];
    let mut day = vec![Tally::default(); 96];
    // Whether the viewer sees a queue, asked once per queue.
    let mut seen: HashMap<&str, bool> = HashMap::new();
    for (m, queues) in inner.minutes.range(day_start..=now_min) {
        for (q, t) in queues {
            let ok = *seen.entry(q.as_str()).or_insert_with(|| sees(q));
            if !ok {
                continue;
            }
            day[((m - day_start) / 15) as usize].add(t);
            if *m >= hour_start {
                hour[(m - hour_start) as usize].add(t);
            }
        }
    }
    Charts {
        hour: Series {
            start: at_minute(hour_start),
            step: chrono::Duration::minutes(1),
            buckets: hour,
        },
        day: Series {
            start: at_minute(day_start),
            step: chrono::Duration::minutes(15),
            buckets: day,
        },
        catching_up: (!inner.caught_up).then_some(inner.read_through),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(at: &str, t: EventType, queue: &str) -> kyu::Event {
        kyu::Event {
            id: 1,
            at: at.parse().unwrap(),
            event_type: t,
            job_id: Some(1),
            queue: Some(queue.into()),
            kind: Some("k".into()),
            attempt: Some(1),
            facts: Default::default(),
        }
    }

    #[test]
    fn completions_and_failed_attempts_are_counted_by_minute_and_queue() {
        let mut inner = Inner::default();
        let at = "2030-01-01T12:00:10Z";
        let m = minute_of(at.parse().unwrap());
        add_events(
            &mut inner,
            &[
                event(at, EventType::Completed, "a"),
                event(at, EventType::Completed, "a"),
                event(at, EventType::Retrying, "a"),
                event(at, EventType::Failed, "a"),
                event(at, EventType::Started, "a"),
                event(at, EventType::Enqueued, "a"),
                event(at, EventType::Cancelled, "a"),
                event("2030-01-01T12:01:00Z", EventType::Failed, "b"),
                // Older than the day kept: not counted.
                event("2030-01-01T11:00:00Z", EventType::Completed, "a"),
            ],
            m,
        );
        assert_eq!(
            inner.minutes[&m]["a"],
            Tally {
                completed: 2,
                failed: 2
            }
        );
        assert_eq!(
            inner.minutes[&(m + 1)]["b"],
            Tally {
                completed: 0,
                failed: 1
            }
        );
        assert_eq!(inner.minutes.len(), 2);
        assert_eq!(
            inner.read_through,
            Some("2030-01-01T11:00:00Z".parse().unwrap())
        );
        // A later reading drops the minutes that left the day.
        add_events(&mut inner, &[], m + 1);
        assert_eq!(inner.minutes.len(), 1);
    }

    #[test]
    fn a_viewer_sees_only_its_queues_in_the_buckets_of_their_minutes() {
        let now: DateTime<Utc> = "2030-01-01T12:20:30Z".parse().unwrap();
        let mut inner = Inner {
            caught_up: true,
            ..Default::default()
        };
        let put = |inner: &mut Inner, at: &str, q: &str, c: u64, f: u64| {
            let m = minute_of(at.parse().unwrap());
            inner.minutes.entry(m).or_default().insert(
                q.into(),
                Tally {
                    completed: c,
                    failed: f,
                },
            );
        };
        put(&mut inner, "2030-01-01T12:00:10Z", "a", 3, 1);
        put(&mut inner, "2030-01-01T12:20:00Z", "a", 2, 0);
        put(&mut inner, "2030-01-01T12:20:00Z", "b", 7, 7);
        put(&mut inner, "2030-01-01T09:00:00Z", "a", 5, 0);
        let c = view(&inner, now, &|q: &str| q == "a");
        assert_eq!(c.hour.buckets.len(), 60);
        assert_eq!(
            c.hour.start,
            "2030-01-01T11:21:00Z".parse::<DateTime<Utc>>().unwrap()
        );
        assert_eq!(
            c.hour.buckets[39],
            Tally {
                completed: 3,
                failed: 1
            }
        );
        assert_eq!(
            c.hour.buckets[59],
            Tally {
                completed: 2,
                failed: 0
            }
        );
        assert_eq!(
            c.hour.total(),
            Tally {
                completed: 5,
                failed: 1
            }
        );
        assert_eq!(c.day.buckets.len(), 96);
        assert_eq!(
            c.day.start,
            "2029-12-31T12:30:00Z".parse::<DateTime<Utc>>().unwrap()
        );
        assert_eq!(
            c.day.buckets[94],
            Tally {
                completed: 3,
                failed: 1
            }
        );
        assert_eq!(
            c.day.buckets[95],
            Tally {
                completed: 2,
                failed: 0
            }
        );
        assert_eq!(
            c.day.total(),
            Tally {
                completed: 10,
                failed: 1
            }
        );
        assert_eq!(c.catching_up, None);
    }
}
