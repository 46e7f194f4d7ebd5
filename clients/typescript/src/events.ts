/**
 * `GET /v1/events` (Server-Sent Events) as an async iterator that resumes by
 * itself: when the connection drops it reconnects with `Last-Event-ID` set
 * to the last event received, so no event is lost or repeated.
 */

import { ConnectionError, KyuError, UnavailableError } from "./errors.js";

/** One event of kyu's event log (`data` of an SSE message): never args nor results. */
export interface KyuEvent {
  /** The event id (increasing). */
  id: number;
  /** When it happened (RFC 3339). */
  at: string;
  /** `enqueued`, `started`, `completed`, `failed`, `retry_scheduled`, `cancelled`, ... or `gap`. */
  type: string;
  job_id?: number | null;
  queue?: string | null;
  kind?: string | null;
  attempt?: number | null;
  /** For `gap`: the last id received before the gap. */
  after?: number;
  /** For `gap`: events up to this id were pruned by retention before they could be sent. */
  pruned_through?: number;
  /** Further facts of the event type (duration_ms, error, schedule, worker, ...). */
  [fact: string]: unknown;
}

/** Which events to stream, and from where. */
export interface EventsOptions {
  /** Start after this event id; `0` replays all the log holds. Default: live events only. */
  since?: number;
  queue?: string;
  kind?: string;
  /** Only events of this job. */
  job?: number;
  /** Only these event types. */
  types?: string[];
  /** Stops the stream (the iterator ends). */
  signal?: AbortSignal;
  /** Longest pause between reconnect attempts, ms (default 5000; the first is 100). */
  maxBackoffMs?: number;
  /** Called before each reconnect, with the error that ended the connection. */
  onReconnect?: (error: unknown, lastEventId: number | undefined) => void;
}

/** Statuses worth reconnecting after: the server may come back. */
function transient(e: unknown): boolean {
  if (e instanceof UnavailableError || e instanceof ConnectionError) return true;
  if (e instanceof KyuError) return e.status === 429 || e.status >= 500;
  return true; // a broken body stream, a reset socket
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(done, ms);
    function done() {
      clearTimeout(t);
      signal?.removeEventListener("abort", done);
      resolve();
    }
    signal?.addEventListener("abort", done, { once: true });
  });
}

/** The events, reconnecting after a dropped connection from the last id received. */
export async function* streamEvents(
  open: (path: string, headers: Record<string, string>, signal: AbortSignal) => Promise<Response>,
  options: EventsOptions = {},
): AsyncGenerator<KyuEvent> {
  let last: number | undefined = options.since;
  let backoff = 100;
  const maxBackoff = options.maxBackoffMs ?? 5000;
  for (;;) {
    if (options.signal?.aborted) return;
    const ctl = new AbortController();
    const onAbort = () => ctl.abort();
    options.signal?.addEventListener("abort", onAbort, { once: true });
    try {
      const q = new URLSearchParams();
      if (options.queue !== undefined) q.set("queue", options.queue);
      if (options.kind !== undefined) q.set("kind", options.kind);
      if (options.job !== undefined) q.set("job", String(options.job));
      if (options.types?.length) q.set("types", options.types.join(","));
      const headers: Record<string, string> = { accept: "text/event-stream" };
      if (last !== undefined) headers["last-event-id"] = String(last);
      const qs = q.toString();
      const res = await open(`/v1/events${qs ? "?" + qs : ""}`, headers, ctl.signal);
      backoff = 100;
      for await (const msg of parseSse(res.body!)) {
        if (msg.data === undefined) continue;
        const data = JSON.parse(msg.data) as Record<string, unknown>;
        if (msg.event === "error") continue; // the server retries its store by itself
        const ev: KyuEvent =
          msg.event === "gap"
            ? ({ ...data, type: "gap", id: Number(msg.id) } as KyuEvent)
            : (data as KyuEvent);
        if (msg.id !== undefined) last = Number(msg.id);
        yield ev;
      }
      throw new ConnectionError(0, { code: "connection", message: "the event stream ended" });
    } catch (e) {
      if (options.signal?.aborted) return;
      if (!transient(e)) throw e;
      options.onReconnect?.(e, last);
      await sleep(backoff, options.signal);
      backoff = Math.min(backoff * 2, maxBackoff);
    } finally {
      options.signal?.removeEventListener("abort", onAbort);
      ctl.abort();
    }
  }
}

/** One SSE message. */
interface SseMessage {
  id?: string;
  event?: string;
  data?: string;
}

/** Parses a text/event-stream body into messages (comments and retry lines skipped). */
export async function* parseSse(body: ReadableStream<Uint8Array>): AsyncGenerator<SseMessage> {
  const decoder = new TextDecoder();
  let buf = "";
  let msg: SseMessage = {};
  for await (const chunk of body as unknown as AsyncIterable<Uint8Array>) {
    buf += decoder.decode(chunk, { stream: true });
    let nl: number;
    while ((nl = buf.search(/\r\n|\n|\r/)) >= 0) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + (buf.startsWith("\r\n", nl) ? 2 : 1));
      if (line === "") {
        if (msg.data !== undefined || msg.event !== undefined) yield msg;
        msg = {};
        continue;
      }
      if (line.startsWith(":")) continue;
      const colon = line.indexOf(":");
      const field = colon < 0 ? line : line.slice(0, colon);
      let value = colon < 0 ? "" : line.slice(colon + 1);
      if (value.startsWith(" ")) value = value.slice(1);
      if (field === "data") msg.data = msg.data === undefined ? value : msg.data + "\n" + value;
      else if (field === "id") msg.id = value;
      else if (field === "event") msg.event = value;
    }
  }
}
