//! Cron expressions and their fire times in any IANA time zone.
//!
//! This module is pure: it parses an expression ([`CronExpr`]) and computes when
//! it fires ([`CronExpr::next_after`], [`CronExpr::fire_times`]). Storing
//! schedules and enqueueing their jobs happen elsewhere.
//!
//! # Syntax
//!
//! | form | fields |
//! |---|---|
//! | 5 fields | `minute hour day-of-month month day-of-week` |
//! | 6 fields | `second minute hour day-of-month month day-of-week` |
//! | macro | `@yearly` (= `@annually`, `0 0 1 1 *`), `@monthly` (`0 0 1 * *`), `@weekly` (`0 0 * * 0`), `@daily` (= `@midnight`, `0 0 * * *`), `@hourly` (`0 * * * *`) |
//!
//! | field | values |
//! |---|---|
//! | second | 0-59 |
//! | minute | 0-59 |
//! | hour | 0-23 |
//! | day-of-month | 1-31 |
//! | month | 1-12 or `JAN`-`DEC` |
//! | day-of-week | 0-7 (0 and 7 are Sunday) or `SUN`-`SAT` |
//!
//! Each field is `*`, a value `n`, a range `a-b`, a step `*/s`, `a-b/s` or `a/s`
//! (from `a` to the field's maximum), or a comma-separated list of these
//! (`0,15,30,45`, `MON-FRI`, `1-5,10-15/2`). Names and macros are
//! case-insensitive. `SUN` may end a day-of-week range (`FRI-SUN`). The Quartz
//! extensions `?`, `L`, `W`, `#` and a year field are not accepted.
//!
//! Day-of-month and day-of-week combine as in standard cron: when both fields
//! are restricted (neither is exactly `*`), a day matches when **either**
//! matches (`0 0 1 * MON` fires on the 1st and on every Monday); otherwise both
//! must match. Only the literal `*` counts as unrestricted: `*/2` and `1-31`
//! are restricted.
//!
//! An expression that can never fire (`0 0 30 2 *`) is refused, as is anything
//! malformed; the error names the field, the bad text and what is accepted.
//!
//! # Time zones and daylight-saving time
//!
//! Times go in and come out in UTC; a [`Tz`] (any IANA zone, see [`parse_zone`];
//! the default is UTC) only shapes the fire times. The expression is evaluated on
//! the zone's local wall-clock calendar, and **each matching local wall time
//! fires once, at the first instant the zone's clock shows that time or a later
//! one**:
//!
//! - A wall time skipped by a spring-forward gap fires once, at the first instant
//!   after the gap: `30 2 * * *` in America/New_York on 2026-03-08 fires at
//!   03:00 EDT (07:00 UTC). Several wall times in the gap, and the wall time at
//!   the end of the gap, collapse into that one instant, so an hourly
//!   `0 * * * *` fires at 01:00 EST and then once at 03:00 EDT, and an
//!   every-minute schedule fires once at 03:00 EDT, then at 03:01.
//! - A wall time repeated by a fall-back overlap fires once, at its first
//!   occurrence: on 2026-11-01 in America/New_York, `0 * * * *` fires at
//!   01:00 EDT (05:00 UTC) and next at 02:00 EST (07:00 UTC), **not** at
//!   01:00 EST; every-minute and every-second schedules likewise pause during
//!   the repeated hour.
//!
//! Fire times are therefore strictly increasing, with no duplicate instants.
//!
//! # Why no cron crate
//!
//! Parsing and evaluation are written here rather than wrapping a crate: `cron`
//! requires a seconds field and ANDs day-of-month with day-of-week, `saffron`
//! has no seconds field and is unmaintained, and `croner` (the closest; it
//! agrees with this module away from transitions) fires any schedule with a
//! range or wildcard twice in a fall-back overlap and shifts it by the gap's
//! length in spring, against the rule above, and its errors do not say which
//! field was wrong and what is accepted.

use std::fmt;
use std::str::FromStr;

use chrono::{
    DateTime, Datelike, NaiveDate, NaiveDateTime, NaiveTime, Offset, TimeDelta, TimeZone, Timelike,
    Utc,
};
use serde::{Deserialize, Serialize};

pub use chrono_tz::Tz;

use crate::InvalidInput;

/// The field name [`InvalidInput`] errors about a cron expression carry.
pub const CRON_FIELD: &str = "cron";
/// The field name [`InvalidInput`] errors about a time zone carry.
pub const ZONE_FIELD: &str = "timezone";

/// The zone a schedule uses when none is named.
pub const DEFAULT_ZONE: Tz = Tz::UTC;

/// Days searched ahead for the next matching date: enough for the longest gap
/// between two February 29ths (8 years, e.g. 2096 to 2104), plus margin.
const MAX_SEARCH_DAYS: u32 = 9 * 366;

/// The most steps one next-fire search takes (see
/// [`CronExpr::next_after_with_steps`]): the longest date scan
/// (9 × 366 days), one walk across the longest daylight-saving
/// gap (49 h by the minute, then a bisection to the second), and a handful
/// of candidates around a clock that was turned back. A step is a few
/// hundred nanoseconds, so a search ends within a few milliseconds.
pub const MAX_SEARCH_STEPS: u32 = 10_000;

const ACCEPTED_FORMS: &str = "5 fields (minute hour day-of-month month day-of-week), \
     6 fields with seconds first (second minute hour day-of-month month day-of-week), \
     or a macro: @yearly @annually @monthly @weekly @daily @midnight @hourly";

/// A parsed cron expression.
///
/// Parse one with [`CronExpr::parse`] or [`str::parse`]; it displays, and
/// serializes, as its source text (fields separated by single spaces). See the
/// [module docs](self) for the syntax and the daylight-saving rule.
///
/// ```
/// use chrono::{TimeZone, Utc};
/// use kyu_core::cron::{parse_zone, CronExpr};
///
/// // 09:30 on weekdays, New York time.
/// let expr: CronExpr = "30 9 * * MON-FRI".parse()?;
/// let tz = parse_zone("America/New_York")?;
///
/// // Friday 2026-03-06 10:00 UTC is 05:00 EST.
/// let after = Utc.with_ymd_and_hms(2026, 3, 6, 10, 0, 0).unwrap();
/// let next: Vec<_> = expr.fire_times(after, tz).take(2).collect();
/// assert_eq!(next, [
///     Utc.with_ymd_and_hms(2026, 3, 6, 14, 30, 0).unwrap(), // Fri 09:30 EST
///     Utc.with_ymd_and_hms(2026, 3, 9, 13, 30, 0).unwrap(), // Mon 09:30 EDT, after the change
/// ]);
///
/// let err = "0 0 * * FOO".parse::<CronExpr>().unwrap_err();
/// assert!(err.problem.contains("day-of-week field \"FOO\""), "{err}");
/// # Ok::<(), kyu_core::InvalidInput>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct CronExpr {
    source: String,
    has_seconds: bool,
    seconds: u64,
    minutes: u64,
    hours: u64,
    /// Bits 1..=31.
    days_of_month: u64,
    /// Bits 1..=12.
    months: u64,
    /// Bits 0..=6, Sunday = 0.
    days_of_week: u64,
    dom_star: bool,
    dow_star: bool,
}

