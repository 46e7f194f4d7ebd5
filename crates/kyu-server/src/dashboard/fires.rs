//! A schedule's last few fires with their jobs, for the Schedules page.
//! The store keeps no fire history; a fire's job carries the key
//! `schedule:NAME:FIRE_TIME` ([`kyu::fire_key`]), so the page
//! works out the cron's fire times up to the last fire and looks each
//! job up in the unique-key index: a few indexed reads per schedule,
//! whatever the number of jobs. A fire time without a job was skipped
//! (misfire, overlap), or its job was deleted or pruned. Earlier "trigger
//! now" jobs are not cron times and are not listed (the last one is: its
//! time is the schedule's last fire).

use chrono::{DateTime, Duration, Utc};
use kyu::{JobRecord, ScheduleRecord};

/// How many fires each schedule shows.
pub(crate) const LAST_FIRES: usize = 5;

/// The last `n` fire times of the schedule's cron at or before `last`,
/// newest first, with `last` itself (a trigger's time may be no cron time).
fn times(s: &ScheduleRecord, last: DateTime<Utc>, n: usize) -> Vec<DateTime<Utc>> {
    // Look back a minute, then twice as far, until `n` are found (a yearly
    // cron needs about 20 rounds; each reads at most `CAP` times).
    const CAP: usize = 10_000;
    let mut span = Duration::minutes(1);
    let mut found = Vec::new();
    while span <= Duration::days(800) {
        found = s
            .spec
            .cron
            .fire_times(last - span, s.spec.zone)
            .take_while(|t| *t <= last)
            .take(CAP)
            .collect();
        if found.len() >= n {
            break;
        }
        span = span * 2;
    }
    found.push(last);
    found.sort_unstable_by(|a, b| b.cmp(a));
    found.dedup();
    found.truncate(n);
    found
}

/// The schedule's last fires (newest first) and their jobs, if still kept.
pub(crate) async fn last_fires(
    kyu: &kyu::Kyu,
    s: &ScheduleRecord,
) -> Result<Vec<(DateTime<Utc>, Option<JobRecord>)>, kyu::StoreError> {
    let Some(last) = s.last_fire_at else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for t in times(s, last, LAST_FIRES) {
        let key = kyu::fire_key(&s.spec.name, t);
        let job = kyu.store().get_by_unique_key(&key).await?;
        out.push((t, job));
    }
    Ok(out)
}
