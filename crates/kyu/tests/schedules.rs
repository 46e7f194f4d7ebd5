//! The scheduler on real stores (SQLite files, and PostgreSQL schemas when
//! `KYU_TEST_POSTGRES_URL` is set), with a [`ManualClock`]: time is moved,
//! never waited for.
//!
//! - several schedulers on one database through simulated days: exactly one
//!   job per fire time, no gap (invariant 3);
//! - a scheduler stopped for an hour follows each misfire policy on restart,
//!   and one stopped for less than the grace catches up on every fire time;
//! - overlap policies hold while a job runs long.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use kyu::{
    Clock, JobFilter, JobId, JobRecord, JobState, JobTemplate, Kyu, ManualClock, MisfirePolicy,
    OverlapPolicy, ScheduleSpec, Scheduler,
};
use kyu_core::{Claim, Finish, FinishOutcome};
use rand::{Rng, SeedableRng};

mod common;

use common::{connect_with_clock, fresh, on_each_backend, Backend};

on_each_backend!(
    three_schedulers_fire_each_time_exactly_once(flavor = "multi_thread", worker_threads = 4),
    stopped_for_an_hour_follows_each_misfire_policy,
    misfire_policy_spares_fire_times_inside_the_grace,
    short_stop_within_the_grace_catches_up,
    overlap_policies_hold_while_a_job_runs_long,
    client_declares_and_manages_schedules,
    started_scheduler_fires_and_shuts_down,
);

fn at(s: &str) -> DateTime<Utc> {
    s.parse().expect("test time parses")
}

/// A client on the database `url` reading `clock` (one "process").
async fn open(url: &str, clock: &ManualClock) -> Kyu {
    connect_with_clock(url, Arc::new(clock.clone())).await
}

fn spec(name: &str, cron: &str) -> ScheduleSpec {
    ScheduleSpec::new(
        name,
        cron.parse::<kyu::CronExpr>().expect("test cron parses"),
        JobTemplate::new(name, serde_json::json!({})),
    )
}

/// Every job of kind `kind` (each schedule here enqueues its own kind), oldest first.
async fn jobs_of(kyu: &Kyu, kind: &str) -> Vec<JobRecord> {
    let mut out = Vec::new();
    let mut before = None;
    loop {
        let page = kyu
            .list(&JobFilter {
                kind: Some(kind.into()),
                before,
                limit: 20_000,
                ..JobFilter::default()
            })
            .await
            .expect("list");
        out.extend(page.jobs);
        match page.next {
            Some(n) => before = Some(n),
            None => break,
        }
    }
    out.reverse();
    out
}

/// The fire times (run_at) of the jobs of `kind`, checking each job's unique
/// key names its fire time.
async fn fire_times_of(kyu: &Kyu, kind: &str) -> Vec<DateTime<Utc>> {
    jobs_of(kyu, kind)
        .await
        .into_iter()
        .map(|j| {
            assert_eq!(
                j.unique_key,
                Some(kyu_core::schedule::fire_key(kind, j.run_at)),
                "job {} of {kind}",
                j.id
            );
            j.run_at
        })
        .collect()
}

fn expected(
    cron: &str,
    zone: kyu::Tz,
    after: DateTime<Utc>,
    until: DateTime<Utc>,
) -> Vec<DateTime<Utc>> {
    let expr: kyu::CronExpr = cron.parse().expect("cron");
    expr.fire_times(after, zone)
        .take_while(|t| *t <= until)
        .collect()
}

/// How many simulated days the race runs (`KYU_SCHEDULE_DAYS`, default 1).
fn sim_days() -> i64 {
    std::env::var("KYU_SCHEDULE_DAYS")
        .ok()
        .and_then(|d| d.parse().ok())
        .unwrap_or(1)
}

/// The simulated span of the race: `sim_days` from noon the day before New
/// York's spring-forward on SQLite; on PostgreSQL, where each fire is a
/// round trip to the server, the 20 minutes around the gap (07:00Z): every
/// case the assertions name, in a few seconds instead of minutes.
fn race_span(backend: Backend) -> (DateTime<Utc>, DateTime<Utc>) {
    match backend {
        Backend::Sqlite => {
            let start = at("2030-03-09T12:00:00Z");
            (start, start + chrono::Duration::days(sim_days()))
        }
        Backend::Postgres => (at("2030-03-10T06:50:00Z"), at("2030-03-10T07:10:00Z")),
    }
}

