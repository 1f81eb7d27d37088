import { afterAll, describe, expect, test } from "bun:test";
import { readdirSync, statSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { type PgliteDb, startPglite } from "../../lib/db/index.ts";
import { createLogger } from "../../lib/log.ts";
import { tempDir } from "../support/tmp.ts";
import { waitFor } from "../support/wait.ts";

/**
 * The embedded database keeps its WAL small: PGlite (single-user Postgres) has no checkpointer, so without
 * one of its own pg_wal grows without bound. After the maintenance's checkpoint, pg_wal is back within
 * max_wal_size; a clean close leaves nothing to replay; its VACUUM reclaims dead rows. Reopen times are printed.
 */

const quiet = createLogger({ test: "pglite-wal" }, () => undefined);
const scratch = tempDir("devpipe-pglite-wal-");
afterAll(() => scratch.remove());

const MB = 1024 * 1024;
/** The smallest max_wal_size Postgres takes (two 16 MB segments): a burst of ~100 MB exceeds it. */
const SMALL = { max_wal_size: "32MB", min_wal_size: "32MB" };
const BURST_ROWS = 300_000;

/** Bytes of WAL segment files on disk. */
function walBytes(dataDir: string): number {
  let total = 0;
  for (const name of readdirSync(join(dataDir, "pg_wal"))) {
    const stat = statSync(join(dataDir, "pg_wal", name));
    if (stat.isFile()) total += stat.size;
  }
  return total;
}

async function maxWalSize(db: PgliteDb): Promise<number> {
  const [row] = await db.sql<{ max_wal_size: string }[]>`show max_wal_size`;
  const match = /^(\d+)MB$/.exec(row?.max_wal_size ?? "");
  if (!match) throw new Error(`unexpected max_wal_size ${row?.max_wal_size}`);
  return Number(match[1]) * MB;
}

async function burst(db: PgliteDb, from = 0) {
  await db.sql`create table if not exists burst (id bigint primary key, payload text not null, n integer not null default 0)`;
  await db.sql`insert into burst select g, repeat('x', 200) from generate_series(${from + 1}::bigint, ${from + BURST_ROWS}::bigint) g
               on conflict (id) do update set n = burst.n + 1`;
}

const mb = (bytes: number) => `${(bytes / MB).toFixed(0)} MB`;

async function timeOpen(dir: string): Promise<{ ms: number; db: PgliteDb }> {
  const started = performance.now();
  const db = await startPglite(dir, quiet, { settings: SMALL, maintenance: { checkpointPollMs: 0, vacuumIntervalMs: 0 } });
  await db.ping();
  return { ms: Math.round(performance.now() - started), db };
}

describe("embedded database WAL and VACUUM", () => {
  test("a burst grows pg_wal past max_wal_size; the maintenance's checkpoint brings it back within; a clean close leaves nothing to replay", async () => {
    const dir = join(scratch.path, "manual");
    const db = await startPglite(dir, quiet, { settings: SMALL, maintenance: { checkpointPollMs: 0, vacuumIntervalMs: 0 } });
    const limit = await maxWalSize(db);
    expect(limit).toBe(32 * MB);
    const before = walBytes(dir);
    expect(await db.maintenance.checkpointIfDue()).toBe(false);
    await burst(db);
    const grown = walBytes(dir);
    const state = await db.maintenance.state();
    expect(grown).toBeGreaterThan(limit);
    expect(state.walSinceCheckpoint).toBeGreaterThan(limit);
    expect(await db.maintenance.checkpointIfDue()).toBe(true);
    const after = walBytes(dir);
    expect(after).toBeLessThanOrEqual(limit);
    expect((await db.maintenance.state()).walSinceCheckpoint).toBeLessThan(MB);
    expect(await db.maintenance.checkpointIfDue()).toBe(false);
    console.log(`pg_wal: ${mb(before)} at start, ${mb(grown)} after a burst (${mb(state.walSinceCheckpoint)} of WAL), ${mb(after)} after the checkpoint; max_wal_size ${mb(limit)}`);

    await burst(db, BURST_ROWS);
    await db.close();
    const reopened = await timeOpen(dir);
    // A clean close checkpointed: nothing written since the last checkpoint but the checkpoint record itself.
    expect((await reopened.db.maintenance.state()).walSinceCheckpoint).toBeLessThan(MB);
    expect((await reopened.db.sql<{ n: number }[]>`select count(*)::int as n from burst`)[0]?.n).toBe(2 * BURST_ROWS);
    await reopened.db.close();
    console.log(`reopen after a burst and a clean close: ${reopened.ms} ms`);
  });

  test("the checkpoints run on their own while writes go on", async () => {
    const dir = join(scratch.path, "timed");
    const db = await startPglite(dir, quiet, { settings: SMALL, maintenance: { checkpointPollMs: 50, vacuumIntervalMs: 0 } });
    try {
      const limit = await maxWalSize(db);
      let peak = 0;
      for (let i = 0; i < 6; i++) {
        await db.sql`create table if not exists steady (id bigint primary key, payload text not null)`;
        await db.sql`insert into steady select g, repeat('y', 200) from generate_series(${i * 50_000 + 1}::bigint, ${(i + 1) * 50_000}::bigint) g`;
        peak = Math.max(peak, walBytes(dir));
        await Bun.sleep(100);
      }
      // About 100 MB written in steps of ~17 MB: pg_wal never held more than the limit plus the step in flight.
      await waitFor(async () => (await db.maintenance.state()).walSinceCheckpoint < 0.25 * limit, { what: "a checkpoint by the poll" });
      expect(walBytes(dir)).toBeLessThanOrEqual(limit);
      console.log(`steady writes: pg_wal peaked at ${mb(peak)}, ${mb(walBytes(dir))} now; max_wal_size ${mb(limit)}`);
    } finally {
      await db.close();
    }
  });

  test("after a crash, the start replays only what the last checkpoint did not cover (times printed)", async () => {
    const script = join(scratch.path, "crash.ts");
    writeFileSync(
      script,
      `import { startPglite } from ${JSON.stringify(resolve(import.meta.dir, "../../lib/db/index.ts"))};
       import { createLogger } from ${JSON.stringify(resolve(import.meta.dir, "../../lib/log.ts"))};
       const [dir, pollMs] = [process.argv[2], Number(process.argv[3])];
       const db = await startPglite(dir, createLogger({}, () => undefined), { settings: ${JSON.stringify(SMALL)}, maintenance: { checkpointPollMs: pollMs, vacuumIntervalMs: 0 } });
       await db.sql\`create table t (id bigint primary key, payload text not null)\`;
       for (let i = 0; i < 8; i++) {
         await db.sql\`insert into t select g, repeat('z', 200) from generate_series(\${i * 40_000 + 1}::bigint, \${(i + 1) * 40_000}::bigint) g\`;
         await Bun.sleep(pollMs > 0 ? 3 * pollMs : 0);
       }
       process.exit(0); // no close: as a kill -9 would leave it
      `,
    );
    for (const [name, pollMs] of [["no checkpoints", 0], ["with the maintenance's checkpoints", 20]] as const) {
      const dir = join(scratch.path, `crash-${pollMs}`);
      const child = Bun.spawn(["bun", script, dir, String(pollMs)], { stdout: "inherit", stderr: "inherit" });
      expect(await child.exited).toBe(0);
      const wal = walBytes(dir);
      const { ms, db } = await timeOpen(dir);
      expect((await db.sql<{ n: number }[]>`select count(*)::int as n from t`)[0]?.n).toBe(8 * 40_000);
      await db.close();
      console.log(`crash after ~110 MB of WAL, ${name}: pg_wal ${mb(wal)}, reopen ${ms} ms`);
    }
  });

  test("VACUUM reclaims the dead rows of updated tables (no autovacuum in PGlite)", async () => {
    const dir = join(scratch.path, "vacuum");
    const db = await startPglite(dir, quiet, { maintenance: { checkpointPollMs: 0, vacuumIntervalMs: 0 } });
    try {
      await db.sql`create table hot (id integer primary key, state jsonb not null)`;
      await db.sql`insert into hot select g, '{"n": 0}' from generate_series(1, 2000) g`;
      for (let i = 1; i <= 5; i++) await db.sql`update hot set state = jsonb_build_object('n', ${i}::int)`;
      // The statistics the pass reads are flushed by the backend at most once a second.
      const pass = await waitFor(async () => {
        await db.sql`select 1`;
        const result = await db.maintenance.vacuumPass();
        return result.vacuumed.includes("hot") ? result : undefined;
      }, { timeoutMs: 10_000, intervalMs: 300, what: "hot vacuumed" });
      expect(pass.analyzed).toContain("hot");
      const [stats] = await db.sql<{ dead: number; vacuums: number }[]>`select n_dead_tup::int as dead, vacuum_count::int as vacuums from pg_stat_user_tables where relname = 'hot'`;
      expect(stats).toMatchObject({ dead: 0 });
      expect(stats?.vacuums).toBeGreaterThan(0);
      // Nothing changed since: the next pass leaves it alone.
      expect((await db.maintenance.vacuumPass()).vacuumed).not.toContain("hot");
      // The first pass after a start (statistics lost) vacuums every table.
      expect((await db.maintenance.vacuumPass({ all: true })).vacuumed).toContain("hot");
    } finally {
      await db.close();
    }
  });
});
