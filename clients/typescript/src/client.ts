/** The producer and operator client: one class, one method per API route. */

import { ConnectionError, WaitTimeoutError, errorFor, type ApiErrorBody } from "./errors.js";
import type {
  ActionResults,
  AttemptLogs,
  Batch,
  BatchJobs,
  Duration,
  EnqueueOptions,
  Enqueued,
  Job,
  JobFilter,
  JobPage,
  NewBatch,
  NewJob,
  QueueInfo,
  RetryPolicy,
  Schedule,
  ScheduleSpec,
} from "./types.js";
import { isFinished } from "./types.js";
import { streamEvents, type EventsOptions, type KyuEvent } from "./events.js";
import { send, type Reply } from "./transport.js";

/** How to reach kyu. */
export interface ClientOptions {
  /** The API's base address; default `KYU_URL`, else `http://127.0.0.1:7070`. */
  url?: string;
  /** A token from `kyu tokens create`; default `KYU_TOKEN`. */
  token?: string;
  /**
   * The fetch to use for every request (tests, proxies). Default: JSON calls
   * over `node:http` with keep-alive (module `transport`), the event stream
   * over the global `fetch`.
   */
  fetch?: typeof fetch;
}

/** Options of one request. */
export interface RequestOptions {
  /** Aborts the request. */
  signal?: AbortSignal;
}

/** The longest single long poll the server accepts (`?wait=`). */
const MAX_POLL_MS = 30_000;

/** Duration text for the API: a number is milliseconds. */
export function durationText(d: Duration): string {
  if (typeof d === "number") {
    if (!Number.isFinite(d) || d < 0) {
      throw new RangeError(`duration: ${d} is not accepted; accepted: milliseconds >= 0 or text such as "30s"`);
    }
    return `${Math.round(d)}ms`;
  }
  return d;
}

function retryBody(r: RetryPolicy): Record<string, string> {
  return r.type === "fixed"
    ? { type: "fixed", delay: durationText(r.delay) }
    : { type: "exponential", initial: durationText(r.initial), cap: durationText(r.cap) };
}

/** The API's enqueue body of one job. */
export function jobBody(job: NewJob): Record<string, unknown> {
  const body: Record<string, unknown> = { kind: job.kind };
  if (job.args !== undefined) body.args = job.args;
  if (job.queue !== undefined) body.queue = job.queue;
  if (job.priority !== undefined) body.priority = job.priority;
  if (job.runAt !== undefined) body.run_at = job.runAt instanceof Date ? job.runAt.toISOString() : job.runAt;
  if (job.delay !== undefined) body.delay = durationText(job.delay);
  if (job.maxAttempts !== undefined) body.max_attempts = job.maxAttempts;
  if (job.retry !== undefined) body.retry = retryBody(job.retry);
  if (job.timeout !== undefined) body.timeout = durationText(job.timeout);
  if (job.uniqueKey !== undefined) body.unique_key = job.uniqueKey;
  if (job.uniqueFor !== undefined) body.unique_for = durationText(job.uniqueFor);
  if (job.tags !== undefined) body.tags = job.tags;
  return body;
}

/**
 * A client of kyu's HTTP API (`kyu serve`).
 *
 * ```ts
 * const kyu = new Kyu({ url: "http://127.0.0.1:7070", token: process.env.KYU_TOKEN });
 * const { id } = await kyu.enqueue("send_email", { to: "ada@example.com" }, { queue: "mail" });
 * const job = await kyu.wait(id, { timeout: "1m" });
 * ```
 */
export class Kyu {
  /** The API's base address, without a trailing slash. */
  readonly url: string;
  readonly #token: string | undefined;
  /** The fetch given in the options, if one was. */
  readonly #fetch: typeof fetch | undefined;

  constructor(options: ClientOptions = {}) {
    this.url = (options.url ?? process.env.KYU_URL ?? "http://127.0.0.1:7070").replace(/\/+$/, "");
    this.#token = options.token ?? process.env.KYU_TOKEN;
    this.#fetch = options.fetch;
  }