/// Three schedulers ("processes", each with its own store on the same
/// database) tick at once while the clock moves in random steps of up to 50 s
/// through simulated time ([`race_span`]), across the spring-forward of America/New_York. An
/// every-second schedule (UTC) and an every-minute schedule (New York) yield
/// exactly one job per fire time, and no fire time is missing.
async fn three_schedulers_fire_each_time_exactly_once(backend: Backend) {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = backend.fresh_url(dir.path());
    // 2030-03-10 is the spring-forward day in New York.
    let (start, end) = race_span(backend);
    let clock = ManualClock::new(start);
    let ny = kyu::parse_zone("America/New_York").expect("zone");
    let mut kyus: Vec<Kyu> = Vec::new();
    for _ in 0..3 {
        kyus.push(open(&url, &clock).await);
    }
    kyus[0]
        .schedule(spec("every_second", "* * * * * *").overlap(OverlapPolicy::Allow))
        .await
        .expect("schedule");
    kyus[1]
        .schedule(
            spec("every_minute", "* * * * *")
                .zone(ny)
                .overlap(OverlapPolicy::Allow),
        )
        .await
        .expect("schedule");
    let schedulers: Vec<Scheduler> = kyus.iter().map(Scheduler::new).collect();

    let mut rng = rand::rngs::StdRng::seed_from_u64(4);
    let (mut fired, mut lost) = (0usize, 0usize);
    while clock.now() < end {
        clock.advance(Duration::from_millis(rng.gen_range(200..50_000)));
        let (a, b, c) = tokio::join!(
            schedulers[0].tick(),
            schedulers[1].tick(),
            schedulers[2].tick()
        );
        for r in [a, b, c] {
            let r = r.expect("tick");
            assert_eq!(r.errors, 0);
            assert_eq!(
                r.skipped, 0,
                "nothing misfires: steps stay within the grace"
            );
            fired += r.fired.len();
            lost += r.lost;
        }
    }
    let now = clock.now();
    let secs = fire_times_of(&kyus[2], "every_second").await;
    let mins = fire_times_of(&kyus[2], "every_minute").await;
    let want_secs = expected("* * * * * *", kyu::Tz::UTC, start, now);
    let want_mins = expected("* * * * *", ny, start, now);
    assert_eq!(secs.len(), want_secs.len(), "one job per second");
    assert_eq!(secs, want_secs, "every second, once, in order");
    assert_eq!(mins, want_mins, "every minute, once, in order");
    assert_eq!(fired, secs.len() + mins.len());
    assert!(lost > 0, "the schedulers did race");
    // Across the gap, New York's every-minute schedule goes 01:59 EST → 03:00 EDT.
    assert!(mins.contains(&at("2030-03-10T06:59:00Z")));
    assert!(mins.contains(&at("2030-03-10T07:00:00Z")));
    eprintln!(
        "{} simulated minutes: {} + {} jobs, {fired} fired, {lost} lost races",
        (end - start).num_minutes(),
        secs.len(),
        mins.len()
    );
}

