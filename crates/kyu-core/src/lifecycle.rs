//! The lifecycle rule, stated once: what the end of an attempt does to its job.
//!
//! An attempt ends in one of six ways ([`Ending`]). Which state the job moves
//! to depends on a few facts about its row at that moment ([`Facts`]): whether
//! a cancel was asked for meanwhile, whether attempts are left, whether the
//! error was permanent, whether the next run time is in the future. The rule
//! is an ordered list of `(condition, state)` pairs per ending, the first
//! condition that holds wins ([`rules`]).
//!
//! Both backends derive their writes from this list: SQLite reads the row and
//! calls [`decide`]; PostgreSQL, which decides inside one statement for a
//! whole batch, renders the same list as a SQL `CASE` with [`sql_state_case`].
//! A change here changes both.
//!
//! | ending | rule (first match wins) | attempt counted | error recorded |
//! |---|---|---|---|
//! | completed | → completed (even if a cancel was asked for: the work was done) | yes | no |
//! | errored | cancel asked → cancelled; permanent or none left → failed; retry later → scheduled; else available | yes | yes |
//! | snoozed | cancel asked → cancelled; later → scheduled; else available | no, unless cancelled | no |
//! | cancelled | → cancelled | yes | yes |
//! | released (worker shutdown) | cancel asked → cancelled; else available | no, unless cancelled | yes |
//! | lease expired (worker died) | cancel asked → cancelled; none left → failed; else available | yes | yes |
//! | released or lease expired, attempt never started ([`Facts::unstarted`]) | cancel asked → cancelled; else available | no | no |
//!
//! Only started attempts count: a job a worker claimed ahead (its prefetch)
//! and never started ([`Claim::unstarted`](crate::Claim::unstarted), until
//! [`Store::mark_started`](crate::Store::mark_started)) that is released at
//! shutdown or rescued after its worker died gets its attempt back and no
//! error, as if it had never been claimed.
//!
//! Only a job that is `running` the same attempt can end it: anything else is
//! a stale write ([`decide`] returns `None`) and changes nothing.

use crate::JobState;

/// How an attempt ended: the kinds of [`FinishOutcome`](crate::FinishOutcome),
/// plus the reaper's "lease expired".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Ending {
    /// The handler succeeded.
    Completed,
    /// The handler failed; `permanent` errors are never retried.
    Errored {
        /// Whether the error rules out a retry.
        permanent: bool,
    },
    /// The handler asked to run again later without using an attempt.
    Snoozed,
    /// The handler stopped because the job was cancelled.
    Cancelled,
    /// The worker gave the job back unfinished (shutdown).
    Released,
    /// The lease ran out: the worker died or lost touch with the store.
    LeaseExpired,
}

impl Ending {
    /// The name a backend stores or binds for this ending (without the
    /// `permanent` flag, which travels as its own fact).
    pub fn as_str(self) -> &'static str {
        match self {
            Ending::Completed => "completed",
            Ending::Errored { .. } => "errored",
            Ending::Snoozed => "snoozed",
            Ending::Cancelled => "cancelled",
            Ending::Released => "released",
            Ending::LeaseExpired => "lease_expired",
        }
    }

    /// Whether an attempt that ended this way is given back (not counted)
    /// when the job runs again. A given-back attempt that ends the job
    /// (a cancel asked for meanwhile) stays counted: it did happen.
    pub fn gives_attempt_back(self) -> bool {
        matches!(self, Ending::Snoozed | Ending::Released)
    }

    /// Whether an attempt that ended this way without its handler having
    /// started ([`Facts::unstarted`]) is given back and records no error:
    /// a release and a lease expiry. Only started attempts count.
    pub fn silent_when_unstarted(self) -> bool {
        self.kind().silent_when_unstarted()
    }

    /// Whether the ending is recorded as an attempt error.
    pub fn records_error(self) -> bool {
        matches!(
            self,
            Ending::Errored { .. } | Ending::Cancelled | Ending::Released | Ending::LeaseExpired
        )
    }

    /// The ending without its data.
    pub fn kind(self) -> EndingKind {
        match self {
            Ending::Completed => EndingKind::Completed,
            Ending::Errored { .. } => EndingKind::Errored,
            Ending::Snoozed => EndingKind::Snoozed,
            Ending::Cancelled => EndingKind::Cancelled,
            Ending::Released => EndingKind::Released,
            Ending::LeaseExpired => EndingKind::LeaseExpired,
        }
    }
}

