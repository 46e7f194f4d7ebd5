//! Schedules: a cron rule in a time zone that enqueues a job at each fire time.
//!
//! This module holds the model ([`ScheduleSpec`], [`ScheduleRecord`]), the
//! policies ([`OverlapPolicy`], [`MisfirePolicy`]) and the rules every backend
//! applies inside its firing transaction ([`OverlapPolicy::decide`],
//! [`next_fire_on_upsert`], [`JobTemplate::job_for`]), so that the backends
//! differ only in SQL. The scheduler loop lives in the `kyu` crate.
//!
//! # Exactly once, no leader
//!
//! Each schedule row carries its next fire time. A scheduler that finds a
//! schedule due fires it with [`ScheduleStore::fire_schedule`](crate::ScheduleStore::fire_schedule):
//! in one transaction, a compare-and-set moves `next_fire_at` from the value
//! the scheduler read to the following fire time, and only if that succeeded
//! is the job inserted. Any number of schedulers may race on the same row;
//! exactly one wins each fire time, the others get [`FireResult::Lost`] and
//! insert nothing (DESIGN.md, invariant 3).
//!
//! # Policies
//!
//! | overlap | when the job of the previous fire is unfinished |
//! |---|---|
//! | `allow` | enqueue anyway: jobs of successive fires may run at once |
//! | `skip` (default) | do not enqueue; the fire time is dropped |
//! | `buffer_one` | remember this fire time (at most one) and enqueue its job as soon as the previous job finishes; further fire times meanwhile are dropped |
//!
//! | misfire | a fire time more than the scheduler's grace (default 60 s) in the past, e.g. after downtime |
//! |---|---|
//! | `skip` (default) | enqueue nothing for the fire times older than the grace; go on from the first fire time inside it |
//! | `run_once` | enqueue one job (for the first missed fire time), then go on from the first fire time inside the grace |
//!
//! A fire time late by less than the grace is not a misfire, even after an
//! outage far longer than the grace: it fires normally, and a scheduler
//! catches up on every such fire time, one at a time, so none is skipped.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

use crate::cron::{parse_zone, CronExpr, IntoCron, IntoZone, Tz, DEFAULT_ZONE};
use crate::job::check_name;
use crate::{InvalidInput, JobId, JobState, Limits, NewJob, RetryPolicy, Uniqueness};

/// What a schedule does when a fire time comes while the job of the previous
/// fire is still unfinished (scheduled, available or running). See the
/// [module docs](self).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum OverlapPolicy {
    /// Enqueue anyway.
    Allow,
    /// Drop the fire time (the default).
    #[default]
    Skip,
    /// Keep one fire time and enqueue its job when the previous job finishes.
    BufferOne,
}

/// What a schedule does with fire times missed by more than the scheduler's
/// grace (e.g. while no scheduler ran). See the [module docs](self).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum MisfirePolicy {
    /// Enqueue nothing for them (the default).
    #[default]
    Skip,
    /// Enqueue one job for them all.
    RunOnce,
}

impl OverlapPolicy {
    /// The name used in the database, the CLI, kyu.toml and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            OverlapPolicy::Allow => "allow",
            OverlapPolicy::Skip => "skip",
            OverlapPolicy::BufferOne => "buffer_one",
        }
    }

    /// What to do with a fire time, given the last job the schedule enqueued
    /// (`None` if there is none or it was deleted) and whether a fire time is
    /// already buffered. Backends call this inside the firing transaction.
    pub fn decide(self, last_job: Option<(JobId, JobState)>, buffered: bool) -> OverlapDecision {
        let running = last_job.filter(|(_, s)| !s.is_finished());
        match self {
            OverlapPolicy::Allow => OverlapDecision::Enqueue,
            OverlapPolicy::Skip => match running {
                Some((id, state)) => OverlapDecision::Skip(SkipReason::Overlap {
                    last_job: id,
                    state,
                }),
                None => OverlapDecision::Enqueue,
            },
            OverlapPolicy::BufferOne => {
                if buffered {
                    OverlapDecision::Skip(SkipReason::AlreadyBuffered)
                } else if running.is_some() {
                    OverlapDecision::Buffer
                } else {
                    OverlapDecision::Enqueue
                }
            }
        }
    }
}