/// A scheduler stopped for an hour: on restart, misfire `skip` enqueues
/// nothing for the hour and `run_once` exactly one job (for the first missed
/// fire time); both fire the fire time inside the grace and then every
/// minute again with no gap.
async fn stopped_for_an_hour_follows_each_misfire_policy(backend: Backend) {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = backend.fresh_url(dir.path());
    let t0 = at("2030-01-01T00:00:00Z");
    let clock = ManualClock::new(t0);
    let kyu = open(&url, &clock).await;
    for (name, misfire) in [
        ("skipper", MisfirePolicy::Skip),
        ("catcher", MisfirePolicy::RunOnce),
    ] {
        kyu.schedule(
            spec(name, "* * * * *")
                .overlap(OverlapPolicy::Allow)
                .misfire(misfire),
        )
        .await
        .expect("schedule");
    }
    let scheduler = Scheduler::new(&kyu);
    // Ten minutes of normal running, a tick every 10 s.
    for _ in 0..60 {
        clock.advance(Duration::from_secs(10));
        scheduler.tick().await.expect("tick");
    }
    let running_until = clock.now(); // 00:10:00
    drop(scheduler);
    drop(kyu);

    // Down for an hour.
    clock.advance(Duration::from_secs(3600) + Duration::from_secs(5)); // 01:10:05
    let kyu = open(&url, &clock).await;
    let report = Scheduler::new(&kyu).tick().await.expect("tick");
    assert_eq!(report.skipped, 1, "skip: one misfire step, no job");
    // run_once: one job for the missed hour; then 01:10:00 (5 s late, inside
    // the grace) fires for both.
    let fired: Vec<(&str, DateTime<Utc>)> = report
        .fired
        .iter()
        .map(|(n, t, _)| (n.as_str(), *t))
        .collect();
    assert_eq!(
        fired,
        [
            ("catcher", at("2030-01-01T00:11:00Z")),
            ("catcher", at("2030-01-01T01:10:00Z")),
            ("skipper", at("2030-01-01T01:10:00Z")),
        ]
    );
    for name in ["skipper", "catcher"] {
        let s = kyu.get_schedule(name).await.expect("schedule");
        assert_eq!(s.next_fire_at, Some(at("2030-01-01T01:11:00Z")), "{name}");
    }

    let scheduler = Scheduler::new(&kyu);
    for _ in 0..30 {
        clock.advance(Duration::from_secs(10));
        scheduler.tick().await.expect("tick");
    }
    let now = clock.now(); // 01:15:05
    let before = expected("* * * * *", kyu::Tz::UTC, t0, running_until);
    let after = expected("* * * * *", kyu::Tz::UTC, at("2030-01-01T01:09:05Z"), now);
    assert_eq!(before.len(), 10);
    assert_eq!(after.len(), 6, "01:10 (inside the grace) … 01:15");

    let skipper = fire_times_of(&kyu, "skipper").await;
    assert_eq!(skipper, [before.clone(), after.clone()].concat());
    let catcher = fire_times_of(&kyu, "catcher").await;
    assert_eq!(
        catcher,
        [before, vec![at("2030-01-01T00:11:00Z")], after].concat()
    );
}

/// After an outage longer than the grace, the misfire policy applies only to
/// the fire times older than the grace; those inside it (late by seconds)
/// fire. `*/10 * * * * *`, stopped at 08:51:45, restarted at 08:53:05: with a
/// 60 s grace 08:51:50 and 08:52:00 misfired, 08:52:10 … 08:53:00 fire.
async fn misfire_policy_spares_fire_times_inside_the_grace(backend: Backend) {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = backend.fresh_url(dir.path());
    let t0 = at("2030-01-01T08:50:00Z");
    let clock = ManualClock::new(t0);
    let kyu = open(&url, &clock).await;
    for (name, misfire) in [
        ("skipper", MisfirePolicy::Skip),
        ("catcher", MisfirePolicy::RunOnce),
    ] {
        kyu.schedule(
            spec(name, "*/10 * * * * *")
                .overlap(OverlapPolicy::Allow)
                .misfire(misfire),
        )
        .await
        .expect("schedule");
    }
    let scheduler = Scheduler::new(&kyu);
    for _ in 0..21 {
        clock.advance(Duration::from_secs(5));
        scheduler.tick().await.expect("tick");
    }
    assert_eq!(clock.now(), at("2030-01-01T08:51:45Z"));
    drop(scheduler);
    drop(kyu);

    clock.set(at("2030-01-01T08:53:05Z"));
    let kyu = open(&url, &clock).await;
    Scheduler::new(&kyu).tick().await.expect("tick");
    let before = expected(
        "*/10 * * * * *",
        kyu::Tz::UTC,
        t0,
        at("2030-01-01T08:51:45Z"),
    );
    let inside = expected(
        "*/10 * * * * *",
        kyu::Tz::UTC,
        at("2030-01-01T08:52:05Z"),
        at("2030-01-01T08:53:05Z"),
    );
    assert_eq!(inside.first(), Some(&at("2030-01-01T08:52:10Z")));
    assert_eq!(inside.last(), Some(&at("2030-01-01T08:53:00Z")));
    assert_eq!(
        fire_times_of(&kyu, "skipper").await,
        [before.clone(), inside.clone()].concat(),
        "skip: the fire times older than the grace dropped, the ones inside it fired"
    );
    assert_eq!(
        fire_times_of(&kyu, "catcher").await,
        [before, vec![at("2030-01-01T08:51:50Z")], inside].concat(),
        "run_once: one job for the misfired ones, then the ones inside the grace"
    );
    for name in ["skipper", "catcher"] {
        let s = kyu.get_schedule(name).await.expect("schedule");
        assert_eq!(s.next_fire_at, Some(at("2030-01-01T08:53:10Z")), "{name}");
    }
}

