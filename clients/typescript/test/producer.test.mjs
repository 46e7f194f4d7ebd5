// The producer surface against a real `kyu serve` (see kyu-server.mjs).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import {
  Kyu,
  InvalidError,
  NotFoundError,
  UnauthorizedError,
  ForbiddenError,
  ConnectionError,
  WaitTimeoutError,
  KyuError,
} from "../dist/index.js";
import { startKyu } from "./kyu-server.mjs";

let server;
let kyu;
before(async () => {
  server = await startKyu();
  kyu = new Kyu({ url: server.url, token: server.admin });
});
after(async () => server?.stop());

test("enqueue, then wait: the job runs and its result comes back", async () => {
  const { id, duplicate } = await kyu.enqueue("echo", { n: 7 }, { tags: ["t:1"], maxAttempts: 3 });
  assert.equal(duplicate, false);
  const job = await kyu.wait(id, { timeout: "20s" });
  assert.equal(job.state, "completed");
  assert.deepEqual(job.result, { n: 7 });
  assert.deepEqual(job.args, { n: 7 });
  assert.deepEqual(job.tags, ["t:1"]);
  assert.equal(job.max_attempts, 3);
});

test("Idempotency-Key: the same request twice gives the first job", async () => {
  const a = await kyu.enqueue("echo", { once: true }, { idempotencyKey: "order-7", delay: "1h" });
  const b = await kyu.enqueue("echo", { once: true }, { idempotencyKey: "order-7", delay: "1h" });
  assert.equal(a.duplicate, false);
  assert.equal(b.duplicate, true);
  assert.equal(b.id, a.id);
});

test("enqueueMany: ids in order; a bad job refuses the whole batch and names its field", async () => {
  const got = await kyu.enqueueMany([
    { kind: "echo", args: { i: 1 }, delay: 3_600_000 },
    { kind: "echo", args: { i: 2 }, delay: "1h", priority: -1 },
  ]);
  assert.equal(got.length, 2);
  assert.equal(got[1].id, got[0].id + 1);
  const before = (await kyu.listJobs({ kind: "batch_probe" })).jobs.length;
  await assert.rejects(
    kyu.enqueueMany([{ kind: "batch_probe" }, { kind: "batch_probe", queue: "" }]),
    (e) => e instanceof InvalidError && e.status === 400 && e.code === "invalid" && e.field === "jobs[1].queue" && /queue/.test(e.message),
  );
  assert.equal((await kyu.listJobs({ kind: "batch_probe" })).jobs.length, before, "nothing of the refused batch was stored");
});

test("getJob of a missing job: NotFoundError with the API's code", async () => {
  await assert.rejects(kyu.getJob(999_999), (e) => e instanceof NotFoundError && e.code === "not_found" && e.status === 404);
});

test("a failing job is retried with its backoff, then failed with every attempt's error", async () => {
  // (the API does not apply kyu.toml's [jobs.KIND] defaults: the options are the request's)
  const { id } = await kyu.enqueue("fail", {}, { maxAttempts: 2, retry: { type: "fixed", delay: 50 } });
  const job = await kyu.wait(id, { timeout: "20s" });
  assert.equal(job.state, "failed");
  assert.equal(job.attempt, 2);
  assert.equal(job.errors.length, 2);
  assert.deepEqual(job.errors.map((e) => e.attempt), [1, 2]);
  assert.match(job.errors[0].message, /exited with status 3: boom/);
});

test("cancel a waiting job, then retry it", async () => {
  const { id } = await kyu.enqueue("echo", {}, { delay: "1h" });
  assert.deepEqual(await kyu.cancel(id), { [id]: "cancelled" });
  assert.equal((await kyu.getJob(id)).state, "cancelled");
  assert.deepEqual(await kyu.cancel([id, 999_998]), { [id]: "already_finished", 999998: "not_found" });
  assert.deepEqual(await kyu.retry([id]), { [id]: "retried" });
  assert.notEqual((await kyu.getJob(id)).state, "cancelled");
});

test("cancel a running command job: asked to stop, then cancelled", async () => {
  const { id } = await kyu.enqueue("sleep", {});
  for (let i = 0; i < 200 && (await kyu.getJob(id)).state !== "running"; i++) {
    await new Promise((r) => setTimeout(r, 50));
  }
  assert.deepEqual(await kyu.cancel(id), { [id]: "requested" });
  const job = await kyu.wait(id, { timeout: "20s" });
  assert.equal(job.state, "cancelled");
});

test("wait with a timeout gives up with WaitTimeoutError", async () => {
  const { id } = await kyu.enqueue("echo", {}, { delay: "1h" });
  await assert.rejects(kyu.wait(id, { timeout: 300 }), (e) => e instanceof WaitTimeoutError && /still scheduled/.test(e.message));
});