/// What one field accepts.
struct FieldSpec {
    name: &'static str,
    min: u32,
    max: u32,
    /// Names for `min`, `min + 1`, … (empty when the field has none).
    names: &'static [&'static str],
    accepted: &'static str,
}

const SECOND: FieldSpec = FieldSpec {
    name: "second",
    min: 0,
    max: 59,
    names: &[],
    accepted: "0-59",
};
const MINUTE: FieldSpec = FieldSpec {
    name: "minute",
    min: 0,
    max: 59,
    names: &[],
    accepted: "0-59",
};
const HOUR: FieldSpec = FieldSpec {
    name: "hour",
    min: 0,
    max: 23,
    names: &[],
    accepted: "0-23",
};
const DAY_OF_MONTH: FieldSpec = FieldSpec {
    name: "day-of-month",
    min: 1,
    max: 31,
    names: &[],
    accepted: "1-31",
};
const MONTH: FieldSpec = FieldSpec {
    name: "month",
    min: 1,
    max: 12,
    names: &[
        "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
    ],
    accepted: "1-12 or JAN-DEC",
};
const DAY_OF_WEEK: FieldSpec = FieldSpec {
    name: "day-of-week",
    min: 0,
    max: 7,
    names: &["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"],
    accepted: "0-7 (0 and 7 are Sunday) or SUN-SAT",
};

impl FieldSpec {
    fn error(&self, text: &str, problem: impl fmt::Display) -> InvalidInput {
        InvalidInput::new(
            CRON_FIELD,
            format!(
                "{} field {text:?}: {problem}; accepted: * or values {}, written as n, a-b, \
                 */s, a-b/s, a/s, or a comma-separated list of these",
                self.name, self.accepted
            ),
        )
    }

    fn value(&self, field: &str, text: &str) -> Result<u32, InvalidInput> {
        if text.is_empty() {
            return Err(self.error(field, "a value is missing"));
        }
        if text.bytes().all(|b| b.is_ascii_digit()) {
            return match text.parse::<u32>() {
                Ok(v) if (self.min..=self.max).contains(&v) => Ok(v),
                _ => Err(self.error(field, format!("{text} is out of range"))),
            };
        }
        if let Some(i) = self.names.iter().position(|n| n.eq_ignore_ascii_case(text)) {
            return Ok(self.min + i as u32);
        }
        let what = if self.names.is_empty() {
            "is not a number".to_string()
        } else {
            format!("is not a number or a {} name", self.name)
        };
        Err(self.error(field, format!("{text:?} {what}")))
    }

    /// A step: any whole number from 1. A step larger than the field's range
    /// selects only the first value (`*/15` in the month field is January),
    /// as Vixie cron and croniter do, so crontabs copied from them work.
    fn step(&self, field: &str, text: &str) -> Result<u32, InvalidInput> {
        match text.parse::<u32>() {
            Ok(s) if s >= 1 && text.bytes().all(|b| b.is_ascii_digit()) => Ok(s),
            _ => Err(self.error(
                field,
                format!("step {text:?} is not accepted; a step is a whole number from 1"),
            )),
        }
    }

    /// Parses one field into a bit set of its values.
    fn parse(&self, field: &str) -> Result<u64, InvalidInput> {
        let mut bits = 0u64;
        for item in field.split(',') {
            if item.is_empty() {
                return Err(self.error(field, "a list item is empty"));
            }
            let (range, step) = match item.split_once('/') {
                Some((range, step)) => (range, Some(self.step(field, step)?)),
                None => (item, None),
            };
            let (lo, hi) = if range == "*" {
                (self.min, self.max)
            } else if let Some((a, b)) = range.split_once('-') {
                let lo = self.value(field, a)?;
                let mut hi = self.value(field, b)?;
                if self.name == DAY_OF_WEEK.name && hi == 0 && lo > 0 {
                    hi = 7; // FRI-SUN
                }
                if lo > hi {
                    return Err(self.error(
                        field,
                        format!("range {range:?} starts after it ends; write a-b with a <= b"),
                    ));
                }
                (lo, hi)
            } else {
                let v = self.value(field, range)?;
                (v, if step.is_some() { self.max } else { v })
            };
            for v in (lo..=hi).step_by(step.unwrap_or(1) as usize) {
                bits |= 1 << v;
            }
        }
        if self.name == DAY_OF_WEEK.name && bits & (1 << 7) != 0 {
            bits = (bits & !(1 << 7)) | 1; // 7 is Sunday, like 0
        }
        Ok(bits)
    }
}

impl CronExpr {
    /// Parses a cron expression: 5 fields, 6 with seconds first, or a macro such
    /// as `@daily` (see the [module docs](self)).
    ///
    /// The error's field is `cron`; its problem names the cron field, the bad
    /// text and what that field accepts.
    pub fn parse(expr: &str) -> Result<CronExpr, InvalidInput> {
        let fields: Vec<&str> = expr.split_whitespace().collect();
        let source = fields.join(" ");
        if fields.is_empty() {
            return Err(InvalidInput::new(
                CRON_FIELD,
                format!("the expression {expr:?} is empty; accepted: {ACCEPTED_FORMS}"),
            ));
        }
        if fields.len() == 1 && fields[0].starts_with('@') {
            let expanded = match fields[0].to_ascii_lowercase().as_str() {
                "@yearly" | "@annually" => "0 0 1 1 *",
                "@monthly" => "0 0 1 * *",
                "@weekly" => "0 0 * * 0",
                "@daily" | "@midnight" => "0 0 * * *",
                "@hourly" => "0 * * * *",
                _ => {
                    return Err(InvalidInput::new(
                        CRON_FIELD,
                        format!(
                            "unknown macro {:?}; accepted: @yearly @annually @monthly \
                             @weekly @daily @midnight @hourly",
                            fields[0]
                        ),
                    ))
                }
            };
            let mut parsed = Self::from_fields(&expanded.split(' ').collect::<Vec<_>>())?;
            parsed.source = source;
            return Ok(parsed);
        }
        match fields.len() {
            5 | 6 => {
                let mut parsed = Self::from_fields(&fields)?;
                parsed.source = source;
                Ok(parsed)
            }
            n => Err(InvalidInput::new(
                CRON_FIELD,
                format!("{source:?} has {n} fields; accepted: {ACCEPTED_FORMS}"),
            )),
        }
    }

