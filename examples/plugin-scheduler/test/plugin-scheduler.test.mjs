// Seed 004 on kyu: the plugin scheduler program against a real kyu serve,
// with the google-analytics plugin's schedule every second.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { startKyu } from "../../../clients/typescript/test/kyu-server.mjs";
import { JobScheduler } from "../dist/job-scheduler.js";

const here = dirname(fileURLToPath(import.meta.url));
let server;
let supported = true;
before(async () => {
  server = await startKyu({ toml: "" });
  const h = { authorization: `Bearer ${server.admin}`, "content-type": "application/json" };
  const w = await fetch(`${server.url}/v1/workers`, { method: "POST", headers: h, body: "{}" });
  const s = await fetch(`${server.url}/v1/schedules/probe`, { method: "PUT", headers: h, body: "{}" });
  supported = ![404, 405].includes(w.status) && ![404, 405].includes(s.status);
});
after(async () => server?.stop());

function rows(file) {
  return existsSync(file) ? readFileSync(file, "utf8").trim().split("\n").filter(Boolean).map((l) => JSON.parse(l)) : [];
}

test("the program runs the plugin every second, retries a failed attempt, logs plugin_runs per tenant, stops on SIGTERM", async (t) => {
  if (!supported) return t.skip("this kyu serve lacks /v1/workers or PUT /v1/schedules");
  const runsDir = mkdtempSync(join(tmpdir(), "plugin-runs-"));
  const child = spawn(process.execPath, [join(here, "../dist/main.js")], {
    env: { ...process.env, KYU_URL: server.url, KYU_TOKEN: server.admin, TENANT_ID: "acme", PLUGIN_CRON: "* * * * * *", RUNS_DIR: runsDir, GA_FAIL_FIRST: "1" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  child.stdout.on("data", (d) => (out += d));
  child.stderr.on("data", (d) => (out += d));
  try {
    const file = join(runsDir, "acme.jsonl");
    for (let i = 0; i < 600 && rows(file).filter((r) => r.status === "success").length < 2; i++) {
      await new Promise((r) => setTimeout(r, 50));
    }
    const all = rows(file);
    const ok = all.filter((r) => r.status === "success");
    assert.ok(ok.length >= 2, `two successful runs: ${out}`);
    assert.ok(all.every((r) => r.plugin_id === "google-analytics" && r.tenant_id === "acme" && r.hook_name === "job:sync-analytics-data"));
    const failed = all.filter((r) => r.status === "error");
    assert.ok(failed.length >= 1 && /analytics API unavailable/.test(failed[0].error));
    assert.equal(ok[0].result.attemptsMade, 2, "the run succeeded on its retry");
    const kyu = (await import("kyu-client")).Kyu;
    const schedules = await new kyu({ url: server.url, token: server.admin }).schedules();
    assert.deepEqual(schedules.map((s) => [s.name, s.cron, s.queue]), [["plugin.google-analytics.sync-analytics-data", "* * * * * *", "plugins"]]);
  } finally {
    const exited = new Promise((r) => child.once("exit", (code) => r(code)));
    child.kill("SIGTERM");
    assert.equal(await exited, 0, out);
  }
});

test("addJob, getJobStatus in BullMQ's words, removeJob, close", async (t) => {
  if (!supported) return t.skip("this kyu serve lacks /v1/workers or PUT /v1/schedules");
  const s = new JobScheduler({ url: server.url, token: server.admin, tenantId: "t2" });
  await assert.rejects(s.addJob("p", "unregistered", {}), /not registered/);
  const seen = [];
  await s.registerJob("p", "echo", async (ctx, job) => {
    seen.push([ctx.tenantId, job.data]);
    if (job.data.fail) throw new Error("told to fail");
  }, { attempts: 1, cron: "0 0 1 1 *" });
  try {
    const id = await s.addJob("p", "echo", { n: 1 });
    const bad = await s.addJob("p", "echo", { fail: true });
    const later = await s.addJob("p", "echo", { n: 2 }, { delay: 3_600_000 });
    const kyu = s.kyu;
    await kyu.wait(Number(id), { timeout: "20s" });
    await kyu.wait(Number(bad), { timeout: "20s" });
    const st = await s.getJobStatus("p", "echo", id);
    assert.equal(st.state, "completed");
    assert.equal(st.attemptsMade, 1);
    assert.ok(st.finishedOn instanceof Date);
    const b = await s.getJobStatus("p", "echo", bad);
    assert.equal(b.state, "failed");
    assert.match(b.failedReason, /told to fail/);
    assert.equal((await s.getJobStatus("p", "echo", later)).state, "delayed");
    assert.equal(await s.getJobStatus("p", "other", id), null);
    assert.equal(await s.getJobStatus("p", "echo", "999999"), null);
    assert.deepEqual(seen[0], ["t2", { n: 1 }]);
    assert.deepEqual(s.runs.map((r) => r.status).sort(), ["error", "success"]);
    assert.ok((await kyu.schedules()).some((x) => x.name === "plugin.p.echo"));
    await s.removeJob("p", "echo");
    assert.ok(!(await kyu.schedules()).some((x) => x.name === "plugin.p.echo"));
  } finally {
    await s.close();
  }
});
