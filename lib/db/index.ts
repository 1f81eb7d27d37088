import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import postgres, { type Sql } from "postgres";
import type { Config } from "../config.ts";
import { DbError } from "../errors.ts";
import type { Logger } from "../log.ts";
import { registry } from "../metrics.ts";
import { migrate } from "./migrate.ts";
import { type PgliteMaintenance, type PgliteMaintenanceOptions, startPgliteMaintenance } from "./pglite-maintenance.ts";

export type { Sql, TransactionSql as Tx } from "postgres";

export interface Db {
  readonly kind: "postgres" | "pglite";
  readonly sql: Sql;
  /** Resolves when the database answers a query; rejects with DbError otherwise. */
  ping(): Promise<void>;
  close(): Promise<void>;
}

const clientOptions = (logger: Logger) => ({
  onnotice: (notice: postgres.Notice) => logger.debug("postgres notice", { notice: notice.message }),
  // bigint columns (offsets, counts) come back as JS numbers: exact up to 2^53, which they never reach.
  types: { bigint: { to: 20, from: [20], serialize: (value: number) => String(value), parse: (value: string) => Number(value) } },
  transform: { undefined: null },
  connect_timeout: 10,
});

async function ping(sql: Sql, timeoutMs = 5_000): Promise<void> {
  let timer: Timer | undefined;
  try {
    await Promise.race([
      sql`select 1`,
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
      }),
    ]);
  } catch (error) {
    throw new DbError(`database unreachable: ${error instanceof Error ? error.message : String(error)}`, { retriable: true, cause: error });
  } finally {
    clearTimeout(timer);
  }
}

/** Real Postgres at DATABASE_URL. */
export async function connectPostgres(url: string, logger: Logger, options: { max?: number } = {}): Promise<Db> {
  const sql = postgres(url, { ...clientOptions(logger), max: options.max ?? 10 });
  return { kind: "postgres", sql, ping: () => ping(sql), close: () => sql.end({ timeout: 5 }) };
}

/**
 * Server settings of the embedded database, on top of PGlite's own start parameters. The WAL stays small:
 * the maintenance (pglite-maintenance.ts) checkpoints at a quarter of max_wal_size, so at most ~64 MB
 * is ever replayed after a crash and pg_wal holds min_wal_size to max_wal_size of recycled segments.
 * Memory stays flat: PGlite's buffers live in its WASM memory, which never shrinks, and each buffer counts
 * in the process's RSS from its first use, so the default 128 MB of shared_buffers made RSS climb for the
 * first ~20 minutes of a run while the tables outgrew them. 32 MB hold the pages the jobs touch (recent
 * windows, offsets, the ends of the append-only tables) and fill within the first minutes; the operating
 * system's page cache holds the rest of the files. maintenance_work_mem bounds what one VACUUM allocates.
 */
export const PGLITE_SETTINGS: Readonly<Record<string, string>> = {
  max_wal_size: "256MB",
  min_wal_size: "64MB",
  shared_buffers: "32MB",
  maintenance_work_mem: "16MB",
};

/** The WASM memories of the embedded databases open in this process: they only ever grow. */
const pgliteMemories = new Set<() => number>();
const pgliteMemory = registry.gauge("devpipe_pglite_memory_bytes", "WASM memory of the embedded database (PGlite): its shared buffers, caches and the most any query needed at once; it never shrinks");
registry.collect(async () => {
  if (pgliteMemories.size > 0) pgliteMemory.set({}, [...pgliteMemories].reduce((sum, bytes) => sum + bytes(), 0));
});

export interface PgliteDb extends Db {
  readonly kind: "pglite";
  /** Checkpoints and VACUUM, PGlite having neither a checkpointer nor autovacuum (see pglite-maintenance.ts). */
  readonly maintenance: PgliteMaintenance;
}

export interface PgliteOptions {
  /** Server settings (`-c name=value`), over PGLITE_SETTINGS. */
  settings?: Record<string, string>;
  maintenance?: PgliteMaintenanceOptions;
}

/**
 * PGlite (Postgres compiled to WASM) stored under `dir`, served on a loopback port by pglite-socket,
 * so the rest of the code talks to it with the same `postgres` driver. PGlite runs one session:
 * one connection, so transactions from different callers never interleave. It runs its own
 * checkpoints and VACUUM (`maintenance`), and `close()` checkpoints, so a start after a clean stop
 * replays nothing.
 */
export async function startPglite(dir: string, logger: Logger, options: PgliteOptions = {}): Promise<PgliteDb> {
  await mkdir(dir, { recursive: true });
  // Loaded only in embedded mode: the WASM build is large and a services-mode process never needs it.
  const [{ PGlite }, { PGLiteSocketServer }] = await Promise.all([import("@electric-sql/pglite"), import("@electric-sql/pglite-socket")]);
  const settings = Object.entries({ ...PGLITE_SETTINGS, ...options.settings }).flatMap(([name, value]) => ["-c", `${name}=${value}`]);
  const started = performance.now();
  const pglite = await PGlite.create(dir, { startParams: [...PGlite.defaultStartParams, ...settings] });
  const openMs = Math.round(performance.now() - started);
  const memoryBytes = () => pglite.Module.HEAPU8.byteLength;
  pgliteMemories.add(memoryBytes);
  const server = new PGLiteSocketServer({ db: pglite, host: "127.0.0.1", port: 0, maxConnections: 1 });
  await server.start();
  const sql = postgres(`postgres://postgres@${server.getServerConn()}/postgres`, { ...clientOptions(logger), max: 1 });
  const maintenance = startPgliteMaintenance(sql, logger, options.maintenance);
  logger.info("embedded database started", { dir, address: server.getServerConn(), open_ms: openMs });
  let closing: Promise<void> | undefined;
  return {
    kind: "pglite",
    sql,
    maintenance,
    ping: () => ping(sql),
    close() {
      closing ??= (async () => {
        await maintenance.stop();
        // PGlite's own close writes a shutdown checkpoint too; this one first keeps that one short and
        // leaves nothing to replay should the close be cut short.
        await sql`checkpoint`.catch((error: unknown) => logger.warn("checkpoint before closing the embedded database failed", { error }));
        await sql.end({ timeout: 5 });
        await server.stop();
        await pglite.close();
        pgliteMemories.delete(memoryBytes);
      })();
      return closing;
    },
  };
}

/** The database the configuration asks for, migrated to the latest schema. */
export async function openDb(config: Pick<Config, "databaseUrl" | "dataDir">, logger: Logger): Promise<Db> {
  const dbLogger = logger.child({ component: "db" });
  const db = config.databaseUrl ? await connectPostgres(config.databaseUrl, dbLogger) : await startPglite(join(config.dataDir, "pg"), dbLogger);
  try {
    await db.ping();
    await migrate(db.sql, dbLogger);
  } catch (error) {
    await db.close().catch(() => undefined);
    throw error;
  }
  return db;
}