    fn from_fields(fields: &[&str]) -> Result<CronExpr, InvalidInput> {
        let (seconds, rest) = if fields.len() == 6 {
            (SECOND.parse(fields[0])?, &fields[1..])
        } else {
            (1, fields)
        };
        let expr = CronExpr {
            source: String::new(),
            has_seconds: fields.len() == 6,
            seconds,
            minutes: MINUTE.parse(rest[0])?,
            hours: HOUR.parse(rest[1])?,
            days_of_month: DAY_OF_MONTH.parse(rest[2])?,
            months: MONTH.parse(rest[3])?,
            days_of_week: DAY_OF_WEEK.parse(rest[4])?,
            dom_star: rest[2] == "*",
            dow_star: rest[4] == "*",
        };
        // Only day-of-month alone can pick dates that never exist (`30 2`): with
        // a restricted day-of-week, some weekday always matches.
        if expr.dow_star && !expr.dom_star {
            let possible = (1..=12u32).any(|m| {
                let last = match m {
                    2 => 29,
                    4 | 6 | 9 | 11 => 30,
                    _ => 31,
                };
                expr.months & (1 << m) != 0 && (expr.days_of_month & ((2u64 << last) - 2)) != 0
            });
            if !possible {
                return Err(InvalidInput::new(
                    CRON_FIELD,
                    format!(
                        "day-of-month field {:?} with month field {:?} never fires: no such \
                         date exists; accepted: a day that exists in at least one of the \
                         months (April, June, September and November have 30 days, \
                         February 29)",
                        rest[2], rest[3]
                    ),
                ));
            }
        }
        Ok(expr)
    }

    /// The expression as text: the source with fields separated by single spaces.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Whether the expression has a seconds field (6 fields). Without one, it
    /// fires at second 0.
    pub fn has_seconds(&self) -> bool {
        self.has_seconds
    }

    /// The first fire time strictly after `after`, with the expression evaluated
    /// on the wall clock of `tz` (see the [module docs](self) for the
    /// daylight-saving rule).
    ///
    /// `None` only when no fire time exists within chrono's representable range.
    pub fn next_after(&self, after: DateTime<Utc>, tz: Tz) -> Option<DateTime<Utc>> {
        self.next_after_with_steps(after, tz).0
    }

    /// [`next_after`](Self::next_after), with the number of steps the search
    /// took (a day scanned, a candidate wall time tried, a time-zone lookup
    /// while crossing a daylight-saving gap). Whatever the expression, zone and
    /// instant, it is at most [`MAX_SEARCH_STEPS`], and the search allocates
    /// nothing: a crafted schedule cannot make the scheduler spin or grow.
    pub fn next_after_with_steps(
        &self,
        after: DateTime<Utc>,
        tz: Tz,
    ) -> (Option<DateTime<Utc>>, u32) {
        let mut steps = 0;
        let next = self.search(after, tz, &mut steps);
        (next, steps)
    }

    fn search(&self, after: DateTime<Utc>, tz: Tz, steps: &mut u32) -> Option<DateTime<Utc>> {
        let local = after.with_timezone(&tz).naive_local().with_nanosecond(0)?;
        let mut cursor = local.checked_add_signed(TimeDelta::seconds(1))?;
        loop {
            *steps += 1;
            let wall = self.next_wall_time(cursor, steps)?;
            let at = first_instant_showing(wall, tz, steps)?;
            if at > after {
                return Some(at);
            }
            // `after` is in the second pass of a repeated hour (or day) and
            // `wall` already fired in the first pass, as did every wall time
            // up to the latest one the clock showed by `after`: skip them all
            // at once rather than one candidate at a time (a whole repeated
            // day of an every-second schedule is 86,400 candidates).
            let shown = latest_wall_shown(after, tz, steps);
            cursor = wall.max(shown).checked_add_signed(TimeDelta::seconds(1))?;
        }
    }

    /// The fire times strictly after `after`, in increasing order (see
    /// [`next_after`](Self::next_after)). The iterator is endless for any
    /// expression that parsed; bound it with `take` or `take_while`.
    pub fn fire_times(&self, after: DateTime<Utc>, tz: Tz) -> FireTimes<'_> {
        FireTimes {
            expr: self,
            tz,
            last: Some(after),
        }
    }

    /// Whether a local wall-clock date matches the day-of-month, month and
    /// day-of-week fields.
    fn date_matches(&self, date: NaiveDate) -> bool {
        if self.months & (1 << date.month()) == 0 {
            return false;
        }
        let dom = self.days_of_month & (1 << date.day()) != 0;
        let dow = self.days_of_week & (1 << date.weekday().num_days_from_sunday()) != 0;
        if self.dom_star || self.dow_star {
            dom && dow
        } else {
            dom || dow
        }
    }

    /// The first matching time of day at or after `from`, if any on this day.
    fn next_time_in_day(&self, from: NaiveTime) -> Option<NaiveTime> {
        let (h0, m0, s0) = (from.hour(), from.minute(), from.second());
        let mut h = next_bit(self.hours, h0)?;
        loop {
            if h > 23 {
                return None;
            }
            let first_m = if h == h0 { m0 } else { 0 };
            let mut m = next_bit(self.minutes, first_m);
            while let Some(min) = m.filter(|&m| m <= 59) {
                let first_s = if h == h0 && min == m0 { s0 } else { 0 };
                if let Some(s) = next_bit(self.seconds, first_s).filter(|&s| s <= 59) {
                    return NaiveTime::from_hms_opt(h, min, s);
                }
                m = next_bit(self.minutes, min + 1);
            }
            h = next_bit(self.hours, h + 1)?;
        }
    }

    /// The first local wall time at or after `from` that the expression matches.
    fn next_wall_time(&self, from: NaiveDateTime, steps: &mut u32) -> Option<NaiveDateTime> {
        let mut date = from.date();
        let mut start = from.time();
        for _ in 0..MAX_SEARCH_DAYS {
            *steps += 1;
            if self.months & (1 << date.month()) == 0 {
                // Jump to the first day of the next month.
                let (y, m) = if date.month() == 12 {
                    (date.year() + 1, 1)
                } else {
                    (date.year(), date.month() + 1)
                };
                date = NaiveDate::from_ymd_opt(y, m, 1)?;
                start = NaiveTime::MIN;
                continue;
            }
            if self.date_matches(date) {
                if let Some(t) = self.next_time_in_day(start) {
                    return Some(date.and_time(t));
                }
            }
            date = date.succ_opt()?;
            start = NaiveTime::MIN;
        }
        None
    }
}

/// The lowest set bit of `bits` at or above `from`.
fn next_bit(bits: u64, from: u32) -> Option<u32> {
    if from >= 64 {
        return None;
    }
    let rest = bits >> from;
    (rest != 0).then(|| from + rest.trailing_zeros())
}

/// How far back a clock may have been turned: a day, as in America/Juneau
/// in 1867, plus margin.
const LONGEST_TURN_BACK_HOURS: i64 = 26;

