/**
 * A worker over kyu's HTTP worker protocol (`/v1/workers`): registers, claims
 * jobs by long poll in batches, runs a handler per kind with a bounded
 * concurrency, heartbeats every lease in one request, acknowledges finished
 * attempts in batches, and closes gracefully.
 *
 * ```ts
 * const worker = new Worker({ url, token, queues: ["mail"], concurrency: 8 });
 * worker.register("send_email", async ({ args, signal, progress }) => {
 *   await progress(50, "sending");
 *   return { sent: true };                     // the job's result
 * });
 * await worker.start();
 * process.on("SIGTERM", () => worker.close());
 * ```
 */

import { ConflictError, KyuError } from "./errors.js";
import { Kyu, type ClientOptions } from "./client.js";

/** What a handler gets. */
export interface JobContext<Args = any> {
  /** The job id. */
  id: number;
  /** This attempt's number, 1-based. */
  attempt: number;
  /** Attempts allowed. */
  maxAttempts: number;
  queue: string;
  kind: string;
  /** The args, as enqueued. */
  args: Args;
  tags: string[];
  /**
   * Fired when the job is cancelled (reason a {@link CancelledError}), its
   * timeout passes ({@link TimeoutError}), its lease is lost
   * ({@link LeaseLostError}), or the worker closes past its grace.
   */
  signal: AbortSignal;
  /** Reports progress (0..100, a short note); recorded on the job at once. */
  progress(percent: number, message?: string): Promise<void>;
  /** A value to return (or throw) to run the job again after `ms`, no attempt used. */
  snooze(ms: number): Snooze;
}

/** A job handler: returns the job's result (any JSON, or nothing) or throws. */
export type Handler<Args = any> = (ctx: JobContext<Args>) => unknown | Promise<unknown>;

/** Thrown by a handler: the job fails now, without retry. */
export class PermanentError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "PermanentError";
  }
}

/** Thrown by a handler: retry after `retryAfterMs` instead of the job's retry policy (a rate limit said so). */
export class RetryAfterError extends Error {
  constructor(readonly retryAfterMs: number, message: string) {
    super(message);
    this.name = "RetryAfterError";
  }
}

/** Returned (or thrown) by a handler: run the job again after `ms` without using an attempt. */
export class Snooze {
  constructor(readonly ms: number) {}
}

/** A shorthand for `new Snooze(ms)`. */
export function snooze(ms: number): Snooze {
  return new Snooze(ms);
}

/** The signal's reason when an operator cancelled the job. */
export class CancelledError extends Error {
  constructor(id: number) {
    super(`job ${id} was cancelled`);
    this.name = "CancelledError";
  }
}

/** The signal's reason when the attempt ran past the job's timeout. */
export class TimeoutError extends Error {
  constructor(id: number, ms: number) {
    super(`job ${id} timed out after ${ms} ms`);
    this.name = "TimeoutError";
  }
}

/** The signal's reason when the lease was lost (the job runs elsewhere now). */
export class LeaseLostError extends Error {
  constructor(id: number) {
    super(`job ${id}: the lease was lost; the result will not be kept`);
    this.name = "LeaseLostError";
  }
}

/** How a worker runs. */
export interface WorkerOptions extends ClientOptions {
  /** The queues it works (names, each allowed by the token). */
  queues: string[];
  /** Most handlers running at once (default 10); also the most one claim takes. */
  concurrency?: number;
  /** A name shown on the jobs it runs; default `node-PID`. */
  name?: string;
  /** Lease length in ms; default the server's (30 s). */
  leaseMs?: number;
  /** Longest long poll of one claim, ms (default the server's max, 30 s). */
  pollWaitMs?: number;
  /** How long {@link Worker.close} lets running handlers finish, ms (default 10 000). */
  shutdownGraceMs?: number;
  /** Called with errors the worker survives (a failed heartbeat, a lost ack). */
  onError?: (error: unknown) => void;
}

interface Claimed {
  id: number;
  attempt: number;
  max_attempts: number;
  queue: string;
  kind: string;
  args: unknown;
  timeout_ms: number | null;
  lease_token: string;
  tags: string[];
}

interface AckItem {
  job_id: number;
  attempt: number;
  lease_token: string;
  outcome: "complete" | "fail" | "snooze" | "release";
  result?: unknown;
  message?: string;
  permanent?: boolean;
  retry_after_ms?: number;
  delay_ms?: number;
}

