//! Events: every change of a job, queue, schedule or worker, as data.
//!
//! An event is written by the store in the same transaction as the change it
//! records, so it exists if and only if the change committed (DESIGN.md,
//! invariant 6). Its id strictly increases in the order readers see events:
//! a reader that resumes after its last id misses nothing and sees nothing
//! twice. Events carry the small facts of their type ([`EventFacts`]: the
//! error, the progress, the attempt's duration, the wait from available to
//! start), never the args.
//!
//! Which event an attempt's ending writes is decided from the lifecycle rule
//! ([`for_ending`]): the ending and the state it moved the job to.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::lifecycle::EndingKind;
use crate::{InvalidInput, JobId, JobState};

/// An event's id: strictly increasing in the order readers see events.
pub type EventId = i64;

/// How long events are kept by default: 24 hours.
pub const DEFAULT_EVENT_RETENTION: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

/// What changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventType {
    /// A job was inserted, or (with `duplicate`) an enqueue returned the
    /// existing job holding its unique key.
    Enqueued,
    /// A worker claimed the job: an attempt started (`worker`, `wait_ms`).
    Started,
    /// A running attempt reported progress (`progress`, `message`).
    Progress,
    /// The attempt succeeded: the job is completed (`duration_ms`).
    Completed,
    /// The attempt failed and the job runs again at `run_at` (`error`).
    Retrying,
    /// The job failed for good: no attempts left, a permanent error, or its
    /// last attempt's lease expired (`error`).
    Failed,
    /// The handler asked to run again at `run_at` without using an attempt.
    Snoozed,
    /// The job was cancelled (a waiting job, or a running one whose attempt ended).
    Cancelled,
    /// A cancel was asked for a running job; its worker will stop it.
    CancelRequested,
    /// The worker shut down and gave the job back (`error` says why).
    Released,
    /// The job's lease ran out (its worker died) and it was made runnable
    /// again (rescued).
    LeaseExpired,
    /// A failed or cancelled job was retried by hand.
    Retried,
    /// A queue was paused.
    QueuePaused,
    /// A queue was resumed.
    QueueResumed,
    /// A queue's limits (global concurrency, rate) were set or cleared.
    QueueLimitsChanged,
    /// A schedule enqueued the job of a fire time (`schedule`, `fire_time`).
    ScheduleFired,
    /// A schedule's fire time enqueued nothing because of its overlap policy (`reason`).
    ScheduleSkipped,
    /// A schedule's fire time was kept until the previous job finishes
    /// (overlap `buffer_one`, `reason` names the job); its job is enqueued
    /// then, with a `schedule_fired` event.
    ScheduleBuffered,
    /// A schedule's fire time was missed and its misfire policy dropped it.
    ScheduleMisfired,
    /// A worker process started (`worker`).
    WorkerStarted,
    /// A worker process stopped (`worker`).
    WorkerStopped,
    /// A job was deleted by hand (`state`: the state it was in).
    Deleted,
    /// A scheduled job was made available by hand (run now).
    RunNow,
    /// A batch was done: sealed, and every job finished; its callbacks were
    /// enqueued in the same transaction (`message`: the batch id and counts,
    /// e.g. `batch 7: total 10, succeeded 9, failed 1, cancelled 0`).
    BatchCompleted,
}

impl EventType {
    /// Every type, in the order above.
    pub const ALL: [EventType; 24] = [
        EventType::Enqueued,
        EventType::Started,
        EventType::Progress,
        EventType::Completed,
        EventType::Retrying,
        EventType::Failed,
        EventType::Snoozed,
        EventType::Cancelled,
        EventType::CancelRequested,
        EventType::Released,
        EventType::LeaseExpired,
        EventType::Retried,
        EventType::QueuePaused,
        EventType::QueueResumed,
        EventType::QueueLimitsChanged,
        EventType::ScheduleFired,
        EventType::ScheduleSkipped,
        EventType::ScheduleBuffered,
        EventType::ScheduleMisfired,
        EventType::WorkerStarted,
        EventType::WorkerStopped,
        EventType::Deleted,
        EventType::RunNow,
        EventType::BatchCompleted,
    ];

