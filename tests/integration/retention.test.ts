import { afterAll, beforeAll, beforeEach, describe, expect, test } from "bun:test";
import { connectPostgres, type Db, type Sql, startPglite } from "../../lib/db/index.ts";
import { migrate } from "../../lib/db/migrate.ts";
import { createLogger } from "../../lib/log.ts";
import { RETENTION_JOB, RETENTION_LOCK_KEY, retainOnce, startRetention } from "../../workers/maintenance/retention.ts";
import { freshDatabase } from "../support/pg.ts";
import { tempDir } from "../support/tmp.ts";
import { waitFor } from "../support/wait.ts";

/**
 * Table retention (workers/maintenance/retention.ts) on real Postgres and on the embedded PGlite: rows past
 * their table's horizon go, in batches, and everything else stays — open windows whatever their age, alerts
 * by when they were raised (created_at), not by their event time.
 */

const quiet = createLogger({ test: "retention" }, () => undefined);
const DAY = 86_400_000;
const retention = { alertsMs: 30 * DAY, aggregatesMs: 90 * DAY, runsMs: 30 * DAY };
const NOW = Date.now();
const ago = (ms: number) => new Date(NOW - ms);

interface Impl {
  name: string;
  open(): Promise<Db>;
  /** Another client of the same database (another process); none for PGlite, one process's database. */
  another?(): Promise<Db>;
  cleanup(): Promise<void>;
}

const postgresImpl = (): Impl => {
  let database: Awaited<ReturnType<typeof freshDatabase>> | undefined;
  return {
    name: "postgres",
    async open() {
      database = await freshDatabase();
      return connectPostgres(database.url, quiet);
    },
    async another() {
      if (!database) throw new Error("open first");
      return connectPostgres(database.url, quiet, { max: 2 });
    },
    cleanup: async () => database?.drop(),
  };
};

const pgliteImpl = (): Impl => {
  const dir = tempDir("devpipe-retention-");
  return { name: "pglite", open: () => startPglite(dir.path, quiet, { maintenance: { checkpointPollMs: 0, vacuumIntervalMs: 0 } }), cleanup: async () => dir.remove() };
};

async function insertWindow(sql: Sql, w: { view?: string; key: string; start: Date; end: Date; final: boolean; partition?: number }) {
  await sql`insert into aggregates (view, key, window_start, partition, window_end, final, state)
            values (${w.view ?? "page_views_1m"}, ${w.key}, ${w.start}, ${w.partition ?? 0}, ${w.end}, ${w.final}, ${sql.json({ views: 1 })})`;
}

async function insertAlert(sql: Sql, a: { id: string; eventTime: Date; createdAt: Date }) {
  await sql`insert into alerts (alert_id, event_id, type, key, event_time, rules, event, created_at)
            values (${crypto.randomUUID()}, ${a.id}, 'vehicle.telemetry', 'car-1', ${a.eventTime}, ${["speeding"]}, ${sql.json({ speed: 130 })}, ${a.createdAt})`;
}

async function insertRun(sql: Sql, job: string, startedAt: Date, status = "succeeded") {
  await sql`insert into pipeline_runs (job, started_at, finished_at, status, records) values (${job}, ${startedAt}, ${startedAt}, ${status}, 1)`;
}

const keys = async (sql: Sql) => (await sql<{ key: string }[]>`select key from aggregates order by key`).map((r) => r.key);
const alertIds = async (sql: Sql) => (await sql<{ event_id: string }[]>`select event_id from alerts order by event_id`).map((r) => r.event_id);
const runJobs = async (sql: Sql) => (await sql<{ job: string }[]>`select job from pipeline_runs order by job`).map((r) => r.job);

