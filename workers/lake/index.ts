import { join } from "node:path";
import { Duck } from "../../lib/lake/duckdb.ts";
import { lakeCacheDir, localFiles } from "../../lib/lake/local-files.ts";
import type { Services } from "../../lib/services.ts";
import type { StreamJob } from "../runner.ts";
import { compactOnce } from "./compaction.ts";
import { exportChangedDims } from "./dims-export.ts";
import { createLakeJob } from "./job.ts";

const DIMS_POLL_MS = 2_000;

/**
 * The lake sink plus its maintenance in the same process: dims exported when they change and closed
 * hours compacted, each on its own timer and its own DuckDB (a connection runs one statement at a time).
 */
export async function createLakeSink(services: Services): Promise<StreamJob> {
  const logger = services.logger.child({ job: "lake" });
  const workDir = join(services.config.dataDir, "lake-work", String(process.pid));
  const sinkDuck = await Duck.open({ threads: "2", memory_limit: "2GB" });
  const maintenanceDuck = await Duck.open({ threads: "1", memory_limit: "1GB" });
  const files = localFiles(services.lake, lakeCacheDir(services.config.dataDir));
  const job = createLakeJob({ sql: services.db.sql, store: services.lake, duck: sinkDuck, workDir: join(workDir, "flush"), topics: services.topics, logger });
  const { compactIntervalMs, compactAfterMs } = services.config.lakeSink;
  const maintenance = { sql: services.db.sql, store: services.lake, duck: maintenanceDuck, workDir: join(workDir, "maintenance") };

  /** One maintenance task at a time; a tick that finds one running is skipped. */
  let busy = false;
  const every = (ms: number, what: string, task: () => Promise<unknown>) =>
    setInterval(() => {
      if (busy) return;
      busy = true;
      task()
        .catch((error: unknown) => logger.error(`${what} failed; retried on the next tick`, { error }))
        .finally(() => {
          busy = false;
        });
    }, ms);
  const timers = [
    every(DIMS_POLL_MS, "dims export", () => exportChangedDims(maintenance)),
    every(compactIntervalMs, "compaction", async () => {
      const result = await compactOnce({ ...maintenance, files, logger, closeAfterMs: compactAfterMs, retireGraceMs: 2 * services.config.query.timeoutMs + 60_000 });
      if (result.merged > 0 || result.deleted > 0) logger.info("compacted", result);
    }),
  ];

  return {
    ...job,
    async close() {
      for (const timer of timers) clearInterval(timer);
      while (busy) await Bun.sleep(20);
      await job.close?.();
      sinkDuck.close();
      maintenanceDuck.close();
    },
  };
}