  /**
   * One request to the API: JSON in, JSON out; an error answer throws the
   * {@link KyuError} subclass of its status. Public for routes this class
   * does not wrap.
   */
  async request<T>(
    method: string,
    path: string,
    init: { body?: unknown; query?: Record<string, string | number | undefined>; headers?: Record<string, string>; signal?: AbortSignal } = {},
  ): Promise<T> {
    let url = this.url + path;
    if (init.query) {
      const q = new URLSearchParams();
      for (const [k, v] of Object.entries(init.query)) if (v !== undefined) q.set(k, String(v));
      const s = q.toString();
      if (s) url += "?" + s;
    }
    const headers: Record<string, string> = { accept: "application/json", ...init.headers };
    if (this.#token) headers.authorization = `Bearer ${this.#token}`;
    let body: string | undefined;
    if (init.body !== undefined) {
      headers["content-type"] = "application/json";
      body = JSON.stringify(init.body);
    }
    const res = await this.#send(method, url, path, headers, body, init.signal);
    const text = await res.text();
    return (text ? JSON.parse(text) : undefined) as T;
  }

  /**
   * Sends a request; an error answer (or none) throws the matching
   * {@link KyuError}. `stream`: the caller reads the body as a stream (the
   * event stream), so it goes through `fetch`.
   */
  async #send(
    method: string,
    url: string,
    path: string,
    headers: Record<string, string>,
    body: string | undefined,
    signal?: AbortSignal,
    stream = false,
  ): Promise<Reply & { body?: ReadableStream<Uint8Array> | null }> {
    let res: Reply & { body?: ReadableStream<Uint8Array> | null };
    try {
      res =
        this.#fetch || stream
          ? await (this.#fetch ?? globalThis.fetch)(url, { method, headers, body, signal })
          : await send(method, url, headers, body, signal);
    } catch (e) {
      if (signal?.aborted) throw e;
      throw new ConnectionError(0, { code: "connection", message: `${method} ${url}: no answer (${(e as Error).message})` }, { cause: e });
    }
    if (!res.ok) {
      const text = await res.text().catch(() => "");
      let err: ApiErrorBody = { code: `http_${res.status}`, message: `${method} ${path}: HTTP ${res.status}: ${text.slice(0, 200)}` };
      try {
        const parsed = JSON.parse(text) as { error?: ApiErrorBody };
        if (parsed.error && typeof parsed.error.code === "string") err = parsed.error;
      } catch {
        // not JSON: keep the status line
      }
      throw errorFor(res.status, err);
    }
    return res;
  }

  /**
   * The event log as an async iterator over `GET /v1/events` (Server-Sent
   * Events). A dropped connection is reopened with `Last-Event-ID`, so no
   * event is lost or repeated; `gap` events say retention pruned some first.
   * Stop with `options.signal` or by leaving the `for await` loop.
   *
   * ```ts
   * for await (const e of kyu.events({ since: 0, types: ["failed"] })) console.log(e.job_id, e.type);
   * ```
   */
  events(options: EventsOptions = {}): AsyncGenerator<KyuEvent> {
    return streamEvents((path, headers, signal) => {
      const h: Record<string, string> = { ...headers };
      if (this.#token) h.authorization = `Bearer ${this.#token}`;
      return this.#send("GET", this.url + path, path, h, undefined, signal, true) as Promise<Response>;
    }, options);
  }

  /**
   * Enqueues one job. With `idempotencyKey`, a repeat of the same request
   * (within 24 h) returns the first job with `duplicate: true`.
   */
  async enqueue(
    kind: string,
    args?: unknown,
    options: EnqueueOptions & { idempotencyKey?: string } & RequestOptions = {},
  ): Promise<Enqueued> {
    const { idempotencyKey, signal, ...rest } = options;
    const headers: Record<string, string> = {};
    if (idempotencyKey !== undefined) headers["idempotency-key"] = idempotencyKey;
    return this.request<Enqueued>("POST", "/v1/jobs", { body: jobBody({ ...rest, kind, args }), headers, signal });
  }

  /** Enqueues jobs in one transaction, all or none; one answer per job, in order. */
  async enqueueMany(jobs: NewJob[], options: RequestOptions = {}): Promise<Enqueued[]> {
    const reply = await this.request<{ jobs: Enqueued[] }>("POST", "/v1/jobs/batch", {
      body: { jobs: jobs.map(jobBody) },
      signal: options.signal,
    });
    return reply.jobs;
  }

  /**
   * Creates a batch (scope produce; a token limited to queues is refused, as a
   * batch may span queues) with its callbacks and first jobs, in one
   * transaction; with `seal`, sealed after them.
   *
   * ```ts
   * const { batch } = await kyu.createBatch({
   *   jobs: users.map((u) => ({ kind: "sync_user", args: { user: u } })),
   *   onComplete: { kind: "sync_report", args: {} },   // gets args.batch = { id, total, succeeded, failed, cancelled }
   *   seal: true,
   * });
   * ```
   */
  async createBatch(batch: NewBatch = {}, options: RequestOptions = {}): Promise<BatchJobs> {
    const body: Record<string, unknown> = { jobs: (batch.jobs ?? []).map(jobBody) };
    if (batch.onComplete !== undefined) body.on_complete = jobBody(batch.onComplete);
    if (batch.onSuccess !== undefined) body.on_success = jobBody(batch.onSuccess);
    if (batch.seal !== undefined) body.seal = batch.seal;
    return this.request("POST", "/v1/batches", { body, signal: options.signal });
  }

  /** Adds jobs to an open batch (one transaction); with `seal`, seals it after them. An error if it is sealed. */
  async addToBatch(id: number, jobs: NewJob[], options: { seal?: boolean } & RequestOptions = {}): Promise<BatchJobs> {
    const body: Record<string, unknown> = { jobs: jobs.map(jobBody) };
    if (options.seal !== undefined) body.seal = options.seal;
    return this.request("POST", `/v1/batches/${id}/jobs`, { body, signal: options.signal });
  }

  /** Seals a batch: no job can be added after; if every job has finished, its callbacks are enqueued now. Sealing twice changes nothing. */
  async sealBatch(id: number, options: RequestOptions = {}): Promise<Batch> {
    return this.request("POST", `/v1/batches/${id}/seal`, { signal: options.signal });
  }

  /** A batch's state and counts: total, pending, running, succeeded, failed, cancelled. */
  async getBatch(id: number, options: RequestOptions = {}): Promise<Batch> {
    return this.request("GET", `/v1/batches/${id}`, { signal: options.signal });
  }

  /**
   * Records a running job's progress (`POST /v1/jobs/{id}/progress`): with the
   * job token kyu gives a command job (`KYU_JOB_TOKEN`, for its own job while
   * its attempt runs), or a token with the `work` scope. A `ConflictError`
   * (`not_running`) if the job is not running. Handlers of a {@link Worker}
   * use their context's `progress` instead.
   */
  async reportProgress(id: number, percent: number, message = "", options: RequestOptions = {}): Promise<void> {
    await this.request("POST", `/v1/jobs/${id}/progress`, { body: { percent, message }, signal: options.signal });
  }

  /** One job: state, attempts with their errors, progress, result. */
  async getJob<Args = unknown, Result = unknown>(id: number, options: RequestOptions = {}): Promise<Job<Args, Result>> {
    return this.request("GET", `/v1/jobs/${id}`, { signal: options.signal });
  }

  /**
   * Waits until the job is completed, failed or cancelled and returns it (by
   * long polls of at most 30 s each). With `timeout`, throws
   * {@link WaitTimeoutError} when it is not finished by then.
   */
  async wait<Args = unknown, Result = unknown>(
    id: number,
    options: { timeout?: Duration } & RequestOptions = {},
  ): Promise<Job<Args, Result>> {
    const limitMs = options.timeout === undefined ? undefined : parseDurationMs(options.timeout);
    const deadline = limitMs === undefined ? undefined : Date.now() + limitMs;
    for (;;) {
      const left = deadline === undefined ? MAX_POLL_MS : Math.max(0, deadline - Date.now());
      const job = await this.request<Job<Args, Result>>("GET", `/v1/jobs/${id}`, {
        query: { wait: `${Math.min(left, MAX_POLL_MS)}ms` },
        signal: options.signal,
      });
      if (isFinished(job.state)) return job;
      if (deadline !== undefined && Date.now() >= deadline) {
        throw new WaitTimeoutError(0, {
          code: "wait_timeout",
          message: `job ${id} is still ${job.state} after ${limitMs} ms`,
        });
      }
    }
  }

  /** Cancels jobs: a waiting job is cancelled, a running one asked to stop (its handler's signal fires). */
  async cancel(ids: number | number[], options: RequestOptions = {}): Promise<ActionResults> {
    const reply = await this.request<{ results: ActionResults }>("POST", "/v1/jobs/cancel", {
      body: { ids: Array.isArray(ids) ? ids : [ids] },
      signal: options.signal,
    });
    return reply.results;
  }

  /** Retries failed or cancelled jobs. */
  async retry(ids: number | number[], options: RequestOptions = {}): Promise<ActionResults> {
    const reply = await this.request<{ results: ActionResults }>("POST", "/v1/jobs/retry", {
      body: { ids: Array.isArray(ids) ? ids : [ids] },
      signal: options.signal,
    });
    return reply.results;
  }

  /** One page of jobs, newest first; pass `next` as `cursor` for the next page. */
  async listJobs(filter: JobFilter = {}, options: RequestOptions = {}): Promise<JobPage> {
    return this.request("GET", "/v1/jobs", { query: { ...filter }, signal: options.signal });
  }

  /** Every job matching `filter`, newest first, page after page. */
  async *jobs(filter: Omit<JobFilter, "cursor"> = {}): AsyncGenerator<Job> {
    let cursor: string | undefined;
    do {
      const page = await this.listJobs({ ...filter, cursor });
      yield* page.jobs;
      cursor = page.next ?? undefined;
    } while (cursor !== undefined);
  }

  /** A command job's recorded output, one entry per attempt (needs `read_args`). */
  async logs(id: number, options: RequestOptions = {}): Promise<AttemptLogs[]> {
    return this.request("GET", `/v1/jobs/${id}/logs`, { signal: options.signal });
  }

  /** Every queue the token may see, with job counts by state. */
  async queues(options: RequestOptions = {}): Promise<QueueInfo[]> {
    return this.request("GET", "/v1/queues", { signal: options.signal });
  }

  /** Pauses a queue: workers skip it until resumed. */
  async pauseQueue(name: string): Promise<void> {
    await this.request("POST", `/v1/queues/${encodeURIComponent(name)}/pause`);
  }

  /** Resumes a paused queue. */
  async resumeQueue(name: string): Promise<void> {
    await this.request("POST", `/v1/queues/${encodeURIComponent(name)}/resume`);
  }

  /** Every schedule the token may see, by name. */
  async schedules(options: RequestOptions = {}): Promise<Schedule[]> {
    return this.request("GET", "/v1/schedules", { signal: options.signal });
  }

  /**
   * Creates or replaces the schedule `name` (`PUT /v1/schedules/{name}`, scope
   * operate): its next fire time is kept when cron and zone are unchanged.
   */
  async putSchedule(name: string, spec: ScheduleSpec): Promise<Schedule> {
    const { cron, zone, overlap, misfire, enabled, ...job } = spec;
    const body: Record<string, unknown> = { cron, job: jobBody(job) };
    if (zone !== undefined) body.zone = zone;
    if (overlap !== undefined) body.overlap = overlap;
    if (misfire !== undefined) body.misfire = misfire;
    if (enabled !== undefined) body.enabled = enabled;
    return this.request("PUT", `/v1/schedules/${encodeURIComponent(name)}`, { body });
  }

  /** Deletes a schedule (its jobs stay). */
  async deleteSchedule(name: string): Promise<void> {
    await this.request("DELETE", `/v1/schedules/${encodeURIComponent(name)}`);
  }

  /** Enables a schedule: its next fire time is the first after now. */
  async enableSchedule(name: string): Promise<void> {
    await this.request("POST", `/v1/schedules/${encodeURIComponent(name)}/enable`);
  }

  /** Disables a schedule. */
  async disableSchedule(name: string): Promise<void> {
    await this.request("POST", `/v1/schedules/${encodeURIComponent(name)}/disable`);
  }

  /** Fires a schedule now; returns what the server answered. */
  async triggerSchedule(name: string): Promise<unknown> {
    return this.request("POST", `/v1/schedules/${encodeURIComponent(name)}/trigger`);
  }
}

/** Milliseconds of a {@link Duration} (text as kyu writes it: `500ms`, `30s`, `5m`, `2h`, `7d`, combined like `1m30s`). */
export function parseDurationMs(d: Duration): number {
  if (typeof d === "number") return d;
  const units: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };
  const re = /(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)/gy;
  let total = 0;
  let matched = 0;
  const text = d.trim();
  for (let m = re.exec(text); m; m = re.exec(text)) {
    total += Number(m[1]) * units[m[2]!]!;
    matched = re.lastIndex;
    while (text[re.lastIndex] === " ") re.lastIndex++;
    matched = re.lastIndex;
  }
  if (matched !== text.length || text.length === 0) {
    throw new RangeError(`duration: ${JSON.stringify(d)} is not a duration; accepted: e.g. 500ms, 30s, 5m, 2h, 7d`);
  }
  return total;
}