interface Running {
  job: Claimed;
  ctl: AbortController;
  timer?: ReturnType<typeof setTimeout>;
  /** Settled when the attempt's end is acknowledged (or given up). */
  done: Promise<void>;
  /** Whether its end is known (queued for acknowledgement, or its lease lost): its slot is free. */
  acked: boolean;
}

type Command = "run" | "quiet" | "stop";

function errorMessage(e: unknown): string {
  if (e instanceof Error) return e.message || e.name;
  return typeof e === "string" ? e : JSON.stringify(e) ?? String(e);
}

/** A worker of kyu over HTTP. */
export class Worker {
  readonly client: Kyu;
  readonly #opts: WorkerOptions;
  readonly #handlers = new Map<string, Handler>();
  readonly #running = new Map<number, Running>();
  #workerId: string | undefined;
  #heartbeatMs = 10_000;
  #maxWaitMs = 30_000;
  #closing = false;
  #claimCtl = new AbortController();
  #loops: Promise<void>[] = [];
  /** Handlers running (their attempts' ends not yet known). */
  #busy = 0;
  /** Wakes the claim loop waiting for a slot. */
  #waiter: (() => void) | undefined;
  #acks: { item: AckItem; resolve: () => void }[] = [];
  #flushing: Promise<void> | undefined;
  #heartbeatTimer: ReturnType<typeof setTimeout> | undefined;
  #closed: Promise<void> | undefined;

  constructor(options: WorkerOptions) {
    if (!options.queues?.length) throw new TypeError("Worker: queues: none given; accepted: one or more queue names");
    this.#opts = { concurrency: 10, shutdownGraceMs: 10_000, ...options };
    this.client = new Kyu(options);
  }

  /** The id the server gave at {@link start}. */
  get id(): string | undefined {
    return this.#workerId;
  }

