import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadConfig } from "../lib/config.ts";
import { eventTypes } from "../lib/events/index.ts";
import { envelopeColumns, payloadColumns } from "../lib/lake/columns.ts";
import { copyToDataFiles, uploadDataFiles } from "../lib/lake/data-files.ts";
import { commit, ensureTable } from "../lib/lake/delta/commit.ts";
import { readSnapshot } from "../lib/lake/delta/log.ts";
import { Duck, sqlStringList } from "../lib/lake/duckdb.ts";
import { localFiles } from "../lib/lake/local-files.ts";
import { legacyLakeObjects } from "../lib/lake/startup.ts";
import { eventTableDefinition, eventTableOf } from "../lib/lake/tables.ts";
import { createLogger } from "../lib/log.ts";
import { closeServices, openServices } from "../lib/services.ts";

/**
 * `bun run lake:migrate`: converts a lake written before Delta tables (`events/type=<type>/…` files
 * listed in Postgres' lake_files, dims as `dims/<name>/v<n>.parquet`) into one Delta table per type, then
 * deletes the old files. Run it once with the workers stopped; running it again finds nothing to do.
 * The dims need no conversion: the workers export them from Postgres as Delta tables on start.
 */
const MIGRATED = "devpipe.lake-migrate";
const logger = createLogger({ process: "lake-migrate" });
const services = await openServices(loadConfig(), logger);
const scratch = await mkdtemp(join(tmpdir(), "lake-migrate-"));
const duck = await Duck.open({ threads: "2", memory_limit: "2GB" });
try {
  const legacy = await legacyLakeObjects(services.lake);
  if (legacy.length === 0) {
    logger.info("nothing to migrate: the lake holds no files of the old layout", { lake: services.lake.root });
  } else {
    // The old manifest says which files were live; without it (a lost database) every file counts.
    const [{ exists } = { exists: false }] = await services.db.sql<{ exists: boolean }[]>`select to_regclass('lake_files') is not null as exists`;
    const live = exists ? new Set((await services.db.sql<{ key: string }[]>`select key from lake_files where removed_at is null`).map((r) => r.key)) : undefined;
    const files = localFiles(services.lake, join(scratch, "cache"));
    for (const type of eventTypes.keys()) {
      const keys = legacy.filter((key) => key.startsWith(`events/type=${type}/`) && (!live || live.has(key)));
      if (keys.length === 0) continue;
      const table = eventTableOf(type);
      await ensureTable(services.lake, table, eventTableDefinition(type));
      // A run cut short after this type's commit must not convert it twice.
      if ((await readSnapshot(services.lake, table)).txns.has(MIGRATED)) continue;
      const columns = [...envelopeColumns, ...payloadColumns(type)].map((c) => `"${c.name}"`).join(", ");
      const utc = "timezone('UTC', event_time)";
      // The old readers dropped repeats across files; the table holds each event once.
      const select = `select ${columns}, ${utc}::date as date, hour(${utc})::integer as hour
        from read_parquet(${sqlStringList(await files.paths(keys))}, union_by_name = true, hive_partitioning = false)
        qualify row_number() over (partition by event_id order by ingest_time, event_time) = 1
        order by key, event_time`;
      const written = await copyToDataFiles(duck, select, join(scratch, type), { partitioned: true, rowGroupRows: 16_384 });
      const adds = await uploadDataFiles(services.lake, table, written, "compacted", true);
      const snapshot = await readSnapshot(services.lake, table);
      const version = await commit(services.lake, table, [...adds.map((add) => ({ add })), { txn: { appId: MIGRATED, version: 1 } }], { readVersion: snapshot.version, isBlindAppend: true, operation: "CONVERT" });
      logger.info("converted", { type, table, old_files: keys.length, rows: written.reduce((sum, f) => sum + f.numRecords, 0), files: written.length, version });
    }
    await services.lake.delete(legacy);
    if (exists) await services.db.sql`drop table lake_files`;
    logger.info("old layout removed", { files: legacy.length });
  }
} finally {
  duck.close();
  await rm(scratch, { recursive: true, force: true });
  await closeServices(services);
}
