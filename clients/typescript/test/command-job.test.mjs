// A Node.js script run by kyu serve as a command job reports its progress
// with the job token kyu gives it (KYU_API_URL, KYU_JOB_TOKEN), as the
// README's "In a command job" shows; the token reads nothing else.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { Kyu, UnauthorizedError } from "../dist/index.js";
import { startKyu } from "./kyu-server.mjs";

const dist = fileURLToPath(new URL("../dist/index.js", import.meta.url));
const SCRIPT = `
import { Kyu } from ${JSON.stringify(dist)};
const job = new Kyu({ url: process.env.KYU_API_URL, token: process.env.KYU_JOB_TOKEN });
const id = Number(process.env.KYU_JOB_ID);
await job.reportProgress(id, 40, "step 2 of 5");
const seen = await job.getJob(id);
let other = "allowed";
try { await job.getJob(id + 1000); } catch (e) { other = e.code; }
console.log(JSON.stringify({ token: process.env.KYU_JOB_TOKEN, state: seen.state, progress: seen.progress, other }));
`;

let server;
let kyu;
before(async () => {
  const q = JSON.stringify;
  server = await startKyu({
    toml: `
[jobs.node_report]
command = [${q(process.execPath)}, "--input-type=module", "-e", ${q(SCRIPT)}]
result_from_stdout = true
`,
  });
  kyu = new Kyu({ url: server.url, token: server.admin });
});
after(async () => server?.stop());

test("a command job reports progress through the API with its job token, which expires with the attempt", async () => {
  const { id } = await kyu.enqueue("node_report", {});
  const job = await kyu.wait(id, { timeout: "30s" });
  assert.equal(job.state, "completed", JSON.stringify(job.errors));
  assert.equal(job.result.state, "running");
  assert.deepEqual(job.result.progress, { percent: 40, message: "step 2 of 5" });
  assert.equal(job.result.other, "forbidden_job_token");
  assert.deepEqual(job.progress, { percent: 40, message: "step 2 of 5" });
  const stale = new Kyu({ url: server.url, token: job.result.token });
  await assert.rejects(stale.getJob(id), (e) => e instanceof UnauthorizedError && /expired with its attempt 1/.test(e.message));
  await assert.rejects(stale.queues(), UnauthorizedError);
});
