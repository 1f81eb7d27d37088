import type { Services } from "../lib/services.ts";
import { views } from "../lib/windows/views.ts";
import { createAlertsJob } from "./alerts/job.ts";
import { createDimsCache } from "./enrich/dims-cache.ts";
import { createEnrichJob } from "./enrich/job.ts";
import { type RunnerOptions, runJob, type StreamJob } from "./runner.ts";
import { createLakeSink } from "./lake/index.ts";
import { createWindowsJob } from "./windows/job.ts";

/** A stream job the runner can host: it starts consuming and resolves a function that stops it. */
export interface Job {
  name: string;
  description: string;
  start(services: Services, options?: RunnerOptions): Promise<() => Promise<void>>;
}

const hosted = (name: string, description: string, create: (services: Services) => Promise<StreamJob>, defaults?: (services: Services) => RunnerOptions): Job => ({
  name,
  description,
  async start(services, options) {
    const job = await create(services);
    const running = await runJob(job, services, { ...defaults?.(services), ...options });
    return running.stop;
  },
});

/** Every job, by name. A job is added here and nowhere else. */
export const jobs: Record<string, Job> = {
  enrich: hosted("enrich", "events.raw → events.enriched: dims join, expected_gear", async (s) =>
    createEnrichJob({ bus: s.bus, topics: s.topics, dims: await createDimsCache(s.db.sql, s.logger.child({ job: "enrich" })), logger: s.logger.child({ job: "enrich" }), dedupeHorizonMs: s.config.dedupeHorizonMs }),
  ),
  windows: hosted("windows", "events.enriched → window aggregates (six views) in Postgres; late events → events.late", async (s) =>
    createWindowsJob({ bus: s.bus, sql: s.db.sql, topics: s.topics, logger: s.logger.child({ job: "windows" }), views: [...views.values()], idleTimeoutMs: s.config.watermarkIdleTimeoutMs }),
  ),
  lake: hosted(
    "lake",
    "events.enriched → Parquet in the lake (type/date/hour), manifest in Postgres; dims export; compaction of closed hours",
    createLakeSink,
    // A checkpoint is a flush: by time, or sooner by size.
    (s) => ({ commitIntervalMs: s.config.lakeSink.flushIntervalMs, maxPending: s.config.lakeSink.flushMaxRecords }),
  ),
  alerts: hosted("alerts", "events.enriched → alerts (Postgres, topic): speeding, gear_mismatch, high_rpm", async (s) => createAlertsJob({ bus: s.bus, topics: s.topics, logger: s.logger.child({ job: "alerts" }) })),
};
