import type { Config } from "../lib/config.ts";
import type { Services } from "../lib/services.ts";
import { views } from "../lib/windows/views.ts";
import { createAlertsJob } from "./alerts/job.ts";
import { createChain } from "./chain/chain.ts";
import { createRepeats } from "./chain/repeats.ts";
import { createDimsCache } from "./enrich/dims-cache.ts";
import { createEnrichedOutput } from "./enrich/job.ts";
import { type RunnerOptions, runJob, type StreamJob } from "./runner.ts";
import { createLakeSink } from "./lake/index.ts";
import { createWindowsJob } from "./windows/job.ts";

/** An operator of the chain: what it does, how it is built, and its runner's defaults. */
export interface Job {
  name: string;
  description: string;
  create(services: Services): Promise<StreamJob>;
  defaults?(services: Services): RunnerOptions;
  /** Starts this operator alone on its own chain (tests and `bun run worker <name>`); resolves a function that stops it. */
  start(services: Services, options?: RunnerOptions): Promise<() => Promise<void>>;
}

const operator = (name: string, description: string, create: (services: Services) => Promise<StreamJob>, defaults?: (services: Services) => RunnerOptions): Job => ({
  name,
  description,
  create,
  defaults,
  start: (services, options) => startChain([name], services, options),
});

/** Every operator, by name. An operator is added here and nowhere else. */
export const jobs: Record<string, Job> = {
  enrich: operator("enrich", "enriched events → topic events.enriched, for consumers outside the pipeline (ENRICHED_TOPIC=off skips it)", async (s) => createEnrichedOutput({ bus: s.bus, topics: s.topics })),
  windows: operator("windows", "enriched events → window aggregates (six views) in Postgres; late events → events.late", async (s) =>
    createWindowsJob({ bus: s.bus, sql: s.db.sql, topics: s.topics, logger: s.logger.child({ job: "windows" }), views: [...views.values()], idleTimeoutMs: s.config.watermarkIdleTimeoutMs }),
  ),
  lake: operator(
    "lake",
    "enriched events → Delta tables in the lake (type/date/hour); dims export; compaction of closed hours; VACUUM",
    createLakeSink,
    // A checkpoint is a flush: by time, or sooner by size.
    (s) => ({ commitIntervalMs: s.config.lakeSink.flushIntervalMs, maxPending: s.config.lakeSink.flushMaxRecords }),
  ),
  alerts: operator(
    "alerts",
    "enriched events → alerts (Postgres, topic): speeding, gear_mismatch, high_rpm",
    async (s) => createAlertsJob({ bus: s.bus, topics: s.topics, logger: s.logger.child({ job: "alerts" }) }),
    // An alert is worth little late: alerts commit within a few ms; positions alone, as often as the others.
    // Embedded, PGlite runs on this thread and a transaction costs it ~1-2 ms: every 25 ms there.
    (s) => ({ commitIntervalMs: s.config.mode === "embedded" ? 25 : 5, positionsIntervalMs: 250 }),
  ),
};

/** The operators `bun run worker all` and `bun run start` chain: every one, less events.enriched when switched off. */
export const defaultOperators = (config: Pick<Config, "enrichedTopic">) => Object.keys(jobs).filter((name) => name !== "enrich" || config.enrichedTopic);

/** The consumer group of a chain of `names`: named after the set, so processes running the same set share the partitions. */
export const chainGroupOf = (names: string[], config: Pick<Config, "topicPrefix">) => `${config.topicPrefix}${[...names].sort().join("+")}`;

/**
 * One consumer of events.raw feeding the named operators (workers/chain). The consumer group is named
 * after the set of operators, so processes running the same set share the partitions between them.
 * `options` override every operator's runner defaults (tests use short commit intervals).
 */
export async function startChain(names: string[], services: Services, options?: RunnerOptions): Promise<() => Promise<void>> {
  const selected = names.map((name) => {
    const job = jobs[name];
    if (!job) throw new Error(`unknown job ${name}`);
    return job;
  });
  const operators = await Promise.all(selected.map((job) => job.create(services)));
  return runChain(
    operators.map((job, i) => ({ job, options: { ...selected[i]?.defaults?.(services), ...options } })),
    services,
    chainGroupOf(names, services.config),
  );
}

/**
 * Runs `operators` chained on one consumer of their input (events.raw; tests use another topic) in
 * consumer group `group`; resolves a function that stops them.
 */
export async function runChain(operators: { job: StreamJob; options?: RunnerOptions }[], services: Services, group: string): Promise<() => Promise<void>> {
  const topic = operators[0]?.job.input ?? services.topics.raw;
  if (operators.some((o) => o.job.input !== topic)) throw new Error("chained operators must share their input topic");
  const logger = services.logger.child({ chain: operators.map((o) => o.job.name).join("+") });
  const dims = await createDimsCache(services.db.sql, logger);
  const repeats = createRepeats({ sql: services.db.sql, topic, defaultHorizonMs: services.config.dedupeHorizonMs, logger, spill: services.config.dedupeSpill });
  const chain = createChain({ bus: services.bus, topic, group, operators: operators.length, dims, repeats, logger });
  const running = await Promise.all(operators.map(({ job, options }) => runJob(job, chain, services, options)));
  return async () => {
    await chain.stop();
    await Promise.all(running.map((r) => r.stop()));
    repeats.close();
    dims.close();
  };
}
