//! Flow control across hosts: a queue's global concurrency and rate limit.
//!
//! Both are settings of the queue, stored in the database
//! ([`LimitStore::set_queue_limits`]), so every process and host that claims
//! from the queue obeys the same numbers. They are enforced where jobs are
//! claimed, in the store, atomically with the claim (invariant 7):
//!
//! - **global concurrency** `N`: at most `N` jobs of the queue are `running`
//!   at once, whichever workers run them. A job whose lease expired keeps
//!   its slot until it is rescued ([`Store::reap_expired`](crate::Store::reap_expired));
//!   a paused queue's running jobs keep theirs.
//! - **rate** `N/PERIOD` ([`RateLimit`]): at most `N` jobs of the queue start
//!   (are claimed) in any window of length `PERIOD`. A job over the limit
//!   stays `available` (no attempt is used) and starts when the window
//!   allows; [`LimitStore::next_start`] says when that is, so an idle worker
//!   sleeps until then instead of polling.
//! - **rate per key**: each job's rate key ([`crate::rate_key`]: given at
//!   enqueue, or found in its args at the queue's `rate_key` path) has its
//!   own window of `N/PERIOD` starts; jobs without a key share one. Keys do
//!   not hold each other back: a claim skips the jobs of a key whose window
//!   is full and takes those of other keys behind them.
//!
//! A queue without limits is claimed exactly as before: the limits cost
//! nothing to queues that do not use them.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

pub use crate::rate_key::RateKeyPath;
use crate::{InvalidInput, StoreError};

/// At most `starts` job starts in any window of length `per`, written
/// `"5000/1h"`, `"10/1s"`, `"10000/1d"`, `"100/15m"`.
///
/// ```
/// use kyu_core::limits::RateLimit;
/// let r: RateLimit = "5000/1h".parse().unwrap();
/// assert_eq!(r.starts, 5000);
/// assert_eq!(r.per, std::time::Duration::from_secs(3600));
/// assert_eq!(r.to_string(), "5000/1h");
/// assert!("0/1h".parse::<RateLimit>().is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RateLimit {
    /// Starts allowed per window, 1 or more.
    pub starts: u32,
    /// The window's length: 1 second to 7 days, whole seconds.
    pub per: Duration,
}

/// What a rate is written as, for error messages.
pub const RATE_ACCEPTED: &str = "a rate is STARTS/PERIOD: STARTS a whole number from 1, \
     PERIOD a whole number of seconds, minutes, hours or days from 1s to 7d, \
     e.g. \"5000/1h\", \"10/1s\", \"10000/1d\"";

/// The longest rate window.
pub const MAX_RATE_PERIOD: Duration = Duration::from_secs(7 * 24 * 3600);

impl RateLimit {
    /// A rate limit, checked: `starts` at least 1, `per` whole seconds from
    /// 1 s to 7 days. `field` names the setting in the error.
    pub fn new(field: &str, starts: u32, per: Duration) -> Result<RateLimit, InvalidInput> {
        if starts == 0 {
            return Err(InvalidInput::new(
                field,
                format!("0 starts is not accepted; {RATE_ACCEPTED}"),
            ));
        }
        if per < Duration::from_secs(1) || per > MAX_RATE_PERIOD || per.subsec_nanos() != 0 {
            return Err(InvalidInput::new(
                field,
                format!("a period of {per:?} is not accepted; {RATE_ACCEPTED}"),
            ));
        }
        Ok(RateLimit { starts, per })
    }

    /// Parses `"STARTS/PERIOD"`; `field` names the setting in the error.
    pub fn parse(field: &str, s: &str) -> Result<RateLimit, InvalidInput> {
        let bad = || InvalidInput::new(field, format!("{s:?} is not accepted; {RATE_ACCEPTED}"));
        let (n, p) = s.trim().split_once('/').ok_or_else(bad)?;
        let starts: u32 = n.trim().parse().map_err(|_| bad())?;
        let p = p.trim();
        let split = p.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
        let (count, unit) = p.split_at(split);
        let count: u64 = if count.is_empty() {
            1
        } else {
            count.parse().map_err(|_| bad())?
        };
        let unit_secs: u64 = match unit {
            "s" | "sec" | "second" | "seconds" => 1,
            "m" | "min" | "minute" | "minutes" => 60,
            "h" | "hour" | "hours" => 3600,
            "d" | "day" | "days" => 86_400,
            _ => return Err(bad()),
        };
        let secs = count.checked_mul(unit_secs).ok_or_else(bad)?;
        RateLimit::new(field, starts, Duration::from_secs(secs))
    }

