// The Worker against a real kyu serve's /v1/workers protocol.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { Kyu, Worker, PermanentError, CancelledError, TimeoutError, ForbiddenError } from "../dist/index.js";
import { startKyu } from "./kyu-server.mjs";

let server;
let kyu;
let hasWorkers = true;
before(async () => {
  server = await startKyu({ toml: "" });
  kyu = new Kyu({ url: server.url, token: server.admin });
  const res = await fetch(`${server.url}/v1/workers`, { method: "POST", headers: { authorization: `Bearer ${server.admin}`, "content-type": "application/json" }, body: "{}" });
  hasWorkers = res.status !== 404 && res.status !== 405;
});
after(async () => server?.stop());

const skip = (t) => (hasWorkers ? false : (t.skip("this kyu serve has no /v1/workers"), true));

/** A worker on its own queue (so tests do not take each other's jobs); lease 3 s, heartbeat 1 s. */
function worker(queue, options = {}) {
  return new Worker({ url: server.url, token: server.admin, queues: [queue], concurrency: 4, leaseMs: 3000, pollWaitMs: 1000, ...options });
}

/** A promise and its resolver. */
function deferred() {
  let resolve;
  const promise = new Promise((r) => (resolve = r));
  return { promise, resolve };
}

test("enqueue -> worker -> result; many jobs in batches", async (t) => {
  if (skip(t)) return;
  const w = worker("w.basic", { name: "basic-worker" }).register("double", async ({ args, attempt }) => ({ n: args.n * 2, attempt }));
  await w.start();
  try {
    const { id } = await kyu.enqueue("double", { n: 21 }, { queue: "w.basic" });
    const job = await kyu.wait(id, { timeout: "20s" });
    assert.equal(job.state, "completed");
    assert.deepEqual(job.result, { n: 42, attempt: 1 });
    assert.match(job.worker, /basic-worker/);
    const many = await kyu.enqueueMany(Array.from({ length: 40 }, (_, n) => ({ kind: "double", args: { n }, queue: "w.basic" })));
    const done = await Promise.all(many.map((e) => kyu.wait(e.id, { timeout: "30s" })));
    assert.deepEqual(done.map((j) => j.result.n), Array.from({ length: 40 }, (_, n) => n * 2));
  } finally {
    await w.close();
  }
});

test("a thrown error is retried with the job's backoff; PermanentError fails at once", async (t) => {
  if (skip(t)) return;
  const w = worker("w.retry")
    .register("flaky", async ({ attempt }) => {
      if (attempt < 3) throw new Error(`flaked on attempt ${attempt}`);
      return "ok";
    })
    .register("doomed", async () => {
      throw new PermanentError("bad input: no recipient");
    });
  await w.start();
  try {
    const flaky = await kyu.enqueue("flaky", {}, { queue: "w.retry", maxAttempts: 5, retry: { type: "fixed", delay: 50 } });
    const doomed = await kyu.enqueue("doomed", {}, { queue: "w.retry", maxAttempts: 5 });
    const f = await kyu.wait(flaky.id, { timeout: "20s" });
    assert.equal(f.state, "completed");
    assert.equal(f.result, "ok");
    assert.equal(f.attempt, 3);
    assert.deepEqual(f.errors.map((e) => e.message), ["flaked on attempt 1", "flaked on attempt 2"]);
    const d = await kyu.wait(doomed.id, { timeout: "20s" });
    assert.equal(d.state, "failed");
    assert.equal(d.attempt, 1, "not retried");
    assert.match(d.errors[0].message, /no recipient/);
  } finally {
    await w.close();
  }
});

test("cancel reaches the handler's AbortSignal", async (t) => {
  if (skip(t)) return;
  const started = deferred();
  const reason = deferred();
  const w = worker("w.cancel").register("long", async ({ signal }) => {
    started.resolve();
    await new Promise((_, reject) => signal.addEventListener("abort", () => { reason.resolve(signal.reason); reject(signal.reason); }));
  });
  await w.start();
  try {
    const { id } = await kyu.enqueue("long", {}, { queue: "w.cancel" });
    await started.promise;
    assert.deepEqual(await kyu.cancel(id), { [id]: "requested" });
    assert.ok((await reason.promise) instanceof CancelledError);
    const job = await kyu.wait(id, { timeout: "20s" });
    assert.equal(job.state, "cancelled");
  } finally {
    await w.close();
  }
});

test("timeout fires the signal and fails the attempt", async (t) => {
  if (skip(t)) return;
  const reason = deferred();
  const w = worker("w.timeout").register("slow", async ({ signal }) => {
    await new Promise((_, reject) => signal.addEventListener("abort", () => { reason.resolve(signal.reason); reject(signal.reason); }));
  });
  await w.start();
  try {
    const { id } = await kyu.enqueue("slow", {}, { queue: "w.timeout", timeout: "300ms", maxAttempts: 1 });
    assert.ok((await reason.promise) instanceof TimeoutError);
    const job = await kyu.wait(id, { timeout: "20s" });
    assert.equal(job.state, "failed");
    assert.match(job.errors[0].message, /timed out after 300 ms/);
  } finally {
    await w.close();
  }
});