/// [`Ending`] without its data: the key of [`rules`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EndingKind {
    /// See [`Ending::Completed`].
    Completed,
    /// See [`Ending::Errored`].
    Errored,
    /// See [`Ending::Snoozed`].
    Snoozed,
    /// See [`Ending::Cancelled`].
    Cancelled,
    /// See [`Ending::Released`].
    Released,
    /// See [`Ending::LeaseExpired`].
    LeaseExpired,
}

impl EndingKind {
    /// Every kind of ending.
    pub const ALL: [EndingKind; 6] = [
        EndingKind::Completed,
        EndingKind::Errored,
        EndingKind::Snoozed,
        EndingKind::Cancelled,
        EndingKind::Released,
        EndingKind::LeaseExpired,
    ];

    /// The same name as [`Ending::as_str`].
    pub fn as_str(self) -> &'static str {
        match self {
            EndingKind::Completed => "completed",
            EndingKind::Errored => "errored",
            EndingKind::Snoozed => "snoozed",
            EndingKind::Cancelled => "cancelled",
            EndingKind::Released => "released",
            EndingKind::LeaseExpired => "lease_expired",
        }
    }

    /// See [`Ending::gives_attempt_back`].
    pub fn gives_attempt_back(self) -> bool {
        matches!(self, EndingKind::Snoozed | EndingKind::Released)
    }

    /// See [`Ending::silent_when_unstarted`].
    pub fn silent_when_unstarted(self) -> bool {
        matches!(self, EndingKind::Released | EndingKind::LeaseExpired)
    }
}

/// A fact about the job's row when its attempt ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Condition {
    /// Always holds: the last rule of every list.
    Always,
    /// A cancel was asked for while the attempt ran.
    CancelRequested,
    /// The handler said the error is permanent.
    Permanent,
    /// This was the last attempt allowed (`attempt >= max_attempts`).
    NoAttemptsLeft,
    /// The time to run again (retry, snooze) is after now.
    RunAtInFuture,
    /// The attempt was claimed ahead and its handler never started.
    Unstarted,
}

/// What is known about the job when its attempt ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Facts {
    /// The attempt that ended, 1-based (already counted).
    pub attempt: u32,
    /// Attempts allowed.
    pub max_attempts: u32,
    /// Whether a cancel was asked for while it ran.
    pub cancel_requested: bool,
    /// Whether the next run time (retry, snooze) is after now.
    pub run_at_in_future: bool,
    /// Whether the attempt was claimed ahead (a worker's prefetch) and its
    /// handler never started: a release or a lease expiry of it then gives
    /// the attempt back and records no error.
    pub unstarted: bool,
}

impl Facts {
    fn holds(&self, c: Condition, ending: Ending) -> bool {
        match c {
            Condition::Always => true,
            Condition::CancelRequested => self.cancel_requested,
            Condition::Permanent => matches!(ending, Ending::Errored { permanent: true }),
            Condition::NoAttemptsLeft => self.attempt >= self.max_attempts,
            Condition::RunAtInFuture => self.run_at_in_future,
            Condition::Unstarted => self.unstarted,
        }
    }
}

/// What ending an attempt does to its job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transition {
    /// The job's new state.
    pub state: JobState,
    /// Whether the attempt is given back (`attempt - 1`), so the next run
    /// has the same number.
    pub uncount: bool,
    /// Whether an attempt error is recorded.
    pub records_error: bool,
}

impl Transition {
    /// Whether the job takes the run time of the ending (retry, snooze, now)
    /// as its new `run_at`: it will run again.
    pub fn runs_again(&self) -> bool {
        matches!(self.state, JobState::Scheduled | JobState::Available)
    }
}

use Condition::*;
use JobState::{Available, Cancelled, Completed, Failed, Scheduled};

const COMPLETED: &[(Condition, JobState)] = &[(Always, Completed)];
const ERRORED: &[(Condition, JobState)] = &[
    (CancelRequested, Cancelled),
    (Permanent, Failed),
    (NoAttemptsLeft, Failed),
    (RunAtInFuture, Scheduled),
    (Always, Available),
];
const SNOOZED: &[(Condition, JobState)] = &[
    (CancelRequested, Cancelled),
    (RunAtInFuture, Scheduled),
    (Always, Available),
];
const CANCELLED: &[(Condition, JobState)] = &[(Always, Cancelled)];
const RELEASED: &[(Condition, JobState)] = &[(CancelRequested, Cancelled), (Always, Available)];
const LEASE_EXPIRED: &[(Condition, JobState)] = &[
    (CancelRequested, Cancelled),
    // A never-started attempt is given back: it used none of the attempts.
    (Unstarted, Available),
    (NoAttemptsLeft, Failed),
    (Always, Available),
];

