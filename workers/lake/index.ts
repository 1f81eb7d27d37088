import { join } from "node:path";
import { Duck } from "../../lib/lake/duckdb.ts";
import { lakeCacheDir, localFiles } from "../../lib/lake/local-files.ts";
import type { Services } from "../../lib/services.ts";
import type { StreamJob } from "../runner.ts";
import { compactionDuckSettings, compactOnce } from "./compaction.ts";
import { exportChangedDims } from "./dims-export.ts";
import { createLakeJob } from "./job.ts";
import { vacuumOnce } from "./vacuum.ts";

const DIMS_POLL_MS = 2_000;
const VACUUM_INTERVAL_MS = 3_600_000;
/** VACUUM's first run, shortly after start: long enough not to compete with the sink's start-up. */
const VACUUM_FIRST_RUN_MS = 30_000;

/** Runs tasks one at a time: a tick that finds the lane busy is skipped. */
class Lane {
  private running: Promise<void> | undefined;

  constructor(private readonly onError: (what: string, error: unknown) => void) {}

  run(what: string, task: () => Promise<unknown>): void {
    if (this.running) return;
    this.running = task()
      .then(() => undefined)
      .catch((error: unknown) => this.onError(what, error))
      .finally(() => {
        this.running = undefined;
      });
  }

  async idle(): Promise<void> {
    while (this.running) await this.running;
  }
}

/**
 * The lake sink plus its maintenance in the same process: dims exported when they change, closed hours
 * compacted, and VACUUM. Dims export and compaction take turns in one lane, so at most one maintenance
 * DuckDB is busy at a time; VACUUM needs no DuckDB and has its own lane.
 */
export async function createLakeSink(services: Services): Promise<StreamJob> {
  const logger = services.logger.child({ job: "lake" });
  const workDir = join(services.config.dataDir, "lake-work", String(process.pid));
  const sinkDuck = await Duck.open({ threads: "2", memory_limit: "2GB" }, "sink");
  const dimsDuck = await Duck.open({ threads: "1", memory_limit: "256MB" }, "dims");
  const files = localFiles(services.lake, lakeCacheDir(services.config.dataDir));
  const { compactIntervalMs, compactAfterMs, retentionMs } = services.config.lakeSink;
  const job = createLakeJob({ sql: services.db.sql, store: services.lake, duck: sinkDuck, workDir: join(workDir, "flush"), topics: services.topics, logger, retentionMs });
  const maintenance = { sql: services.db.sql, store: services.lake, workDir: join(workDir, "maintenance"), logger, retentionMs };

  const onError = (what: string, error: unknown) => logger.error(`${what} failed; retried on the next tick`, { error });
  const duckLane = new Lane(onError);
  const vacuumLane = new Lane(onError);
  const compact = async () => {
    const duck = await Duck.open(compactionDuckSettings(join(maintenance.workDir, "duck-spill")), "compaction");
    const result = await compactOnce({ ...maintenance, duck, files, closeAfterMs: compactAfterMs }).finally(() => duck.close());
    if (result.groups > 0 || result.conflicts > 0) logger.info("compacted", { ...result });
  };
  const vacuum = async () => {
    const result = await vacuumOnce({ store: services.lake, files, logger, retentionMs });
    if (result.removed > 0 || result.orphans > 0 || result.logEntries > 0) logger.info("vacuumed", { ...result });
  };
  // Workers start together; a random phase keeps their compactions from always starting at the same moment
  // (harmless, as one commit wins, but the losers' work is wasted).
  const phase = (ms: number) => Math.floor(Math.random() * ms);
  const timers: ReturnType<typeof setTimeout>[] = [];
  let closed = false;
  const every = (ms: number, firstAfterMs: number, run: () => void) => {
    const tick = () => {
      if (!closed) run();
    };
    timers.push(
      setTimeout(() => {
        if (closed) return;
        tick();
        timers.push(setInterval(tick, ms));
      }, firstAfterMs),
    );
  };
  every(DIMS_POLL_MS, 0, () => duckLane.run("dims export", () => exportChangedDims({ ...maintenance, duck: dimsDuck })));
  every(compactIntervalMs, phase(compactIntervalMs), () => duckLane.run("compaction", compact));
  every(VACUUM_INTERVAL_MS, VACUUM_FIRST_RUN_MS + phase(VACUUM_FIRST_RUN_MS), () => vacuumLane.run("vacuum", vacuum));

  return {
    ...job,
    async close() {
      closed = true;
      for (const timer of timers) clearTimeout(timer);
      await Promise.all([duckLane.idle(), vacuumLane.idle()]);
      await job.close?.();
      sinkDuck.close();
      dimsDuck.close();
    },
  };
}
