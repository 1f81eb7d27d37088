import { readdir, readFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import type { Sql } from "postgres";
import { DbError } from "../errors.ts";
import type { Logger } from "../log.ts";

export const MIGRATIONS_DIR = resolve(import.meta.dir, "../../sql");
const FILE_NAME = /^(\d{3,})_([a-z0-9_]+)\.sql$/;
/** Any constant; every process migrating this database takes the same transaction-scoped lock. */
const MIGRATION_LOCK_KEY = 7_411_902_113;

export interface Migration {
  version: number;
  name: string;
  sql: string;
  checksum: string;
}

export async function readMigrations(dir = MIGRATIONS_DIR): Promise<Migration[]> {
  const migrations: Migration[] = [];
  for (const file of (await readdir(dir)).sort()) {
    const match = FILE_NAME.exec(file);
    if (!match) continue;
    const text = await readFile(join(dir, file), "utf8");
    migrations.push({ version: Number(match[1]), name: match[2] ?? file, sql: text, checksum: new Bun.CryptoHasher("sha256").update(text).digest("hex") });
  }
  const versions = migrations.map((m) => m.version);
  if (new Set(versions).size !== versions.length) throw new DbError(`two migrations in ${dir} share a version number`);
  return migrations;
}

/**
 * Applies the migrations not applied yet, in order, in one transaction under an advisory lock:
 * two processes starting at once apply each migration once, and a failure applies none.
 * A migration edited after it was applied stops start-up rather than silently diverging.
 */
export async function migrate(sql: Sql, logger: Logger, dir = MIGRATIONS_DIR): Promise<number[]> {
  const migrations = await readMigrations(dir);
  return sql.begin(async (tx) => {
    await tx`select pg_advisory_xact_lock(${MIGRATION_LOCK_KEY})`;
    await tx`create table if not exists schema_migrations (
      version integer primary key, name text not null, checksum text not null, applied_at timestamptz not null default now())`;
    const applied = new Map((await tx<{ version: number; checksum: string }[]>`select version, checksum from schema_migrations`).map((r) => [r.version, r.checksum]));
    const newlyApplied: number[] = [];
    for (const migration of migrations) {
      const checksum = applied.get(migration.version);
      if (checksum !== undefined) {
        if (checksum !== migration.checksum) throw new DbError(`migration ${migration.version}_${migration.name} was changed after it was applied; add a new migration instead`);
        continue;
      }
      await tx.unsafe(migration.sql);
      await tx`insert into schema_migrations (version, name, checksum) values (${migration.version}, ${migration.name}, ${migration.checksum})`;
      newlyApplied.push(migration.version);
      logger.info("migration applied", { version: migration.version, name: migration.name });
    }
    return newlyApplied;
  });
}