impl MisfirePolicy {
    /// The name used in the database, the CLI, kyu.toml and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            MisfirePolicy::Skip => "skip",
            MisfirePolicy::RunOnce => "run_once",
        }
    }
}

impl fmt::Display for OverlapPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for MisfirePolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for OverlapPolicy {
    type Err = InvalidInput;

    /// `allow`, `skip` or `buffer_one` (also `buffer-one`), any case.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().replace('-', "_").as_str() {
            "allow" => Ok(OverlapPolicy::Allow),
            "skip" => Ok(OverlapPolicy::Skip),
            "buffer_one" => Ok(OverlapPolicy::BufferOne),
            _ => Err(InvalidInput::new(
                "overlap",
                format!("{s:?} is not an overlap policy; accepted: allow, skip, buffer_one"),
            )),
        }
    }
}

impl FromStr for MisfirePolicy {
    type Err = InvalidInput;

    /// `skip` or `run_once` (also `run-once`), any case.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().replace('-', "_").as_str() {
            "skip" => Ok(MisfirePolicy::Skip),
            "run_once" => Ok(MisfirePolicy::RunOnce),
            _ => Err(InvalidInput::new(
                "misfire",
                format!("{s:?} is not a misfire policy; accepted: skip, run_once"),
            )),
        }
    }
}

/// What [`OverlapPolicy::decide`] says to do with one fire time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OverlapDecision {
    /// Insert the job now.
    Enqueue,
    /// Remember the fire time; its job is inserted when the previous job finishes.
    Buffer,
    /// Insert nothing.
    Skip(SkipReason),
}

/// Why a fire time enqueued no job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "reason")]
#[non_exhaustive]
pub enum SkipReason {
    /// The fire time was missed and the misfire policy is `skip`.
    Misfire,
    /// Overlap `skip`: the previous job is unfinished.
    Overlap {
        /// The previous job.
        last_job: JobId,
        /// Its state.
        state: JobState,
    },
    /// Overlap `buffer_one`: a fire time is already waiting for the previous job.
    AlreadyBuffered,
}

/// The job a schedule enqueues at each fire time: a [`NewJob`] without
/// `run_at` and unique key, which each fire sets (see [`JobTemplate::job_for`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobTemplate {
    /// Which handler runs the job.
    pub kind: String,
    /// Its args, as JSON text. Default `{}`.
    pub args: String,
    /// The queue. Default `default`.
    pub queue: String,
    /// Lower runs first. Default 0.
    pub priority: i32,
    /// Attempts. Default 5.
    pub max_attempts: u32,
    /// Delay before each retry.
    pub retry: RetryPolicy,
    /// Time limit of one attempt, in whole milliseconds. Default none.
    #[serde(default)]
    pub timeout_ms: Option<u64>,
    /// Tags, besides the `schedule:NAME` tag every fire adds.
    #[serde(default)]
    pub tags: Vec<String>,
    /// The rate key of each job (see [`NewJob::rate_key`]). Default none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_key: Option<String>,
}

/// How long a fired job's fire-time key holds: well past the misfire grace
/// (60 s), the only span in which another scheduler may still try to fire the
/// same time. Retention keeps a job while its key holds, so this is also the
/// least time a schedule's job is kept: a day here kept every job of an
/// every-second schedule (86,400 of them) whatever the retention said.
pub const FIRE_KEY_WINDOW: Duration = Duration::from_secs(10 * 60);

