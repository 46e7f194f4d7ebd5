// Throughput and latency of a Node.js worker over kyu's HTTP API, with the
// peers' workload definitions (../../../../shared/bench/peers when present):
//   W1: N no-op jobs enqueued in bulk (chunks of 1000) while the worker waits,
//       then the worker starts; process_per_s = N / (start -> last handler done).
//   W2: one job every 5 ms (1000 after 20 warm-up), the worker idle and
//       waiting; latency = handler start - enqueue call, p50/p99.
// Producer (this process) and worker (bench/worker.mjs) are separate processes.
//
//   npm run build && KYU_BIN=../../target/release/kyu node bench/bench.mjs
//
// Knobs: KYU_BIN (default ../../target/release/kyu, else debug), KYU_BENCH_DATABASE
// (a PostgreSQL URL without schema= gets a fresh schema, named in the output)
// (default a fresh SQLite file), BENCH_N (20000), BENCH_CONCURRENCY (500, the Rust library worker's default),
// BENCH_W2_N (1000), BENCH_W2_INTERVAL_MS (5), BENCH_W2_WARMUP (20), BENCH_WORKLOADS (W1,W2).
import { fork } from "node:child_process";
import { existsSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { Kyu } from "../dist/index.js";

const here = dirname(fileURLToPath(import.meta.url));
const release = resolve(here, "../../../target/release/kyu");
process.env.KYU_BIN ??= existsSync(release) ? release : resolve(here, "../../../target/debug/kyu");
const { startKyu } = await import("../test/kyu-server.mjs");

const N = Number(process.env.BENCH_N ?? 20000);
const CONC = Number(process.env.BENCH_CONCURRENCY ?? 500);
const W2_N = Number(process.env.BENCH_W2_N ?? 1000);
const W2_INTERVAL = Number(process.env.BENCH_W2_INTERVAL_MS ?? 5);
const W2_WARMUP = Number(process.env.BENCH_W2_WARMUP ?? 20);
const WORKLOADS = (process.env.BENCH_WORKLOADS ?? "W1,W2").split(",");
const now = () => performance.timeOrigin + performance.now();
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const pct = (xs, p) => xs[Math.min(xs.length - 1, Math.ceil((p / 100) * xs.length) - 1)];

// Each run on a fresh store: a PostgreSQL URL without a schema gets a fresh
// one (named in the output; drop it afterwards).
let database = process.env.KYU_BENCH_DATABASE;
if (database && /^postgres(ql)?:/.test(database) && !/[?&]schema=/.test(database)) {
  database += `${database.includes("?") ? "&" : "?"}schema=kyu_tsbench_${Date.now()}`;
}
const server = await startKyu({ toml: "", database });
const kyu = new Kyu({ url: server.url, token: server.admin });

function startWorker(workload, queue, expect) {
  const child = fork(join(here, "worker.mjs"), {
    env: { ...process.env, KYU_URL: server.url, KYU_TOKEN: server.admin, BENCH_QUEUE: queue, BENCH_CONCURRENCY: String(CONC), BENCH_EXPECT: String(expect), BENCH_WORKLOAD: workload, BENCH_WARMUP: String(W2_WARMUP) },
  });
  const waiting = new Map();
  child.on("message", (m) => waiting.get(m.type)?.(m));
  return {
    next: (type) => new Promise((r) => waiting.set(type, r)),
    send: (m) => child.send(m),
    stop: () => new Promise((r) => { child.once("exit", r); child.send({ type: "stop" }); }),
  };
}

const rows = [];
try {
  if (WORKLOADS.includes("W1")) {
    const queue = `bench_w1_${Date.now()}`;
    const w = startWorker("W1", queue, N);
    await w.next("ready");
    const t0 = now();
    for (let k = 0; k < N; k += 1000) {
      await kyu.enqueueMany(Array.from({ length: Math.min(1000, N - k) }, (_, i) => ({ kind: "noop", args: { i: k + i }, queue })));
    }
    const enqueue_s = (now() - t0) / 1000;
    const done = w.next("w1done");
    w.send({ type: "start" });
    const r = await done;
    await w.stop();
    rows.push({ workload: "W1", n: N, concurrency: CONC, enqueue_per_s: Math.round(N / enqueue_s), process_per_s: Math.round(r.done / r.process_s), process_s: r.process_s, duplicates: r.duplicates });
  }
  if (WORKLOADS.includes("W2")) {
    const queue = `bench_w2_${Date.now()}`;
    const w = startWorker("W2", queue, W2_N);
    await w.next("ready");
    const started = w.next("started");
    w.send({ type: "start" });
    await started;
    await sleep(1000);
    const paced = async (count, mk) => {
      const start = now();
      for (let i = 0; i < count; i++) {
        const wait = start + i * W2_INTERVAL - now();
        if (wait > 0) await sleep(wait);
        await kyu.enqueue("noop", mk(i), { queue });
      }
    };
    const warm = w.next("warmdone");
    await paced(W2_WARMUP, (i) => ({ i, t: now(), w: 1 }));
    await warm;
    await sleep(200);
    const done = w.next("w2done");
    await paced(W2_N, (i) => ({ i, t: now() }));
    const r = await done;
    await w.stop();
    const lat = r.latencies.sort((a, b) => a - b);
    const round = (x) => Math.round(x * 100) / 100;
    rows.push({ workload: "W2", n: W2_N, concurrency: CONC, interval_ms: W2_INTERVAL, p50_ms: round(pct(lat, 50)), p99_ms: round(pct(lat, 99)), max_ms: round(lat[lat.length - 1]), duplicates: r.duplicates });
  }
} finally {
  await server.stop();
}
console.log(JSON.stringify({ kyu_bin: process.env.KYU_BIN, database: database ?? "sqlite (fresh file)", rows }, null, 2));