/// The latest wall time the clock of `tz` showed at or before `after`: its
/// wall time then, or, when it was turned back within the last
/// [`LONGEST_TURN_BACK_HOURS`], the wall time just before the turn. Offsets
/// are sampled hourly and each turn-back found is bisected to the second; a
/// turn missed by the sampling only makes the result earlier, never later,
/// so the caller skips less, never a wall time still to come.
fn latest_wall_shown(after: DateTime<Utc>, tz: Tz, steps: &mut u32) -> NaiveDateTime {
    let mut offset = |t: DateTime<Utc>| {
        *steps += 1;
        i64::from(
            tz.offset_from_utc_datetime(&t.naive_utc())
                .fix()
                .local_minus_utc(),
        )
    };
    let wall = |t: DateTime<Utc>, off: i64| t.naive_utc() + TimeDelta::seconds(off);
    let after = after.with_nanosecond(0).unwrap_or(after);
    let mut latest = wall(after, offset(after));
    let hour = TimeDelta::hours(1);
    let Some(mut prev) = after.checked_sub_signed(hour * LONGEST_TURN_BACK_HOURS as i32) else {
        return latest;
    };
    let mut prev_off = offset(prev);
    for k in (0..LONGEST_TURN_BACK_HOURS).rev() {
        let t = after - hour * k as i32;
        let off = offset(t);
        if off < prev_off {
            // Turned back between `prev` and `t`: find the last second of the old offset.
            let (mut lo, mut hi) = (prev, t);
            while hi - lo > TimeDelta::seconds(1) {
                let mid = lo + TimeDelta::seconds((hi - lo).num_seconds() / 2);
                if offset(mid) == prev_off {
                    lo = mid;
                } else {
                    hi = mid;
                }
            }
            latest = latest.max(wall(lo, prev_off));
        }
        prev = t;
        prev_off = off;
    }
    latest
}

/// The first instant at which the clock of `tz` shows `wall` or a later time:
/// the instant itself, the first of two in a fall-back overlap, or the end of a
/// spring-forward gap that skips `wall`.
fn first_instant_showing(wall: NaiveDateTime, tz: Tz, steps: &mut u32) -> Option<DateTime<Utc>> {
    let mut exists = |w: NaiveDateTime| {
        *steps += 1;
        tz.from_local_datetime(&w).earliest()
    };
    if let Some(at) = exists(wall) {
        return Some(at.with_timezone(&Utc));
    }
    // In a gap. Find the first existing minute after `wall`, then the first
    // existing second before it (transitions of old local mean times fall
    // between whole minutes). Gaps last at most a day (Pacific/Apia, 2011).
    let minute = TimeDelta::minutes(1);
    let mut lo = wall; // does not exist
    let mut hi = wall.checked_add_signed(minute)?;
    let mut steps = 0;
    while exists(hi).is_none() {
        steps += 1;
        if steps > 49 * 60 {
            return None;
        }
        lo = hi;
        hi = hi.checked_add_signed(minute)?;
    }
    while hi - lo > TimeDelta::seconds(1) {
        let mid = lo + TimeDelta::seconds((hi - lo).num_seconds() / 2);
        if exists(mid).is_some() {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    exists(hi).map(|at| at.with_timezone(&Utc))
}

impl FromStr for CronExpr {
    type Err = InvalidInput;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        CronExpr::parse(s)
    }
}

impl TryFrom<String> for CronExpr {
    type Error = InvalidInput;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        CronExpr::parse(&s)
    }
}

impl From<CronExpr> for String {
    fn from(expr: CronExpr) -> String {
        expr.source
    }
}

impl fmt::Display for CronExpr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

/// The fire times of a [`CronExpr`] after an instant, in increasing order; made
/// by [`CronExpr::fire_times`].
#[derive(Debug, Clone)]
pub struct FireTimes<'a> {
    expr: &'a CronExpr,
    tz: Tz,
    last: Option<DateTime<Utc>>,
}

impl Iterator for FireTimes<'_> {
    type Item = DateTime<Utc>;

    fn next(&mut self) -> Option<DateTime<Utc>> {
        let next = self.expr.next_after(self.last?, self.tz);
        self.last = next;
        next
    }
}

/// A cron expression, or text to parse as one: what
/// [`ScheduleSpec::new`](crate::ScheduleSpec::new) takes, so a schedule reads
/// as it is written (`"0 9 * * MON"`). Implemented for [`CronExpr`], `&str`
/// and `String`.
pub trait IntoCron {
    /// The expression, or why the text is not one (field `cron`).
    fn into_cron(self) -> Result<CronExpr, InvalidInput>;
}

impl IntoCron for CronExpr {
    fn into_cron(self) -> Result<CronExpr, InvalidInput> {
        Ok(self)
    }
}

impl IntoCron for &str {
    fn into_cron(self) -> Result<CronExpr, InvalidInput> {
        CronExpr::parse(self)
    }
}

impl IntoCron for String {
    fn into_cron(self) -> Result<CronExpr, InvalidInput> {
        CronExpr::parse(&self)
    }
}

impl IntoCron for &String {
    fn into_cron(self) -> Result<CronExpr, InvalidInput> {
        CronExpr::parse(self)
    }
}

/// A time zone, or an IANA name to look up (`"Asia/Tokyo"`): what
/// [`ScheduleSpec::zone`](crate::ScheduleSpec::zone) takes. Implemented for
/// [`Tz`], `&str` and `String`.
pub trait IntoZone {
    /// The zone, or why the name is not one (field `timezone`).
    fn into_zone(self) -> Result<Tz, InvalidInput>;
}

impl IntoZone for Tz {
    fn into_zone(self) -> Result<Tz, InvalidInput> {
        Ok(self)
    }
}

impl IntoZone for &str {
    fn into_zone(self) -> Result<Tz, InvalidInput> {
        parse_zone(self)
    }
}

impl IntoZone for String {
    fn into_zone(self) -> Result<Tz, InvalidInput> {
        parse_zone(&self)
    }
}

impl IntoZone for &String {
    fn into_zone(self) -> Result<Tz, InvalidInput> {
        parse_zone(self)
    }
}

