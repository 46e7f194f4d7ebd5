// events(): the SSE stream of a real kyu serve, resumed after a dropped connection.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { Kyu, InvalidError, UnauthorizedError } from "../dist/index.js";
import { startKyu } from "./kyu-server.mjs";
import { startProxy } from "./proxy.mjs";

let server;
let kyu;
let hasEvents = true;
before(async () => {
  server = await startKyu();
  kyu = new Kyu({ url: server.url, token: server.admin });
  const res = await fetch(`${server.url}/v1/events?since=0&types=nope`, { headers: { authorization: `Bearer ${server.admin}` } });
  hasEvents = res.status !== 404; // the route exists (a 400 for the bad type): kyu has GET /v1/events
});
after(async () => server?.stop());

/** Takes events from `it` until `done(events)` says enough. */
async function take(it, done) {
  const got = [];
  for await (const e of it) {
    got.push(e);
    if (done(got)) break;
  }
  return got;
}

test("events: replay from 0, filters by job and type", async (t) => {
  if (!hasEvents) return t.skip("this kyu serve has no GET /v1/events");
  const { id } = await kyu.enqueue("echo", { a: 1 });
  await kyu.wait(id, { timeout: "20s" });
  const got = await take(kyu.events({ since: 0, job: id }), (g) => g.some((e) => e.type === "completed"));
  assert.equal(got[0].type, "enqueued");
  assert.ok(got.every((e) => e.job_id === id));
  const only = await take(kyu.events({ since: 0, job: id, types: ["completed"] }), (g) => g.length === 1);
  assert.equal(only[0].type, "completed");
  assert.equal(only[0].kind, "echo");
});

test("events: a dropped connection is resumed from Last-Event-ID, no event lost or repeated", async (t) => {
  if (!hasEvents) return t.skip("this kyu serve has no GET /v1/events");
  const proxy = await startProxy(server.url);
  try {
    const ids = [];
    for (let i = 0; i < 3; i++) ids.push((await kyu.enqueue("resume", { i }, { delay: "1h" })).id);
    const viaProxy = new Kyu({ url: proxy.url, token: server.admin });
    const reconnects = [];
    const seen = [];
    for await (const e of viaProxy.events({ since: 0, kind: "resume", types: ["enqueued"], onReconnect: (_e, last) => reconnects.push(last) })) {
      seen.push(e);
      if (seen.length === 1) {
        proxy.cut(); // the connection drops under the iterator
        for (let i = 3; i < 6; i++) ids.push((await kyu.enqueue("resume", { i }, { delay: "1h" })).id);
      }
      if (seen.length === 6) break;
    }
    assert.ok(reconnects.length >= 1, "it reconnected");
    assert.ok(proxy.connections >= 2, "over a new connection");
    assert.deepEqual(seen.map((e) => e.job_id), ids, "every job's event, once, in order");
    const eventIds = seen.map((e) => e.id);
    assert.deepEqual([...eventIds].sort((a, b) => a - b), eventIds);
    assert.equal(new Set(eventIds).size, 6);
  } finally {
    await proxy.close();
  }
});

test("events: a bad filter or token throws at once (no reconnect loop)", async (t) => {
  if (!hasEvents) return t.skip("this kyu serve has no GET /v1/events");
  await assert.rejects(take(kyu.events({ types: ["nope"] }), () => true), (e) => e instanceof InvalidError && e.field === "types");
  const bad = new Kyu({ url: server.url, token: "kyu_nope" });
  await assert.rejects(take(bad.events(), () => true), UnauthorizedError);
});

test("events: the signal ends the iterator", async (t) => {
  if (!hasEvents) return t.skip("this kyu serve has no GET /v1/events");
  const ctl = new AbortController();
  const it = kyu.events({ signal: ctl.signal });
  const p = take(it, () => false);
  setTimeout(() => ctl.abort(), 100);
  assert.deepEqual(await p, []);
});