test("snooze runs the job again later without using an attempt; progress is recorded", async (t) => {
  if (skip(t)) return;
  let runs = 0;
  const w = worker("w.snooze").register("later", async ({ snooze, progress }) => {
    runs++;
    await progress(40, `run ${runs}`);
    if (runs === 1) return snooze(50);
    return { runs };
  });
  await w.start();
  try {
    const { id } = await kyu.enqueue("later", {}, { queue: "w.snooze" });
    const job = await kyu.wait(id, { timeout: "20s" });
    assert.equal(job.state, "completed");
    assert.deepEqual(job.result, { runs: 2 });
    assert.equal(job.attempt, 1, "the snooze used no attempt");
    assert.deepEqual(job.errors, []);
    assert.deepEqual(job.progress, { percent: 40, message: "run 2" });
  } finally {
    await w.close();
  }
});

test("close: a handler that finishes within the grace completes; one past it is aborted and its job released", async (t) => {
  if (skip(t)) return;
  const started = deferred();
  const release = deferred();
  const w = worker("w.close", { concurrency: 2 })
    .register("quick", async () => {
      await release.promise;
      return "finished in grace";
    })
    .register("stuck", async ({ signal }) => {
      started.resolve();
      await new Promise((r) => signal.addEventListener("abort", r));
      return "ignored";
    });
  await w.start();
  const quick = await kyu.enqueue("quick", {}, { queue: "w.close" });
  const stuck = await kyu.enqueue("stuck", {}, { queue: "w.close" });
  await started.promise;
  while ((await kyu.getJob(quick.id)).state !== "running") await new Promise((r) => setTimeout(r, 20));
  const closing = w.close({ graceMs: 3000 }); // the quick handler finishes well within; the stuck one never does
  release.resolve();
  await closing;
  const q = await kyu.getJob(quick.id);
  assert.equal(q.state, "completed");
  assert.equal(q.result, "finished in grace");
  const s = await kyu.getJob(stuck.id);
  assert.equal(s.state, "available", "released, not failed");
  assert.deepEqual(s.errors.map((e) => e.message), ["the worker closed before the job finished"], "the release is noted");
  // another worker takes it
  const w2 = worker("w.close").register("stuck", async () => "second worker");
  await w2.start();
  try {
    const done = await kyu.wait(stuck.id, { timeout: "20s" });
    assert.equal(done.result, "second worker");
  } finally {
    await w2.close();
  }
});

test("token errors: a token without the work scope cannot register", async (t) => {
  if (skip(t)) return;
  const w = new Worker({ url: server.url, token: server.token(["produce"]), queues: ["w.x"] }).register("k", () => 1);
  await assert.rejects(w.start(), (e) => e instanceof ForbiddenError && e.code === "forbidden_scope");
  const tenant = new Worker({ url: server.url, token: server.token(["work"], { queues: "tenant-a.*" }), queues: ["tenant-b.x"] }).register("k", () => 1);
  await assert.rejects(tenant.start(), (e) => e instanceof ForbiddenError && e.code === "forbidden_queue");
});

test("a worker the server forgot registers again and goes on", async (t) => {
  if (skip(t)) return;
  const w = worker("w.again").register("k", async () => "after re-registering");
  await w.start();
  try {
    const first = w.id;
    // the server forgets it (as after three silent lease periods): it leaves behind the worker's back
    await kyu.request("DELETE", `/v1/workers/${encodeURIComponent(first)}`);
    // (a claim already waiting when it left may still bring one job: a second job needs the new registration)
    for (let i = 0; i < 2; i++) {
      const { id } = await kyu.enqueue("k", {}, { queue: "w.again" });
      const job = await kyu.wait(id, { timeout: "20s" });
      assert.equal(job.result, "after re-registering");
    }
    assert.notEqual(w.id, first);
  } finally {
    await w.close();
  }
});

/** An HTTP proxy in front of kyu that holds each acknowledgement's reply for `delayMs`. */
async function slowAckProxy(target, delayMs) {
  const http = await import("node:http");
  const proxy = http.createServer(async (req, res) => {
    const chunks = [];
    for await (const c of req) chunks.push(c);
    const headers = { ...req.headers };
    delete headers.host;
    delete headers.connection;
    const up = await fetch(target + req.url, { method: req.method, headers, body: chunks.length ? Buffer.concat(chunks) : undefined });
    const body = Buffer.from(await up.arrayBuffer());
    if (req.url.endsWith("/ack")) await new Promise((r) => setTimeout(r, delayMs));
    res.writeHead(up.status, { "content-type": up.headers.get("content-type") ?? "application/json" });
    res.end(body);
  });
  await new Promise((r) => proxy.listen(0, "127.0.0.1", r));
  return { url: `http://127.0.0.1:${proxy.address().port}`, close: () => new Promise((r) => proxy.close(r)) };
}

test("a slot frees when its handler ends, before the server confirms the end", async (t) => {
  if (skip(t)) return;
  const proxy = await slowAckProxy(server.url, 1500);
  const starts = [];
  const ends = [];
  const w = new Worker({ url: proxy.url, token: server.admin, queues: ["w.slots"], concurrency: 1, leaseMs: 10000, pollWaitMs: 200 })
    .register("quick", async () => {
      starts.push(Date.now());
      ends.push(Date.now());
    });
  const ids = [];
  for (let i = 0; i < 2; i++) ids.push((await kyu.enqueue("quick", { i }, { queue: "w.slots" })).id);
  await w.start();
  try {
    for (const id of ids) assert.equal((await kyu.wait(id, { timeout: "20s" })).state, "completed");
    assert.equal(starts.length, 2);
    // The second job did not wait for the first one's acknowledgement (held 1.5 s).
    assert.ok(starts[1] - ends[0] < 1000, `second start ${starts[1] - ends[0]} ms after the first end`);
  } finally {
    await w.close();
    await proxy.close();
  }
});