    /// The window in milliseconds.
    pub fn per_ms(&self) -> i64 {
        self.per.as_millis() as i64
    }
}

impl fmt::Display for RateLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.per.as_secs();
        let (n, unit) = if s % 86_400 == 0 {
            (s / 86_400, "d")
        } else if s % 3600 == 0 {
            (s / 3600, "h")
        } else if s % 60 == 0 {
            (s / 60, "m")
        } else {
            (s, "s")
        };
        write!(f, "{}/{n}{unit}", self.starts)
    }
}

impl FromStr for RateLimit {
    type Err = InvalidInput;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        RateLimit::parse("rate", s)
    }
}

impl Serialize for RateLimit {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for RateLimit {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        RateLimit::parse("rate", &s).map_err(|e| serde::de::Error::custom(e.problem))
    }
}

/// Checks a global concurrency: 1 or more. `field` names the setting.
pub fn check_global_concurrency(field: &str, n: u32) -> Result<(), InvalidInput> {
    if n == 0 {
        return Err(InvalidInput::new(
            field,
            "0 is not accepted; give 1 or more (to stop a queue, pause it; to lift the \
             limit, clear it)",
        ));
    }
    Ok(())
}

/// A queue's limits. `None`: no such limit.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueLimits {
    /// At most this many jobs of the queue running at once, across every process and host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub global_concurrency: Option<u32>,
    /// At most this many starts in any window of this length, across every
    /// process and host; per rate key (jobs without a key share one window).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<RateLimit>,
    /// Where a job's rate key is found in its args when it is enqueued
    /// without one (set only with a rate).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_key: Option<RateKeyPath>,
}

impl QueueLimits {
    /// Whether the queue has any limit.
    pub fn is_limited(&self) -> bool {
        self.global_concurrency.is_some() || self.rate.is_some()
    }

    /// The limits a store's `queues` row holds, from its columns
    /// `global_concurrency`, `rate_starts`, `rate_per_ms` and `rate_key`.
    /// Stores write them only from checked limits; a value out of range is
    /// clamped, and a rate key path that no longer parses (or one without a
    /// rate) is read as none rather than failing every claim.
    pub fn from_columns(
        global_concurrency: Option<i64>,
        rate_starts: Option<i64>,
        rate_per_ms: Option<i64>,
        rate_key: Option<String>,
    ) -> QueueLimits {
        QueueLimits {
            rate_key: match (&rate_starts, rate_key) {
                (Some(_), Some(p)) => RateKeyPath::parse("rate_key", &p).ok(),
                _ => None,
            },
            global_concurrency: global_concurrency.map(|n| n.clamp(0, u32::MAX as i64) as u32),
            rate: match (rate_starts, rate_per_ms) {
                (Some(n), Some(ms)) => Some(RateLimit {
                    starts: n.clamp(0, u32::MAX as i64) as u32,
                    per: Duration::from_millis(ms.max(0) as u64),
                }),
                _ => None,
            },
        }
    }
}

/// The limits in words, as events and the CLI show them:
/// `"global_concurrency 2, rate 20/1s"`, `"rate 10/1s per args.api"`, or
/// `"no limits"`.
pub fn describe(limits: &QueueLimits) -> String {
    let mut parts = Vec::new();
    if let Some(n) = limits.global_concurrency {
        parts.push(format!("global_concurrency {n}"));
    }
    if let Some(r) = limits.rate {
        match &limits.rate_key {
            Some(p) => parts.push(format!("rate {r} per {p}")),
            None => parts.push(format!("rate {r}")),
        }
    }
    if parts.is_empty() {
        "no limits".to_string()
    } else {
        parts.join(", ")
    }
}