    /// The name stored in the database and used by the CLI and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Enqueued => "enqueued",
            EventType::Started => "started",
            EventType::Progress => "progress",
            EventType::Completed => "completed",
            EventType::Retrying => "retrying",
            EventType::Failed => "failed",
            EventType::Snoozed => "snoozed",
            EventType::Cancelled => "cancelled",
            EventType::CancelRequested => "cancel_requested",
            EventType::Released => "released",
            EventType::LeaseExpired => "lease_expired",
            EventType::Retried => "retried",
            EventType::QueuePaused => "queue_paused",
            EventType::QueueResumed => "queue_resumed",
            EventType::QueueLimitsChanged => "queue_limits_changed",
            EventType::ScheduleFired => "schedule_fired",
            EventType::ScheduleSkipped => "schedule_skipped",
            EventType::ScheduleBuffered => "schedule_buffered",
            EventType::ScheduleMisfired => "schedule_misfired",
            EventType::WorkerStarted => "worker_started",
            EventType::WorkerStopped => "worker_stopped",
            EventType::Deleted => "deleted",
            EventType::RunNow => "run_now",
            EventType::BatchCompleted => "batch_completed",
        }
    }

    /// Whether the job reached an end state with this event.
    pub fn ends_job(self) -> bool {
        matches!(
            self,
            EventType::Completed | EventType::Failed | EventType::Cancelled
        )
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for EventType {
    type Err = InvalidInput;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        EventType::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| {
                let accepted: Vec<&str> = EventType::ALL.iter().map(|t| t.as_str()).collect();
                InvalidInput::new(
                    "event type",
                    format!(
                        "{s:?} is not an event type; accepted: {}",
                        accepted.join(", ")
                    ),
                )
            })
    }
}

/// The small facts of an event; which are set depends on its type. Never
/// the args (they may hold personal data) nor the result.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventFacts {
    /// The job's state after the change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<JobState>,
    /// The worker that claimed, ran, or started/stopped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker: Option<String>,
    /// The attempt's error (retrying, failed, cancelled, released, lease expired).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Progress percent (0–100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<u8>,
    /// Progress message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// How long the attempt ran, from its start to this event, in ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<i64>,
    /// How long the job waited from available (its run_at) to start, in ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait_ms: Option<i64>,
    /// When the job runs (enqueued, retrying, snoozed, retried).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_at: Option<DateTime<Utc>>,
    /// An enqueue that returned the existing job holding its unique key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duplicate: Option<bool>,
    /// The schedule (schedule events).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<String>,
    /// The fire time (schedule events).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fire_time: Option<DateTime<Utc>>,
    /// Why a fire time was skipped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl EventFacts {
    /// The facts as the JSON text stores keep.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| "{}".to_string())
    }
}

/// One change, as written to the event log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// Strictly increasing in the order readers see events.
    pub id: EventId,
    /// When the change was made (the store's clock).
    pub at: DateTime<Utc>,
    /// What changed.
    #[serde(rename = "type")]
    pub event_type: EventType,
    /// The job, for job events (and schedule fires).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_id: Option<JobId>,
    /// The job's queue, or the queue paused or resumed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue: Option<String>,
    /// The job's kind.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// The attempt, for events about one attempt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempt: Option<u32>,
    /// The facts of its type.
    #[serde(flatten)]
    pub facts: EventFacts,
}

/// An event before it is written: a store gives it its id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEvent {
    /// When.
    pub at: DateTime<Utc>,
    /// What changed.
    pub event_type: EventType,
    /// The job.
    pub job_id: Option<JobId>,
    /// The queue.
    pub queue: Option<String>,
    /// The kind.
    pub kind: Option<String>,
    /// The attempt.
    pub attempt: Option<u32>,
    /// The facts.
    pub facts: EventFacts,
}

impl NewEvent {
    /// An event about job `id` of `queue` and `kind`.
    pub fn job(
        at: DateTime<Utc>,
        event_type: EventType,
        id: JobId,
        queue: &str,
        kind: &str,
    ) -> Self {
        NewEvent {
            at,
            event_type,
            job_id: Some(id),
            queue: Some(queue.to_string()),
            kind: Some(kind.to_string()),
            attempt: None,
            facts: EventFacts::default(),
        }
    }

    /// An event that is about no job (queue, schedule, worker events).
    pub fn other(at: DateTime<Utc>, event_type: EventType) -> Self {
        NewEvent {
            at,
            event_type,
            job_id: None,
            queue: None,
            kind: None,
            attempt: None,
            facts: EventFacts::default(),
        }
    }

    /// With the attempt.
    pub fn attempt(mut self, attempt: u32) -> Self {
        self.attempt = Some(attempt);
        self
    }

    /// With the facts.
    pub fn facts(mut self, facts: EventFacts) -> Self {
        self.facts = facts;
        self
    }
}

/// The event an attempt's ending writes, given the state the lifecycle
/// rule moved the job to: the job's new state names it when the job ended
/// (failed, cancelled) whatever the ending; otherwise the ending does.
pub fn for_ending(ending: EndingKind, state: JobState) -> EventType {
    match (ending, state) {
        (EndingKind::Completed, _) => EventType::Completed,
        (_, JobState::Failed) => EventType::Failed,
        (_, JobState::Cancelled) => EventType::Cancelled,
        (EndingKind::Errored, _) => EventType::Retrying,
        (EndingKind::Snoozed, _) => EventType::Snoozed,
        (EndingKind::Released, _) => EventType::Released,
        (EndingKind::LeaseExpired, _) => EventType::LeaseExpired,
        // A handler's cancel always ends the job cancelled (above).
        (EndingKind::Cancelled, _) => EventType::Cancelled,
    }
}

