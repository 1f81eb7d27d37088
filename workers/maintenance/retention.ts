import type { Config } from "../../lib/config.ts";
import type { Db, Sql } from "../../lib/db/index.ts";
import type { Logger } from "../../lib/log.ts";
import { recordRun } from "../../lib/store/runs.ts";

/**
 * Table retention: what each Postgres table keeps, deleted in small batches by a periodic job (both modes).
 *
 * | table | what goes | setting |
 * |---|---|---|
 * | alerts | raised (`created_at`) more than the retention ago | ALERTS_RETENTION_DAYS (30) |
 * | aggregates | final windows whose `window_end` is more than the retention ago; open windows never | AGGREGATES_RETENTION_DAYS (90) |
 * | pipeline_runs | runs (flushes, compactions, dead letters, retention) started more than the retention ago | RUNS_RETENTION_DAYS (30) |
 *
 * Alerts go by `created_at`, not `event_time`: the table holds the alerts raised in the window whatever
 * the devices' clocks say (an alert for a back-filled event is not deleted as it is raised), and what goes
 * is the oldest run of `seq`, so stream cursors never see holes.
 *
 * Not here, and why:
 * - dedupe_segments: the chain purges it itself (workers/chain/dedupe.ts, rows past the dedupe horizon of
 *   their partition's newest row, batches of 500, once a minute) — its horizon is relative to the log, not
 *   to the wall clock, and only the partition's owner knows it.
 * - job_offsets, window_progress (with type_watermarks), dims_versions: one row per job × topic × partition
 *   or per dimension, updated in place: bounded. The dims tables are replaced whole by PUT.
 *   schema_migrations: one row per migration.
 *
 * Each statement deletes at most `batchSize` rows and the job yields between statements (PGlite has one
 * connection: the jobs' commits run in between). Deletes are idempotent: two processes deleting at once
 * both end right (a row deleted by one is skipped by the other). In services mode a session advisory lock
 * (pg_try_advisory_lock) lets one process do a pass while the others skip it; PGlite is one process's, so
 * there it takes no lock (holding its one connection for a whole pass would stall the jobs).
 */
export interface RetentionOptions {
  db: Pick<Db, "kind" | "sql">;
  logger: Logger;
  retention: Pick<Config["retention"], "alertsMs" | "aggregatesMs" | "runsMs">;
  /** Rows per delete statement at most. */
  batchSize?: number;
  /** Pause between two statements, so others get the connection. */
  pauseMs?: number;
  /** The clock (tests). */
  now?: () => number;
  /** Stops a pass between batches (the job's stop). */
  stopped?: () => boolean;
}

export interface RetentionResult {
  alerts: number;
  aggregates: number;
  runs: number;
  ms: number;
}

export const RETENTION_JOB = "retention";
/** Any constant, unique among this project's advisory locks (migrate.ts uses 7_411_902_113). */
export const RETENTION_LOCK_KEY = 7_411_902_114;
export const RETENTION_BATCH = 5_000;
/** Embedded: a batch of 1,000 is a few ms of PGlite's one connection. */
export const RETENTION_BATCH_PGLITE = 1_000;
const PAUSE_MS = 10;

type Target = { table: keyof Omit<RetentionResult, "ms">; deleteBatch: (sql: Sql, cutoff: Date, limit: number) => Promise<number> };

/** Deletes the oldest rows (by `time`, at most `limit`) older than the cutoff, through the key `id`. */
const oldestBefore =
  (table: string, id: string, time: string): Target["deleteBatch"] =>
  async (sql, cutoff, limit) =>
    (
      await sql`
        delete from ${sql(table)} where ${sql(id)} = any(array(
          select ${sql(id)} from ${sql(table)} where ${sql(time)} < ${cutoff} order by ${sql(time)} limit ${limit}))`
    ).count;

const targets: Target[] = [
  // By when raised; the oldest run of `seq` goes first, so cursors never see holes.
  { table: "alerts", deleteBatch: oldestBefore("alerts", "seq", "created_at") },
  {
    table: "aggregates",
    // `window_start < cutoff` uses aggregates_final_start (012); the delete re-checks final and the end, so a
    // row changed in between (it cannot be, once final) would stay.
    deleteBatch: async (sql, cutoff, limit) =>
      (
        await sql`
          with doomed as (
            select view, window_start, key, partition from aggregates
            where final and window_start < ${cutoff} and window_end < ${cutoff}
            limit ${limit})
          delete from aggregates a using doomed d
          where a.view = d.view and a.window_start = d.window_start and a.key = d.key and a.partition = d.partition
            and a.final and a.window_end < ${cutoff}`
      ).count,
  },
  { table: "runs", deleteBatch: oldestBefore("pipeline_runs", "run_id", "started_at") },
];