/// A change of a queue's limits: for each, `None` keeps it, `Some(None)`
/// clears it, `Some(Some(v))` sets it.
///
/// ```
/// use kyu_core::limits::LimitsUpdate;
/// let set_two = LimitsUpdate { global_concurrency: Some(Some(2)), ..Default::default() };
/// let clear_rate = LimitsUpdate { rate: Some(None), ..Default::default() };
/// let per_api = LimitsUpdate {
///     rate: Some(Some("10/1s".parse().unwrap())),
///     rate_key: Some(Some("args.api".parse().unwrap())),
///     ..Default::default()
/// };
/// # let _ = (set_two, clear_rate, per_api);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LimitsUpdate {
    /// The global concurrency.
    pub global_concurrency: Option<Option<u32>>,
    /// The rate limit. Clearing it clears its `rate_key` too.
    pub rate: Option<Option<RateLimit>>,
    /// The path of the rate key in a job's args; setting one needs a rate
    /// (set by this update or already stored).
    pub rate_key: Option<Option<RateKeyPath>>,
}

impl LimitsUpdate {
    /// Checks the values it sets (nothing is written when one is refused).
    pub fn validate(&self) -> Result<(), InvalidInput> {
        if let Some(Some(n)) = self.global_concurrency {
            check_global_concurrency("global_concurrency", n)?;
        }
        if let Some(Some(r)) = self.rate {
            RateLimit::new("rate", r.starts, r.per)?;
        }
        Ok(())
    }

    /// `limits` with this change applied; refused when it would leave a
    /// rate key path without a rate (clearing the rate clears its path).
    pub fn apply(&self, limits: QueueLimits) -> Result<QueueLimits, InvalidInput> {
        let rate = self.rate.unwrap_or(limits.rate);
        let rate_key = match (&self.rate_key, rate) {
            (Some(Some(_)), None) => {
                return Err(InvalidInput::new(
                    "rate_key",
                    "a rate key path needs a rate, and the queue has none; set the rate too, \
                     e.g. rate \"10/1s\" with rate_key \"args.api\"",
                ))
            }
            (_, None) => None,
            (Some(k), Some(_)) => k.clone(),
            (None, Some(_)) => limits.rate_key,
        };
        Ok(QueueLimits {
            global_concurrency: self.global_concurrency.unwrap_or(limits.global_concurrency),
            rate,
            rate_key,
        })
    }
}

/// A limited queue's limits and how much of them is in use now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueLimitStatus {
    /// The queue.
    pub queue: String,
    /// Its limits.
    pub limits: QueueLimits,
    /// Jobs of the queue running now (they hold global concurrency slots,
    /// including any whose lease expired and which are not yet rescued).
    pub running: u64,
    /// Starts in the rate window ending now, of every key (0 without a rate limit).
    pub rate_used: u64,
    /// When the rate limit next allows a start, if it allows none now. For a
    /// queue whose jobs have rate keys: when the first of the keys its
    /// waiting jobs have opens, if every one of them is at its limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_start_at: Option<DateTime<Utc>>,
    /// Rate keys (the "no key" bucket included) whose window is full now;
    /// 0 for a queue whose jobs have no keys.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub keys_at_limit: u64,
    /// For a queue whose jobs have rate keys, the keys with the most starts
    /// in their window now, most first (at most [`BUSIEST_KEYS`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub busiest_keys: Vec<KeyUse>,
}

/// What a store reads of a rated queue's window ending now, for
/// [`QueueLimitStatus::from_use`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RateUse {
    /// Each rate key (`""`: the jobs without a key) with its starts in its
    /// window ending now, oldest first.
    pub windows: Vec<(String, Vec<DateTime<Utc>>)>,
    /// When the rate next allows one of the queue's runnable jobs to start,
    /// if it allows none now (the store's reading of [`next_key_open`]).
    pub next_start_at: Option<DateTime<Utc>>,
}