/// [`for_ending`] as a SQL `CASE` over an expression naming the ending
/// ([`EndingKind::as_str`]) and one naming the new state, for backends that
/// write a batch's events in the statement that decides it.
pub fn sql_for_ending(ending: &str, state: &str) -> String {
    let mut sql = String::from("CASE");
    for kind in EndingKind::ALL {
        for s in JobState::ALL {
            sql.push_str(&format!(
                " WHEN {ending} = '{}' AND {state} = '{}' THEN '{}'",
                kind.as_str(),
                s.as_str(),
                for_ending(kind, s).as_str()
            ));
        }
    }
    sql.push_str(" END");
    sql
}

/// Which events a reader wants. Every field that is set must match.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventFilter {
    /// Only this queue.
    pub queue: Option<String>,
    /// Only this kind.
    pub kind: Option<String>,
    /// Only this job.
    pub job_id: Option<JobId>,
    /// Only these types (every type when empty).
    pub types: Vec<EventType>,
}

impl EventFilter {
    /// Whether `e` passes the filter.
    pub fn matches(&self, e: &Event) -> bool {
        self.queue
            .as_ref()
            .map_or(true, |q| e.queue.as_ref() == Some(q))
            && self
                .kind
                .as_ref()
                .map_or(true, |k| e.kind.as_ref() == Some(k))
            && self.job_id.map_or(true, |j| e.job_id == Some(j))
            && (self.types.is_empty() || self.types.contains(&e.event_type))
    }
}

/// Events a reader asked for were pruned by retention before it read them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventGap {
    /// The id the reader asked to read after.
    pub after: EventId,
    /// Every event up to and including this id is gone; reading goes on after it.
    pub pruned_through: EventId,
}

/// One read of the log: see [`EventLog::read_events`](crate::EventLog::read_events).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventRead {
    /// Set when events after the id asked for were pruned: the reader missed them.
    pub gap: Option<EventGap>,
    /// The events, in id order.
    pub events: Vec<Event>,
    /// Where the next read starts: the id of the last event returned, or
    /// further when ids were skipped for good (pruned, or taken by a
    /// transaction that rolled back), or `after` when nothing is safe to
    /// read yet.
    pub next: EventId,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_type_names_round_trip() {
        for t in EventType::ALL {
            assert_eq!(t.as_str().parse::<EventType>().unwrap(), t);
            let json = serde_json::to_string(&t).unwrap();
            assert_eq!(json, format!("\"{}\"", t.as_str()));
        }
        let err = "finished".parse::<EventType>().unwrap_err().to_string();
        assert!(
            err.contains("\"finished\"") && err.contains("lease_expired"),
            "{err}"
        );
    }

    #[test]
    fn an_ending_names_its_event_by_where_the_job_went() {
        use EndingKind as E;
        use JobState as S;
        assert_eq!(for_ending(E::Completed, S::Completed), EventType::Completed);
        assert_eq!(for_ending(E::Errored, S::Scheduled), EventType::Retrying);
        assert_eq!(for_ending(E::Errored, S::Available), EventType::Retrying);
        assert_eq!(for_ending(E::Errored, S::Failed), EventType::Failed);
        assert_eq!(for_ending(E::Errored, S::Cancelled), EventType::Cancelled);
        assert_eq!(for_ending(E::Snoozed, S::Scheduled), EventType::Snoozed);
        assert_eq!(for_ending(E::Snoozed, S::Cancelled), EventType::Cancelled);
        assert_eq!(for_ending(E::Released, S::Available), EventType::Released);
        assert_eq!(
            for_ending(E::LeaseExpired, S::Available),
            EventType::LeaseExpired
        );
        assert_eq!(for_ending(E::LeaseExpired, S::Failed), EventType::Failed);
        let sql = sql_for_ending("o", "s");
        assert!(
            sql.contains("WHEN o = 'errored' AND s = 'failed' THEN 'failed'"),
            "{sql}"
        );
    }

    #[test]
    fn facts_skip_what_is_not_set_and_never_hold_args() {
        let e = Event {
            id: 7,
            at: "2030-01-01T00:00:00Z".parse().unwrap(),
            event_type: EventType::Started,
            job_id: Some(3),
            queue: Some("q".into()),
            kind: Some("k".into()),
            attempt: Some(1),
            facts: EventFacts {
                worker: Some("w".into()),
                wait_ms: Some(5),
                ..EventFacts::default()
            },
        };
        let json = serde_json::to_value(&e).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"id": 7, "at": "2030-01-01T00:00:00Z", "type": "started",
                "job_id": 3, "queue": "q", "kind": "k", "attempt": 1, "worker": "w", "wait_ms": 5})
        );
        let back: Event = serde_json::from_value(json).unwrap();
        assert_eq!(back, e);
    }
}
