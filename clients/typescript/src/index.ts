/**
 * kyu-client: enqueue, inspect, wait for and run kyu background jobs from
 * Node.js over kyu's HTTP API (`kyu serve`).
 *
 * ```ts
 * import { Kyu } from "kyu-client";
 * const kyu = new Kyu({ url: "http://127.0.0.1:7070", token: process.env.KYU_TOKEN });
 * const { id } = await kyu.enqueue("send_email", { to: "ada@example.com" });
 * ```
 */
export * from "./errors.js";
export * from "./types.js";
export { Kyu, durationText, parseDurationMs, jobBody, type ClientOptions, type RequestOptions } from "./client.js";
export { parseSse, streamEvents, type KyuEvent, type EventsOptions } from "./events.js";
export {
  Worker,
  PermanentError,
  RetryAfterError,
  Snooze,
  snooze,
  CancelledError,
  TimeoutError,
  LeaseLostError,
  type JobContext,
  type Handler,
  type WorkerOptions,
} from "./worker.js";
