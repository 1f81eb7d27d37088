import { openBus } from "./bus/index.ts";
import type { Bus } from "./bus/types.ts";
import type { Config } from "./config.ts";
import { type Db, openDb } from "./db/index.ts";
import { openLake } from "./lake/index.ts";
import type { ObjectStore } from "./lake/types.ts";
import { failingJobs } from "./job-health.ts";
import { createProgressWatch } from "./job-progress.ts";
import type { Logger } from "./log.ts";
import { type Topics, topicNames, topicSpecs } from "./topics.ts";

/** Connections to the external systems, opened once per process and shared by api and workers. */
export interface Services {
  config: Config;
  logger: Logger;
  bus: Bus;
  db: Db;
  lake: ObjectStore;
  topics: Topics;
}

export type Check = { status: "ok" } | { status: "failing"; error: string };

export async function openServices(config: Config, logger: Logger): Promise<Services> {
  const bus = await openBus(config, logger);
  const topics = topicNames(config.topicPrefix);
  try {
    await bus.ensureTopics(topicSpecs(topics, config.busPartitions));
    const db = await openDb(config, logger);
    return { config, logger, bus, db, lake: openLake(config), topics };
  } catch (error) {
    await bus.close().catch(() => undefined);
    throw error;
  }
}

export async function closeServices(services: Services): Promise<void> {
  await services.bus.close();
  await services.db.close();
}

async function check(probe: () => Promise<void>, timeoutMs: number): Promise<Check> {
  let timer: Timer | undefined;
  try {
    await Promise.race([
      probe(),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
      }),
    ]);
    return { status: "ok" };
  } catch (error) {
    return { status: "failing", error: error instanceof Error ? error.message : String(error) };
  } finally {
    clearTimeout(timer);
  }
}

const progressWatches = new WeakMap<Services, ReturnType<typeof createProgressWatch>>();

/**
 * Whether the jobs make progress: none of this process's jobs has failed its checkpoints for longer
 * than READY_STALL_MS, and no job (in any process) has records waiting while its committed position
 * stands still for that long.
 */
async function jobsProgress(services: Services): Promise<void> {
  const stallMs = services.config.readyStallMs;
  let watch = progressWatches.get(services);
  if (!watch) {
    watch = createProgressWatch(stallMs);
    progressWatches.set(services, watch);
  }
  const problems = failingJobs(stallMs).map((f) => `${f.job}: checkpoints failing for ${Math.round(f.failingForMs / 1000)} s (${f.error.slice(0, 300)})`);
  for (const s of await watch(services)) problems.push(`${s.job}: ${s.lag} records waiting on ${s.topic}/${s.partition} with no progress for ${Math.round(s.stalledForMs / 1000)} s`);
  if (problems.length > 0) throw new Error(problems.join("; "));
}

/**
 * The bus answers and takes writes: an embedded bus refuses produces to a topic over its retention cap
 * while a lagging consumer group holds the segments that would go; the reason names topic, group and offset.
 */
async function busTakesWrites(services: Services): Promise<void> {
  await services.bus.ping();
  const blocked = (await services.bus.storage()).flatMap((t) => (t.blocked ? [t.blocked.reason] : []));
  if (blocked.length > 0) throw new Error(blocked.join("; "));
}

/** Whether bus, db and lake answer (and the bus takes writes) and the jobs make progress, each checked at once and bounded in time. */
export async function readiness(services: Services, timeoutMs = 3_000) {
  const [bus, db, lake, jobs] = await Promise.all([
    check(() => busTakesWrites(services), timeoutMs),
    check(() => services.db.ping(), timeoutMs),
    check(() => services.lake.ping(), timeoutMs),
    check(() => jobsProgress(services), timeoutMs),
  ]);
  return { ready: [bus, db, lake, jobs].every((c) => c.status === "ok"), checks: { bus, db, lake, jobs } };
}