/// The rule for one kind of ending: the first condition that holds names the
/// job's next state. Every list ends with [`Condition::Always`].
pub fn rules(kind: EndingKind) -> &'static [(Condition, JobState)] {
    match kind {
        EndingKind::Completed => COMPLETED,
        EndingKind::Errored => ERRORED,
        EndingKind::Snoozed => SNOOZED,
        EndingKind::Cancelled => CANCELLED,
        EndingKind::Released => RELEASED,
        EndingKind::LeaseExpired => LEASE_EXPIRED,
    }
}

/// What `ending` does to a job now in `state`, or `None` when the job is not
/// running (the write is stale and must change nothing).
///
/// ```
/// use kyu_core::lifecycle::{decide, Ending, Facts};
/// use kyu_core::JobState;
///
/// // The third of three attempts fails: the job is failed, not retried.
/// let facts = Facts { attempt: 3, max_attempts: 3, ..Facts::default() };
/// let t = decide(JobState::Running, Ending::Errored { permanent: false }, facts).unwrap();
/// assert_eq!(t.state, JobState::Failed);
///
/// // A finish for a job that is no longer running changes nothing.
/// assert!(decide(JobState::Available, Ending::Completed, facts).is_none());
/// ```
pub fn decide(state: JobState, ending: Ending, facts: Facts) -> Option<Transition> {
    (state == JobState::Running).then(|| end_running(ending, facts))
}

/// [`decide`] for a job already known to be running (e.g. selected with
/// `state = 'running'`).
pub fn end_running(ending: Ending, facts: Facts) -> Transition {
    // Every list ends with `Always`, so the fallback is never taken.
    let next = rules(ending.kind())
        .iter()
        .find(|(c, _)| facts.holds(*c, ending))
        .map_or(JobState::Available, |(_, s)| *s);
    // An attempt that never started is not counted, whatever the job's
    // next state: only started attempts count.
    let silent = facts.unstarted && ending.silent_when_unstarted();
    Transition {
        state: next,
        uncount: silent || (ending.gives_attempt_back() && !next.is_finished()),
        records_error: ending.records_error() && !silent,
    }
}

/// The SQL expressions a backend's statement has for the facts of a row, to
/// render the rule with [`sql_state_case`].
#[derive(Debug, Clone, Copy)]
pub struct SqlFacts<'a> {
    /// Text naming the ending ([`EndingKind::as_str`]).
    pub ending: &'a str,
    /// Boolean: a cancel was asked for.
    pub cancel_requested: &'a str,
    /// Boolean: the error is permanent.
    pub permanent: &'a str,
    /// Integer: the attempt that ended.
    pub attempt: &'a str,
    /// Integer: attempts allowed.
    pub max_attempts: &'a str,
    /// Boolean: the next run time is after now.
    pub run_at_in_future: &'a str,
    /// Boolean: the attempt was claimed ahead and never started.
    pub unstarted: &'a str,
}

/// The rule as one SQL `CASE` expression yielding the next state's name,
/// for backends that decide a whole batch inside one statement.
///
/// ```
/// use kyu_core::lifecycle::{sql_state_case, SqlFacts};
/// let case = sql_state_case(SqlFacts {
///     ending: "u.outcome",
///     cancel_requested: "j.cancel_requested",
///     permanent: "u.permanent",
///     attempt: "j.attempt",
///     max_attempts: "j.max_attempts",
///     run_at_in_future: "(u.run_at > $7)",
///     unstarted: "j.unstarted",
/// });
/// assert!(case.starts_with("CASE "));
/// assert!(case.contains("WHEN u.outcome = 'errored' AND (j.attempt >= j.max_attempts) THEN 'failed'"));
/// ```
pub fn sql_state_case(f: SqlFacts<'_>) -> String {
    let mut sql = String::from("CASE");
    for kind in EndingKind::ALL {
        let ending = format!("{} = '{}'", f.ending, kind.as_str());
        push_rules(&mut sql, kind, Some(&ending), &f);
    }
    sql.push_str(" END");
    sql
}

