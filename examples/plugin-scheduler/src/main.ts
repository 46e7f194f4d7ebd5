/**
 * Runs the google-analytics plugin on kyu: `KYU_URL`, `KYU_TOKEN` (scopes
 * operate, produce, read, work), `TENANT_ID` (default `tenant-1`),
 * `PLUGIN_CRON` (default hourly), `RUNS_DIR` (default `plugin_runs/`).
 * SIGTERM/SIGINT: the worker closes gracefully.
 */
import { JobScheduler } from "./job-scheduler.js";
import * as googleAnalytics from "./plugins/google-analytics.js";

const scheduler = new JobScheduler({
  tenantId: process.env.TENANT_ID ?? "tenant-1",
  runsDir: process.env.RUNS_DIR ?? "plugin_runs",
});
await googleAnalytics.onLoad(scheduler, { cron: process.env.PLUGIN_CRON });
console.log(JSON.stringify({ level: "info", msg: "plugin scheduler running", plugin: googleAnalytics.pluginId }));
for (const sig of ["SIGTERM", "SIGINT"] as const) {
  process.once(sig, () => {
    void scheduler.close().then(() => process.exit(0));
  });
}