/// A scheduler stopped for less than the grace is not a misfire: on restart
/// it fires every fire time it missed, in order.
async fn short_stop_within_the_grace_catches_up(backend: Backend) {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = backend.fresh_url(dir.path());
    let t0 = at("2030-01-01T00:00:00Z");
    let clock = ManualClock::new(t0);
    let kyu = open(&url, &clock).await;
    kyu.schedule(
        spec("tick", "*/5 * * * * *")
            .overlap(OverlapPolicy::Allow)
            .misfire(MisfirePolicy::Skip),
    )
    .await
    .expect("schedule");
    let scheduler = Scheduler::new(&kyu).configure(|c| c.misfire_grace = Duration::from_secs(60));
    clock.advance(Duration::from_secs(5));
    assert_eq!(scheduler.tick().await.expect("tick").fired.len(), 1);
    clock.advance(Duration::from_secs(50));
    let r = scheduler.tick().await.expect("tick");
    assert_eq!(r.fired.len(), 10, "00:10 … 00:55, each once");
    assert_eq!(r.skipped, 0);
    assert_eq!(
        fire_times_of(&kyu, "tick").await,
        expected("*/5 * * * * *", kyu::Tz::UTC, t0, clock.now())
    );
}

/// Claims the one available job of `kind` as a long-running worker.
async fn claim(kyu: &Kyu, kind: &str) -> kyu_core::ClaimedJob {
    let mut got = kyu
        .store()
        .claim(Claim {
            worker: "slow".into(),
            queues: vec![kind.into()],
            kinds: None,
            limit: 10,
            lease: Duration::from_secs(24 * 3600),
            unstarted: false,
        })
        .await
        .expect("claim");
    assert_eq!(got.len(), 1, "one job of {kind} to claim");
    got.remove(0)
}

async fn complete(kyu: &Kyu, job: &kyu_core::ClaimedJob) {
    kyu.store()
        .finish(vec![Finish {
            lease: job.lease(),
            worker: "slow".into(),
            outcome: FinishOutcome::Completed { result: None },
        }])
        .await
        .expect("finish");
}

/// Every-minute schedules whose first job runs for ten minutes: `allow`
/// enqueues every minute, `skip` nothing until the job finishes, and
/// `buffer_one` keeps the first fire time it could not run and enqueues it
/// when the job finishes, not before.
async fn overlap_policies_hold_while_a_job_runs_long(backend: Backend) {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = backend.fresh_url(dir.path());
    let t0 = at("2030-01-01T00:00:00Z");
    let clock = ManualClock::new(t0);
    let kyu = open(&url, &clock).await;
    let policies = [
        ("allow", OverlapPolicy::Allow),
        ("skip", OverlapPolicy::Skip),
        ("buffer_one", OverlapPolicy::BufferOne),
    ];
    for (name, overlap) in policies {
        let mut s = spec(name, "* * * * *").overlap(overlap);
        s.job.queue = name.into();
        kyu.schedule(s).await.expect("schedule");
    }
    // Two schedulers, to show the policies hold across processes too.
    let other = open(&url, &clock).await;
    let schedulers = [Scheduler::new(&kyu), Scheduler::new(&other)];
    let tick = |secs: u64| {
        clock.advance(Duration::from_secs(secs));
        async {
            for s in &schedulers {
                s.tick().await.expect("tick");
            }
        }
    };

    tick(60).await; // 00:01: each enqueues its first job.
    let long: Vec<_> = {
        let mut v = Vec::new();
        for (name, _) in policies {
            v.push(claim(&kyu, name).await);
        }
        v
    };
    for _ in 0..30 {
        tick(20).await; // to 00:11, the jobs still running
    }
    let m = |min: u32| at(&format!("2030-01-01T00:{min:02}:00Z"));
    assert_eq!(
        fire_times_of(&kyu, "allow").await,
        (1..=11).map(m).collect::<Vec<_>>()
    );
    assert_eq!(fire_times_of(&kyu, "skip").await, [m(1)]);
    assert_eq!(fire_times_of(&kyu, "buffer_one").await, [m(1)]);
    let b = kyu.get_schedule("buffer_one").await.expect("schedule");
    assert_eq!(b.buffered_fire_at, Some(m(2)));
    assert_eq!(b.last_job_state, Some(JobState::Running));
    let s = kyu.get_schedule("skip").await.expect("schedule");
    assert_eq!(s.next_fire_at, Some(m(12)), "skipped fires still advance");

    // The long jobs finish at 00:11:10.
    clock.advance(Duration::from_secs(10));
    for j in &long {
        complete(&kyu, j).await;
    }
    tick(5).await; // 00:11:15: buffer_one enqueues the fire time it kept.
    assert_eq!(fire_times_of(&kyu, "buffer_one").await, [m(1), m(2)]);
    assert_eq!(fire_times_of(&kyu, "skip").await, [m(1)]);
    // The buffered job runs; the 00:12 fire is buffered behind it.
    let buffered = claim(&kyu, "buffer_one").await;
    tick(45).await; // 00:12:00
    assert_eq!(fire_times_of(&kyu, "skip").await, [m(1), m(12)]);
    assert_eq!(
        kyu.get_schedule("buffer_one")
            .await
            .expect("schedule")
            .buffered_fire_at,
        Some(m(12))
    );
    complete(&kyu, &buffered).await;
    tick(1).await;
    assert_eq!(fire_times_of(&kyu, "buffer_one").await, [m(1), m(2), m(12)]);
    // Never two jobs of buffer_one unfinished at once.
    let unfinished: Vec<JobId> = jobs_of(&kyu, "buffer_one")
        .await
        .iter()
        .filter(|j| !j.state.is_finished())
        .map(|j| j.id)
        .collect();
    assert_eq!(unfinished.len(), 1);
}

