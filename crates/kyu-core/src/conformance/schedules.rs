//! Schedules: the semantics of the schedule methods of
//! [`Store`](crate::Store): upsert, enable, the exactly-once fire, overlap
//! policies, trigger and the config-file sync.
//!
//! Every case starts a [`ManualClock`](crate::ManualClock) at
//! [`T0`](super::T0) (2030-01-01T00:00:00Z, a Tuesday) and moves it;
//! no case sleeps. Fires are made by hand here, as a scheduler would make
//! them; the scheduler's own rules (misfire grace, catch-up) are tested in the
//! `kyu` crate.

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::{Ctx, Harness};
use crate::schedule::{Fire, FireResult, JobTemplate, OverlapPolicy, ScheduleSpec, SkipReason};
use crate::{FinishOutcome, JobState, StoreError};

/// A schedule `name` on `cron` (UTC) enqueuing kind `tick` with args `{"n": 1}`.
pub fn spec(name: &str, cron: &str) -> ScheduleSpec {
    ScheduleSpec::new(
        name,
        cron.parse::<crate::CronExpr>().expect("test cron parses"),
        JobTemplate::new("tick", serde_json::json!({"n": 1})),
    )
}

fn at(s: &str) -> DateTime<Utc> {
    s.parse().expect("test time parses")
}

/// The fire of `expected` for schedule `name`, advancing to `next`.
pub fn fire_of(name: &str, expected: DateTime<Utc>, next: DateTime<Utc>) -> Fire {
    Fire {
        name: name.into(),
        expected_next_fire_at: expected,
        new_next_fire_at: Some(next),
        fire_time: expected,
        enqueue: true,
    }
}

async fn fire(c: &Ctx, f: Fire) -> FireResult {
    c.store.fire_schedule(f).await.expect("fire_schedule")
}

fn fired(r: FireResult) -> crate::JobId {
    match r {
        FireResult::Fired { job } => job,
        other => panic!("expected Fired, got {other:?}"),
    }
}

async fn upsert(c: &Ctx, s: ScheduleSpec) -> crate::ScheduleRecord {
    c.store.upsert_schedule(s).await.expect("upsert_schedule")
}

async fn get(c: &Ctx, name: &str) -> crate::ScheduleRecord {
    c.store
        .get_schedule(name)
        .await
        .expect("get_schedule")
        .unwrap_or_else(|| panic!("schedule {name:?} should exist"))
}

/// Upsert, get, list (by name) and delete.
pub async fn schedule_upsert_get_list_delete(h: &dyn Harness) {
    let c = Ctx::new(h).await;
    let b = upsert(
        &c,
        spec("b", "30 9 * * MON-FRI")
            .zone(crate::parse_zone("America/New_York").expect("zone"))
            .overlap(OverlapPolicy::BufferOne)
            .misfire(crate::MisfirePolicy::RunOnce),
    )
    .await;
    assert_eq!(b.spec.name, "b");
    assert_eq!(b.spec.zone.name(), "America/New_York");
    assert_eq!(b.spec.overlap, OverlapPolicy::BufferOne);
    assert_eq!(b.spec.misfire, crate::MisfirePolicy::RunOnce);
    // Tuesday 2030-01-01 09:30 EST.
    assert_eq!(b.next_fire_at, Some(at("2030-01-01T14:30:00Z")));
    assert_eq!(b.created_at, c.now());
    assert_eq!(b.updated_at, c.now());
    assert_eq!(b.last_fire_at, None);
    assert_eq!(b.last_job_id, None);
    assert_eq!(b.last_job_state, None);
    assert_eq!(b.buffered_fire_at, None);
    upsert(&c, spec("a", "* * * * *")).await;
    let names: Vec<String> = c
        .store
        .list_schedules()
        .await
        .expect("list_schedules")
        .into_iter()
        .map(|s| s.spec.name)
        .collect();
    assert_eq!(names, ["a", "b"]);
    assert_eq!(get(&c, "b").await, b, "get returns what upsert returned");
    assert_eq!(get(&c, "b").await.spec.job, spec("b", "* * * * *").job);
    assert!(c.store.delete_schedule("b").await.expect("delete"));
    assert!(!c.store.delete_schedule("b").await.expect("delete again"));
    assert!(c.store.get_schedule("b").await.expect("get").is_none());
}

