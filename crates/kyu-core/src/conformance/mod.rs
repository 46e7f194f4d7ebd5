//! The backend conformance suite: the semantics of [`Store`], stated as tests.
//!
//! This is not a set of helpers for applications: it is the contract every
//! backend must pass before it ships. A backend's `tests/conformance.rs` is a
//! [`Harness`] (a way to make a fresh, empty store with a given clock) and one
//! line of [`conformance_tests!`](crate::conformance_tests):
//!
//! ```ignore
//! struct MyHarness(tempfile::TempDir);
//! #[async_trait::async_trait]
//! impl kyu_core::conformance::Harness for MyHarness {
//!     async fn store(&self, clock: Arc<dyn Clock>) -> Arc<dyn Store> { /* a fresh store */ }
//! }
//! kyu_core::conformance_tests!(MyHarness(tempfile::tempdir().unwrap()));
//! ```
//!
//! The macro makes one `#[test]` per case; each builds its own harness and a
//! single-threaded tokio runtime. Time is moved with a [`ManualClock`] that
//! starts at [`T0`]; no case sleeps. Stores must check enqueued jobs against
//! [`Limits::default`](crate::Limits::default).
//!
//! The cases live in one module per topic; this module holds the harness,
//! the per-case context [`Ctx`] and the helpers the topics share:
//!
//! - [`enqueue`]: inserting jobs, validation, unique keys;
//! - [`batches`]: batch counts and callbacks fired exactly once;
//! - [`claim`]: which jobs a claim takes, in which order, under which lease;
//! - [`finish`]: what each way an attempt ends does to its job;
//! - [`leases`]: heartbeats, cancel requests, progress, reaping expired leases;
//! - [`prefetch`]: jobs claimed ahead and not started: only started
//!   attempts count when they are rescued or released;
//! - [`control`]: pausing queues, cancelling and retrying jobs;
//! - [`limits`]: global concurrency and rate limits, enforced by the claim;
//! - [`rate_keys`]: rate limits per key: independent windows, no key
//!   blocking another, keys given at enqueue, the "no key" bucket;
//! - [`list`]: reading jobs and queues;
//! - [`count`]: counting jobs by filter, up to a cap, within a snapshot;
//! - [`operate`]: delete and run now by id; list filters by created range,
//!   inside args, and the snapshot bound of bulk actions;
//! - [`logs`]: the recorded output of attempts;
//! - [`retention`]: deleting finished jobs;
//! - [`workers`]: the worker registry and the kinds waiting for one;
//! - [`notify`]: the wake-ups of `subscribe()`;
//! - [`events`]: the event log: one event per change, only for committed
//!   changes, ids increasing as readers see them, replay, gaps;
//! - [`schedules`]: schedules and the exactly-once fire;
//! - [`tokens`]: API tokens and per-database secrets.

pub mod batches;
pub mod claim;
pub mod control;
pub mod count;
pub mod enqueue;
pub mod events;
pub mod finish;
pub mod leases;
pub mod limits;
pub mod list;
pub mod logs;
pub mod notify;
pub mod operate;
pub mod prefetch;
pub mod rate_keys;
pub mod retention;
pub mod schedules;
pub mod tokens;
pub mod workers;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::{
    Claim, ClaimedJob, Clock, Finish, FinishOutcome, FinishResult, JobFilter, JobId, JobRecord,
    JobState, LeaseRef, ManualClock, NewJob, Store,
};

/// Makes the stores the suite runs against.
#[async_trait]
pub trait Harness: Send + Sync {
    /// A fresh, empty store that reads "now" from `clock`.
    async fn store(&self, clock: Arc<dyn Clock>) -> Arc<dyn Store>;
}

/// Where every case's clock starts: 2030-01-01T00:00:00Z.
pub const T0: &str = "2030-01-01T00:00:00Z";

/// The lease every case claims with.
pub const LEASE: Duration = Duration::from_secs(30);

/// Runs one case on a fresh single-threaded runtime (used by the macro).
pub fn run<F: std::future::Future<Output = ()>>(f: F) {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
        .block_on(f)
}

/// One case's store and the clock it reads.
pub struct Ctx {
    /// The clock; move it with `advance`.
    pub clock: ManualClock,
    /// The store under test.
    pub store: Arc<dyn Store>,
}

