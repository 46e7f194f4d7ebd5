//! `/metrics` through the real router: after a known workload the scrape
//! holds exactly its counts under the documented names, and parses as the
//! Prometheus text format (prometheus-parse; also `promtool check metrics`
//! where promtool is installed, as `.ci/run` makes sure).
//!
//! Every test in this file shares the process's one metrics recorder, so
//! each works its own queues, kinds and schedules.

use std::collections::HashMap;
use std::io::Write;
use std::sync::OnceLock;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use kyu::{Job, JobContext, JobError, JobResult, Kyu, NewJob, Outcome, RetryPolicy, Worker};
use kyu_server::{Options, PrometheusHandle};
use tower::ServiceExt;

/// The process's recorder, installed once for every test of this file.
fn recorder() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| kyu_server::install_recorder().expect("the first recorder"))
        .clone()
}

async fn sqlite() -> (Kyu, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/kyu.db", dir.path().display());
    (Kyu::connect(&url).await.unwrap(), dir)
}

/// A fresh schema of the test PostgreSQL database, if one is configured.
async fn postgres() -> Option<Kyu> {
    let base = std::env::var("KYU_TEST_POSTGRES_URL").ok()?;
    let sep = if base.contains('?') { '&' } else { '?' };
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let url = format!("{base}{sep}schema=t_metrics_{}_{nanos}", std::process::id());
    Some(
        Kyu::connect(&url)
            .await
            .expect("connect to KYU_TEST_POSTGRES_URL"),
    )
}

fn quick(c: &mut kyu::WorkerConfig) {
    c.poll_interval = Duration::from_millis(20);
    c.cancel_poll = Duration::from_millis(50);
    c.shutdown_grace = Duration::from_secs(5);
}

/// The router, every request carrying a token with the `metrics` scope
/// (`/metrics` refuses a request without one).
async fn app(kyu: Kyu, options: Options) -> axum::Router {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let token = kyu
        .create_token(kyu::tokens::TokenSpec {
            name: format!("scrape-{n}"),
            scopes: vec![kyu::Scope::Metrics],
            queues: Vec::new(),
            expires_in: None,
        })
        .await
        .expect("a metrics token");
    let bearer = format!("Bearer {}", token.secret);
    kyu_server::router(kyu, options).layer(axum::middleware::map_request(
        move |mut req: Request<Body>| {
            let bearer = bearer.clone();
            async move {
                req.headers_mut()
                    .insert(axum::http::header::AUTHORIZATION, bearer.parse().unwrap());
                req
            }
        },
    ))
}

async fn get(app: &axum::Router, path: &str) -> (StatusCode, String) {
    let resp = app
        .clone()
        .oneshot(Request::get(path).body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = resp.status();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8(body.to_vec()).unwrap())
}

/// The samples of a scrape, by name and sorted labels; checks that the
/// text parses as the exposition format, line by line.
struct Scrape {
    text: String,
    values: HashMap<(String, Vec<(String, String)>), f64>,
}

impl Scrape {
    fn parse(text: String) -> Scrape {
        for line in text.lines() {
            let info = prometheus_parse::LineInfo::parse(line);
            assert_ne!(
                info,
                prometheus_parse::LineInfo::Ignored,
                "a line the parser does not understand: {line:?}\n{text}"
            );
        }
        let parsed =
            prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).unwrap();
        let mut values = HashMap::new();
        for s in parsed.samples {
            let mut labels: Vec<(String, String)> = s
                .labels
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            labels.sort();
            let v = match s.value {
                prometheus_parse::Value::Counter(v)
                | prometheus_parse::Value::Gauge(v)
                | prometheus_parse::Value::Untyped(v) => v,
                // A histogram's buckets: keep the count (the +Inf bucket).
                prometheus_parse::Value::Histogram(buckets) => {
                    buckets.last().map(|b| b.count).unwrap_or(0.0)
                }
                prometheus_parse::Value::Summary(_) => panic!("no summaries: {}", s.metric),
            };
            values.insert((s.metric, labels), v);
        }
        promtool_check(&text);
        Scrape { text, values }
    }

    fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let mut key: Vec<(String, String)> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        key.sort();
        self.values.get(&(name.to_string(), key)).copied()
    }

    /// The value, which must be there.
    fn at(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.value(name, labels)
            .unwrap_or_else(|| panic!("no sample {name}{labels:?} in the scrape:\n{}", self.text))
    }
}

