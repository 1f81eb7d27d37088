import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { connectPostgres, type Db, startPglite } from "../../lib/db/index.ts";
import { MIGRATIONS_DIR, migrate, readMigrations } from "../../lib/db/migrate.ts";
import { DbError } from "../../lib/errors.ts";
import { createLogger } from "../../lib/log.ts";
import { freshDatabase } from "../support/pg.ts";
import { tempDir } from "../support/tmp.ts";

/** The same suite on real Postgres and on PGlite behind pglite-socket, both through the postgres driver. */
interface Implementation {
  name: string;
  open(): Promise<Db>;
  /** A second, independent client on the same database (a second process). */
  second(): Promise<Db | undefined>;
  cleanup(): Promise<void>;
}

const logger = createLogger({ test: "db.contract" });

const realPostgres = (): Implementation => {
  let database: Awaited<ReturnType<typeof freshDatabase>> | undefined;
  return {
    name: "postgres",
    async open() {
      database ??= await freshDatabase();
      return connectPostgres(database.url, logger);
    },
    async second() {
      return database ? connectPostgres(database.url, logger) : undefined;
    },
    cleanup: async () => database?.drop(),
  };
};

const pglite = (): Implementation => {
  const dir = tempDir("devpipe-pglite-");
  return {
    name: "pglite",
    open: () => startPglite(dir.path, logger),
    // PGlite is one process's embedded database: there is no second client.
    second: async () => undefined,
    cleanup: async () => dir.remove(),
  };
};

for (const make of [realPostgres, pglite]) {
  const impl = make();
  describe(`db contract: ${impl.name}`, () => {
    let db: Db;
    const migrationDirs: ReturnType<typeof tempDir>[] = [];
    /** A scratch migrations directory, removed with the suite. */
    const migrationsDir = () => {
      const dir = tempDir("devpipe-mig-");
      migrationDirs.push(dir);
      return dir.path;
    };
    beforeAll(async () => {
      db = await impl.open();
    });
    afterAll(async () => {
      await db.close();
      await impl.cleanup();
      for (const dir of migrationDirs) dir.remove();
    });

    test("migrations apply once, in order, and again are a no-op", async () => {
      const all = (await readMigrations()).map((m) => m.version);
      expect(await migrate(db.sql, logger)).toEqual(all);
      expect(await migrate(db.sql, logger)).toEqual([]);
      const rows = await db.sql<{ version: number }[]>`select version from schema_migrations order by version`;
      expect(rows.map((r) => r.version)).toEqual(all);
    });

    test("two clients migrating at once apply each migration exactly once", async () => {
      const other = await impl.second();
      const extraDir = migrationsDir();
      for (const m of await readMigrations()) writeFileSync(join(extraDir, `${String(m.version).padStart(3, "0")}_${m.name}.sql`), m.sql);
      writeFileSync(join(extraDir, "900_concurrency_probe.sql"), "create table concurrency_probe (id int primary key); insert into concurrency_probe values (1);");
      const clients = other ? [db, other] : [db, db];
      const results = await Promise.all(clients.map((c) => migrate(c.sql, logger, extraDir)));
      expect(results.flat()).toEqual([900]);
      expect((await db.sql`select count(*)::int as n from concurrency_probe`)[0]?.n).toBe(1);
      await other?.close();
    });

    test("a migration edited after it was applied stops start-up", async () => {
      const dir = migrationsDir();
      for (const m of await readMigrations()) writeFileSync(join(dir, `${String(m.version).padStart(3, "0")}_${m.name}.sql`), `${m.sql}\n-- edited`);
      await expect(migrate(db.sql, logger, dir)).rejects.toBeInstanceOf(DbError);
    });

    test("a failing migration applies nothing", async () => {
      const dir = migrationsDir();
      writeFileSync(join(dir, "950_half.sql"), "create table half_applied (id int);");
      writeFileSync(join(dir, "951_broken.sql"), "select * from no_such_table;");
      await expect(migrate(db.sql, logger, dir)).rejects.toThrow();
      expect((await db.sql`select to_regclass('half_applied') as t`)[0]?.t).toBeNull();
    });

    test("a transaction commits results and offsets together or not at all", async () => {
      const job = `job-${crypto.randomUUID()}`;
      const attempt = (fail: boolean) =>
        db.sql.begin(async (tx) => {
          await tx`insert into job_offsets (job, topic, partition, next_offset) values (${job}, 't', 0, 10)
                   on conflict (job, topic, partition) do update set next_offset = excluded.next_offset`;
          await tx`insert into pipeline_runs (job, started_at, status, records) values (${job}, now(), 'succeeded', 10)`;
          if (fail) throw new Error("crash between writes");
        });
      await expect(attempt(true)).rejects.toThrow("crash between writes");
      expect(await db.sql`select * from job_offsets where job = ${job}`).toHaveLength(0);
      await attempt(false);
      const [offset] = await db.sql<{ next_offset: number }[]>`select next_offset from job_offsets where job = ${job}`;
      expect(offset?.next_offset).toBe(10);
      expect(await db.sql`select * from pipeline_runs where job = ${job}`).toHaveLength(1);
    });

    test("data survives closing and reopening", async () => {
      await db.sql`insert into job_offsets (job, topic, partition, next_offset) values ('durable', 't', 3, 42) on conflict do nothing`;
      await db.close();
      db = await impl.open();
      const [row] = await db.sql<{ next_offset: number }[]>`select next_offset from job_offsets where job = 'durable' and partition = 3`;
      expect(row?.next_offset).toBe(42);
      expect(await db.ping()).toBeUndefined();
    });
  });
}

test("migration files are numbered and named as the runner expects", async () => {
  const migrations = await readMigrations(MIGRATIONS_DIR);
  expect(migrations.length).toBeGreaterThan(0);
  expect(migrations.map((m) => m.version)).toEqual([...migrations.map((m) => m.version)].sort((a, b) => a - b));
});
