/**
 * Seed 004's example plugin: sync Google Analytics data every hour (3
 * attempts, exponential backoff from 1 s, 5 minute timeout). The API call is
 * a stand-in (`fetchAnalyticsData`); `GA_FAIL_FIRST=N` makes the first N
 * attempts of each run fail, to show the retries.
 */

import type { JobScheduler, PluginContext, Job } from "../job-scheduler.js";

export const pluginId = "google-analytics";
export const jobName = "sync-analytics-data";

async function fetchAnalyticsData(signal: AbortSignal): Promise<{ page: string; views: number }[]> {
  signal.throwIfAborted();
  return [
    { page: "/", views: 120 },
    { page: "/pricing", views: 31 },
  ];
}

export async function onLoad(scheduler: JobScheduler, options: { cron?: string } = {}): Promise<void> {
  const failFirst = Number(process.env.GA_FAIL_FIRST ?? 0);
  await scheduler.registerJob(
    pluginId,
    jobName,
    async (ctx: PluginContext, job: Job) => {
      ctx.logger.info("Starting analytics sync", { jobId: job.id });
      if (job.attemptsMade < failFirst) throw new Error(`analytics API unavailable (attempt ${job.attemptsMade + 1})`);
      const data = await fetchAnalyticsData(ctx.signal);
      await ctx.progress(100, `${data.length} pages`);
      ctx.logger.info("Analytics sync completed", { jobId: job.id, count: data.length });
    },
    {
      cron: options.cron ?? "0 * * * *", // every hour, on the hour
      attempts: 3,
      backoff: { type: "exponential", delay: 1000 },
      timeout: 300_000, // 5 minutes
    },
  );
}

export async function onUnload(scheduler: JobScheduler): Promise<void> {
  await scheduler.removeJob(pluginId, jobName);
}
