// The bench's worker process: a kyu-client Worker with no-op handlers. Told
// what to do over IPC by bench.mjs; reports handler starts and completions.
import { Worker } from "../dist/index.js";

const { KYU_URL, KYU_TOKEN, BENCH_QUEUE, BENCH_CONCURRENCY, BENCH_EXPECT, BENCH_WORKLOAD } = process.env;
const expect = Number(BENCH_EXPECT);
const now = () => performance.timeOrigin + performance.now(); // wall-clock ms, comparable across processes
let done = 0;
let warm = 0;
let t0 = 0;
const latencies = [];
const seen = new Set();
let duplicates = 0;

const worker = new Worker({ url: KYU_URL, token: KYU_TOKEN, queues: [BENCH_QUEUE], concurrency: Number(BENCH_CONCURRENCY), name: "bench" });
worker.register("noop", async ({ id, args }) => {
  if (seen.has(id)) duplicates++;
  seen.add(id);
  if (BENCH_WORKLOAD === "W2") {
    if (args.w) {
      if (++warm === Number(process.env.BENCH_WARMUP)) process.send({ type: "warmdone" });
      return;
    }
    latencies.push(now() - args.t);
  }
  if (++done === expect) {
    process.send({ type: BENCH_WORKLOAD === "W1" ? "w1done" : "w2done", done, process_s: (now() - t0) / 1000, latencies, duplicates });
  }
});
process.on("message", async (m) => {
  if (m.type === "start") {
    t0 = now();
    await worker.start();
    process.send({ type: "started" });
  } else if (m.type === "stop") {
    await worker.close({ graceMs: 1000 });
    process.exit(0);
  }
});
process.send({ type: "ready" });