impl JobTemplate {
    /// A template of `kind` with `args`, every option at its default.
    pub fn new(kind: impl Into<String>, args: serde_json::Value) -> JobTemplate {
        NewJob::new(kind, args).into()
    }

    /// The job for the fire time `fire_time` of schedule `schedule`: it may
    /// run from `fire_time` on, is tagged `schedule:NAME`, and has the unique
    /// key `schedule:NAME:FIRE_TIME` (RFC 3339, UTC), a second guard behind
    /// the compare-and-set, valid for [`FIRE_KEY_WINDOW`].
    pub fn job_for(&self, schedule: &str, fire_time: DateTime<Utc>) -> NewJob {
        let mut tags = self.tags.clone();
        let tag = format!("schedule:{schedule}");
        if !tags.contains(&tag) {
            tags.push(tag);
        }
        NewJob {
            kind: self.kind.clone(),
            args: self.args.clone(),
            queue: self.queue.clone(),
            priority: self.priority,
            run_at: Some(fire_time),
            max_attempts: self.max_attempts,
            retry: self.retry,
            timeout: self.timeout_ms.map(Duration::from_millis),
            unique_key: Some(fire_key(schedule, fire_time)),
            uniqueness: Uniqueness::Within(FIRE_KEY_WINDOW),
            tags,
            rate_key: self.rate_key.clone(),
        }
    }

    /// The template as JSON text, as backends store it.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a job template serializes")
    }

    /// A template stored by [`to_json`](Self::to_json).
    pub fn from_json(text: &str) -> Result<JobTemplate, InvalidInput> {
        serde_json::from_str(text)
            .map_err(|e| InvalidInput::new("job", format!("stored job template unreadable: {e}")))
    }

    /// What every backend enqueues for a fire: the job of `fire_time` from a
    /// stored template, checked against `limits`.
    pub fn stored_job_for(
        text: &str,
        schedule: &str,
        fire_time: DateTime<Utc>,
        limits: &Limits,
    ) -> Result<NewJob, InvalidInput> {
        let job = JobTemplate::from_json(text)?.job_for(schedule, fire_time);
        job.validate(limits)?;
        Ok(job)
    }
}

impl From<NewJob> for JobTemplate {
    /// Keeps everything but `run_at`, the unique key and its uniqueness,
    /// which each fire sets.
    fn from(j: NewJob) -> JobTemplate {
        JobTemplate {
            kind: j.kind,
            args: j.args,
            queue: j.queue,
            priority: j.priority,
            max_attempts: j.max_attempts,
            retry: j.retry,
            timeout_ms: j.timeout.map(|t| t.as_millis() as u64),
            tags: j.tags,
            rate_key: j.rate_key,
        }
    }
}

/// The unique key of the job of one fire time: `schedule:NAME:2030-01-01T00:00:00Z`.
pub fn fire_key(schedule: &str, fire_time: DateTime<Utc>) -> String {
    format!(
        "schedule:{schedule}:{}",
        fire_time.to_rfc3339_opts(SecondsFormat::AutoSi, true)
    )
}

/// The fire time of a job a schedule fired (or a trigger made: the time it
/// was triggered), read back from its tags and unique key as
/// [`JobTemplate::job_for`] wrote them; `None` for any other job.
///
/// ```
/// use chrono::{TimeZone, Utc};
/// use kyu_core::schedule::{fire_key, fire_time_of};
///
/// let at = Utc.with_ymd_and_hms(2030, 1, 1, 3, 0, 0).unwrap();
/// let tags = vec!["schedule:nightly".to_string()];
/// assert_eq!(fire_time_of(&tags, Some(&fire_key("nightly", at))), Some(at));
/// assert_eq!(fire_time_of(&[], Some("order:42")), None);
/// ```
pub fn fire_time_of(tags: &[String], unique_key: Option<&str>) -> Option<DateTime<Utc>> {
    let key = unique_key?;
    // The tag names the schedule, so a name with colons is read whole.
    tags.iter().find_map(|tag| {
        let name = tag.strip_prefix("schedule:")?;
        let time = key.strip_prefix(&format!("schedule:{name}:"))?;
        DateTime::parse_from_rfc3339(time)
            .ok()
            .map(|t| t.with_timezone(&Utc))
    })
}