const horizonOf = (retention: RetentionOptions["retention"], table: Target["table"]) =>
  table === "alerts" ? retention.alertsMs : table === "aggregates" ? retention.aggregatesMs : retention.runsMs;

/**
 * One retention pass: every table down to its horizon, batch by batch. Resolves undefined when another
 * process holds the retention lock (it is doing the pass).
 */
export async function retainOnce(options: RetentionOptions): Promise<RetentionResult | undefined> {
  const { db } = options;
  const batchSize = options.batchSize ?? (db.kind === "pglite" ? RETENTION_BATCH_PGLITE : RETENTION_BATCH);
  const pauseMs = options.pauseMs ?? PAUSE_MS;
  const stopped = options.stopped ?? (() => false);
  const now = (options.now ?? Date.now)();
  const started = performance.now();
  const result: RetentionResult = { alerts: 0, aggregates: 0, runs: 0, ms: 0 };

  const pass = async (sql: Sql) => {
    for (const target of targets) {
      const cutoff = new Date(now - horizonOf(options.retention, target.table));
      for (;;) {
        if (stopped()) return;
        const deleted = await target.deleteBatch(sql, cutoff, batchSize);
        result[target.table] += deleted;
        if (deleted < batchSize) break;
        await Bun.sleep(pauseMs);
      }
    }
  };

  if (db.kind === "pglite") {
    await pass(db.sql);
  } else {
    // A session lock: held on one connection, reserved for the pass (a pooled statement could run elsewhere).
    const conn = await db.sql.reserve();
    try {
      const [lock] = await conn<{ locked: boolean }[]>`select pg_try_advisory_lock(${RETENTION_LOCK_KEY}) as locked`;
      if (!lock?.locked) return undefined;
      try {
        await pass(conn);
      } finally {
        // A broken connection has lost the lock with its session already.
        await conn`select pg_advisory_unlock(${RETENTION_LOCK_KEY})`.catch(() => undefined);
      }
    } finally {
      conn.release();
    }
  }
  result.ms = Math.round(performance.now() - started);
  return result;
}

export interface RetentionJobOptions {
  db: Db;
  logger: Logger;
  retention: Config["retention"];
  /** First pass after this long (default: a few seconds, so a restart catches up soon). */
  firstRunMs?: number;
  batchSize?: number;
}

/**
 * Runs `retainOnce` every `retention.intervalMs` (the next pass starts an interval after the previous one
 * ended), logs and records (pipeline_runs, job `retention`) each pass that deleted something or failed.
 * Resolves a function that stops it: the pass running ends after its current batch.
 */
export function startRetention(options: RetentionJobOptions): () => Promise<void> {
  const logger = options.logger.child({ job: RETENTION_JOB });
  const { db, retention } = options;
  let stopped = false;
  let timer: Timer | undefined;
  let running: Promise<void> | undefined;

  const run = async () => {
    const startedAt = new Date();
    try {
      const result = await retainOnce({ db, logger, retention, batchSize: options.batchSize, stopped: () => stopped });
      if (!result) {
        logger.debug("retention pass skipped: another process holds the lock");
        return;
      }
      const deleted = result.alerts + result.aggregates + result.runs;
      if (deleted === 0) return;
      logger.info("retention deleted expired rows", { ...result, alerts_retention_ms: retention.alertsMs, aggregates_retention_ms: retention.aggregatesMs, runs_retention_ms: retention.runsMs });
      await recordRun(db.sql, { job: RETENTION_JOB, startedAt, finishedAt: new Date(), status: "succeeded", records: deleted });
    } catch (error) {
      if (stopped) return;
      logger.warn("retention pass failed; retried on the next tick", { error });
      await recordRun(db.sql, { job: RETENTION_JOB, startedAt, finishedAt: new Date(), status: "failed", records: 0, error: error instanceof Error ? error.message : String(error) }).catch(() => undefined);
    }
  };
  const schedule = (ms: number) => {
    if (stopped) return;
    timer = setTimeout(() => {
      running = run().finally(() => {
        running = undefined;
        schedule(retention.intervalMs);
      });
    }, ms);
    timer.unref();
  };
  // Processes started together spread their first passes; the lock makes the losers skip anyway.
  schedule(options.firstRunMs ?? Math.min(retention.intervalMs, 5_000) + Math.floor(Math.random() * Math.min(retention.intervalMs, 5_000)));

  return async () => {
    stopped = true;
    clearTimeout(timer);
    await running;
  };
}
