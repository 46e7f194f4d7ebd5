/**
 * Seed 004's JobScheduler, kept interface for interface, on kyu instead of
 * BullMQ and Redis: a job of a plugin is the kyu kind
 * `plugin.PLUGIN.JOB` in the queue `plugins`; `registerJob` registers the
 * handler on a kyu Worker (HTTP) and, with `cron`, declares a kyu schedule of
 * the same name (`PUT /v1/schedules/{name}`); every run is recorded in a
 * `plugin_runs`-shaped log per tenant.
 */

import { Kyu, Worker, NotFoundError, type JobContext, type RetryPolicy } from "kyu-client";
import { appendFileSync, mkdirSync } from "node:fs";
import { join } from "node:path";

/** The plugin context a handler gets (the seed's PluginContext, the parts the example uses). */
export interface PluginContext {
  pluginId: string;
  tenantId: string;
  logger: { info(msg: string, meta?: object): void; error(msg: string, err?: unknown, meta?: object): void };
  /** Fired on cancel, timeout and shutdown. */
  signal: AbortSignal;
  progress(percent: number, message?: string): Promise<void>;
}

/** The job a handler gets (as BullMQ's, the fields the seed reads). */
export interface Job {
  id: string;
  name: string;
  data: unknown;
  attemptsMade: number;
}

export type JobHandler = (ctx: PluginContext, job: Job) => Promise<void>;

/** Seed 004's JobOptions. */
export interface JobOptions {
  /** Cron expression (5 fields, or 6 with seconds first). */
  cron?: string;
  /** Lower number = higher priority. */
  priority?: number;
  /** Max number of attempts. */
  attempts?: number;
  /** Backoff between retries: `delay` ms, doubling (exponential) or the same (fixed). */
  backoff?: { type: "exponential" | "fixed"; delay: number };
  /** Job timeout in ms. */
  timeout?: number;
  /** One-time jobs: run after this many ms. */
  delay?: number;
}

/** Seed 004's JobStatus. */
export interface JobStatus {
  id: string;
  state: "waiting" | "active" | "completed" | "failed" | "delayed";
  attemptsMade: number;
  progress?: number;
  returnvalue?: unknown;
  failedReason?: string;
  finishedOn?: Date;
}

/** One row of the seed's plugin_runs table. */
export interface PluginRun {
  plugin_run_id: string;
  plugin_id: string;
  tenant_id: string;
  hook_name: string; // 'job:sync-data'
  args_hash: null;
  status: "success" | "error";
  result: { jobId: string; jobName: string; attemptsMade: number; timestamp: string; data?: unknown } | null;
  error: string | null;
  executed_at: string;
}

export interface SchedulerOptions {
  url?: string;
  token?: string;
  tenantId: string;
  /** WORKER_CONCURRENCY; default 5. */
  concurrency?: number;
  /** Directory of the plugin_runs log (one JSON-lines file per tenant); default none (kept in memory only). */
  runsDir?: string;
  /** Time zone of cron expressions; default UTC. */
  zone?: string;
}

const QUEUE = "plugins";

function kindOf(pluginId: string, jobName: string): string {
  return `plugin.${pluginId}.${jobName}`;
}

/** The seed's backoff as kyu's retry policy (BullMQ's exponential: delay * 2^(n-1), here capped at 1 h). */
function retryOf(b: JobOptions["backoff"]): RetryPolicy | undefined {
  if (!b) return undefined;
  return b.type === "fixed" ? { type: "fixed", delay: b.delay } : { type: "exponential", initial: b.delay, cap: "1h" };
}

export class JobScheduler {
  readonly kyu: Kyu;
  readonly runs: PluginRun[] = [];
  readonly #opts: SchedulerOptions;
  readonly #handlers = new Map<string, { pluginId: string; jobName: string; handler: JobHandler; options: JobOptions }>();
  #worker: Worker | undefined;
  #runSeq = 0;

  constructor(options: SchedulerOptions) {
    this.#opts = options;
    this.kyu = new Kyu({ url: options.url, token: options.token });
  }