/// Parses an IANA time zone name such as `Asia/Tokyo`, `America/New_York` or
/// `UTC` (exact spelling; the error suggests the right case when only the case
/// is wrong).
pub fn parse_zone(name: &str) -> Result<Tz, InvalidInput> {
    let trimmed = name.trim();
    if let Ok(tz) = trimmed.parse::<Tz>() {
        return Ok(tz);
    }
    let hint = chrono_tz::TZ_VARIANTS
        .iter()
        .find(|tz| tz.name().eq_ignore_ascii_case(trimmed))
        .map(|tz| format!(" (did you mean {}?)", tz.name()))
        .unwrap_or_default();
    Err(InvalidInput::new(
        ZONE_FIELD,
        format!(
            "unknown time zone {name:?}{hint}; accepted: an IANA zone name such as \
             Asia/Tokyo, America/New_York, Europe/Berlin or UTC"
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono_tz::America::New_York;
    use chrono_tz::Europe::Berlin;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .unwrap_or_else(|e| panic!("bad test time {s:?}: {e}"))
            .with_timezone(&Utc)
    }

    fn next_n(expr: &str, tz: Tz, after: &str, n: usize) -> Vec<String> {
        let e = CronExpr::parse(expr).unwrap_or_else(|e| panic!("{expr:?}: {e}"));
        e.fire_times(utc(after), tz)
            .take(n)
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
            .collect()
    }

    fn check(expr: &str, zone: &str, after: &str, expected: &[&str]) {
        let tz = parse_zone(zone).unwrap();
        let got = next_n(expr, tz, after, expected.len());
        assert_eq!(got, expected, "{expr:?} in {zone} after {after}");
    }

    fn err(expr: &str) -> String {
        let e = CronExpr::parse(expr).expect_err(expr);
        assert_eq!(e.field, "cron");
        e.problem
    }

    #[test]
    fn table_of_expressions_and_zones() {
        #[rustfmt::skip]
        let table: &[(&str, &str, &str, &[&str])] = &[
            ("* * * * *", "UTC", "2026-01-01T00:00:00Z",
                &["2026-01-01T00:01:00Z", "2026-01-01T00:02:00Z", "2026-01-01T00:03:00Z"]),
            ("* * * * *", "UTC", "2026-01-01T00:00:30.5Z",
                &["2026-01-01T00:01:00Z", "2026-01-01T00:02:00Z"]),
            ("*/15 * * * *", "UTC", "2026-01-01T00:07:00Z",
                &["2026-01-01T00:15:00Z", "2026-01-01T00:30:00Z", "2026-01-01T00:45:00Z", "2026-01-01T01:00:00Z"]),
            ("0,15,30,45 * * * *", "UTC", "2026-01-01T23:50:00Z",
                &["2026-01-02T00:00:00Z", "2026-01-02T00:15:00Z"]),
            ("5-7 3 * * *", "UTC", "2026-01-01T00:00:00Z",
                &["2026-01-01T03:05:00Z", "2026-01-01T03:06:00Z", "2026-01-01T03:07:00Z", "2026-01-02T03:05:00Z"]),
            ("10-50/20 * * * *", "UTC", "2026-01-01T00:00:00Z",
                &["2026-01-01T00:10:00Z", "2026-01-01T00:30:00Z", "2026-01-01T00:50:00Z", "2026-01-01T01:10:00Z"]),
            ("50/5 * * * *", "UTC", "2026-01-01T00:00:00Z",
                &["2026-01-01T00:50:00Z", "2026-01-01T00:55:00Z", "2026-01-01T01:50:00Z"]),
            ("0 9 * * MON-FRI", "UTC", "2026-01-02T09:00:00Z", // a Friday
                &["2026-01-05T09:00:00Z", "2026-01-06T09:00:00Z", "2026-01-07T09:00:00Z",
                  "2026-01-08T09:00:00Z", "2026-01-09T09:00:00Z", "2026-01-12T09:00:00Z"]),
            ("0 9 * * 1-5", "UTC", "2026-01-02T09:00:00Z",
                &["2026-01-05T09:00:00Z", "2026-01-06T09:00:00Z"]),
            ("0 12 * * sat,sun", "UTC", "2026-01-01T00:00:00Z",
                &["2026-01-03T12:00:00Z", "2026-01-04T12:00:00Z", "2026-01-10T12:00:00Z"]),
            ("0 12 * * FRI-SUN", "UTC", "2026-01-01T00:00:00Z",
                &["2026-01-02T12:00:00Z", "2026-01-03T12:00:00Z", "2026-01-04T12:00:00Z", "2026-01-09T12:00:00Z"]),
            ("0 0 * * 7", "UTC", "2026-01-01T00:00:00Z",
                &["2026-01-04T00:00:00Z", "2026-01-11T00:00:00Z"]),
            ("0 0 1 JAN,jul *", "UTC", "2026-01-01T00:00:00Z",
                &["2026-07-01T00:00:00Z", "2027-01-01T00:00:00Z"]),
            ("0 0 1 MAR-MAY *", "UTC", "2026-01-01T00:00:00Z",
                &["2026-03-01T00:00:00Z", "2026-04-01T00:00:00Z", "2026-05-01T00:00:00Z", "2027-03-01T00:00:00Z"]),
            ("0 0 1 */3 *", "UTC", "2026-01-15T00:00:00Z",
                &["2026-04-01T00:00:00Z", "2026-07-01T00:00:00Z", "2026-10-01T00:00:00Z", "2027-01-01T00:00:00Z"]),
            // Day-of-month OR day-of-week, both restricted: the 13th, and every Friday.
            ("0 0 13 * FRI", "UTC", "2026-02-01T00:00:00Z",
                &["2026-02-06T00:00:00Z", "2026-02-13T00:00:00Z", "2026-02-20T00:00:00Z", "2026-02-27T00:00:00Z",
                  "2026-03-06T00:00:00Z", "2026-03-13T00:00:00Z"]),
            ("0 0 1,15 * MON", "UTC", "2026-06-01T00:00:00Z", // a Monday the 1st
                &["2026-06-08T00:00:00Z", "2026-06-15T00:00:00Z", "2026-06-22T00:00:00Z", "2026-06-29T00:00:00Z",
                  "2026-07-01T00:00:00Z", "2026-07-06T00:00:00Z"]),
            // Day-of-week `*`: day-of-month alone decides.
            ("0 0 13 * *", "UTC", "2026-02-01T00:00:00Z",
                &["2026-02-13T00:00:00Z", "2026-03-13T00:00:00Z"]),
            // Day-of-month `*`: day-of-week alone decides.
            ("0 0 * * FRI", "UTC", "2026-02-01T00:00:00Z",
                &["2026-02-06T00:00:00Z", "2026-02-13T00:00:00Z"]),
            // `*/1` is restricted, so OR makes every day match.
            ("0 0 */1 * FRI", "UTC", "2026-02-01T00:00:00Z",
                &["2026-02-02T00:00:00Z", "2026-02-03T00:00:00Z"]),
            ("@yearly", "UTC", "2026-01-01T00:00:00Z", &["2027-01-01T00:00:00Z", "2028-01-01T00:00:00Z"]),
            ("@annually", "UTC", "2026-06-01T00:00:00Z", &["2027-01-01T00:00:00Z"]),
            ("@monthly", "UTC", "2026-01-31T12:00:00Z", &["2026-02-01T00:00:00Z", "2026-03-01T00:00:00Z"]),
            ("@weekly", "UTC", "2026-01-01T00:00:00Z", // Thursday
                &["2026-01-04T00:00:00Z", "2026-01-11T00:00:00Z", "2026-01-18T00:00:00Z"]),
            ("@daily", "UTC", "2026-01-01T00:00:00Z", &["2026-01-02T00:00:00Z", "2026-01-03T00:00:00Z"]),
            ("@midnight", "UTC", "2025-12-31T23:59:59Z", &["2026-01-01T00:00:00Z"]),
            ("@hourly", "UTC", "2026-01-01T00:59:59.999Z", &["2026-01-01T01:00:00Z", "2026-01-01T02:00:00Z"]),
            ("@HOURLY", "UTC", "2026-01-01T01:00:00Z", &["2026-01-01T02:00:00Z"]),
            // Six fields, seconds first.
            ("*/20 * * * * *", "UTC", "2026-01-01T00:00:00Z",
                &["2026-01-01T00:00:20Z", "2026-01-01T00:00:40Z", "2026-01-01T00:01:00Z"]),
            ("30 0 12 * * *", "UTC", "2026-01-01T12:00:30Z",
                &["2026-01-02T12:00:30Z"]),
            ("* * * * * *", "UTC", "2026-01-01T00:00:00.25Z",
                &["2026-01-01T00:00:01Z", "2026-01-01T00:00:02Z"]),
            ("0 0 0 1 1 *", "UTC", "2026-01-01T00:00:00Z", &["2027-01-01T00:00:00Z"]),
            // 31st of the month: months without one are skipped.
            ("0 0 31 * *", "UTC", "2026-01-01T00:00:00Z",
                &["2026-01-31T00:00:00Z", "2026-03-31T00:00:00Z", "2026-05-31T00:00:00Z", "2026-07-31T00:00:00Z",
                  "2026-08-31T00:00:00Z", "2026-10-31T00:00:00Z", "2026-12-31T00:00:00Z", "2027-01-31T00:00:00Z"]),
            ("0 0 30 * *", "UTC", "2026-01-31T00:00:00Z",
                &["2026-03-30T00:00:00Z", "2026-04-30T00:00:00Z"]),
            // Leap days.
            ("0 0 29 2 *", "UTC", "2026-01-01T00:00:00Z",
                &["2028-02-29T00:00:00Z", "2032-02-29T00:00:00Z"]),
            ("0 0 29 FEB *", "UTC", "2096-03-01T00:00:00Z", &["2104-02-29T00:00:00Z"]), // 2100 is not leap
            // Zones: local wall time, UTC out.
            ("0 9 * * *", "Asia/Tokyo", "2026-01-01T00:00:00Z",
                &["2026-01-02T00:00:00Z", "2026-01-03T00:00:00Z"]),
            ("0 0 * * *", "Asia/Kolkata", "2026-01-01T00:00:00Z",
                &["2026-01-01T18:30:00Z", "2026-01-02T18:30:00Z"]),
            ("0 0 1 * *", "Australia/Sydney", "2026-01-01T00:00:00Z",
                &["2026-01-31T13:00:00Z", "2026-02-28T13:00:00Z", "2026-03-31T13:00:00Z", "2026-04-30T14:00:00Z"]),
            ("30 9 * * MON-FRI", "America/New_York", "2026-03-06T10:00:00Z",
                &["2026-03-06T14:30:00Z", "2026-03-09T13:30:00Z"]),
            ("0 0 29 2 *", "America/New_York", "2026-01-01T00:00:00Z", &["2028-02-29T05:00:00Z"]),
            ("@weekly", "Europe/Berlin", "2026-01-01T00:00:00Z",
                &["2026-01-03T23:00:00Z", "2026-01-10T23:00:00Z"]),
        ];
        for (expr, zone, after, expected) in table {
            check(expr, zone, after, expected);
        }
    }

    #[test]
    fn new_york_spring_forward() {
        // 2026-03-08: 02:00 EST jumps to 03:00 EDT (07:00 UTC).
        let z = "America/New_York";
        // A daily time in the gap fires once, at the end of the gap.
        check(
            "30 2 * * *",
            z,
            "2026-03-07T00:00:00Z",
            &[
                "2026-03-07T07:30:00Z", // 02:30 EST
                "2026-03-08T07:00:00Z", // 02:30 does not exist: 03:00 EDT
                "2026-03-09T06:30:00Z", // 02:30 EDT
            ],
        );
        check(
            "0 2 * * *",
            z,
            "2026-03-08T00:00:00Z",
            &["2026-03-08T07:00:00Z", "2026-03-09T06:00:00Z"],
        );
        // Hourly: 02:00 maps to 03:00, which is a fire time too: once only.
        check(
            "0 * * * *",
            z,
            "2026-03-08T05:30:00Z",
            &[
                "2026-03-08T06:00:00Z", // 01:00 EST
                "2026-03-08T07:00:00Z", // 03:00 EDT (for 02:00 and 03:00)
                "2026-03-08T08:00:00Z", // 04:00 EDT
            ],
        );
        // Every minute across the gap.
        check(
            "* * * * *",
            z,
            "2026-03-08T06:58:00Z",
            &[
                "2026-03-08T06:59:00Z", // 01:59 EST
                "2026-03-08T07:00:00Z", // 03:00 EDT
                "2026-03-08T07:01:00Z", // 03:01 EDT
            ],
        );
        // Every second across the gap.
        check(
            "* * * * * *",
            z,
            "2026-03-08T06:59:58Z",
            &[
                "2026-03-08T06:59:59Z",
                "2026-03-08T07:00:00Z",
                "2026-03-08T07:00:01Z",
            ],
        );
        // Every 20 minutes inside the gap hour.
        check(
            "*/20 2 * * *",
            z,
            "2026-03-07T08:00:00Z",
            &[
                "2026-03-08T07:00:00Z", // 02:00, 02:20 and 02:40 all collapse
                "2026-03-09T06:00:00Z",
                "2026-03-09T06:20:00Z",
            ],
        );
        // Asking from the end of the gap.
        check(
            "30 2 * * *",
            z,
            "2026-03-08T07:00:00Z",
            &["2026-03-09T06:30:00Z"],
        );
    }

    #[test]
    fn new_york_fall_back() {
        // 2026-11-01: 02:00 EDT (06:00 UTC) falls back to 01:00 EST; 01:xx happens twice.
        let z = "America/New_York";
        check(
            "30 1 * * *",
            z,
            "2026-10-31T00:00:00Z",
            &[
                "2026-10-31T05:30:00Z", // 01:30 EDT
                "2026-11-01T05:30:00Z", // 01:30 EDT, first occurrence only
                "2026-11-02T06:30:00Z", // 01:30 EST
            ],
        );
        // Hourly: 01:00 EDT fires, 01:00 EST does not.
        check(
            "0 * * * *",
            z,
            "2026-11-01T04:30:00Z",
            &[
                "2026-11-01T05:00:00Z", // 01:00 EDT
                "2026-11-01T07:00:00Z", // 02:00 EST
                "2026-11-01T08:00:00Z", // 03:00 EST
            ],
        );
        // Every minute pauses during the repeated hour.
        check(
            "* * * * *",
            z,
            "2026-11-01T05:58:00Z",
            &[
                "2026-11-01T05:59:00Z", // 01:59 EDT
                "2026-11-01T07:00:00Z", // 02:00 EST
            ],
        );
        check(
            "*/30 * * * * *",
            z,
            "2026-11-01T05:59:00Z",
            &["2026-11-01T05:59:30Z", "2026-11-01T07:00:00Z"],
        );
        // From inside the second pass: already-fired wall times do not fire again.
        check(
            "30 1 * * *",
            z,
            "2026-11-01T06:15:00Z",
            &["2026-11-02T06:30:00Z"],
        );
        check(
            "0 * * * *",
            z,
            "2026-11-01T06:00:00Z",
            &["2026-11-01T07:00:00Z"],
        );
        check(
            "* * * * *",
            z,
            "2026-11-01T06:10:00Z",
            &["2026-11-01T07:00:00Z"],
        );
        // From inside the first pass.
        check(
            "45 1 * * *",
            z,
            "2026-11-01T05:15:00Z",
            &["2026-11-01T05:45:00Z"],
        );
    }

    #[test]
    fn berlin_both_directions() {
        let z = "Europe/Berlin";
        // 2026-03-29: 02:00 CET (01:00 UTC) jumps to 03:00 CEST.
        check(
            "30 2 * * *",
            z,
            "2026-03-28T00:00:00Z",
            &[
                "2026-03-28T01:30:00Z", // 02:30 CET
                "2026-03-29T01:00:00Z", // gap: 03:00 CEST
                "2026-03-30T00:30:00Z", // 02:30 CEST
            ],
        );
        check(
            "0 * * * *",
            z,
            "2026-03-28T23:30:00Z",
            &[
                "2026-03-29T00:00:00Z", // 01:00 CET
                "2026-03-29T01:00:00Z", // 03:00 CEST (for 02:00 and 03:00)
                "2026-03-29T02:00:00Z", // 04:00 CEST
            ],
        );
        // 2026-10-25: 03:00 CEST (01:00 UTC) falls back to 02:00 CET.
        check(
            "30 2 * * *",
            z,
            "2026-10-24T00:00:00Z",
            &[
                "2026-10-24T00:30:00Z", // 02:30 CEST
                "2026-10-25T00:30:00Z", // 02:30 CEST, first occurrence
                "2026-10-26T01:30:00Z", // 02:30 CET
            ],
        );
        check(
            "0 * * * *",
            z,
            "2026-10-24T23:30:00Z",
            &[
                "2026-10-25T00:00:00Z", // 02:00 CEST
                "2026-10-25T02:00:00Z", // 03:00 CET; 02:00 CET skipped
                "2026-10-25T03:00:00Z",
            ],
        );
        check(
            "*/15 * * * *",
            z,
            "2026-10-25T00:40:00Z",
            &[
                "2026-10-25T00:45:00Z", // 02:45 CEST
                "2026-10-25T02:00:00Z", // 03:00 CET
            ],
        );
    }

    #[test]
    fn steps_larger_than_a_field_select_its_first_value() {
        // Vixie cron and croniter accept these; crontabs copied from them must work.
        check(
            "0 0 1 */15 *",
            "UTC",
            "2026-02-01T00:00:00Z",
            &["2027-01-01T00:00:00Z", "2028-01-01T00:00:00Z"],
        );
        check(
            "0 */25 * * *",
            "UTC",
            "2026-02-01T00:30:00Z",
            &["2026-02-02T00:00:00Z", "2026-02-03T00:00:00Z"],
        );
        check(
            "5/100 * * * *",
            "UTC",
            "2026-02-01T00:30:00Z",
            &["2026-02-01T01:05:00Z", "2026-02-01T02:05:00Z"],
        );
    }

    #[test]
    fn other_zones_with_odd_transitions() {
        // Lord Howe moves by 30 minutes: 2026-10-04 02:00 +10:30 -> 02:30 +11.
        check(
            "15 2 * * *",
            "Australia/Lord_Howe",
            "2026-10-03T00:00:00Z",
            &[
                "2026-10-03T15:30:00Z", // 2026-10-04 02:30 +11 (end of the gap)
                "2026-10-04T15:15:00Z", // 2026-10-05 02:15 +11
            ],
        );
        // Samoa skipped 2011-12-30 entirely.
        check(
            "0 12 * * *",
            "Pacific/Apia",
            "2011-12-29T00:00:00Z",
            &[
                "2011-12-29T22:00:00Z", // 12:00 on the 29th (-10)
                "2011-12-30T10:00:00Z", // the 30th does not exist: 00:00 on the 31st (+14)
                "2011-12-30T22:00:00Z", // 12:00 on the 31st
            ],
        );
    }

    #[test]
    fn fire_times_strictly_increase_through_a_year_of_transitions() {
        for zone in [
            "America/New_York",
            "Europe/Berlin",
            "Australia/Lord_Howe",
            "UTC",
        ] {
            let tz = parse_zone(zone).unwrap();
            for expr in ["*/7 * * * *", "0 * * * *", "30 2 * * *", "0,30 1-3 * * *"] {
                let e = CronExpr::parse(expr).unwrap();
                let start = utc("2026-01-01T00:00:00Z");
                let end = utc("2027-01-01T00:00:00Z");
                let mut prev = start;
                for t in e.fire_times(start, tz).take_while(|t| *t < end) {
                    assert!(t > prev, "{expr} {zone}: {t} after {prev}");
                    // Each fire time equals next_after of any instant just before it.
                    assert_eq!(e.next_after(t - TimeDelta::seconds(1), tz), Some(t));
                    prev = t;
                }
            }
        }
    }

    #[test]
    fn next_fire_search_is_bounded_when_a_clock_repeats_a_whole_day() {
        // America/Juneau, 1867-10-19 (Alaska's purchase): the clock went back
        // from +15:02:19 to -8:57:41, so a whole day of wall times repeats.
        // From inside the second pass, every wall time up to 15:33:31 on the
        // 19th has fired in the first pass; the next never-shown one is
        // 15:33:32, at 1867-10-20 00:31:13 UTC.
        let tz = parse_zone("America/Juneau").unwrap();
        let after = utc("1867-10-19T12:00:00Z");
        for (expr, expected) in [
            ("* * * * * *", "1867-10-20T00:31:13Z"),
            ("* * * * *", "1867-10-20T00:31:41Z"),
            ("*/7 * * * * *", "1867-10-20T00:31:16Z"),
        ] {
            let e = CronExpr::parse(expr).unwrap();
            let (next, steps) = e.next_after_with_steps(after, tz);
            eprintln!("{expr} in America/Juneau: {steps} steps");
            assert!(
                steps <= MAX_SEARCH_STEPS,
                "{expr}: the search took {steps} steps (bound {MAX_SEARCH_STEPS})"
            );
            let next = next.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true));
            assert_eq!(next.as_deref(), Some(expected), "{expr}");
        }
    }

    #[test]
    fn next_fire_search_is_bounded_for_the_rarest_and_gap_crossing_schedules() {
        let cases = [
            ("0 0 29 2 *", "UTC", "2096-03-01T00:00:00Z"), // next Feb 29 is 2104
            ("* * * * * *", "Pacific/Apia", "2011-12-30T09:59:59Z"), // a skipped day
            ("59 59 23 31 12 *", "Asia/Manila", "1844-12-30T00:00:00Z"), // a skipped day
            ("*/30 * * * * *", "America/New_York", "2026-11-01T06:10:00Z"), // repeated hour
        ];
        for (expr, zone, after) in cases {
            let e = CronExpr::parse(expr).unwrap();
            let tz = parse_zone(zone).unwrap();
            let (next, steps) = e.next_after_with_steps(utc(after), tz);
            assert!(next.is_some(), "{expr} {zone}");
            assert!(
                steps <= MAX_SEARCH_STEPS,
                "{expr} {zone} after {after}: {steps} steps"
            );
        }
    }

    #[test]
    fn display_and_serde_round_trip() {
        for s in [
            "*/15 * * * *",
            "0 9 * * MON-FRI",
            "@weekly",
            "0 0 0 1 JAN *",
        ] {
            let e: CronExpr = s.parse().unwrap();
            assert_eq!(e.to_string(), s);
            assert_eq!(e.as_str(), s);
            let json = serde_json::to_string(&e).unwrap();
            assert_eq!(json, format!("{s:?}"));
            assert_eq!(serde_json::from_str::<CronExpr>(&json).unwrap(), e);
        }
        let e: CronExpr = "  0  9\t* * 1 ".parse().unwrap();
        assert_eq!(e.to_string(), "0 9 * * 1");
        assert!(!e.has_seconds());
        assert!("0 0 9 * * 1".parse::<CronExpr>().unwrap().has_seconds());
        let bad = serde_json::from_str::<CronExpr>("\"61 * * * *\"").unwrap_err();
        assert!(bad.to_string().contains("minute field"), "{bad}");
    }

    #[test]
    fn invalid_expressions_say_what_is_accepted() {
        let p = err("* * * *");
        assert!(
            p.contains("has 4 fields") && p.contains("accepted: 5 fields"),
            "{p}"
        );
        assert!(
            p.contains("6 fields with seconds first") && p.contains("@hourly"),
            "{p}"
        );
        let p = err("* * * * * * *");
        assert!(p.contains("has 7 fields"), "{p}");
        let p = err("   ");
        assert!(p.contains("empty"), "{p}");

        let p = err("60 * * * *");
        assert!(
            p.contains("minute field \"60\"") && p.contains("60 is out of range"),
            "{p}"
        );
        assert!(p.contains("accepted: * or values 0-59"), "{p}");
        let p = err("60 * * * * *");
        assert!(
            p.contains("second field \"60\"") && p.contains("0-59"),
            "{p}"
        );
        let p = err("0 24 * * *");
        assert!(
            p.contains("hour field \"24\"") && p.contains("values 0-23"),
            "{p}"
        );
        let p = err("0 0 0 * *");
        assert!(
            p.contains("day-of-month field \"0\"") && p.contains("values 1-31"),
            "{p}"
        );
        let p = err("0 0 * 13 *");
        assert!(
            p.contains("month field \"13\"") && p.contains("1-12 or JAN-DEC"),
            "{p}"
        );
        let p = err("0 0 * * 8");
        assert!(
            p.contains("day-of-week field \"8\"")
                && p.contains("0-7 (0 and 7 are Sunday) or SUN-SAT"),
            "{p}"
        );
        let p = err("0 0 * * 99999999999");
        assert!(p.contains("out of range"), "{p}");

        let p = err("0 0 * FOO *");
        assert!(
            p.contains("month field \"FOO\"") && p.contains("not a number or a month name"),
            "{p}"
        );
        let p = err("0 0 * * FOO");
        assert!(
            p.contains("day-of-week field \"FOO\"") && p.contains("SUN-SAT"),
            "{p}"
        );
        let p = err("MON * * * *");
        assert!(
            p.contains("minute field \"MON\"") && p.contains("not a number"),
            "{p}"
        );

        let p = err("*/0 * * * *");
        assert!(
            p.contains("minute field \"*/0\"") && p.contains("step \"0\""),
            "{p}"
        );
        assert!(p.contains("a whole number from 1"), "{p}");
        let p = err("*/ * * * *");
        assert!(p.contains("step \"\""), "{p}");
        let p = err("0 5-1 * * *");
        assert!(
            p.contains("hour field \"5-1\"") && p.contains("starts after it ends"),
            "{p}"
        );
        let p = err("1,,2 * * * *");
        assert!(p.contains("list item is empty"), "{p}");
        let p = err("-5 * * * *");
        assert!(p.contains("value is missing"), "{p}");
        for quartz in [
            "0 0 ? * *",
            "0 0 L * *",
            "0 0 15W * *",
            "0 0 * * 5#3",
            "0 0 * * 5L",
        ] {
            let p = err(quartz);
            assert!(p.contains("accepted"), "{quartz}: {p}");
        }

        let p = err("@reboot");
        assert!(
            p.contains("unknown macro \"@reboot\"") && p.contains("@daily"),
            "{p}"
        );
        let p = err("0 0 30 2 *");
        assert!(p.contains("never fires"), "{p}");
        let p = err("0 0 31 APR,JUN,SEP,NOV *");
        assert!(p.contains("never fires"), "{p}");
        // With a restricted day-of-week, OR makes these fire on that weekday.
        assert!(CronExpr::parse("0 0 30 2 MON").is_ok());
        // The display text of an error names the field.
        assert!(err_display("0 0 * * FOO").starts_with("cron: day-of-week field"));
    }

    fn err_display(expr: &str) -> String {
        CronExpr::parse(expr).unwrap_err().to_string()
    }

    #[test]
    fn zones_parse_and_refuse_with_a_hint() {
        assert_eq!(parse_zone("UTC").unwrap(), Tz::UTC);
        assert_eq!(parse_zone("Asia/Tokyo").unwrap(), chrono_tz::Asia::Tokyo);
        assert_eq!(parse_zone(" Europe/Berlin ").unwrap(), Berlin);
        assert_eq!(parse_zone("America/New_York").unwrap(), New_York);
        let e = parse_zone("Mars/Olympus").unwrap_err();
        assert_eq!(e.field, "timezone");
        assert!(e.problem.contains("\"Mars/Olympus\""), "{e}");
        assert!(
            e.problem.contains("an IANA zone name such as Asia/Tokyo"),
            "{e}"
        );
        let e = parse_zone("europe/berlin").unwrap_err();
        assert!(e.problem.contains("did you mean Europe/Berlin?"), "{e}");
        assert!(parse_zone("").is_err());
        assert_eq!(DEFAULT_ZONE, Tz::UTC);
    }
}