impl Ctx {
    /// A fresh store from `h`, with a manual clock at [`T0`].
    pub async fn new(h: &dyn Harness) -> Ctx {
        let clock = ManualClock::new(T0.parse().expect("T0 parses"));
        let store = h.store(Arc::new(clock.clone())).await;
        Ctx { clock, store }
    }

    /// Now, as the store sees it.
    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// Moves time forward by `secs` seconds.
    pub fn advance(&self, secs: u64) {
        self.clock.advance(Duration::from_secs(secs));
    }

    /// Enqueues one job; returns its id (asserting it was inserted).
    pub async fn add(&self, job: NewJob) -> JobId {
        let out = self.store.enqueue(vec![job]).await.expect("enqueue");
        assert_eq!(out.len(), 1, "one reply per job");
        assert!(
            !out[0].duplicate,
            "a job without a clash is not a duplicate"
        );
        out[0].id
    }

    /// The job, which must exist.
    pub async fn job(&self, id: JobId) -> JobRecord {
        self.store
            .get(id)
            .await
            .expect("get")
            .unwrap_or_else(|| panic!("job {id} should exist"))
    }

    /// The job's state.
    pub async fn state(&self, id: JobId) -> JobState {
        self.job(id).await.state
    }

    /// Claims up to `limit` from `queues` as worker `w1`.
    pub async fn claim(&self, queues: &[&str], limit: usize) -> Vec<ClaimedJob> {
        self.store
            .claim(claim_of("w1", queues, limit))
            .await
            .expect("claim")
    }

    /// Claims exactly one job from `queue`.
    pub async fn claim_one(&self, queue: &str) -> ClaimedJob {
        let mut got = self.claim(&[queue], 1).await;
        assert_eq!(got.len(), 1, "expected one claimable job in {queue:?}");
        got.remove(0)
    }

    /// Ids claimable now from `queue` (claims them).
    pub async fn claim_ids(&self, queues: &[&str], limit: usize) -> Vec<JobId> {
        self.claim(queues, limit)
            .await
            .iter()
            .map(|j| j.id)
            .collect()
    }

    /// Finishes one attempt as worker `w1`.
    pub async fn finish(&self, lease: LeaseRef, outcome: FinishOutcome) -> FinishResult {
        let out = self
            .store
            .finish(vec![Finish {
                lease,
                worker: "w1".into(),
                outcome,
            }])
            .await
            .expect("finish");
        assert_eq!(out.len(), 1, "one result per finish");
        out[0]
    }

    /// Every job in the store (up to 10 000), newest first.
    pub async fn all(&self) -> Vec<JobRecord> {
        self.store
            .list(&JobFilter {
                limit: 10_000,
                ..JobFilter::default()
            })
            .await
            .expect("list")
            .jobs
    }
}

/// A claim request with the suite's lease, for every kind.
pub fn claim_of(worker: &str, queues: &[&str], limit: usize) -> Claim {
    Claim {
        worker: worker.into(),
        queues: queues.iter().map(|q| q.to_string()).collect(),
        kinds: None,
        limit,
        lease: LEASE,
        unstarted: false,
    }
}

/// A claim request like [`claim_of`] that claims the jobs ahead, for a
/// prefetch: not started until [`Store::mark_started`].
pub fn claim_ahead(worker: &str, queues: &[&str], limit: usize) -> Claim {
    Claim {
        unstarted: true,
        ..claim_of(worker, queues, limit)
    }
}

/// A claim request with the suite's lease, for the kinds `kinds` only.
pub fn claim_kinds(worker: &str, queues: &[&str], kinds: &[&str], limit: usize) -> Claim {
    Claim {
        kinds: Some(kinds.iter().map(|k| k.to_string()).collect()),
        ..claim_of(worker, queues, limit)
    }
}

/// A job of kind `k` in queue `default` with args `{}`.
pub fn job(kind: &str) -> NewJob {
    NewJob::new(kind, serde_json::json!({}))
}

fn secs(n: u64) -> chrono::Duration {
    chrono::Duration::seconds(n as i64)
}

pub(crate) fn completed() -> FinishOutcome {
    FinishOutcome::Completed { result: None }
}

fn errored(retry_at: DateTime<Utc>) -> FinishOutcome {
    FinishOutcome::Errored {
        message: "boom".into(),
        retry_at,
        permanent: false,
    }
}