  /** Runs `handler` for jobs of `kind`. Call before {@link start}. */
  register<Args = any>(kind: string, handler: Handler<Args>): this {
    if (this.#workerId) throw new Error(`register(${kind}): the worker has started; register every kind before start()`);
    this.#handlers.set(kind, handler as Handler);
    return this;
  }

  /** Registers with the server and starts claiming. Resolves once registered. */
  async start(): Promise<void> {
    if (this.#handlers.size === 0) throw new Error("start: no handler registered; call register(kind, handler) first");
    await this.#register();
    this.#scheduleHeartbeat();
    this.#loops.push(this.#claimLoop());
  }

  /** Registers (again, after the server forgot this worker: `unknown_worker`). */
  async #register(): Promise<void> {
    const reply = await this.client.request<{ worker_id: string; heartbeat_interval_ms: number; lease_ms: number; max_wait_ms: number }>(
      "POST",
      "/v1/workers",
      {
        body: {
          name: this.#opts.name ?? `node-${process.pid}`,
          queues: this.#opts.queues,
          kinds: [...this.#handlers.keys()],
          capacity: this.#opts.concurrency,
          ...(this.#opts.leaseMs !== undefined ? { lease_ms: this.#opts.leaseMs } : {}),
        },
      },
    );
    this.#workerId = reply.worker_id;
    this.#heartbeatMs = reply.heartbeat_interval_ms;
    this.#maxWaitMs = Math.min(this.#opts.pollWaitMs ?? reply.max_wait_ms, reply.max_wait_ms);
  }

  /**
   * Stops claiming, lets running handlers finish within the grace (default
   * `shutdownGraceMs`), then aborts the rest (their signal fires) and gives
   * their jobs back, and leaves (the server releases whatever it still holds).
   */
  close(options: { graceMs?: number } = {}): Promise<void> {
    this.#closed ??= this.#close(options.graceMs ?? this.#opts.shutdownGraceMs!);
    return this.#closed;
  }

  async #close(graceMs: number): Promise<void> {
    this.#closing = true;
    this.#claimCtl.abort();
    this.#slotFreed();
    await Promise.allSettled(this.#loops);
    const all = Promise.allSettled([...this.#running.values()].map((r) => r.done));
    let timer: ReturnType<typeof setTimeout> | undefined;
    const graceOver = new Promise<"grace">((r) => (timer = setTimeout(() => r("grace"), graceMs)));
    const first = await Promise.race([all.then(() => "done" as const), graceOver]);
    clearTimeout(timer);
    if (first === "grace") {
      for (const r of this.#running.values()) {
        if (!r.acked) {
          r.ctl.abort(new Error("the worker is closing"));
          this.#ack(r, { outcome: "release", message: "the worker closed before the job finished" });
        }
      }
      await Promise.allSettled([...this.#running.values()].map((r) => r.done));
    }
    await this.#flushing;
    if (this.#heartbeatTimer) clearTimeout(this.#heartbeatTimer);
    if (this.#workerId) {
      try {
        await this.client.request("DELETE", `/v1/workers/${encodeURIComponent(this.#workerId)}`);
      } catch (e) {
        this.#opts.onError?.(e);
      }
    }
  }

  /** Claims while open: as many jobs as free slots, long-polling when none is there. */
  async #claimLoop(): Promise<void> {
    const concurrency = this.#opts.concurrency!;
    let backoff = 100;
    while (!this.#closing) {
      // A slot frees when its handler ends, not when the server confirms
      // the end: the acknowledgement goes out in the next batch while the
      // next claim is under way. At most `concurrency` ends wait for their
      // confirmation, so a slow server slows claiming instead of piling up.
      const free = Math.min(concurrency - this.#busy, 2 * concurrency - this.#running.size);
      if (free <= 0) {
        await new Promise<void>((r) => (this.#waiter = r));
        // Let the handlers ending right now free their slots too, so one
        // claim serves them all instead of one claim each.
        await new Promise((r) => setImmediate(r));
        continue;
      }
      let reply: { jobs: Claimed[]; command: Command };
      try {
        reply = await this.client.request("POST", `/v1/workers/${encodeURIComponent(this.#workerId!)}/claim`, {
          body: { max: free, wait_ms: this.#maxWaitMs },
          signal: this.#claimCtl.signal,
        });
        backoff = 100;
      } catch (e) {
        if (this.#closing) return;
        this.#opts.onError?.(e);
        if (e instanceof KyuError && e.code === "unknown_worker") {
          // the server forgot this worker (it left, or was silent three lease periods): register again;
          // the jobs it holds are finished with their lease tokens as before
          try {
            await this.#register();
            continue;
          } catch (again) {
            this.#opts.onError?.(again);
          }
        }
        await new Promise((r) => setTimeout(r, backoff));
        backoff = Math.min(backoff * 2, 5000);
        continue;
      }
      for (const job of reply.jobs) {
        if (this.#closing) {
          // claimed as we closed: give it back unstarted
          this.#track(job, () => this.#ack(this.#running.get(job.id)!, { outcome: "release", message: "the worker closed before starting it" }));
        } else {
          this.#track(job, (r) => void this.#run(r));
        }
      }
      this.#command(reply.command);
    }
  }

  #command(command: Command): void {
    if (command === "quiet" || command === "stop") {
      this.#closing = true;
      this.#claimCtl.abort();
      if (command === "stop") void this.close({ graceMs: 0 });
    }
  }

  #track(job: Claimed, begin: (r: Running) => void): void {
    let resolveDone!: () => void;
    const r: Running = { job, ctl: new AbortController(), done: new Promise((res) => (resolveDone = res)), acked: false };
    r.done = r.done.then(() => {
      if (r.timer) clearTimeout(r.timer);
      this.#running.delete(job.id);
      this.#slotFreed();
    });
    (r as unknown as { resolveDone: () => void }).resolveDone = resolveDone;
    this.#running.set(job.id, r);
    this.#busy++;
    begin(r);
  }

  async #run(r: Running): Promise<void> {
    const { job, ctl } = r;
    const handler = this.#handlers.get(job.kind);
    if (!handler) {
      this.#ack(r, { outcome: "fail", message: `no handler for kind ${job.kind} in this worker`, permanent: false });
      return;
    }
    if (job.timeout_ms) {
      r.timer = setTimeout(() => {
        ctl.abort(new TimeoutError(job.id, job.timeout_ms!));
        this.#ack(r, { outcome: "fail", message: `timed out after ${job.timeout_ms} ms` });
      }, job.timeout_ms);
    }
    const ctx: JobContext = {
      id: job.id,
      attempt: job.attempt,
      maxAttempts: job.max_attempts,
      queue: job.queue,
      kind: job.kind,
      args: job.args,
      tags: job.tags,
      signal: ctl.signal,
      progress: async (percent: number, message = "") => {
        await this.client.request("POST", `/v1/workers/${encodeURIComponent(this.#workerId!)}/jobs/${job.id}/progress`, {
          body: { attempt: job.attempt, lease_token: job.lease_token, percent, message },
        });
      },
      snooze,
    };
    try {
      const out = await handler(ctx);
      if (out instanceof Snooze) this.#ack(r, { outcome: "snooze", delay_ms: Math.max(0, Math.round(out.ms)) });
      else this.#ack(r, { outcome: "complete", result: out === undefined ? null : out });
    } catch (e) {
      if (e instanceof Snooze) this.#ack(r, { outcome: "snooze", delay_ms: Math.max(0, Math.round(e.ms)) });
      else if (e instanceof PermanentError) this.#ack(r, { outcome: "fail", message: errorMessage(e), permanent: true });
      else if (e instanceof RetryAfterError) this.#ack(r, { outcome: "fail", message: errorMessage(e), retry_after_ms: Math.max(0, Math.round(e.retryAfterMs)) });
      else this.#ack(r, { outcome: "fail", message: errorMessage(ctl.signal.aborted && e === ctl.signal.reason ? ctl.signal.reason : e) });
    }
  }

  /** Queues the attempt's end for the next batch acknowledgement (once per attempt). */
  #ack(r: Running, end: Omit<AckItem, "job_id" | "attempt" | "lease_token">): void {
    if (r.acked) return;
    this.#ended(r);
    if (r.timer) clearTimeout(r.timer);
    const item: AckItem = { job_id: r.job.id, attempt: r.job.attempt, lease_token: r.job.lease_token, ...end };
    const resolve = (r as unknown as { resolveDone: () => void }).resolveDone;
    this.#acks.push({ item, resolve });
    if (!this.#flushing) this.#flushing = this.#flush();
  }

  /** Marks the attempt's end as known: its handler's slot is free. */
  #ended(r: Running): void {
    r.acked = true;
    this.#busy--;
    this.#slotFreed();
  }

  /** Wakes the claim loop if it waits for a slot. */
  #slotFreed(): void {
    const wake = this.#waiter;
    this.#waiter = undefined;
    wake?.();
  }

  /** Sends the queued acknowledgements, one request per batch, until none is left. */
  async #flush(): Promise<void> {
    try {
      while (this.#acks.length) {
        const batch = this.#acks.splice(0, 1000);
        let tries = 0;
        for (;;) {
          try {
            await this.client.request("POST", `/v1/workers/${encodeURIComponent(this.#workerId!)}/ack`, {
              body: { acks: batch.map((b) => b.item) },
            });
            break;
          } catch (e) {
            this.#opts.onError?.(e);
            // a 4xx will not get better; a lost connection may: a few tries, then the lease expires and kyu rescues the job
            if ((e instanceof KyuError && e.status >= 400 && e.status < 500) || ++tries >= 5) break;
            await new Promise((res) => setTimeout(res, 100 * 2 ** tries));
          }
        }
        for (const b of batch) b.resolve();
      }
    } finally {
      this.#flushing = undefined;
    }
  }

  #scheduleHeartbeat(): void {
    this.#heartbeatTimer = setTimeout(() => void this.#heartbeat(), this.#heartbeatMs);
    this.#heartbeatTimer.unref?.();
  }

  /** One heartbeat for every lease held; fires signals of cancelled or lost jobs. */
  async #heartbeat(): Promise<void> {
    if (this.#closed && this.#running.size === 0) return;
    const held = [...this.#running.values()].filter((r) => !r.acked);
    try {
      const reply = await this.client.request<{
        leases: { job_id: number; attempt: number; status: "extended" | "lost"; cancel_requested: boolean }[];
        command: Command;
      }>("POST", `/v1/workers/${encodeURIComponent(this.#workerId!)}/heartbeat`, {
        body: { leases: held.map((r) => ({ job_id: r.job.id, attempt: r.job.attempt, lease_token: r.job.lease_token })) },
      });
      for (const l of reply.leases) {
        const r = this.#running.get(l.job_id);
        if (!r || r.job.attempt !== l.attempt) continue;
        if (l.status === "lost") {
          r.ctl.abort(new LeaseLostError(l.job_id));
          if (!r.acked) this.#ended(r); // its end would be refused
          (r as unknown as { resolveDone: () => void }).resolveDone();
        } else if (l.cancel_requested && !r.ctl.signal.aborted) {
          r.ctl.abort(new CancelledError(l.job_id));
        }
      }
      this.#command(reply.command);
    } catch (e) {
      if (!(e instanceof ConflictError)) this.#opts.onError?.(e);
    }
    if (!this.#closed || this.#running.size > 0) this.#scheduleHeartbeat();
  }
}