/// An invalid schedule is refused, naming the field; nothing is written.
pub async fn schedule_upsert_invalid_writes_nothing(h: &dyn Harness) {
    let c = Ctx::new(h).await;
    let mut bad = spec("s", "* * * * *");
    bad.job.args = "{\"a\":".into();
    match c.store.upsert_schedule(bad).await {
        Err(StoreError::Invalid(e)) => assert_eq!(e.field, "job.args", "{e}"),
        other => panic!("expected an invalid-input error, got {other:?}"),
    }
    match c.store.upsert_schedule(spec("", "* * * * *")).await {
        Err(StoreError::Invalid(e)) => assert_eq!(e.field, "name", "{e}"),
        other => panic!("expected an invalid-input error, got {other:?}"),
    }
    assert!(c.store.list_schedules().await.expect("list").is_empty());
}

/// A second upsert keeps the next fire time when cron and zone are
/// unchanged (other fields change), and resets it when either changes.
pub async fn schedule_upsert_keeps_next_fire(h: &dyn Harness) {
    let c = Ctx::new(h).await;
    upsert(&c, spec("s", "* * * * *")).await;
    c.advance(90);
    let mut again = spec("s", "* * * * *").overlap(OverlapPolicy::Allow);
    again.job.args = "{\"n\":2}".into();
    let r = upsert(&c, again).await;
    assert_eq!(
        r.next_fire_at,
        Some(at("2030-01-01T00:01:00Z")),
        "kept: the 00:01 fire is still owed"
    );
    assert_eq!(r.spec.overlap, OverlapPolicy::Allow);
    assert_eq!(r.spec.job.args, "{\"n\":2}");
    assert_eq!(r.created_at, at("2030-01-01T00:00:00Z"));
    assert_eq!(r.updated_at, c.now());
    let r = upsert(&c, spec("s", "*/5 * * * *")).await;
    assert_eq!(r.next_fire_at, Some(at("2030-01-01T00:05:00Z")), "reset");
    let r = upsert(
        &c,
        spec("s", "*/5 * * * *").zone(crate::parse_zone("Asia/Kolkata").expect("zone")),
    )
    .await;
    // 00:01:30Z is 05:31:30 IST; the next */5 is 05:35 IST = 00:05Z.
    assert_eq!(r.next_fire_at, Some(at("2030-01-01T00:05:00Z")));
    assert_eq!(r.spec.zone.name(), "Asia/Kolkata");
}

/// A fire inserts the job of its fire time and advances the next fire time
/// in one step; the same fire again, or a fire with a stale expected time,
/// is `Lost` and inserts nothing.
pub async fn schedule_fire_compare_and_set(h: &dyn Harness) {
    let c = Ctx::new(h).await;
    let mut s = spec("s", "* * * * *");
    s.job.queue = "cron".into();
    s.job.priority = -2;
    s.job.max_attempts = 3;
    s.job.tags = vec!["team:a".into()];
    upsert(&c, s).await;
    let (t1, t2) = (at("2030-01-01T00:01:00Z"), at("2030-01-01T00:02:00Z"));
    assert!(c
        .store
        .due_schedules(c.now())
        .await
        .expect("due")
        .is_empty());
    c.advance(61);
    let due = c.store.due_schedules(c.now()).await.expect("due");
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].next_fire_at, Some(t1));

    let id = fired(fire(&c, fire_of("s", t1, t2)).await);
    let job = c.job(id).await;
    assert_eq!(job.kind, "tick");
    assert_eq!(job.args, "{\"n\":1}");
    assert_eq!(job.queue, "cron");
    assert_eq!(job.priority, -2);
    assert_eq!(job.max_attempts, 3);
    assert_eq!(job.run_at, t1, "the job runs from its fire time");
    assert_eq!(job.state, JobState::Available);
    assert_eq!(
        job.unique_key.as_deref(),
        Some("schedule:s:2030-01-01T00:01:00Z")
    );
    assert_eq!(job.tags, ["team:a", "schedule:s"]);
    let r = get(&c, "s").await;
    assert_eq!(r.next_fire_at, Some(t2));
    assert_eq!(r.last_fire_at, Some(t1));
    assert_eq!(r.last_job_id, Some(id));
    assert_eq!(r.last_job_state, Some(JobState::Available));

    assert_eq!(fire(&c, fire_of("s", t1, t2)).await, FireResult::Lost);
    assert_eq!(
        fire(&c, fire_of("s", at("2030-01-01T00:00:00Z"), t2)).await,
        FireResult::Lost
    );
    assert_eq!(fire(&c, fire_of("nope", t1, t2)).await, FireResult::Lost);
    assert_eq!(c.all().await.len(), 1, "one job in all");
    assert_eq!(get(&c, "s").await.next_fire_at, Some(t2));
    assert!(c
        .store
        .due_schedules(c.now())
        .await
        .expect("due")
        .is_empty());
}