impl QueueLimitStatus {
    /// A limited queue's status at `now`, from its `running` jobs and, for a
    /// queue with a rate, the use of its window (`rate_use`; ignored without
    /// a rate). Keys are counted and listed only for a queue whose jobs have
    /// keys: it has a rate key path, or a key has starts in its window.
    pub fn from_use(
        queue: String,
        limits: QueueLimits,
        running: u64,
        rate_use: Option<RateUse>,
        now: DateTime<Utc>,
    ) -> QueueLimitStatus {
        let mut status = QueueLimitStatus {
            queue,
            limits,
            running,
            rate_used: 0,
            next_start_at: None,
            keys_at_limit: 0,
            busiest_keys: Vec::new(),
        };
        let (Some(rate), Some(rate_use)) = (status.limits.rate, rate_use) else {
            return status;
        };
        let keyed =
            status.limits.rate_key.is_some() || rate_use.windows.iter().any(|(k, _)| !k.is_empty());
        let uses = key_uses(
            rate_use
                .windows
                .into_iter()
                .map(|(k, w)| ((!k.is_empty()).then_some(k), w))
                .collect(),
            rate,
            now,
        );
        status.rate_used = uses.iter().map(|u| u.used).sum();
        status.next_start_at = rate_use.next_start_at;
        if keyed {
            status.keys_at_limit = uses.iter().filter(|u| u.next_start_at.is_some()).count() as u64;
            status.busiest_keys = uses.into_iter().take(BUSIEST_KEYS).collect();
        }
        status
    }
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// How many keys [`QueueLimitStatus::busiest_keys`] lists.
pub const BUSIEST_KEYS: usize = 3;

/// One rate key's use of its window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyUse {
    /// The key; `None`: the jobs without a key.
    pub key: Option<String>,
    /// Starts of the key in its window ending now.
    pub used: u64,
    /// When the key's window next allows a start, if it is full now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_start_at: Option<DateTime<Utc>>,
}

/// When the rate window allows the next start, given the start times in
/// the window ending `now` (oldest first) and the limit: `None` if a start
/// is allowed now. The `k`-th start from the end of a full window leaves it
/// at its time + `per`.
pub fn next_start_from(
    starts_in_window: &[DateTime<Utc>],
    rate: RateLimit,
    now: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    let n = starts_in_window.len();
    let allowed = rate.starts as usize;
    if n < allowed {
        return None;
    }
    // The window must lose n - allowed + 1 starts before one more fits.
    let leaving = starts_in_window[n - allowed];
    let per = chrono::Duration::milliseconds(rate.per_ms());
    Some((leaving + per).max(now))
}

/// When a queue with rate keys may next start one of its runnable jobs:
/// `windows` holds, for each key its runnable jobs have, the starts in that
/// key's window ending `now` (oldest first). `None` if one of those keys
/// allows a start now (or there are none); else when the first one opens.
pub fn next_key_open(
    windows: &[Vec<DateTime<Utc>>],
    rate: RateLimit,
    now: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    let mut first: Option<DateTime<Utc>> = None;
    for w in windows {
        let at = next_start_from(w, rate, now)?;
        first = Some(first.map_or(at, |f| f.min(at)));
    }
    first
}

/// The use of each key's window, busiest first then by key (the "no key"
/// bucket first among equals), from `(key, starts in its window ending now)`.
pub fn key_uses(
    windows: Vec<(Option<String>, Vec<DateTime<Utc>>)>,
    rate: RateLimit,
    now: DateTime<Utc>,
) -> Vec<KeyUse> {
    let mut uses: Vec<KeyUse> = windows
        .into_iter()
        .map(|(key, w)| KeyUse {
            next_start_at: next_start_from(&w, rate, now),
            used: w.len() as u64,
            key,
        })
        .collect();
    uses.sort_by(|a, b| b.used.cmp(&a.used).then_with(|| a.key.cmp(&b.key)));
    uses
}

/// The queue limits of a store (see the module docs). The semantics are
/// stated by `kyu_core::conformance::limits`.
#[async_trait]
pub trait LimitStore: Send + Sync {
    /// Changes queue `queue`'s limits (creating the queue's settings if it
    /// has none yet) and returns them as they are now. The change applies to
    /// the next claim of every process. A value refused by
    /// [`LimitsUpdate::validate`] writes nothing. A change writes a
    /// `queue_limits_changed` event in the same transaction.
    async fn set_queue_limits(
        &self,
        queue: &str,
        update: LimitsUpdate,
    ) -> Result<QueueLimits, StoreError>;

    /// Every queue that has a limit, by name, with its use now.
    async fn queue_limits(&self) -> Result<Vec<QueueLimitStatus>, StoreError>;

