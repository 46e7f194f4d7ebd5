// Batches through the client against a real kyu serve: create, add, seal,
// counts, and the callbacks run once by a real Worker with the counts.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { Kyu, Worker, PermanentError, InvalidError, ForbiddenError } from "../dist/index.js";
import { startKyu } from "./kyu-server.mjs";

let server;
let kyu;
before(async () => {
  server = await startKyu({ toml: "" });
  kyu = new Kyu({ url: server.url, token: server.admin });
});
after(async () => server?.stop());

async function eventually(check, what, ms = 20_000) {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await check();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`not within ${ms} ms: ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

test("a batch: create, add, seal; on_complete runs once with the counts, on_success only when all succeeded", async () => {
  const callbacks = [];
  const w = new Worker({ url: server.url, token: server.admin, queues: ["b.sync"], concurrency: 4, pollWaitMs: 500 })
    .register("sync_user", async ({ args }) => {
      if (args.user === "bob") throw new PermanentError("bob has no token");
      return { synced: args.user };
    })
    .register("report", async ({ args, id }) => {
      callbacks.push({ id, args });
      return "reported";
    });
  await w.start();
  try {
    const created = await kyu.createBatch({
      jobs: [{ kind: "sync_user", args: { user: "ada" }, queue: "b.sync" }],
      onComplete: { kind: "report", args: { label: "all users" }, queue: "b.sync" },
      onSuccess: { kind: "report", args: { label: "all good" }, queue: "b.sync" },
    });
    assert.equal(created.batch.state, "open");
    assert.equal(created.jobs.length, 1);
    const id = created.batch.id;
    const added = await kyu.addToBatch(id, [
      { kind: "sync_user", args: { user: "bob" }, queue: "b.sync", maxAttempts: 3 },
      { kind: "sync_user", args: { user: "cy" }, queue: "b.sync" },
    ]);
    assert.equal(added.batch.total, 3);
    assert.equal(added.jobs.length, 2);
    // every job may finish before the seal: the callback waits for it
    await eventually(async () => (await kyu.getBatch(id)).pending + (await kyu.getBatch(id)).running === 0, "the jobs finished");
    assert.equal((await kyu.getBatch(id)).state, "open");
    assert.equal(callbacks.length, 0, "no callback before the seal");
    const sealed = await kyu.sealBatch(id);
    assert.ok(["sealed", "done"].includes(sealed.state), sealed.state);
    await eventually(() => callbacks.length === 1, "the on_complete callback ran");
    const b = await kyu.getBatch(id);
    assert.deepEqual(
      { state: b.state, total: b.total, pending: b.pending, running: b.running, succeeded: b.succeeded, failed: b.failed, cancelled: b.cancelled },
      { state: "done", total: 3, pending: 0, running: 0, succeeded: 2, failed: 1, cancelled: 0 },
    );
    assert.equal(b.on_complete, "report");
    assert.equal(b.callback_jobs.length, 1, "only on_complete: one job failed");
    assert.deepEqual(callbacks[0].args, { label: "all users", batch: { id, total: 3, succeeded: 2, failed: 1, cancelled: 0 } });
    assert.equal(callbacks[0].id, b.callback_jobs[0]);
    // sealing again changes nothing and enqueues nothing more
    await kyu.sealBatch(id);
    await new Promise((r) => setTimeout(r, 700));
    assert.equal(callbacks.length, 1, "the callback ran once");
    await assert.rejects(kyu.addToBatch(id, [{ kind: "sync_user", args: { user: "late" }, queue: "b.sync" }]), InvalidError);

    // all succeed: both callbacks, each once
    callbacks.length = 0;
    const ok = await kyu.createBatch({
      jobs: ["dee", "eve"].map((user) => ({ kind: "sync_user", args: { user }, queue: "b.sync" })),
      onComplete: { kind: "report", args: { label: "complete" }, queue: "b.sync" },
      onSuccess: { kind: "report", args: { label: "success" }, queue: "b.sync" },
      seal: true,
    });
    await eventually(() => callbacks.length === 2, "both callbacks ran");
    assert.deepEqual(callbacks.map((c) => c.args.label).sort(), ["complete", "success"]);
    for (const c of callbacks) assert.deepEqual(c.args.batch, { id: ok.batch.id, total: 2, succeeded: 2, failed: 0, cancelled: 0 });
    assert.equal((await kyu.getBatch(ok.batch.id)).callback_jobs.length, 2);
  } finally {
    await w.close();
  }
});

test("batch errors: unknown batch, a callback whose args are not an object, a token limited to queues", async () => {
  await assert.rejects(kyu.getBatch(999_999), (e) => e.status === 404 && e.code === "not_found");
  await assert.rejects(
    kyu.createBatch({ onComplete: { kind: "report", args: [1, 2] } }),
    (e) => e instanceof InvalidError && /on_complete/.test(e.field ?? e.message),
  );
  const tenant = new Kyu({ url: server.url, token: server.token(["produce", "read"], { queues: "tenant-a.*" }) });
  await assert.rejects(tenant.createBatch({ jobs: [{ kind: "k", queue: "tenant-a.x" }] }), (e) => e instanceof ForbiddenError && e.code === "forbidden_queue");
});