/// The rule of one kind of ending as a SQL `CASE` yielding the next state's
/// name; `f.ending` is not used.
///
/// ```
/// use kyu_core::lifecycle::{sql_state_case_for, EndingKind, SqlFacts};
/// let case = sql_state_case_for(EndingKind::LeaseExpired, SqlFacts {
///     ending: "",
///     cancel_requested: "cancel_requested",
///     permanent: "false",
///     attempt: "attempt",
///     max_attempts: "max_attempts",
///     run_at_in_future: "false",
///     unstarted: "unstarted",
/// });
/// assert_eq!(
///     case,
///     "CASE WHEN (cancel_requested) THEN 'cancelled' WHEN (unstarted) THEN 'available' \
///      WHEN (attempt >= max_attempts) THEN 'failed' WHEN TRUE THEN 'available' END"
/// );
/// ```
pub fn sql_state_case_for(kind: EndingKind, f: SqlFacts<'_>) -> String {
    let mut sql = String::from("CASE");
    push_rules(&mut sql, kind, None, &f);
    sql.push_str(" END");
    sql
}

fn push_rules(sql: &mut String, kind: EndingKind, ending: Option<&str>, f: &SqlFacts<'_>) {
    for (condition, state) in rules(kind) {
        let fact = match condition {
            Always => None,
            CancelRequested => Some(format!("({})", f.cancel_requested)),
            Permanent => Some(format!("({})", f.permanent)),
            NoAttemptsLeft => Some(format!("({} >= {})", f.attempt, f.max_attempts)),
            RunAtInFuture => Some(format!("({})", f.run_at_in_future)),
            Unstarted => Some(format!("({})", f.unstarted)),
        };
        let when: Vec<&str> = ending.into_iter().chain(fact.as_deref()).collect();
        let when = if when.is_empty() {
            "TRUE".to_string()
        } else {
            when.join(" AND ")
        };
        sql.push_str(&format!(" WHEN {when} THEN '{}'", state.as_str()));
    }
}

/// The `reason` of the `started` event of a job claimed ahead
/// ([`Claim::unstarted`](crate::Claim::unstarted)): its handler has not
/// started yet.
pub const CLAIMED_AHEAD_REASON: &str =
    "claimed ahead (prefetch): its handler starts when the worker has a free slot";

/// The `reason` of the `released` event of a job whose lease ran out before
/// its handler started, with `{worker}` standing for the worker that held it
/// (see [`never_started_reason`]).
pub const NEVER_STARTED_REASON: &str =
    "claimed ahead by worker {worker} and never started; its lease ran out";

/// [`NEVER_STARTED_REASON`] for `worker`.
pub fn never_started_reason(worker: &str) -> String {
    NEVER_STARTED_REASON.replace("{worker}", worker)
}