    /// The earliest time a rate limit of one of `queues` allows a start, for
    /// queues whose window is full now; `None` when none of them is held by
    /// its rate. A queue with rate keys is held when every key its runnable
    /// jobs have is at its limit, until the first of those keys opens. An
    /// idle worker sleeps until then (or a wake-up).
    async fn next_start(&self, queues: &[String]) -> Result<Option<DateTime<Utc>>, StoreError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_parse_and_print() {
        for (s, n, secs, back) in [
            ("5000/1h", 5000, 3600, "5000/1h"),
            ("10/1s", 10, 1, "10/1s"),
            ("10000/1d", 10000, 86400, "10000/1d"),
            ("3/90s", 3, 90, "3/90s"),
            ("20/m", 20, 60, "20/1m"),
            (" 7 / 2h ", 7, 7200, "7/2h"),
        ] {
            let r: RateLimit = s.parse().unwrap();
            assert_eq!((r.starts, r.per.as_secs()), (n, secs), "{s}");
            assert_eq!(r.to_string(), back);
        }
        for bad in [
            "", "5000", "0/1h", "x/1h", "5/1y", "5/0s", "5/8d", "-1/1h", "5/1.5h",
        ] {
            let e = bad.parse::<RateLimit>().unwrap_err();
            assert_eq!(e.field, "rate");
            assert!(e.problem.contains("accepted"), "{bad}: {e}");
        }
    }

    #[test]
    fn stored_columns_read_as_limits() {
        let l = QueueLimits::from_columns(Some(2), Some(10), Some(1000), Some("args.api".into()));
        assert_eq!(l.global_concurrency, Some(2));
        assert_eq!(l.rate.map(|r| r.to_string()), Some("10/1s".to_string()));
        assert_eq!(
            l.rate_key.map(|p| p.to_string()),
            Some("args.api".to_string())
        );
        // A key path without a rate, or one that no longer parses, is none.
        let no_rate = QueueLimits::from_columns(None, None, None, Some("args.api".into()));
        assert_eq!(no_rate, QueueLimits::default());
        let bad = QueueLimits::from_columns(None, Some(1), Some(1000), Some("!".into()));
        assert_eq!(bad.rate_key, None);
        assert_eq!(
            QueueLimits::from_columns(Some(-1), None, None, None).global_concurrency,
            Some(0)
        );
    }

    #[test]
    fn status_counts_keys_only_when_jobs_have_them() {
        let t = |s: i64| DateTime::<Utc>::from_timestamp(s, 0).unwrap();
        let rate = RateLimit::new("rate", 2, Duration::from_secs(10)).unwrap();
        let limits = QueueLimits {
            rate: Some(rate),
            ..QueueLimits::default()
        };
        let unkeyed = QueueLimitStatus::from_use(
            "q".into(),
            limits.clone(),
            1,
            Some(RateUse {
                windows: vec![(String::new(), vec![t(1), t(3)])],
                next_start_at: Some(t(11)),
            }),
            t(5),
        );
        assert_eq!(
            (unkeyed.running, unkeyed.rate_used, unkeyed.next_start_at),
            (1, 2, Some(t(11)))
        );
        assert_eq!((unkeyed.keys_at_limit, unkeyed.busiest_keys.len()), (0, 0));
        let keyed = QueueLimitStatus::from_use(
            "q".into(),
            limits,
            0,
            Some(RateUse {
                windows: vec![(String::new(), vec![t(4)]), ("a".into(), vec![t(1), t(3)])],
                next_start_at: None,
            }),
            t(5),
        );
        assert_eq!((keyed.rate_used, keyed.keys_at_limit), (3, 1));
        assert_eq!(keyed.busiest_keys[0].key.as_deref(), Some("a"));
        assert_eq!(keyed.busiest_keys[1].key, None);
        let no_rate = QueueLimitStatus::from_use("q".into(), QueueLimits::default(), 3, None, t(5));
        assert_eq!((no_rate.running, no_rate.rate_used), (3, 0));
    }

    #[test]
    fn next_start_is_when_the_window_frees_a_slot() {
        let t = |s: i64| DateTime::<Utc>::from_timestamp(s, 0).unwrap();
        let rate = RateLimit::new("rate", 2, Duration::from_secs(10)).unwrap();
        assert_eq!(next_start_from(&[t(1)], rate, t(5)), None);
        assert_eq!(next_start_from(&[t(1), t(3)], rate, t(5)), Some(t(11)));
        assert_eq!(
            next_start_from(&[t(1), t(3), t(4)], rate, t(5)),
            Some(t(13))
        );
    }
}
