//! The gauges read from the store at scrape time: job counts by queue and
//! state, each queue's latency (the age of its oldest runnable job), paused
//! queues, each schedule's next fire time, and whether the store answered.
//!
//! They are read at most once per TTL (default 5 s) whatever the number of
//! scrapers: the first scrape after the TTL reads the store while the
//! others wait for its answer, and they all get the same text. A store that
//! fails is reported as `kyu_store_up 0` (and cached the same way, so a
//! database that is down is not asked again by every scraper).

use std::sync::Arc;
use std::time::{Duration, Instant};

use kyu::{JobState, Kyu};
use tokio::sync::Mutex;

use crate::exposition::Exposition;

pub(crate) struct StoreGauges {
    kyu: Kyu,
    ttl: Duration,
    cached: Mutex<Option<(Instant, Arc<String>)>>,
}

impl StoreGauges {
    pub(crate) fn new(kyu: Kyu, ttl: Duration) -> StoreGauges {
        StoreGauges {
            kyu,
            ttl,
            cached: Mutex::new(None),
        }
    }

    /// The gauges' text: the cached one while it is fresh, else read anew.
    pub(crate) async fn text(&self) -> Arc<String> {
        let mut cached = self.cached.lock().await;
        if let Some((at, text)) = cached.as_ref() {
            if at.elapsed() < self.ttl {
                return text.clone();
            }
        }
        let text = Arc::new(self.read().await);
        *cached = Some((Instant::now(), text.clone()));
        text
    }

    async fn read(&self) -> String {
        let mut e = Exposition::default();
        let (queues, schedules) = match tokio::try_join!(self.kyu.queues(), self.kyu.schedules()) {
            Ok(both) => both,
            Err(err) => {
                tracing::warn!(error = %err, "/metrics: could not read counts from the store");
                store_up(&mut e, false);
                return e.into_string();
            }
        };
        store_up(&mut e, true);

        e.gauge(
            "kyu_jobs",
            "Jobs in the store by queue and state, read at scrape time.",
        );
        for q in &queues {
            for state in JobState::ALL {
                e.sample(
                    "kyu_jobs",
                    &[("queue", &q.queue), ("state", state.as_str())],
                    q.count(state) as f64,
                );
            }
        }
        e.end();

        e.gauge(
            "kyu_queue_latency_seconds",
            "Age of each queue's oldest runnable job (available, or scheduled and due), \
             read at scrape time; 0 when none waits.",
        );
        let now = self.kyu.store().clock().now();
        for q in &queues {
            e.sample(
                "kyu_queue_latency_seconds",
                &[("queue", &q.queue)],
                q.latency(now).as_secs_f64(),
            );
        }
        e.end();

        e.gauge(
            "kyu_queue_paused",
            "1 if the queue is paused (workers claim nothing from it), else 0.",
        );
        for q in &queues {
            e.sample(
                "kyu_queue_paused",
                &[("queue", &q.queue)],
                if q.paused { 1.0 } else { 0.0 },
            );
        }
        e.end();

        e.gauge(
            "kyu_schedule_next_fire_timestamp_seconds",
            "When each enabled schedule fires next (Unix time); in the past: a fire is overdue.",
        );
        for s in schedules.iter().filter(|s| s.spec.enabled) {
            if let Some(next) = s.next_fire_at {
                e.sample(
                    "kyu_schedule_next_fire_timestamp_seconds",
                    &[("schedule", &s.spec.name)],
                    next.timestamp_micros() as f64 / 1e6,
                );
            }
        }
        e.end();
        e.into_string()
    }
}

fn store_up(e: &mut Exposition, up: bool) {
    e.gauge(
        "kyu_store_up",
        "1 if the store answered the last scrape's queries, else 0.",
    );
    e.sample("kyu_store_up", &[], if up { 1.0 } else { 0.0 });
    e.end();
}