/// `promtool check metrics` on the text, where promtool is installed.
fn promtool_check(text: &str) {
    let Ok(mut child) = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
    else {
        eprintln!("promtool not found: checked with prometheus-parse only");
        return;
    };
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics: {}{}\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Succeeds.
#[derive(serde::Serialize, serde::Deserialize)]
struct Ok1 {}
impl Job for Ok1 {
    const KIND: &'static str = "ok";
    async fn run(self, _ctx: JobContext) -> JobResult {
        Ok(Outcome::Done)
    }
}

/// Fails for good at once.
#[derive(serde::Serialize, serde::Deserialize)]
struct Doomed {}
impl Job for Doomed {
    const KIND: &'static str = "doomed";
    async fn run(self, _ctx: JobContext) -> JobResult {
        Err(JobError::permanent("bad input"))
    }
}

/// Fails its first attempt, succeeds on the retry.
#[derive(serde::Serialize, serde::Deserialize)]
struct Flaky {}
impl Job for Flaky {
    const KIND: &'static str = "flaky";
    async fn run(self, ctx: JobContext) -> JobResult {
        if ctx.attempt() == 1 {
            return Err(JobError::retryable("try again"));
        }
        Ok(Outcome::Done)
    }
}

/// Times out on its first attempt, succeeds on the retry.
#[derive(serde::Serialize, serde::Deserialize)]
struct Slow {}
impl Job for Slow {
    const KIND: &'static str = "slow";
    async fn run(self, ctx: JobContext) -> JobResult {
        if ctx.attempt() == 1 {
            tokio::time::sleep(Duration::from_secs(30)).await;
        }
        Ok(Outcome::Done)
    }
}

/// 50 jobs complete, 5 fail for good, 3 fail once and are retried, 2 time
/// out once and are retried; then `/metrics` must say exactly that.
async fn known_workload_is_scraped_exactly(kyu: Kyu, queue: &str) {
    let handle = recorder();
    let retry = RetryPolicy::fixed(Duration::from_millis(10));
    let job = |kind: &str| {
        NewJob::new(kind, serde_json::json!({}))
            .queue(queue)
            .retry(retry)
            .max_attempts(3)
    };
    let mut jobs = Vec::new();
    jobs.extend((0..50).map(|_| job("ok")));
    jobs.extend((0..5).map(|_| job("doomed")));
    jobs.extend((0..3).map(|_| job("flaky")));
    jobs.extend((0..2).map(|_| job("slow").timeout(Duration::from_millis(200))));
    let ids: Vec<_> = kyu
        .enqueue_many(jobs)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.id)
        .collect();
    // A duplicate of a unique key is not an enqueue.
    let unique = job("ok").unique_key(format!("{queue}-once"));
    let first = kyu.enqueue(unique.clone()).await.unwrap();
    assert!(kyu.enqueue(unique).await.unwrap().duplicate);

    let worker = Worker::new(&kyu)
        .register::<Ok1>()
        .register::<Doomed>()
        .register::<Flaky>()
        .register::<Slow>()
        .queue(queue, 8)
        .configure(quick)
        .start();
    for id in ids.iter().chain([&first.id]) {
        kyu.wait(*id)
            .timeout(Duration::from_secs(60))
            .await
            .unwrap();
    }
    // Every result written and counted.
    worker.shutdown().await;

    let app = app(kyu, Options::default().metrics(handle)).await;
    let (status, text) = get(&app, "/metrics").await;
    assert_eq!(status, StatusCode::OK);
    let s = Scrape::parse(text);

    let q = ("queue", queue);
    let enqueued = |kind| s.at("kyu_jobs_enqueued_total", &[q, ("kind", kind)]);
    assert_eq!(
        enqueued("ok"),
        51.0,
        "50 + one unique job (its duplicate not counted)"
    );
    assert_eq!(enqueued("doomed"), 5.0);
    assert_eq!(enqueued("flaky"), 3.0);
    assert_eq!(enqueued("slow"), 2.0);

    let attempts = |kind, outcome| {
        s.value(
            "kyu_job_attempts_total",
            &[q, ("kind", kind), ("outcome", outcome)],
        )
        .unwrap_or(0.0)
    };
    let expected = [
        ("ok", "success", 51.0),
        ("doomed", "failure", 5.0),
        ("flaky", "failure", 3.0),
        ("flaky", "success", 3.0),
        ("slow", "timeout", 2.0),
        ("slow", "success", 2.0),
    ];
    for kind in ["ok", "doomed", "flaky", "slow"] {
        for outcome in ["success", "failure", "timeout", "cancelled", "lease_lost"] {
            let want = expected
                .iter()
                .find(|(k, o, _)| *k == kind && *o == outcome)
                .map_or(0.0, |e| e.2);
            assert_eq!(
                attempts(kind, outcome),
                want,
                "kyu_job_attempts_total{{kind={kind},outcome={outcome}}}\n{}",
                s.text
            );
        }
    }
    let dead = |kind| {
        s.value("kyu_jobs_dead_total", &[q, ("kind", kind)])
            .unwrap_or(0.0)
    };
    assert_eq!(dead("doomed"), 5.0);
    assert_eq!(dead("ok") + dead("flaky") + dead("slow"), 0.0);

    // One duration per attempt that ran a handler, in buckets.
    let durations = |kind| s.at("kyu_job_duration_seconds_count", &[q, ("kind", kind)]);
    assert_eq!(durations("ok"), 51.0);
    assert_eq!(durations("doomed"), 5.0);
    assert_eq!(durations("flaky"), 6.0);
    assert_eq!(durations("slow"), 4.0);
    assert!(
        s.text.contains("# TYPE kyu_job_duration_seconds histogram"),
        "a histogram with explicit buckets, not a summary:\n{}",
        s.text
    );
    let last_bucket = format!(
        "kyu_job_duration_seconds_bucket{{queue=\"{queue}\",kind=\"ok\",le=\"3600\"}} 51\n"
    );
    assert!(s.text.contains(&last_bucket), "{last_bucket}\n{}", s.text);

    // One wait (runnable to started) per attempt a worker of this process claimed.
    let waits = |kind| s.at("kyu_job_wait_seconds_count", &[q, ("kind", kind)]);
    assert_eq!(waits("ok"), 51.0);
    assert_eq!(waits("doomed"), 5.0);
    assert_eq!(waits("flaky"), 6.0);
    assert_eq!(waits("slow"), 4.0);
    assert!(
        s.text.contains("# TYPE kyu_job_wait_seconds histogram"),
        "{}",
        s.text
    );
    // Nothing waits any more.
    assert_eq!(s.at("kyu_queue_latency_seconds", &[q]), 0.0);

    // The store's counts at scrape time.
    let jobs = |state| s.at("kyu_jobs", &[q, ("state", state)]);
    assert_eq!(jobs("completed"), 56.0, "51 ok, 3 flaky, 2 slow");
    assert_eq!(jobs("failed"), 5.0);
    for state in ["scheduled", "available", "running", "cancelled"] {
        assert_eq!(jobs(state), 0.0, "{state}");
    }
    assert_eq!(s.at("kyu_queue_paused", &[q]), 0.0);
    assert_eq!(s.at("kyu_store_up", &[]), 1.0);
    assert_eq!(
        s.at("kyu_build_info", &[("version", env!("CARGO_PKG_VERSION"))]),
        1.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_scrape_counts_a_known_workload_exactly() {
    let (kyu, _dir) = sqlite().await;
    known_workload_is_scraped_exactly(kyu, "scrape-sqlite").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_scrape_counts_a_known_workload_exactly() {
    let Some(kyu) = postgres().await else {
        eprintln!("KYU_TEST_POSTGRES_URL is not set: skipped");
        return;
    };
    known_workload_is_scraped_exactly(kyu, "scrape-postgres").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reaper_counts_expired_leases_and_the_jobs_they_fail() {
    let handle = recorder();
    let (kyu, _dir) = sqlite().await;
    let queue = "reaped";
    // One job with attempts left (runs again), one without (fails for good).
    kyu.enqueue_many(vec![
        NewJob::new("lost", serde_json::json!({}))
            .queue(queue)
            .max_attempts(3),
        NewJob::new("lost", serde_json::json!({}))
            .queue(queue)
            .max_attempts(1),
    ])
    .await
    .unwrap();
    // A worker claims them with a 1 s lease and dies.
    let claimed = kyu
        .store()
        .claim(kyu::store::Claim {
            worker: "died".into(),
            queues: vec![queue.into()],
            kinds: Some(vec!["lost".into()]),
            limit: 10,
            lease: Duration::from_secs(1),
            unstarted: false,
        })
        .await
        .unwrap();
    assert_eq!(claimed.len(), 2);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(
        kyu::maintenance::reap_once(kyu.store().as_ref())
            .await
            .unwrap(),
        2
    );

    let app = app(kyu, Options::default().metrics(handle)).await;
    let s = Scrape::parse(get(&app, "/metrics").await.1);
    assert_eq!(
        s.at("kyu_leases_expired_total", &[("queue", queue)]),
        1.0 + 1.0
    );
    assert_eq!(
        s.at("kyu_jobs_dead_total", &[("queue", queue), ("kind", "lost")]),
        1.0
    );
    assert_eq!(
        s.at("kyu_jobs", &[("queue", queue), ("state", "available")]),
        1.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheduler_counts_fires_and_scrape_shows_the_next_fire_time() {
    let handle = recorder();
    let (kyu, _dir) = sqlite().await;
    let template = NewJob::new("tick", serde_json::json!({})).queue("ticks");
    let rec = kyu
        .schedule(kyu::ScheduleSpec::new(
            "every-second",
            "* * * * * *",
            template,
        ))
        .await
        .unwrap();
    let first = rec.next_fire_at.unwrap();
    let scheduler = kyu::Scheduler::new(&kyu);
    // Fires once; the next fire time finds that job unfinished and, with the
    // default overlap policy, is skipped.
    assert_eq!(scheduler.run_once(first).await.unwrap().fired.len(), 1);
    let second = first + chrono::Duration::seconds(1);
    assert_eq!(scheduler.run_once(second).await.unwrap().skipped, 1);
    let next = kyu
        .get_schedule("every-second")
        .await
        .unwrap()
        .next_fire_at
        .unwrap();

    let app = app(kyu, Options::default().metrics(handle)).await;
    let s = Scrape::parse(get(&app, "/metrics").await.1);
    let fires = |outcome| {
        s.at(
            "kyu_schedule_fires_total",
            &[("schedule", "every-second"), ("outcome", outcome)],
        )
    };
    assert_eq!(fires("fired"), 1.0);
    assert_eq!(fires("skipped"), 1.0);
    assert_eq!(
        s.at(
            "kyu_jobs_enqueued_total",
            &[("queue", "ticks"), ("kind", "tick")]
        ),
        1.0,
        "the fired job is an enqueue"
    );
    assert_eq!(
        s.at(
            "kyu_schedule_next_fire_timestamp_seconds",
            &[("schedule", "every-second")]
        ),
        next.timestamp() as f64
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_slots_show_used_and_free() {
    let handle = recorder();
    let (kyu, _dir) = sqlite().await;
    let queue = "slots";
    let release = std::sync::Arc::new(tokio::sync::Notify::new());
    let started = std::sync::Arc::new(tokio::sync::Notify::new());
    let (r, st) = (release.clone(), started.clone());
    let worker = Worker::new(&kyu)
        .handle("block", move |_ctx| {
            let (r, st) = (r.clone(), st.clone());
            async move {
                st.notify_one();
                r.notified().await;
                Ok(Outcome::Done)
            }
        })
        .queue(queue, 3)
        .configure(quick)
        .start();
    let job = kyu
        .enqueue(NewJob::new("block", serde_json::json!({})).queue(queue))
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(10), started.notified())
        .await
        .expect("the job started");

    let app = app(kyu.clone(), Options::default().metrics(handle)).await;
    let s = Scrape::parse(get(&app, "/metrics").await.1);
    let slots = |s: &Scrape, state| s.at("kyu_worker_slots", &[("queue", queue), ("state", state)]);
    assert_eq!(slots(&s, "used"), 1.0);
    assert_eq!(slots(&s, "free"), 2.0);

    release.notify_one();
    kyu.wait(job.id)
        .timeout(Duration::from_secs(10))
        .await
        .unwrap();
    worker.shutdown().await;
    let s = Scrape::parse(get(&app, "/metrics").await.1);
    assert_eq!(slots(&s, "used"), 0.0);
    assert_eq!(slots(&s, "free"), 0.0, "a stopped worker has no slots");
}

#[tokio::test]
async fn store_gauges_are_read_once_per_ttl() {
    let (kyu, _dir) = sqlite().await;
    let new = || NewJob::new("later", serde_json::json!({})).queue("cached");
    kyu.enqueue(new()).await.unwrap();
    kyu.pause("cached").await.unwrap();
    let available = |s: &Scrape| s.at("kyu_jobs", &[("queue", "cached"), ("state", "available")]);

    let mut options = Options {
        store_gauges_ttl: Duration::from_secs(3600),
        ..Options::default()
    };
    let cached = app(kyu.clone(), options.clone()).await;
    let s = Scrape::parse(get(&cached, "/metrics").await.1);
    assert_eq!(available(&s), 1.0);
    assert_eq!(s.at("kyu_queue_paused", &[("queue", "cached")]), 1.0);

    kyu.enqueue(new()).await.unwrap();
    let s = Scrape::parse(get(&cached, "/metrics").await.1);
    assert_eq!(available(&s), 1.0, "within the TTL: the same reading");

    options.store_gauges_ttl = Duration::ZERO;
    let fresh = app(kyu, options).await;
    let s = Scrape::parse(get(&fresh, "/metrics").await.1);
    assert_eq!(available(&s), 2.0, "a new reading");
}

#[tokio::test]
async fn healthz_and_readyz_answer_while_the_store_does() {
    let (kyu, _dir) = sqlite().await;
    let app = app(kyu, Options::default()).await;
    assert_eq!(get(&app, "/healthz").await, (StatusCode::OK, "ok\n".into()));
    assert_eq!(get(&app, "/readyz").await, (StatusCode::OK, "ok\n".into()));
    assert_eq!(get(&app, "/nothing-here").await.0, StatusCode::NOT_FOUND);
}

/// `kyu_queue_latency_seconds` is the age of each queue's oldest runnable
/// job at scrape time, by the store's clock: exact with a manual clock
/// (PostgreSQL, where the test can give the store its clock).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_latency_is_the_age_of_the_oldest_runnable_job() {
    let Ok(base) = std::env::var("KYU_TEST_POSTGRES_URL") else {
        eprintln!("KYU_TEST_POSTGRES_URL is not set: skipped");
        return;
    };
    use kyu::Clock as _;
    let clock = kyu::ManualClock::new("2030-01-01T00:00:00Z".parse().unwrap());
    let sep = if base.contains('?') { '&' } else { '?' };
    let url = format!("{base}{sep}schema=t_latency_{}", std::process::id());
    let store = kyu::postgres::PgStore::connect(
        &url,
        kyu::postgres::PgOptions::with_clock(std::sync::Arc::new(clock.clone())),
    )
    .await
    .expect("connect to KYU_TEST_POSTGRES_URL");
    let kyu = Kyu::from_store(std::sync::Arc::new(store));
    let new = |queue: &str| NewJob::new("wait", serde_json::json!({})).queue(queue);
    kyu.enqueue(new("lat-a")).await.unwrap();
    clock.advance(Duration::from_secs(30));
    kyu.enqueue(new("lat-a")).await.unwrap();
    // Due in 60 s: not runnable at the scrape.
    kyu.enqueue(new("lat-b").run_at(clock.now() + chrono::Duration::seconds(60)))
        .await
        .unwrap();
    clock.advance(Duration::from_secs(60));

    let app = app(kyu, Options::default()).await;
    let s = Scrape::parse(get(&app, "/metrics").await.1);
    let latency = |queue| s.at("kyu_queue_latency_seconds", &[("queue", queue)]);
    assert_eq!(latency("lat-a"), 90.0, "the first job waits since 00:00:00");
    assert_eq!(latency("lat-b"), 0.0, "its job became due this instant");
}