/// Declaring, listing, disabling, enabling, triggering and removing
/// schedules through the client.
async fn client_declares_and_manages_schedules(backend: Backend) {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = backend.fresh_url(dir.path());
    let clock = ManualClock::new(at("2030-01-01T00:00:30Z"));
    let kyu = open(&url, &clock).await;
    let rec = kyu
        .schedule(spec("report", "0 9 * * *").zone(kyu::parse_zone("Asia/Tokyo").expect("zone")))
        .await
        .expect("schedule");
    // 09:00 JST = 00:00Z; the first after 00:00:30Z is the next day's.
    assert_eq!(rec.next_fire_at, Some(at("2030-01-02T00:00:00Z")));
    // Declared again by another process: unchanged.
    let again = open(&url, &clock)
        .await
        .schedule(spec("report", "0 9 * * *").zone(kyu::parse_zone("Asia/Tokyo").expect("zone")))
        .await
        .expect("schedule");
    assert_eq!(again.next_fire_at, rec.next_fire_at);

    kyu.schedule(spec("bad", "* * * * *"))
        .await
        .expect("schedule");
    let mut invalid = spec("bad2", "* * * * *");
    invalid.job.kind = String::new();
    match kyu.schedule(invalid).await {
        Err(kyu::Error::Invalid(e)) => assert_eq!(e.field, "job.kind", "{e}"),
        other => panic!("expected an invalid-input error, got {other:?}"),
    }
    assert!(kyu.unschedule("bad").await.expect("unschedule"));
    assert_eq!(kyu.schedules().await.expect("list").len(), 1);

    kyu.disable_schedule("report").await.expect("disable");
    let id = kyu.trigger("report").await.expect("trigger");
    assert_eq!(kyu.job(id).await.expect("job").kind, "report");
    let r = kyu.get_schedule("report").await.expect("get");
    assert!(!r.spec.enabled);
    assert_eq!(r.last_job_id, Some(id));
    assert_eq!(r.last_job_state, Some(JobState::Available));
    clock.advance(Duration::from_secs(3 * 86400));
    assert!(Scheduler::new(&kyu)
        .tick()
        .await
        .expect("tick")
        .fired
        .is_empty());
    kyu.enable_schedule("report").await.expect("enable");
    assert_eq!(
        kyu.get_schedule("report").await.expect("get").next_fire_at,
        Some(at("2030-01-05T00:00:00Z")),
        "re-enabled: from the next fire time, no misfire"
    );
    assert!(matches!(
        kyu.trigger("nope").await,
        Err(kyu::Error::ScheduleNotFound(n)) if n == "nope"
    ));
    assert!(matches!(
        kyu.enable_schedule("nope").await,
        Err(kyu::Error::ScheduleNotFound(_))
    ));
}

/// The loop started with `start()` fires on the wall clock and stops on shutdown.
async fn started_scheduler_fires_and_shuts_down(backend: Backend) {
    let (kyu, _dir) = fresh(backend).await;
    kyu.schedule(spec("sec", "* * * * * *"))
        .await
        .expect("schedule");
    let handle = Scheduler::new(&kyu).start();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while jobs_of(&kyu, "sec").await.is_empty() {
        assert!(tokio::time::Instant::now() < deadline, "no job within 10 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    handle.shutdown().await;
}