  /** Registers a job of a plugin: its handler, and with `cron` its schedule. */
  async registerJob(pluginId: string, jobName: string, handler: JobHandler, options: JobOptions = {}): Promise<void> {
    const kind = kindOf(pluginId, jobName);
    this.#handlers.set(kind, { pluginId, jobName, handler, options });
    if (options.cron) {
      await this.kyu.putSchedule(kind, {
        cron: options.cron,
        zone: this.#opts.zone ?? "UTC",
        kind,
        queue: QUEUE,
        args: { tenantId: this.#opts.tenantId },
        priority: options.priority,
        maxAttempts: options.attempts,
        retry: retryOf(options.backoff),
        timeout: options.timeout,
      });
    }
    await this.#restartWorker();
  }

  /** Removes a job of a plugin: its schedule (its past jobs stay) and its handler. */
  async removeJob(pluginId: string, jobName: string): Promise<void> {
    const kind = kindOf(pluginId, jobName);
    try {
      await this.kyu.deleteSchedule(kind);
    } catch (e) {
      if (!(e instanceof NotFoundError)) throw e;
    }
    this.#handlers.delete(kind);
    await this.#restartWorker();
  }

  /** Adds a one-time job; the job must be registered first. Returns its id. */
  async addJob(pluginId: string, jobName: string, data?: unknown, options: JobOptions = {}): Promise<string> {
    const kind = kindOf(pluginId, jobName);
    const reg = this.#handlers.get(kind);
    if (!reg) throw new Error(`addJob: ${pluginId}/${jobName} is not registered; call registerJob first`);
    const o = { ...reg.options, ...options };
    const { id } = await this.kyu.enqueue(kind, { tenantId: this.#opts.tenantId, data: data ?? null }, {
      queue: QUEUE,
      priority: o.priority,
      maxAttempts: o.attempts,
      retry: retryOf(o.backoff),
      timeout: o.timeout,
      delay: o.delay,
    });
    return String(id);
  }

  /** The status of a job, in BullMQ's words; null if there is no such job of this plugin. */
  async getJobStatus(pluginId: string, jobName: string, jobId: string): Promise<JobStatus | null> {
    let job;
    try {
      job = await this.kyu.getJob(Number(jobId));
    } catch (e) {
      if (e instanceof NotFoundError) return null;
      throw e;
    }
    if (job.kind !== kindOf(pluginId, jobName)) return null;
    const state = ({ scheduled: "delayed", available: "waiting", running: "active", completed: "completed", failed: "failed", cancelled: "failed" } as const)[job.state];
    const finished = job.state === "completed" || job.state === "failed" || job.state === "cancelled";
    return {
      id: String(job.id),
      state,
      attemptsMade: finished ? job.attempt : Math.max(0, job.attempt - (job.state === "running" ? 1 : 0)),
      progress: job.progress?.percent,
      returnvalue: job.result ?? undefined,
      failedReason: job.state === "cancelled" ? "cancelled" : job.errors.at(-1)?.message,
      finishedOn: job.finished_at ? new Date(job.finished_at) : undefined,
    };
  }

  /** Stops the worker gracefully (running handlers finish within its grace, the rest are released). */
  async close(): Promise<void> {
    const w = this.#worker;
    this.#worker = undefined;
    await w?.close();
  }

  async #restartWorker(): Promise<void> {
    await this.#worker?.close();
    this.#worker = undefined;
    if (this.#handlers.size === 0) return;
    const w = new Worker({
      url: this.#opts.url,
      token: this.#opts.token,
      queues: [QUEUE],
      concurrency: this.#opts.concurrency ?? Number(process.env.WORKER_CONCURRENCY ?? 5),
      name: `plugins-${this.#opts.tenantId}`,
      pollWaitMs: 5000,
    });
    for (const [kind, reg] of this.#handlers) w.register(kind, (ctx) => this.#run(reg, ctx));
    await w.start();
    this.#worker = w;
  }

  async #run(reg: { pluginId: string; jobName: string; handler: JobHandler }, ctx: JobContext): Promise<unknown> {
    const args = (ctx.args ?? {}) as { tenantId?: string; data?: unknown };
    const tenantId = args.tenantId ?? this.#opts.tenantId;
    const job: Job = { id: String(ctx.id), name: reg.jobName, data: args.data, attemptsMade: ctx.attempt - 1 };
    const pctx: PluginContext = {
      pluginId: reg.pluginId,
      tenantId,
      signal: ctx.signal,
      progress: (p, m) => ctx.progress(p, m),
      logger: {
        info: (msg, meta) => console.log(JSON.stringify({ level: "info", plugin: reg.pluginId, msg, ...meta })),
        error: (msg, err, meta) => console.error(JSON.stringify({ level: "error", plugin: reg.pluginId, msg, error: String(err), ...meta })),
      },
    };
    const metadata = { jobId: job.id, jobName: reg.jobName, attemptsMade: ctx.attempt, timestamp: new Date().toISOString(), data: args.data };
    try {
      await reg.handler(pctx, job);
      this.#log({ plugin_id: reg.pluginId, tenant_id: tenantId, hook_name: `job:${reg.jobName}`, status: "success", result: metadata, error: null });
      return metadata;
    } catch (e) {
      this.#log({ plugin_id: reg.pluginId, tenant_id: tenantId, hook_name: `job:${reg.jobName}`, status: "error", result: metadata, error: e instanceof Error ? e.message : String(e) });
      throw e;
    }
  }

  #log(row: Omit<PluginRun, "plugin_run_id" | "args_hash" | "executed_at">): void {
    const run: PluginRun = { plugin_run_id: `${process.pid}-${++this.#runSeq}`, args_hash: null, executed_at: new Date().toISOString(), ...row };
    this.runs.push(run);
    if (this.#opts.runsDir) {
      mkdirSync(this.#opts.runsDir, { recursive: true });
      appendFileSync(join(this.#opts.runsDir, `${row.tenant_id}.jsonl`), JSON.stringify(run) + "\n");
    }
  }
}