/// A schedule as declared: upserted by name with
/// [`ScheduleStore::upsert_schedule`](crate::ScheduleStore::upsert_schedule).
///
/// The cron expression and the zone may be given as text; text that is not
/// one is reported by [`validate`](ScheduleSpec::validate), which every
/// store and `Kyu::schedule` call before writing anything, so a schedule is
/// declared in one expression and its errors surface where it is saved:
///
/// ```
/// use kyu_core::schedule::{JobTemplate, MisfirePolicy, OverlapPolicy, ScheduleSpec};
///
/// let spec = ScheduleSpec::new(
///     "nightly-report",
///     "0 3 * * *",
///     JobTemplate::new("report", serde_json::json!({"format": "pdf"})),
/// )
/// .zone("Asia/Tokyo")
/// .overlap(OverlapPolicy::Skip)
/// .misfire(MisfirePolicy::RunOnce);
/// spec.validate(&Default::default())?;
///
/// let typo = ScheduleSpec::new("typo", "0 3 * * *", JobTemplate::new("report", serde_json::json!({})))
///     .zone("Asia/Tokio");
/// let e = typo.validate(&Default::default()).unwrap_err();
/// assert_eq!(e.field, "timezone");
/// # Ok::<(), kyu_core::InvalidInput>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScheduleSpec {
    /// Unique name: 1 to 128 characters, no control characters.
    pub name: String,
    /// When it fires.
    pub cron: CronExpr,
    /// The zone whose wall clock `cron` reads. Default UTC.
    #[serde(with = "zone_name")]
    pub zone: Tz,
    /// The job each fire enqueues.
    pub job: JobTemplate,
    /// Default [`OverlapPolicy::Skip`].
    pub overlap: OverlapPolicy,
    /// Default [`MisfirePolicy::Skip`].
    pub misfire: MisfirePolicy,
    /// A disabled schedule fires nothing (it can still be triggered by hand).
    /// Default true.
    pub enabled: bool,
    /// Why the cron text or zone name given to the builder was refused;
    /// reported by [`validate`](ScheduleSpec::validate). (Private, so a spec
    /// is made with [`new`](ScheduleSpec::new).)
    #[serde(skip)]
    problem: Option<InvalidInput>,
}

impl ScheduleSpec {
    /// A schedule named `name` that enqueues `job` at every fire time of
    /// `cron` (a [`CronExpr`] or its text, `"0 9 * * MON"`) in UTC, with the
    /// default policies, enabled. Text that is not a cron expression is
    /// reported by [`validate`](Self::validate).
    pub fn new(name: impl Into<String>, cron: impl IntoCron, job: impl Into<JobTemplate>) -> Self {
        let (cron, problem) = match cron.into_cron() {
            Ok(c) => (c, None),
            Err(e) => (placeholder_cron(), Some(e)),
        };
        ScheduleSpec {
            name: name.into(),
            cron,
            zone: DEFAULT_ZONE,
            job: job.into(),
            overlap: OverlapPolicy::default(),
            misfire: MisfirePolicy::default(),
            enabled: true,
            problem,
        }
    }

    /// Sets the time zone: a [`Tz`] or its IANA name (`"Asia/Tokyo"`). A
    /// name that is not one is reported by [`validate`](Self::validate).
    pub fn zone(mut self, zone: impl IntoZone) -> Self {
        match zone.into_zone() {
            Ok(z) => self.zone = z,
            Err(e) => {
                self.problem.get_or_insert(e);
            }
        }
        self
    }
    /// Sets the overlap policy.
    pub fn overlap(mut self, overlap: OverlapPolicy) -> Self {
        self.overlap = overlap;
        self
    }
    /// Sets the misfire policy.
    pub fn misfire(mut self, misfire: MisfirePolicy) -> Self {
        self.misfire = misfire;
        self
    }
    /// Enables or disables the schedule.
    pub fn enabled(mut self, enabled: bool) -> Self {
        self.enabled = enabled;
        self
    }