/// Many fires of the same fire time at once: exactly one wins.
pub async fn schedule_concurrent_fires_one_wins(h: &dyn Harness) {
    let c = Ctx::new(h).await;
    upsert(&c, spec("s", "* * * * *").overlap(OverlapPolicy::Allow)).await;
    c.advance(60);
    let (t1, t2) = (at("2030-01-01T00:01:00Z"), at("2030-01-01T00:02:00Z"));
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let store = c.store.clone();
            tokio::spawn(async move { store.fire_schedule(fire_of("s", t1, t2)).await })
        })
        .collect();
    let mut wins = 0;
    for t in tasks {
        match t.await.expect("task").expect("fire") {
            FireResult::Fired { .. } => wins += 1,
            FireResult::Lost => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(wins, 1);
    assert_eq!(c.all().await.len(), 1);
}

/// A disabled schedule is not due and its fires are `Lost`; enabling it
/// starts from the first fire time after now (no misfire for the time it was off).
pub async fn schedule_enable_disable(h: &dyn Harness) {
    let c = Ctx::new(h).await;
    upsert(&c, spec("s", "* * * * *")).await;
    assert!(c
        .store
        .set_schedule_enabled("s", false)
        .await
        .expect("disable"));
    assert!(!get(&c, "s").await.spec.enabled);
    c.advance(600);
    assert!(c
        .store
        .due_schedules(c.now())
        .await
        .expect("due")
        .is_empty());
    let t1 = at("2030-01-01T00:01:00Z");
    assert_eq!(
        fire(&c, fire_of("s", t1, at("2030-01-01T00:02:00Z"))).await,
        FireResult::Lost
    );
    c.advance(30);
    assert!(c
        .store
        .set_schedule_enabled("s", true)
        .await
        .expect("enable"));
    let r = get(&c, "s").await;
    assert!(r.spec.enabled);
    assert_eq!(r.next_fire_at, Some(at("2030-01-01T00:11:00Z")));
    assert!(c
        .store
        .set_schedule_enabled("s", true)
        .await
        .expect("again"));
    assert_eq!(get(&c, "s").await.next_fire_at, r.next_fire_at);
    assert!(!c
        .store
        .set_schedule_enabled("nope", true)
        .await
        .expect("unknown"));
    assert!(c.all().await.is_empty());
}

/// A fire without `enqueue` (a skipped misfire) only advances.
pub async fn schedule_misfire_skip_advances_only(h: &dyn Harness) {
    let c = Ctx::new(h).await;
    upsert(&c, spec("s", "* * * * *")).await;
    c.advance(3600);
    let mut f = fire_of("s", at("2030-01-01T00:01:00Z"), at("2030-01-01T01:01:00Z"));
    f.enqueue = false;
    assert_eq!(
        fire(&c, f.clone()).await,
        FireResult::Skipped {
            reason: SkipReason::Misfire
        }
    );
    assert!(c.all().await.is_empty());
    let r = get(&c, "s").await;
    assert_eq!(r.next_fire_at, Some(at("2030-01-01T01:01:00Z")));
    assert_eq!(r.last_fire_at, None);
    assert_eq!(r.last_job_id, None);
    assert_eq!(fire(&c, f).await, FireResult::Lost);
}

/// Overlap `skip`: no job while the last one is unfinished (available or running).
pub async fn schedule_overlap_skip(h: &dyn Harness) {
    let c = Ctx::new(h).await;
    upsert(&c, spec("s", "* * * * *")).await;
    let t = |m: u32| at(&format!("2030-01-01T00:{m:02}:00Z"));
    c.advance(60);
    let first = fired(fire(&c, fire_of("s", t(1), t(2))).await);
    c.advance(60);
    let skipped = FireResult::Skipped {
        reason: SkipReason::Overlap {
            last_job: first,
            state: JobState::Available,
        },
    };
    assert_eq!(fire(&c, fire_of("s", t(2), t(3))).await, skipped);
    let cl = c.claim_one("default").await;
    assert_eq!(cl.id, first);
    c.advance(60);
    assert_eq!(
        fire(&c, fire_of("s", t(3), t(4))).await,
        FireResult::Skipped {
            reason: SkipReason::Overlap {
                last_job: first,
                state: JobState::Running
            }
        }
    );
    let r = get(&c, "s").await;
    assert_eq!(r.next_fire_at, Some(t(4)), "a skipped fire still advances");
    assert_eq!(r.last_job_id, Some(first));
    assert_eq!(r.last_fire_at, Some(t(1)));
    c.finish(cl.lease(), FinishOutcome::Completed { result: None })
        .await;
    c.advance(60);
    let second = fired(fire(&c, fire_of("s", t(4), t(5))).await);
    assert_eq!(c.job(second).await.run_at, t(4));
    assert_eq!(c.all().await.len(), 2);
}

/// Overlap `allow`: a job per fire time, whatever runs.
pub async fn schedule_overlap_allow(h: &dyn Harness) {
    let c = Ctx::new(h).await;
    upsert(&c, spec("s", "* * * * *").overlap(OverlapPolicy::Allow)).await;
    let t = |m: u32| at(&format!("2030-01-01T00:{m:02}:00Z"));
    c.advance(60);
    fired(fire(&c, fire_of("s", t(1), t(2))).await);
    c.claim_one("default").await;
    c.advance(60);
    fired(fire(&c, fire_of("s", t(2), t(3))).await);
    c.advance(60);
    let third = fired(fire(&c, fire_of("s", t(3), t(4))).await);
    assert_eq!(c.all().await.len(), 3);
    assert_eq!(get(&c, "s").await.last_job_id, Some(third));
}

/// Overlap `buffer_one`: while the last job is unfinished the first fire
/// time is kept (later ones dropped); its job is inserted by
/// `fire_buffered` once the last job has finished, not before.
pub async fn schedule_overlap_buffer_one(h: &dyn Harness) {
    let c = Ctx::new(h).await;
    upsert(&c, spec("s", "* * * * *").overlap(OverlapPolicy::BufferOne)).await;
    let t = |m: u32| at(&format!("2030-01-01T00:{m:02}:00Z"));
    c.advance(60);
    let first = fired(fire(&c, fire_of("s", t(1), t(2))).await);
    let cl = c.claim_one("default").await;
    c.advance(60);
    assert_eq!(
        fire(&c, fire_of("s", t(2), t(3))).await,
        FireResult::Buffered
    );
    c.advance(60);
    assert_eq!(
        fire(&c, fire_of("s", t(3), t(4))).await,
        FireResult::Skipped {
            reason: SkipReason::AlreadyBuffered
        }
    );
    let r = get(&c, "s").await;
    assert_eq!(r.buffered_fire_at, Some(t(2)));
    assert_eq!(r.next_fire_at, Some(t(4)));
    assert_eq!(r.last_job_id, Some(first));
    assert!(
        c.store
            .due_schedules(c.now())
            .await
            .expect("due")
            .is_empty(),
        "not due while the last job runs"
    );
    assert_eq!(
        c.store
            .fire_buffered("s", t(2))
            .await
            .expect("fire_buffered"),
        FireResult::Skipped {
            reason: SkipReason::Overlap {
                last_job: first,
                state: JobState::Running
            }
        }
    );
    assert_eq!(c.all().await.len(), 1);
    c.finish(cl.lease(), FinishOutcome::Completed { result: None })
        .await;
    let due = c.store.due_schedules(c.now()).await.expect("due");
    assert_eq!(due.len(), 1, "due: its buffered fire can go");
    assert_eq!(due[0].buffered_fire_at, Some(t(2)));
    assert_eq!(
        c.store.fire_buffered("s", t(3)).await.expect("wrong time"),
        FireResult::Lost
    );
    let second = fired(
        c.store
            .fire_buffered("s", t(2))
            .await
            .expect("fire_buffered"),
    );
    assert_eq!(c.job(second).await.run_at, t(2));
    let r = get(&c, "s").await;
    assert_eq!(r.buffered_fire_at, None);
    assert_eq!(r.last_job_id, Some(second));
    assert_eq!(r.last_fire_at, Some(t(2)));
    assert_eq!(
        c.store.fire_buffered("s", t(2)).await.expect("again"),
        FireResult::Lost
    );
    assert_eq!(c.all().await.len(), 2);
}

/// Trigger inserts a job now, enabled or not, and leaves the next fire time alone.
pub async fn schedule_trigger(h: &dyn Harness) {
    let c = Ctx::new(h).await;
    upsert(&c, spec("s", "0 0 1 1 *")).await;
    let next = get(&c, "s").await.next_fire_at;
    c.advance(5);
    let id = c
        .store
        .trigger_schedule("s")
        .await
        .expect("trigger")
        .expect("known schedule");
    let job = c.job(id).await;
    assert_eq!(job.run_at, c.now());
    assert_eq!(job.state, JobState::Available);
    let r = get(&c, "s").await;
    assert_eq!(r.next_fire_at, next);
    assert_eq!(r.last_job_id, Some(id));
    assert_eq!(r.last_fire_at, Some(c.now()));
    c.store
        .set_schedule_enabled("s", false)
        .await
        .expect("disable");
    c.advance(1);
    assert!(c
        .store
        .trigger_schedule("s")
        .await
        .expect("trigger")
        .is_some());
    assert_eq!(
        c.store.trigger_schedule("nope").await.expect("unknown"),
        None
    );
    assert_eq!(c.all().await.len(), 2);
}

/// The record follows its last job's state, and forgets it once the job is deleted.
pub async fn schedule_last_job_state_follows_job(h: &dyn Harness) {
    let c = Ctx::new(h).await;
    upsert(&c, spec("s", "* * * * *")).await;
    c.advance(60);
    fired(
        fire(
            &c,
            fire_of("s", at("2030-01-01T00:01:00Z"), at("2030-01-01T00:02:00Z")),
        )
        .await,
    );
    let cl = c.claim_one("default").await;
    assert_eq!(get(&c, "s").await.last_job_state, Some(JobState::Running));
    c.finish(cl.lease(), FinishOutcome::Completed { result: None })
        .await;
    assert_eq!(get(&c, "s").await.last_job_state, Some(JobState::Completed));
    // Past the fire key's one-day unique window: retention keeps the job
    // until then (see `retention_keeps_job_inside_unique_window`).
    c.advance(24 * 3600 + 10);
    c.store
        .delete_finished(c.now(), c.now())
        .await
        .expect("retention");
    let r = get(&c, "s").await;
    assert_eq!(r.last_job_state, None);
    assert_eq!(r.last_job_id, Some(cl.id));
}

/// A fire's job is found by its fire key, also once it finished and the
/// key no longer holds; the newest job wins when a key was used again.
pub async fn schedule_fire_found_by_fire_key(h: &dyn Harness) {
    let c = Ctx::new(h).await;
    let mut s = spec("s", "* * * * *");
    s.overlap = OverlapPolicy::Allow;
    upsert(&c, s).await;
    let (t1, t2, t3) = (
        at("2030-01-01T00:01:00Z"),
        at("2030-01-01T00:02:00Z"),
        at("2030-01-01T00:03:00Z"),
    );
    c.advance(120);
    let first = fired(fire(&c, fire_of("s", t1, t2)).await);
    let second = fired(fire(&c, fire_of("s", t2, t3)).await);
    let cl = c.claim_one("default").await;
    assert_eq!(cl.id, first);
    c.finish(cl.lease(), FinishOutcome::Completed { result: None })
        .await;
    c.advance(3600);
    let by_key = |t| {
        let store = c.store.clone();
        async move {
            store
                .get_by_unique_key(&crate::schedule::fire_key("s", t))
                .await
                .expect("get_by_unique_key")
                .map(|j| (j.id, j.state))
        }
    };
    assert_eq!(by_key(t1).await, Some((first, JobState::Completed)));
    assert_eq!(by_key(t2).await, Some((second, JobState::Available)));
    assert_eq!(by_key(t3).await, None);
    assert_eq!(
        c.store
            .get_by_unique_key("schedule:other:2030-01-01T00:01:00Z")
            .await
            .expect("get_by_unique_key"),
        None
    );
}

/// A fire that inserts a job wakes idle workers.
pub async fn schedule_fire_wakes_workers(h: &dyn Harness) {
    let c = Ctx::new(h).await;
    upsert(&c, spec("s", "* * * * *")).await;
    let mut rx = c.store.subscribe();
    rx.borrow_and_update();
    c.advance(60);
    fired(
        fire(
            &c,
            fire_of("s", at("2030-01-01T00:01:00Z"), at("2030-01-01T00:02:00Z")),
        )
        .await,
    );
    tokio::time::timeout(Duration::from_secs(5), rx.changed())
        .await
        .expect("a wake-up after a fire")
        .expect("sender alive");
}

fn declared(name: &str, cron: &str) -> crate::ConfigSchedule {
    crate::ConfigSchedule {
        spec: spec(name, cron),
        enabled_explicit: false,
    }
}

async fn sync(c: &Ctx, d: Vec<crate::ConfigSchedule>) -> crate::ConfigSync {
    c.store
        .sync_config_schedules(d)
        .await
        .expect("sync_config_schedules")
}

/// A config file's schedules and the stored ones agree after each sync:
/// schedules it no longer declares are removed (only those it declared); an
/// operator's disable survives a sync unless the file says `enabled`
/// itself; a schedule upserted any other way is taken over and left alone.
pub async fn schedule_config_sync_removes_undeclared_and_keeps_operator_disable(h: &dyn Harness) {
    let c = Ctx::new(h).await;
    let api = upsert(&c, spec("api", "0 3 * * *")).await;
    assert!(!api.from_config);

    let r = sync(
        &c,
        vec![declared("a", "0 * * * *"), declared("b", "0 * * * *")],
    )
    .await;
    assert_eq!(r.removed, Vec::<String>::new());
    let names: Vec<&str> = r.schedules.iter().map(|s| s.spec.name.as_str()).collect();
    assert_eq!(names, ["a", "b"]);
    assert!(r.schedules.iter().all(|s| s.from_config && s.spec.enabled));
    let next_a = r.schedules[0].next_fire_at;

    // The operator disables a; the next start (same file) keeps it disabled.
    assert!(c
        .store
        .set_schedule_enabled("a", false)
        .await
        .expect("disable"));
    c.advance(60);
    let r = sync(
        &c,
        vec![declared("a", "0 * * * *"), declared("b", "0 * * * *")],
    )
    .await;
    assert!(
        !r.schedules[0].spec.enabled,
        "an operator's disable survives"
    );
    assert_eq!(r.schedules[0].next_fire_at, next_a);
    assert!(r.removed.is_empty());

    // b leaves the file; a says `enabled = true` itself.
    let mut a = declared("a", "0 * * * *");
    a.enabled_explicit = true;
    let r = sync(&c, vec![a]).await;
    assert_eq!(r.removed, ["b"]);
    assert!(
        r.schedules[0].spec.enabled,
        "the file's explicit enabled wins"
    );
    assert!(c.store.get_schedule("b").await.expect("get").is_none());

    // An explicit `enabled = false` disables.
    let mut a = declared("a", "0 * * * *");
    a.enabled_explicit = true;
    a.spec.enabled = false;
    assert!(!sync(&c, vec![a]).await.schedules[0].spec.enabled);

    // Taken over by an upsert: no longer the file's, so not removed with it.
    assert!(!upsert(&c, spec("a", "0 * * * *")).await.from_config);
    let r = sync(&c, vec![declared("c", "0 * * * *")]).await;
    assert!(r.removed.is_empty(), "{:?}", r.removed);
    let r = sync(&c, vec![]).await;
    assert_eq!(r.removed, ["c"]);
    let left: Vec<String> = c
        .store
        .list_schedules()
        .await
        .expect("list")
        .into_iter()
        .map(|s| s.spec.name)
        .collect();
    assert_eq!(left, ["a", "api"], "schedules not from the file stay");

    // An invalid entry writes nothing.
    let mut bad = declared("d", "0 * * * *");
    bad.spec.job.args = "{".into();
    match c
        .store
        .sync_config_schedules(vec![declared("e", "0 * * * *"), bad])
        .await
    {
        Err(StoreError::Invalid(e)) => assert_eq!(e.field, "job.args", "{e}"),
        other => panic!("expected an invalid-input error, got {other:?}"),
    }
    assert!(c.store.get_schedule("e").await.expect("get").is_none());
}