/// The endings that give their attempt back and record no error when the
/// attempt never started, as a SQL list (`'released', 'lease_expired'`).
pub fn sql_silent_when_unstarted_endings() -> String {
    EndingKind::ALL
        .iter()
        .filter(|k| k.silent_when_unstarted())
        .map(|k| format!("'{}'", k.as_str()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The endings that give their attempt back, as a SQL list (`'snoozed', 'released'`).
pub fn sql_give_back_endings() -> String {
    EndingKind::ALL
        .iter()
        .filter(|k| k.gives_attempt_back())
        .map(|k| format!("'{}'", k.as_str()))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(attempts_left: bool, cancel: bool, future: bool) -> Facts {
        Facts {
            attempt: 2,
            max_attempts: if attempts_left { 3 } else { 2 },
            cancel_requested: cancel,
            run_at_in_future: future,
            unstarted: false,
        }
    }

    /// Every (state, ending, attempts left, cancel requested, run_at in the
    /// future) case, written out by hand: the lifecycle of DESIGN.md as a table.
    #[test]
    fn every_case_of_the_lifecycle() {
        use JobState::*;
        let errored = Ending::Errored { permanent: false };
        let permanent = Ending::Errored { permanent: true };
        // (ending, attempts left, cancel requested, run_at in future) → (state, uncount)
        #[rustfmt::skip]
        let table: &[(Ending, bool, bool, bool, JobState, bool)] = &[
            (Ending::Completed,    true,  false, false, Completed, false),
            (Ending::Completed,    false, false, false, Completed, false),
            (Ending::Completed,    true,  true,  false, Completed, false),
            (Ending::Completed,    false, true,  true,  Completed, false),
            (errored,              true,  false, true,  Scheduled, false),
            (errored,              true,  false, false, Available, false),
            (errored,              false, false, true,  Failed,    false),
            (errored,              false, false, false, Failed,    false),
            (errored,              true,  true,  true,  Cancelled, false),
            (errored,              false, true,  false, Cancelled, false),
            (permanent,            true,  false, true,  Failed,    false),
            (permanent,            true,  false, false, Failed,    false),
            (permanent,            true,  true,  false, Cancelled, false),
            (Ending::Snoozed,      true,  false, true,  Scheduled, true),
            (Ending::Snoozed,      false, false, true,  Scheduled, true),
            (Ending::Snoozed,      true,  false, false, Available, true),
            (Ending::Snoozed,      true,  true,  true,  Cancelled, false),
            (Ending::Cancelled,    true,  false, false, Cancelled, false),
            (Ending::Cancelled,    false, true,  false, Cancelled, false),
            (Ending::Released,     true,  false, false, Available, true),
            (Ending::Released,     false, false, false, Available, true),
            (Ending::Released,     true,  true,  false, Cancelled, false),
            (Ending::LeaseExpired, true,  false, false, Available, false),
            (Ending::LeaseExpired, false, false, false, Failed,    false),
            (Ending::LeaseExpired, true,  true,  false, Cancelled, false),
            (Ending::LeaseExpired, false, true,  false, Cancelled, false),
        ];
        for &(ending, left, cancel, future, state, uncount) in table {
            let f = facts(left, cancel, future);
            let t = decide(Running, ending, f).unwrap();
            assert_eq!(
                (t.state, t.uncount),
                (state, uncount),
                "{ending:?} with attempts left={left} cancel={cancel} future={future}"
            );
            assert_eq!(
                t.records_error,
                ending != Ending::Completed && ending != Ending::Snoozed
            );
            // Only a running job can end an attempt: any other state is stale.
            for other in JobState::ALL.into_iter().filter(|s| *s != Running) {
                assert_eq!(decide(other, ending, f), None, "{ending:?} on {other}");
            }
        }
    }

    /// A release or lease expiry of an attempt that never started gives it
    /// back and records nothing, even on the last attempt; a started one is
    /// unchanged (above).
    #[test]
    fn unstarted_attempts_are_given_back_silently() {
        use JobState::*;
        // (ending, attempts left, cancel requested) → state
        #[rustfmt::skip]
        let table: &[(Ending, bool, bool, JobState)] = &[
            (Ending::LeaseExpired, true,  false, Available),
            (Ending::LeaseExpired, false, false, Available),
            (Ending::LeaseExpired, false, true,  Cancelled),
            (Ending::Released,     true,  false, Available),
            (Ending::Released,     false, false, Available),
            (Ending::Released,     true,  true,  Cancelled),
        ];
        for &(ending, left, cancel, state) in table {
            let f = Facts {
                unstarted: true,
                ..facts(left, cancel, false)
            };
            let t = decide(Running, ending, f).unwrap();
            assert_eq!(
                t,
                Transition {
                    state,
                    uncount: true,
                    records_error: false
                },
                "{ending:?} unstarted, attempts left={left} cancel={cancel}"
            );
        }
        // Other endings ignore the fact: they come from a handler that ran,
        // or end the job (a cancel before it started is recorded).
        for ending in [
            Ending::Completed,
            Ending::Errored { permanent: false },
            Ending::Snoozed,
            Ending::Cancelled,
        ] {
            let f = facts(true, false, false);
            let unstarted = Facts {
                unstarted: true,
                ..f
            };
            assert_eq!(
                decide(Running, ending, unstarted),
                decide(Running, ending, f),
                "{ending:?}"
            );
        }
        assert_eq!(
            sql_silent_when_unstarted_endings(),
            "'released', 'lease_expired'"
        );
    }

    #[test]
    fn every_rule_list_ends_with_always() {
        for kind in EndingKind::ALL {
            let list = rules(kind);
            assert_eq!(list.last().map(|r| r.0), Some(Always), "{kind:?}");
            assert!(list[..list.len() - 1].iter().all(|r| r.0 != Always));
        }
    }

    #[test]
    fn the_sql_case_lists_every_rule_in_order() {
        let case = sql_state_case(SqlFacts {
            ending: "o",
            cancel_requested: "c",
            permanent: "p",
            attempt: "a",
            max_attempts: "m",
            run_at_in_future: "f",
            unstarted: "u",
        });
        let mut at = 0;
        for kind in EndingKind::ALL {
            for (_, state) in rules(kind) {
                let needle = format!("WHEN o = '{}'", kind.as_str());
                let found = case[at..].find(&needle).expect(&needle);
                let then = format!("THEN '{}'", state.as_str());
                let then_at = case[at + found..].find(&then).expect(&then);
                at += found + then_at;
            }
        }
        assert!(case.ends_with(" END"));
        assert_eq!(sql_give_back_endings(), "'snoozed', 'released'");
    }
}