    /// Checks the schedule and its job template; nothing is written for one
    /// that fails. Errors name the field (`name`, `job.kind`, `job.args`, …)
    /// and what is accepted.
    pub fn validate(&self, limits: &Limits) -> Result<(), InvalidInput> {
        if let Some(problem) = &self.problem {
            return Err(problem.clone());
        }
        check_schedule_name(&self.name)?;
        let probe = self.job.job_for(&self.name, DateTime::<Utc>::UNIX_EPOCH);
        probe.validate(limits).map_err(|mut e| {
            e.field = format!("job.{}", e.field);
            e
        })
    }

    /// The first fire time after `now`.
    pub fn first_fire_after(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.cron.next_after(now, self.zone)
    }
}

/// What a spec holds in place of cron text that did not parse; never stored,
/// since [`ScheduleSpec::validate`] refuses the spec.
fn placeholder_cron() -> CronExpr {
    CronExpr::parse("@yearly").expect("a valid expression")
}

/// Checks a schedule name: 1 to 128 characters, no control characters.
pub fn check_schedule_name(name: &str) -> Result<(), InvalidInput> {
    check_name("name", name).map_err(|_| {
        InvalidInput::new(
            "name",
            format!(
                "{name:?} is not accepted; a schedule name is 1 to 128 characters \
                 without control characters"
            ),
        )
    })
}

/// A schedule as stored, with what it last did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScheduleRecord {
    /// The declaration.
    #[serde(flatten)]
    pub spec: ScheduleSpec,
    /// The next fire time. Meaningful only while the schedule is enabled;
    /// `None` if the expression has no later fire time.
    pub next_fire_at: Option<DateTime<Utc>>,
    /// The fire time of the last job enqueued (or when it was triggered by hand).
    pub last_fire_at: Option<DateTime<Utc>>,
    /// The last job enqueued.
    pub last_job_id: Option<JobId>,
    /// That job's state now; `None` if there is none or it was deleted.
    pub last_job_state: Option<JobState>,
    /// Overlap `buffer_one`: the fire time whose job waits for the last job to finish.
    pub buffered_fire_at: Option<DateTime<Utc>>,
    /// When the schedule was first declared.
    pub created_at: DateTime<Utc>,
    /// When it was last declared or changed.
    pub updated_at: DateTime<Utc>,
    /// Declared by a config file (`[[schedules]]` of kyu.toml, through
    /// [`ScheduleStore::sync_config_schedules`](crate::ScheduleStore::sync_config_schedules)):
    /// removed when the file no longer declares it. False for schedules
    /// declared any other way ([`ScheduleStore::upsert_schedule`](crate::ScheduleStore::upsert_schedule),
    /// which also takes a config-declared schedule over).
    #[serde(default)]
    pub from_config: bool,
}

/// One `[[schedules]]` entry of a config file, for
/// [`ScheduleStore::sync_config_schedules`](crate::ScheduleStore::sync_config_schedules).
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigSchedule {
    /// The schedule as the file declares it.
    pub spec: ScheduleSpec,
    /// Whether the file says `enabled = …` itself. If not, a stored
    /// schedule keeps its enabled state (an operator's `disable` survives
    /// restarts) and a new one takes `spec.enabled`.
    pub enabled_explicit: bool,
}

impl ConfigSchedule {
    /// The enabled state to store, given the stored one (`None`: new): the
    /// file's when it says so explicitly, else the stored one, else the
    /// file's default.
    pub fn enabled_given(&self, stored: Option<bool>) -> bool {
        match stored {
            Some(stored) if !self.enabled_explicit => stored,
            _ => self.spec.enabled,
        }
    }
}