test("listJobs filters and pages by cursor; jobs() walks every page", async () => {
  const ids = (await kyu.enqueueMany([1, 2, 3].map((i) => ({ kind: "listed", args: { i }, delay: "1h", tags: ["page"] })))).map((e) => e.id);
  const first = await kyu.listJobs({ kind: "listed", limit: 2 });
  assert.deepEqual(first.jobs.map((j) => j.id), [ids[2], ids[1]]);
  assert.ok(first.next);
  const second = await kyu.listJobs({ kind: "listed", limit: 2, cursor: first.next });
  assert.deepEqual(second.jobs.map((j) => j.id), [ids[0]]);
  assert.equal(second.next, null);
  const all = [];
  for await (const j of kyu.jobs({ tag: "page", state: "scheduled", limit: 1 })) all.push(j.id);
  assert.deepEqual(all, [...ids].reverse());
});

test("bad input: InvalidError names the field and what is accepted", async () => {
  await assert.rejects(kyu.enqueue("echo", {}, { delay: "1h", runAt: new Date() }), (e) => e instanceof InvalidError && e.field === "delay");
  await assert.rejects(kyu.enqueue("echo", {}, { timeout: "soon" }), (e) => e instanceof InvalidError && e.field === "timeout" && /accepted/.test(e.message));
  await assert.rejects(kyu.listJobs({ state: "done" }), (e) => e instanceof InvalidError && e.field === "state");
});

test("token errors: none, unknown, missing scope, other queue", async () => {
  await assert.rejects(new Kyu({ url: server.url, token: "" }).getJob(1), (e) => e instanceof UnauthorizedError && e.code === "unauthorized");
  await assert.rejects(new Kyu({ url: server.url, token: "kyu_nope" }).getJob(1), (e) => e instanceof UnauthorizedError && e.status === 401);
  const reader = new Kyu({ url: server.url, token: server.token(["read"]) });
  await assert.rejects(reader.enqueue("echo", {}), (e) => e instanceof ForbiddenError && e.code === "forbidden_scope");
  const tenant = new Kyu({ url: server.url, token: server.token(["produce", "read"], { queues: "tenant-a.*" }) });
  const { id } = await tenant.enqueue("echo", {}, { queue: "tenant-a.mail", delay: "1h" });
  assert.equal((await tenant.getJob(id)).redacted, true);
  await assert.rejects(tenant.enqueue("echo", {}, { queue: "tenant-b.mail" }), (e) => e instanceof ForbiddenError && e.code === "forbidden_queue" && e.field === "queue");
  const other = (await kyu.enqueue("echo", {}, { queue: "tenant-b.mail", delay: "1h" })).id;
  await assert.rejects(tenant.getJob(other), NotFoundError);
});

test("queues and schedules", async () => {
  const queues = await kyu.queues();
  assert.ok(queues.some((q) => q.queue === "default" && q.counts.completed >= 1));
  await kyu.pauseQueue("default");
  assert.equal((await kyu.queues()).find((q) => q.queue === "default").paused, true);
  await kyu.resumeQueue("default");
  assert.ok(Array.isArray(await kyu.schedules()));
  await assert.rejects(kyu.deleteSchedule("nope"), NotFoundError);
});

test("no server: ConnectionError, a KyuError with status 0", async () => {
  const dead = new Kyu({ url: "http://127.0.0.1:9", token: "x" });
  await assert.rejects(dead.getJob(1), (e) => e instanceof ConnectionError && e instanceof KyuError && e.status === 0);
});

test("putSchedule creates and replaces a schedule by name; bad fields are named", async (t) => {
  const probe = await fetch(`${server.url}/v1/schedules/probe`, { method: "PUT", headers: { authorization: `Bearer ${server.admin}`, "content-type": "application/json" }, body: "{}" });
  if ([404, 405].includes(probe.status)) return t.skip("this kyu serve has no PUT /v1/schedules/{name}");
  const s = await kyu.putSchedule("hourly-report", { cron: "0 * * * *", zone: "Asia/Tokyo", kind: "echo", args: { r: 1 }, maxAttempts: 3, timeout: "5m", overlap: "skip" });
  assert.deepEqual([s.name, s.cron, s.zone, s.kind, s.enabled], ["hourly-report", "0 * * * *", "Asia/Tokyo", "echo", true]);
  const again = await kyu.putSchedule("hourly-report", { cron: "*/5 * * * *", kind: "echo", enabled: false });
  assert.deepEqual([again.cron, again.enabled], ["*/5 * * * *", false]);
  assert.equal((await kyu.schedules()).filter((x) => x.name === "hourly-report").length, 1);
  await assert.rejects(kyu.putSchedule("bad", { cron: "61 * * * *", kind: "echo" }), (e) => e instanceof InvalidError && e.field === "cron");
  await assert.rejects(kyu.putSchedule("bad", { cron: "0 * * * *", zone: "Mars/Olympus", kind: "echo" }), (e) => e instanceof InvalidError && /time ?zone/.test(e.message));
  await kyu.deleteSchedule("hourly-report");
});