/// Makes one `#[test]` per conformance case (every topic, schedules
/// included), each with a fresh harness from `$harness` (an expression that
/// builds a [`Harness`](crate::conformance::Harness)). A backend's
/// `tests/conformance.rs` calls it once.
#[macro_export]
macro_rules! conformance_tests {
    ($harness:expr) => {
        $crate::conformance_tests!(@cases $harness;
            enqueue: enqueue_and_get, enqueue_bulk, enqueue_invalid_writes_nothing,
                enqueue_future_is_scheduled, unique_while_unfinished, unique_within_window;
            claim: claim_order_and_limit, claim_only_listed_queues,
                concurrent_claims_are_disjoint, claim_only_listed_kinds,
                claim_counts_attempt_and_sets_lease, claim_job_takes_exactly_that_job;
            finish: finish_completed, finish_errored_retries, finish_errored_fails,
                finish_snoozed, finish_cancelled, finish_released, finish_stale;
            leases: heartbeat_extends_and_reports, cancel_requests_lists_requested,
                set_progress_records, reap_expired_leases, reap_expired_respects_limit;
            prefetch: prefetched_rescue_charges_no_attempt, prefetched_release_is_silent,
                mark_started_reports_lost_leases;
            control: paused_queue_is_skipped, cancel_each_state, cancel_running_then_finish,
                retry_each_state, retry_failed_by_queue_and_kind,
                retry_refuses_while_another_job_holds_the_key,
                retry_failed_keeps_one_unfinished_job_per_key;
            limits: limits_set_clear_and_list, global_concurrency_caps_claims,
                global_concurrency_holds_for_concurrent_claims,
                global_concurrency_rescue_frees_slot,
                global_concurrency_paused_queue_holds_slots, rate_limit_window_slides,
                rate_and_concurrency_together;
            rate_keys: rate_key_windows_are_independent,
                rate_key_exhausted_key_does_not_block_others, rate_key_given_at_enqueue_wins,
                rate_key_missing_shares_one_bucket, rate_key_next_start;
            list: get_unknown_is_none, list_filters, list_pages, queue_stats_counts,
                queue_stats_oldest_runnable, next_scheduled_earliest;
            retention: delete_finished_retention, retention_keeps_job_inside_unique_window;
            workers: workers_register_expire_and_leave, waiting_kinds_counts_runnable_jobs;
            notify: subscribe_sees_enqueue;
            events: events_one_per_transition_with_fields, events_of_control_and_leases,
                events_of_schedules, events_only_for_committed_changes,
                events_replay_after_since, events_gap_after_pruning,
                events_ids_increase_for_concurrent_writers, events_of_buffered_fire,
                events_read_committed_up_to_now;
            logs: logs_replace_per_attempt, logs_ordered_by_attempt,
                logs_empty_for_job_without_output, logs_of_unknown_job_refused,
                logs_kept_with_the_job, logs_text_and_counts_round_trip,
                logs_record_nul_as_replacement_character;
            schedules: schedule_upsert_get_list_delete, schedule_upsert_invalid_writes_nothing,
                schedule_upsert_keeps_next_fire, schedule_fire_compare_and_set,
                schedule_concurrent_fires_one_wins, schedule_enable_disable,
                schedule_misfire_skip_advances_only, schedule_overlap_skip,
                schedule_overlap_allow, schedule_overlap_buffer_one, schedule_trigger,
                schedule_last_job_state_follows_job, schedule_fire_found_by_fire_key,
                schedule_fire_wakes_workers,
                schedule_config_sync_removes_undeclared_and_keeps_operator_disable;
            tokens: tokens_create_find_list_revoke, tokens_names_are_unique,
                tokens_first_token_only_once, secrets_are_written_once;
            batches: batch_on_complete_once_with_counts, batch_on_success_when_all_succeed,
                batch_fires_only_after_seal, batch_add_refused_when_sealed_or_unknown,
                batch_counts_cancel_rescue_delete_and_retry,
                batch_concurrent_last_finishes_fire_once, batch_retry_failed_uncounts;
            operate: delete_each_state, run_now_makes_scheduled_available,
                list_filters_created_range_and_args, list_args_search_window,
                list_snapshot_bound_excludes_later_changes;
            count: count_jobs_filters, count_jobs_snapshot_bound, count_jobs_cap_and_more,
                count_jobs_refuses_args_search;
        );
    };
    (@cases $harness:expr; $($topic:ident: $($case:ident),+;)+) => {
        $($(
            #[test]
            fn $case() {
                $crate::conformance::run(async {
                    let harness = $harness;
                    $crate::conformance::$topic::$case(&harness).await;
                });
            }
        )+)+
    };
}