/// What [`ScheduleStore::sync_config_schedules`](crate::ScheduleStore::sync_config_schedules) did.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ConfigSync {
    /// The declared schedules as now stored, in the order given.
    pub schedules: Vec<ScheduleRecord>,
    /// Config-declared schedules the file no longer declares, now deleted
    /// (their jobs stay), by name.
    pub removed: Vec<String>,
}

/// What a backend stored about a schedule before an upsert, for [`next_fire_on_upsert`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Existing<'a> {
    /// The stored cron expression's text.
    pub cron: &'a str,
    /// The stored zone's name.
    pub zone: &'a str,
    /// Whether it was enabled.
    pub enabled: bool,
    /// Its next fire time.
    pub next_fire_at: Option<DateTime<Utc>>,
}

/// The next fire time to store when `spec` is upserted at `now`: the stored
/// one is kept when the cron expression and zone are unchanged and the
/// schedule is not being re-enabled (so many processes declaring the same
/// schedule at start-up neither skip nor repeat a fire time); otherwise the
/// first fire time after `now`.
pub fn next_fire_on_upsert(
    existing: Option<Existing<'_>>,
    spec: &ScheduleSpec,
    now: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    match existing {
        Some(e)
            if e.cron == spec.cron.as_str()
                && e.zone == spec.zone.name()
                && (e.enabled || !spec.enabled) =>
        {
            e.next_fire_at
        }
        _ => spec.first_fire_after(now),
    }
}

/// One compare-and-set on a schedule's next fire time: see
/// [`ScheduleStore::fire_schedule`](crate::ScheduleStore::fire_schedule).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fire {
    /// The schedule.
    pub name: String,
    /// The next fire time the scheduler read; the fire applies only if it is
    /// still stored (and the schedule still enabled).
    pub expected_next_fire_at: DateTime<Utc>,
    /// The next fire time to store instead.
    pub new_next_fire_at: Option<DateTime<Utc>>,
    /// The fire time a job is enqueued for.
    pub fire_time: DateTime<Utc>,
    /// False: advance the next fire time only (a misfire that is skipped).
    pub enqueue: bool,
}

/// What [`ScheduleStore::fire_schedule`](crate::ScheduleStore::fire_schedule) and
/// [`ScheduleStore::fire_buffered`](crate::ScheduleStore::fire_buffered) did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "result")]
pub enum FireResult {
    /// The job was inserted, with this id; the next fire time was advanced.
    Fired {
        /// The job.
        job: JobId,
    },
    /// Overlap `buffer_one`: the fire time was kept until the previous job
    /// finishes; the next fire time was advanced.
    Buffered,
    /// No job was inserted; the next fire time was advanced (not for
    /// [`fire_buffered`](crate::ScheduleStore::fire_buffered), which changes nothing).
    Skipped {
        /// Why.
        #[serde(flatten)]
        reason: SkipReason,
    },
    /// Nothing was written: another scheduler fired this fire time, or the
    /// schedule was changed, disabled or deleted meanwhile.
    Lost,
}