for (const make of [postgresImpl, pgliteImpl]) {
  const impl = make();
  describe(`table retention: ${impl.name}`, () => {
    let db: Db;
    beforeAll(async () => {
      db = await impl.open();
      await migrate(db.sql, quiet);
    });
    afterAll(async () => {
      await db?.close();
      await impl.cleanup();
    });
    beforeEach(async () => {
      await db.sql`truncate aggregates, alerts, pipeline_runs`;
    });

    test("final windows past the horizon go; open windows of any age and recent final windows stay", async () => {
      const minute = 60_000;
      const old = ago(91 * DAY);
      await insertWindow(db.sql, { key: "old-final", start: new Date(old.getTime() - minute), end: old, final: true });
      await insertWindow(db.sql, { key: "old-open", start: new Date(old.getTime() - minute), end: old, final: false });
      await insertWindow(db.sql, { key: "old-final-p1", start: new Date(old.getTime() - minute), end: old, final: true, partition: 1 });
      await insertWindow(db.sql, { key: "fresh-final", start: ago(DAY + minute), end: ago(DAY), final: true });
      await insertWindow(db.sql, { key: "fresh-open", start: ago(minute), end: ago(0), final: false });
      // Started before the cutoff but ends after it (a long session): not past the horizon yet.
      await insertWindow(db.sql, { view: "user_sessions", key: "straddling-final", start: ago(90 * DAY + 3_600_000), end: ago(90 * DAY - 3_600_000), final: true });

      const result = await retainOnce({ db, logger: quiet, retention });
      expect(result).toMatchObject({ aggregates: 2, alerts: 0, runs: 0 });
      expect(await keys(db.sql)).toEqual(["fresh-final", "fresh-open", "old-open", "straddling-final"]);
      // Idempotent: a second pass finds nothing.
      expect(await retainOnce({ db, logger: quiet, retention })).toMatchObject({ aggregates: 0 });
    });

    test("alerts go by when they were raised, not by their event time; old runs go, recent ones stay", async () => {
      await insertAlert(db.sql, { id: "raised-31d-ago", eventTime: ago(31 * DAY), createdAt: ago(31 * DAY) });
      await insertAlert(db.sql, { id: "raised-31d-ago-recent-event", eventTime: ago(DAY), createdAt: ago(31 * DAY) });
      await insertAlert(db.sql, { id: "raised-now-backfilled", eventTime: ago(40 * DAY), createdAt: ago(0) });
      await insertAlert(db.sql, { id: "raised-29d-ago", eventTime: ago(29 * DAY), createdAt: ago(29 * DAY) });
      await insertRun(db.sql, "lake-old", ago(31 * DAY));
      await insertRun(db.sql, "windows-old-dead-letter", ago(45 * DAY), "dead_letter");
      await insertRun(db.sql, "lake-recent", ago(29 * DAY));

      const result = await retainOnce({ db, logger: quiet, retention });
      expect(result).toMatchObject({ alerts: 2, runs: 2, aggregates: 0 });
      expect(await alertIds(db.sql)).toEqual(["raised-29d-ago", "raised-now-backfilled"]);
      expect(await runJobs(db.sql)).toEqual(["lake-recent"]);
    });

    test("a backlog larger than a batch is deleted batch by batch in one pass", async () => {
      const n = 53;
      await db.sql`insert into alerts (alert_id, event_id, type, key, event_time, rules, event, created_at)
        select gen_random_uuid(), 'old-' || g, 'vehicle.telemetry', 'car-1', ${ago(60 * DAY)}, '{speeding}', '{}'::jsonb, ${ago(60 * DAY)} + g * interval '1 second'
        from generate_series(1, ${n}) g`;
      await db.sql`insert into aggregates (view, key, window_start, partition, window_end, final, state)
        select 'page_views_1m', 'k', ${ago(200 * DAY)} + g * interval '1 minute', 0, ${ago(200 * DAY)} + (g + 1) * interval '1 minute', g % 2 = 0, '{}'::jsonb
        from generate_series(1, ${n}) g`;
      await insertAlert(db.sql, { id: "new", eventTime: ago(0), createdAt: ago(0) });

      const result = await retainOnce({ db, logger: quiet, retention, batchSize: 10, pauseMs: 0 });
      expect(result).toMatchObject({ alerts: n, aggregates: Math.floor(n / 2) });
      expect(await alertIds(db.sql)).toEqual(["new"]);
      const [left] = await db.sql<{ open: number; final: number }[]>`select count(*) filter (where not final)::int as open, count(*) filter (where final)::int as final from aggregates`;
      expect(left).toEqual({ open: Math.ceil(n / 2), final: 0 });
    });

    test("the periodic job deletes, then records its run in pipeline_runs", async () => {
      await insertAlert(db.sql, { id: "old", eventTime: ago(31 * DAY), createdAt: ago(31 * DAY) });
      await insertRun(db.sql, "lake-old", ago(31 * DAY));
      const stop = startRetention({ db, logger: quiet, retention: { ...retention, intervalMs: 60_000 }, firstRunMs: 0 });
      try {
        const runs = await waitFor(async () => {
          const rows = await db.sql<{ status: string; records: number }[]>`select status, records from pipeline_runs where job = ${RETENTION_JOB}`;
          return rows.length > 0 ? rows : undefined;
        }, { what: "a retention run" });
        expect([...runs]).toEqual([{ status: "succeeded", records: 2 }]);
        expect(await alertIds(db.sql)).toEqual([]);
      } finally {
        await stop();
      }
    });

    const another = impl.another?.bind(impl);
    if (another) {
      test("with several processes, the one holding the advisory lock does the pass and the others skip it", async () => {
        await insertAlert(db.sql, { id: "old", eventTime: ago(31 * DAY), createdAt: ago(31 * DAY) });
        const other = await db.sql.reserve();
        try {
          await other`select pg_advisory_lock(${RETENTION_LOCK_KEY})`;
          expect(await retainOnce({ db, logger: quiet, retention })).toBeUndefined();
          expect(await alertIds(db.sql)).toEqual(["old"]);
          await other`select pg_advisory_unlock(${RETENTION_LOCK_KEY})`;
        } finally {
          other.release();
        }
        // Concurrent passes (several worker processes): the rows past the horizon are deleted once, nothing else.
        await db.sql`insert into alerts (alert_id, event_id, type, key, event_time, rules, event, created_at)
          select gen_random_uuid(), 'bulk-' || g, 'vehicle.telemetry', 'car-1', now(), '{speeding}', '{}'::jsonb, ${ago(40 * DAY)}
          from generate_series(1, 500) g`;
        await insertAlert(db.sql, { id: "keep", eventTime: ago(0), createdAt: ago(0) });
        const dbs = await Promise.all([1, 2, 3].map(() => another()));
        try {
          const results = await Promise.all(dbs.map((other) => retainOnce({ db: other, logger: quiet, retention, batchSize: 50, pauseMs: 1 })));
          const deleted = results.reduce((sum, r) => sum + (r?.alerts ?? 0), 0);
          expect(deleted).toBe(501);
          expect(await alertIds(db.sql)).toEqual(["keep"]);
        } finally {
          await Promise.all(dbs.map((other) => other.close()));
        }
      });
    }
  });
}
