/** Types of the kyu HTTP API's requests and answers (see kyu's docs/openapi.json). */

/** A duration: milliseconds as a number, or text such as `"500ms"`, `"30s"`, `"5m"`, `"2h"`, `"7d"`. */
export type Duration = number | string;

/** A job's state. */
export type JobState = "scheduled" | "available" | "running" | "completed" | "failed" | "cancelled";

/** A retry policy: doubling from `initial` up to `cap`, or the same delay every time. */
export type RetryPolicy =
  | { type: "exponential"; initial: Duration; cap: Duration }
  | { type: "fixed"; delay: Duration };

/** Options of one enqueue; every one is optional (defaults as kyu's). */
export interface EnqueueOptions {
  /** The queue; default `default`. */
  queue?: string;
  /** Lower runs first; default 0. */
  priority?: number;
  /** Earliest time to run. Not with `delay`. */
  runAt?: Date | string;
  /** Run after this long. Not with `runAt`. */
  delay?: Duration;
  /** Attempts before the job fails for good; default 5. */
  maxAttempts?: number;
  /** Delay before each retry; default exponential 1 s .. 16 s. */
  retry?: RetryPolicy;
  /** Time limit of one attempt. */
  timeout?: Duration;
  /** A second enqueue with this key returns the first job while it is unfinished. */
  uniqueKey?: string;
  /** With `uniqueKey`: the key holds this long whatever the job's state. */
  uniqueFor?: Duration;
  /** Labels to filter by. */
  tags?: string[];
}

/** One job of {@link Kyu.enqueueMany}. */
export interface NewJob extends EnqueueOptions {
  /** Which handler runs the job. */
  kind: string;
  /** The job's arguments (any JSON; default `{}`). */
  args?: unknown;
}

/** What an enqueue did. */
export interface Enqueued {
  /** The job's id (the first job's, for a duplicate). */
  id: number;
  /** True when a unique or idempotency key matched an existing job and nothing was inserted. */
  duplicate: boolean;
}

/** A job's last progress report. */
export interface Progress {
  /** 0 to 100. */
  percent: number;
  /** A short note. */
  message: string;
}

/** One failed attempt. */
export interface AttemptError {
  attempt: number;
  at: string;
  message: string;
  worker: string;
}

/** A job as the API shows it. */
export interface Job<Args = unknown, Result = unknown> {
  id: number;
  queue: string;
  kind: string;
  state: JobState;
  /** Null when redacted (the token lacks `read_args`). */
  args: Args | null;
  /** The result of a completed job; null when redacted or absent. */
  result: Result | null;
  redacted: boolean;
  priority: number;
  /** Attempts made so far. */
  attempt: number;
  max_attempts: number;
  unique_key: string | null;
  tags: string[];
  created_at: string;
  run_at: string;
  attempted_at: string | null;
  finished_at: string | null;
  worker: string | null;
  cancel_requested: boolean;
  progress: Progress | null;
  /** The error of every failed attempt, oldest first. */
  errors: AttemptError[];
}

/** Which jobs {@link Kyu.listJobs} returns. */
export interface JobFilter {
  state?: JobState;
  queue?: string;
  kind?: string;
  tag?: string;
  /** The `next` of the previous page. */
  cursor?: string;
  /** Page size, 1 to 1000 (default 100). */
  limit?: number;
}

/** One page of jobs, newest first. */
export interface JobPage {
  jobs: Job[];
  /** Pass as `cursor` for the next page; null on the last page. */
  next: string | null;
}

/** The recorded output of one attempt of a command job. */
export interface AttemptLogs {
  attempt: number;
  stdout: string;
  stderr: string;
  stdout_bytes: number;
  stderr_bytes: number;
}

/** Per job id: `cancelled`, `requested`, `retried`, `already_finished`, `not_retryable`, `key_held` or `not_found`. */
export type ActionResults = Record<string, string>;

/** A queue, its paused flag and its job counts by state. */
export interface QueueInfo {
  queue: string;
  paused: boolean;
  counts: Partial<Record<JobState, number>>;
}

/** A schedule as the API shows it. */
export interface Schedule {
  name: string;
  cron: string;
  zone: string;
  queue: string;
  kind: string;
  enabled: boolean;
  next_fire_at: string | null;
  last_fire_at: string | null;
  last_job_id: number | null;
}

/** A schedule to create or replace with {@link Kyu.putSchedule}: when it fires and the job it enqueues. */
export interface ScheduleSpec extends Omit<EnqueueOptions, "runAt" | "delay" | "uniqueKey" | "uniqueFor"> {
  /** Cron expression: 5 fields, or 6 with seconds first. */
  cron: string;
  /** IANA time zone of the fire times; default UTC. */
  zone?: string;
  /** The kind of its jobs. */
  kind: string;
  /** Its jobs' args. */
  args?: unknown;
  /** A fire time while the previous job is unfinished: `allow`, `skip` (default), `buffer_one`. */
  overlap?: "allow" | "skip" | "buffer_one";
  /** Fire times missed while no scheduler ran: `skip` (default) or `run_once`. */
  misfire?: "skip" | "run_once";
  /** Whether it fires; default true. */
  enabled?: boolean;
}

/** True for the states a job never leaves. */
export function isFinished(state: JobState): boolean {
  return state === "completed" || state === "failed" || state === "cancelled";
}

/** A batch's state: `open` (jobs can be added), `sealed`, or `done` (sealed, every job finished, callbacks enqueued). */
export type BatchState = "open" | "sealed" | "done";

/** A batch's counts and state, as `GET /v1/batches/{id}` shows it. */
export interface Batch {
  id: number;
  state: BatchState;
  /** Jobs in the batch. */
  total: number;
  /** Waiting to run (scheduled or available). */
  pending: number;
  running: number;
  /** Completed. */
  succeeded: number;
  /** Failed for good. */
  failed: number;
  /** Cancelled (or deleted before they finished). */
  cancelled: number;
  created_at: string;
  done_at: string | null;
  /** The on_complete callback's kind. */
  on_complete: string | null;
  /** The on_success callback's kind. */
  on_success: string | null;
  /** The callback jobs enqueued when it was done. */
  callback_jobs: number[];
}

/** What creating a batch or adding jobs to it did: the batch now, one answer per job in order. */
export interface BatchJobs {
  batch: Batch;
  jobs: Enqueued[];
}

/**
 * A batch to create. The callbacks are jobs enqueued once when the sealed
 * batch is done: `onComplete` whatever the outcome, `onSuccess` only if every
 * job succeeded. A callback's args must be an object (or left out): kyu adds
 * `batch: { id, total, succeeded, failed, cancelled }` to them.
 */
export interface NewBatch {
  /** The first jobs (may be empty: add them later with `addToBatch`). */
  jobs?: NewJob[];
  onComplete?: NewJob;
  onSuccess?: NewJob;
  /** Seal it after these jobs: none can be added after. Default false. */
  seal?: boolean;
}

/** The `batch` kyu adds to a callback's args. */
export interface BatchSummary {
  id: number;
  total: number;
  succeeded: number;
  failed: number;
  cancelled: number;
}