/// Serde helpers: a zone as its IANA name.
mod zone_name {
    use super::{parse_zone, Tz};
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(tz: &Tz, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(tz.name())
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Tz, D::Error> {
        parse_zone(&String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

/// Reads a stored schedule's columns back into a spec (for backends).
pub fn spec_from_stored(
    name: String,
    cron: &str,
    zone: &str,
    job: &str,
    overlap: &str,
    misfire: &str,
    enabled: bool,
) -> Result<ScheduleSpec, InvalidInput> {
    Ok(ScheduleSpec {
        name,
        cron: CronExpr::parse(cron)?,
        zone: parse_zone(zone)?,
        job: JobTemplate::from_json(job)?,
        overlap: overlap.parse()?,
        misfire: misfire.parse()?,
        enabled,
        problem: None,
    })
}

/// The `schedule_buffered` event of a fire time kept until the previous
/// job (`last_job`) finishes (overlap `buffer_one`).
pub fn buffer_event(
    now: DateTime<Utc>,
    name: &str,
    fire_time: DateTime<Utc>,
    last_job: Option<JobId>,
) -> crate::NewEvent {
    use crate::event::{EventFacts, EventType, NewEvent};
    let why = match last_job {
        Some(id) => format!("overlap: waits for the previous job {id} to finish"),
        None => "overlap: waits for the previous job to finish".to_string(),
    };
    NewEvent::other(now, EventType::ScheduleBuffered).facts(EventFacts {
        schedule: Some(name.to_string()),
        fire_time: Some(fire_time),
        reason: Some(why),
        ..EventFacts::default()
    })
}

/// The event of a fire time that enqueued no job: `schedule_misfired` for
/// a misfire, `schedule_skipped` (with the reason) for the overlap policy.
pub fn skip_event(
    now: DateTime<Utc>,
    name: &str,
    fire_time: DateTime<Utc>,
    reason: &SkipReason,
) -> crate::NewEvent {
    use crate::event::{EventFacts, EventType, NewEvent};
    let (t, why) = match reason {
        SkipReason::Misfire => (EventType::ScheduleMisfired, "misfire".to_string()),
        SkipReason::Overlap { last_job, state } => (
            EventType::ScheduleSkipped,
            format!("overlap: the previous job {last_job} is {state}"),
        ),
        SkipReason::AlreadyBuffered => (
            EventType::ScheduleSkipped,
            "overlap: a fire time already waits for the previous job".to_string(),
        ),
    };
    NewEvent::other(now, t).facts(EventFacts {
        schedule: Some(name.to_string()),
        fire_time: Some(fire_time),
        reason: Some(why),
        ..EventFacts::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn policies_parse_and_name_what_is_accepted() {
        assert_eq!(
            "buffer-one".parse::<OverlapPolicy>().unwrap(),
            OverlapPolicy::BufferOne
        );
        assert_eq!(
            "RUN_ONCE".parse::<MisfirePolicy>().unwrap(),
            MisfirePolicy::RunOnce
        );
        for p in [
            OverlapPolicy::Allow,
            OverlapPolicy::Skip,
            OverlapPolicy::BufferOne,
        ] {
            assert_eq!(p.as_str().parse::<OverlapPolicy>().unwrap(), p);
        }
        let e = "queue".parse::<OverlapPolicy>().unwrap_err();
        assert_eq!(e.field, "overlap");
        assert!(e.problem.contains("allow, skip, buffer_one"), "{e}");
        let e = "later".parse::<MisfirePolicy>().unwrap_err();
        assert!(e.problem.contains("skip, run_once"), "{e}");
    }

    #[test]
    fn overlap_decisions() {
        use OverlapDecision::*;
        let running = Some((7, JobState::Running));
        let done = Some((7, JobState::Completed));
        assert_eq!(OverlapPolicy::Allow.decide(running, false), Enqueue);
        assert_eq!(
            OverlapPolicy::Skip.decide(running, false),
            Skip(SkipReason::Overlap {
                last_job: 7,
                state: JobState::Running
            })
        );
        assert_eq!(OverlapPolicy::Skip.decide(done, false), Enqueue);
        assert_eq!(OverlapPolicy::Skip.decide(None, false), Enqueue);
        assert_eq!(OverlapPolicy::BufferOne.decide(running, false), Buffer);
        assert_eq!(
            OverlapPolicy::BufferOne.decide(running, true),
            Skip(SkipReason::AlreadyBuffered)
        );
        assert_eq!(
            OverlapPolicy::BufferOne.decide(done, true),
            Skip(SkipReason::AlreadyBuffered)
        );
        assert_eq!(OverlapPolicy::BufferOne.decide(done, false), Enqueue);
    }

    #[test]
    fn job_for_sets_run_at_key_and_tag() {
        let tpl: JobTemplate = NewJob::new("report", serde_json::json!({"a": 1}))
            .queue("q")
            .tag("x")
            .unique_key("ignored")
            .into();
        let j = tpl.job_for("nightly", t("2030-01-01T03:00:00Z"));
        assert_eq!(j.run_at, Some(t("2030-01-01T03:00:00Z")));
        assert_eq!(
            j.unique_key.as_deref(),
            Some("schedule:nightly:2030-01-01T03:00:00Z")
        );
        assert_eq!(j.tags, ["x", "schedule:nightly"]);
        assert_eq!(j.queue, "q");
        assert_eq!(JobTemplate::from_json(&tpl.to_json()).unwrap(), tpl);
    }

    #[test]
    fn validation_names_the_field() {
        let spec = ScheduleSpec::new(
            "",
            "* * * * *",
            JobTemplate::new("k", serde_json::json!({})),
        );
        assert_eq!(spec.validate(&Limits::default()).unwrap_err().field, "name");
        let mut spec = ScheduleSpec::new(
            "n",
            "* * * * *",
            JobTemplate::new("k", serde_json::json!({})),
        );
        spec.job.args = "{".into();
        assert_eq!(
            spec.validate(&Limits::default()).unwrap_err().field,
            "job.args"
        );
        spec.job.args = "{}".into();
        spec.job.max_attempts = 0;
        assert_eq!(
            spec.validate(&Limits::default()).unwrap_err().field,
            "job.max_attempts"
        );
    }

    #[test]
    fn upsert_keeps_or_resets_next_fire() {
        let spec = ScheduleSpec::new(
            "n",
            "0 * * * *",
            JobTemplate::new("k", serde_json::json!({})),
        );
        let now = t("2030-01-01T00:30:00Z");
        let kept = t("2030-01-01T00:00:00Z");
        let same = Existing {
            cron: "0 * * * *",
            zone: "UTC",
            enabled: true,
            next_fire_at: Some(kept),
        };
        assert_eq!(next_fire_on_upsert(Some(same), &spec, now), Some(kept));
        assert_eq!(
            next_fire_on_upsert(None, &spec, now),
            Some(t("2030-01-01T01:00:00Z"))
        );
        let other_cron = Existing {
            cron: "*/5 * * * *",
            ..same
        };
        assert_eq!(
            next_fire_on_upsert(Some(other_cron), &spec, now),
            Some(t("2030-01-01T01:00:00Z"))
        );
        let other_zone = Existing {
            zone: "Asia/Tokyo",
            ..same
        };
        assert_eq!(
            next_fire_on_upsert(Some(other_zone), &spec, now),
            Some(t("2030-01-01T01:00:00Z"))
        );
        let was_disabled = Existing {
            enabled: false,
            ..same
        };
        assert_eq!(
            next_fire_on_upsert(Some(was_disabled), &spec, now),
            Some(t("2030-01-01T01:00:00Z"))
        );
        assert_eq!(
            next_fire_on_upsert(Some(was_disabled), &spec.clone().enabled(false), now),
            Some(kept)
        );
    }

    #[test]
    fn spec_serializes_zone_by_name() {
        let spec = ScheduleSpec::new(
            "n",
            "0 * * * *",
            JobTemplate::new("k", serde_json::json!({})),
        )
        .zone(parse_zone("Asia/Tokyo").unwrap());
        let v = serde_json::to_value(&spec).unwrap();
        assert_eq!(v["zone"], "Asia/Tokyo");
        assert_eq!(v["overlap"], "skip");
        let back: ScheduleSpec = serde_json::from_value(v).unwrap();
        assert_eq!(back, spec);
    }
}
