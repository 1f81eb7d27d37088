import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { type Db, openDb } from "../../lib/db/index.ts";
import { copyToDataFiles, uploadDataFiles } from "../../lib/lake/data-files.ts";
import { commit, ensureTable } from "../../lib/lake/delta/commit.ts";
import { readSnapshot } from "../../lib/lake/delta/log.ts";
import { checkpointKey, commitKey } from "../../lib/lake/delta/paths.ts";
import { createDirStore } from "../../lib/lake/dir-store.ts";
import { Duck, sqlString, sqlStringList } from "../../lib/lake/duckdb.ts";
import { type LocalFiles, localFiles } from "../../lib/lake/local-files.ts";
import { createS3Store } from "../../lib/lake/s3-store.ts";
import { dimTableOf, eventTableDefinition, eventTableOf, fileKeyOf } from "../../lib/lake/tables.ts";
import type { ObjectStore } from "../../lib/lake/types.ts";
import { createLogger } from "../../lib/log.ts";
import { replaceDimension } from "../../lib/store/dims.ts";
import { compactOnce } from "../../workers/lake/compaction.ts";
import { exportChangedDims } from "../../workers/lake/dims-export.ts";
import { vacuumOnce } from "../../workers/lake/vacuum.ts";
import { type DeltaSnapshot, readDelta } from "../support/delta-reader.ts";
import { freshDatabase } from "../support/pg.ts";
import { services, uniqueName } from "../support/services.ts";
import { tempDir } from "../support/tmp.ts";

/**
 * OPTIMIZE, dims overwrites and VACUUM on a directory lake and on MinIO, checked by delta-rs (an engine
 * independent of this project's log reader): every row once, before, during and after compaction and after
 * VACUUM; removed files and old orphans deleted only by VACUUM; one dim version visible, earlier ones by time travel.
 */
const scratch = tempDir("devpipe-lake-maintenance-");
afterAll(() => scratch.remove());

const type = "sensor.reading";
const table = eventTableOf(type);
const DAY = "2026-01-10";
const DAY_MS = Date.UTC(2026, 0, 10);
const HOURS = [3, 4];
const FLUSHES = 8;
const ROWS_PER_FLUSH = 600;
const ROWS = FLUSHES * ROWS_PER_FLUSH;
const quiet = createLogger({ test: "lake-maintenance" }, () => undefined);

type S3 = ReturnType<typeof services>["s3"];
const lakes: { name: string; open: () => { store: ObjectStore; uriOf: (table: string) => string; s3?: S3 } }[] = [
  {
    name: "dir",
    open: () => {
      const root = join(scratch.path, uniqueName("lake"));
      return { store: createDirStore(root), uriOf: (t) => join(root, t) };
    },
  },
  {
    name: "minio",
    open: () => {
      const { s3 } = services();
      const prefix = uniqueName("lake-maintenance");
      return { store: createS3Store({ ...s3, prefix }), uriOf: (t) => `s3://${s3.bucket}/${prefix}/${t}`, s3 };
    },
  },
];

/** Flush `n` as the sink writes it: rows in both hours, one file per hour, one blind append with the partition's txn. */
async function flush(store: ObjectStore, duck: Duck, n: number): Promise<void> {
  const select = `select 'e-${n}-' || i as event_id, 'dev-' || (i % 41) as key,
      make_timestamptz((${DAY_MS} + h * 3600000 + (i * 7919) % 3600000) * 1000) as event_time, make_timestamptz(${DAY_MS + 6 * 3_600_000} * 1000) as ingest_time,
      's-' || (i % 41) as sensor_id, 20.0 + (i % 10) as temperature, 50.0 + n % 7 as humidity,
      DATE '${DAY}' as date, h::INTEGER as hour
    from (select i, ${n} as n, [${HOURS.join(", ")}][1 + i % ${HOURS.length}] as h from range(${ROWS_PER_FLUSH}) t(i))`;
  const files = await copyToDataFiles(duck, select, join(scratch.path, `flush-${crypto.randomUUID()}`), { partitioned: true });
  const adds = await uploadDataFiles(store, table, files, "part", true);
  const snapshot = await readSnapshot(store, table);
  await commit(store, table, [...adds.map((add) => ({ add })), { txn: { appId: "test.sink.p0", version: n } }], { readVersion: snapshot.version, isBlindAppend: true });
}

/** What must hold of the event table at any snapshot: every row once, both hours whole. */
function expectAllRowsOnce(snapshot: DeltaSnapshot): void {
  expect({ rows: snapshot.num_rows, ids: snapshot.distinct.event_id, partitions: snapshot.rows_by_partition }).toEqual({
    rows: ROWS,
    ids: ROWS,
    partitions: Object.fromEntries(HOURS.map((h) => [`date=${DAY}/hour=${h}`, ROWS / HOURS.length])),
  });
}

const dataKeys = async (store: ObjectStore, of: string) => (await store.list(`${of}/`)).map((o) => o.key).filter((key) => !key.includes("/_delta_log/"));

for (const lake of lakes) {
  describe(`lake maintenance on ${lake.name}`, () => {
    const { store, uriOf, s3 } = lake.open();
    const cacheDir = join(scratch.path, uniqueName("cache"));
    const files: LocalFiles = localFiles(store, cacheDir);
    const readEvents = () => readDelta(uriOf(table), { countDistinct: ["event_id"], rowsByPartition: true, s3 });
    let database: Awaited<ReturnType<typeof freshDatabase>>;
    let db: Db;
    let duck: Duck;
    let removedByOptimize: string[] = [];

    beforeAll(async () => {
      database = await freshDatabase();
      db = await openDb({ databaseUrl: database.url, dataDir: scratch.path }, quiet);
      duck = await Duck.open({ threads: "1" });
    });
    afterAll(async () => {
      duck.close();
      await db.close();
      await database.drop();
    });

    test("flush commits in two closed hours: delta-rs sees every row once, with the declared column types", async () => {
      await ensureTable(store, table, eventTableDefinition(type));
      for (let n = 1; n <= FLUSHES; n++) await flush(store, duck, n);
      const read = await readEvents();
      expectAllRowsOnce(read);
      expect({ version: read.version, files: read.files, partitionColumns: read.partition_columns }).toEqual({ version: FLUSHES, files: FLUSHES * HOURS.length, partitionColumns: ["date", "hour"] });
      const types = Object.fromEntries(read.schema.map((f) => [f.name, `${f.type} ${f.arrow}`]));
      expect(types).toMatchObject({ date: "date date32[day]", hour: "integer int32", event_time: "timestamp timestamp[us, tz=UTC]", event_id: "string string", temperature: "double double" });
    }, 60_000);

    test("OPTIMIZE: each hour becomes one sorted file; every row once during and right after it; removed files stay until VACUUM", async () => {
      const before = await readSnapshot(store, table);
      removedByOptimize = [...before.files.keys()].map((path) => fileKeyOf(table, path));
      const started = performance.now();
      const [result, during] = await Promise.all([
        compactOnce({ sql: db.sql, store, files, duck, workDir: join(scratch.path, uniqueName("compact")), logger: quiet, closeAfterMs: 0 }),
        readEvents(),
      ]);
      const elapsedMs = Math.round(performance.now() - started);
      expect(result).toEqual({ groups: 2, merged: FLUSHES * HOURS.length, rows: ROWS, conflicts: 0 });
      expectAllRowsOnce(during);

      // Right after the commits, before any VACUUM: the removed files are still in storage but no reader counts them.
      const after = await readEvents();
      expectAllRowsOnce(after);
      expect({ version: after.version, files: after.files }).toEqual({ version: FLUSHES + 2, files: 2 });
      // Between the two hours' OPTIMIZE commits: one hour compacted, the other not yet.
      const between = await readDelta(uriOf(table), { version: FLUSHES + 1, countDistinct: ["event_id"], rowsByPartition: true, s3 });
      expectAllRowsOnce(between);
      expect(between.files).toBe(1 + FLUSHES);
      const stored = new Set(await dataKeys(store, table));
      expect(removedByOptimize.filter((key) => !stored.has(key))).toEqual([]);

      const snapshot = await readSnapshot(store, table);
      expect(snapshot.txns.get("test.sink.p0")).toBe(FLUSHES);
      const compacted = [...snapshot.files.values()];
      expect(compacted.every((add) => /\/compacted-\d{13}-/.test(add.path) && !add.dataChange)).toBe(true);
      // Sorted by key, then event time (DuckDB with one thread reads a file in order).
      const [path] = await files.paths([fileKeyOf(table, compacted[0]?.path ?? "")]);
      const [order] = await duck.objects(`select count(*) filter (where key < prev_key or (key = prev_key and event_time < prev_time)) as unsorted, count(*) as n
        from (select key, event_time, lag(key) over () as prev_key, lag(event_time) over () as prev_time from read_parquet(${sqlString(path ?? "")}))`);
      expect(order).toEqual({ unsorted: 0, n: ROWS / HOURS.length });
      // Version 10 is checkpointed by the commit; the OPTIMIZE tombstones are in it, being recent.
      expect(await store.get(checkpointKey(table, 10))).not.toBeNull();

      const runs = await db.sql<{ status: string; records: number }[]>`select status, records from pipeline_runs where job = 'compaction' order by run_id`;
      expect(runs.map((r) => `${r.status}:${r.records}`)).toEqual([`succeeded:${ROWS / 2}`, `succeeded:${ROWS / 2}`]);
      expect(await compactOnce({ sql: db.sql, store, files, duck, workDir: join(scratch.path, uniqueName("compact")), logger: quiet, closeAfterMs: 0 })).toEqual({ groups: 0, merged: 0, rows: 0, conflicts: 0 });
      console.log(JSON.stringify({ test: "optimize", lake: lake.name, input_files: result.merged, rows: result.rows, ms_with_concurrent_delta_rs_read: elapsedMs }));
    }, 60_000);

    test("dims: each export is one overwrite commit; delta-rs sees exactly one version, earlier ones by time travel", async () => {
      const dims = (d: Duck) => ({ sql: db.sql, store, duck: d, workDir: join(scratch.path, uniqueName("dims")), logger: quiet });
      const colors = dimTableOf("car_colors");
      await replaceDimension(db.sql, "car_colors", [{ color_id: 1, color_name: "Black" }, { color_id: 2, color_name: "White" }, { color_id: 3, color_name: "Silver" }]);
      expect(await exportChangedDims(dims(duck))).toEqual(["car_colors"]);
      expect(await exportChangedDims(dims(duck))).toEqual([]);

      await replaceDimension(db.sql, "car_colors", [{ color_id: 7, color_name: "Red" }, { color_id: 8, color_name: "Blue" }]);
      await replaceDimension(db.sql, "car_models", []);
      // Two workers export at once: of each dim one commit lands, and the other leaves no file behind.
      const other = await Duck.open({ threads: "1" });
      const exported = await Promise.all([exportChangedDims(dims(duck)), exportChangedDims(dims(other))]).finally(() => other.close());
      expect(exported.flat().sort()).toEqual(["car_colors", "car_models"]);
      expect(await dataKeys(store, colors)).toHaveLength(2);

      const latest = await readDelta(uriOf(colors), { countDistinct: ["color_id"], s3 });
      expect({ version: latest.version, rows: latest.num_rows, ids: latest.distinct.color_id, files: latest.files }).toEqual({ version: 2, rows: 2, ids: 2, files: 1 });
      expect(Object.fromEntries(latest.schema.map((f) => [f.name, f.type]))).toEqual({ color_id: "long", color_name: "string" });
      const first = await readDelta(uriOf(colors), { version: 1, countDistinct: ["color_id"], s3 });
      expect({ rows: first.num_rows, ids: first.distinct.color_id, files: first.files }).toEqual({ rows: 3, ids: 3, files: 1 });

      const snapshot = await readSnapshot(store, colors);
      expect(snapshot.txns.get("devpipe.dims.car_colors")).toBe(2);
      const paths = await files.paths([...snapshot.files.keys()].map((path) => fileKeyOf(colors, path)));
      expect(await duck.objects(`select color_id, color_name from read_parquet(${sqlStringList(paths)}) order by color_id`)).toEqual([{ color_id: 7, color_name: "Red" }, { color_id: 8, color_name: "Blue" }]);
      // An empty dim is an empty file.
      expect(await readDelta(uriOf(dimTableOf("car_models")), { s3 })).toMatchObject({ version: 1, num_rows: 0, files: 1 });
    }, 60_000);

    test("VACUUM deletes removed files and old orphans past the retention, keeps live files, young orphans and names it cannot date", async () => {
      const upload = async (name: string) => {
        const written = await copyToDataFiles(duck, `select 'orphan' as event_id`, join(scratch.path, uniqueName("orphan")), { partitioned: false });
        const [add] = await uploadDataFiles(store, table, written, "part", true);
        return fileKeyOf(table, add?.path ?? name);
      };
      const oldOrphan = await upload("old");
      const foreign = `${table}/date=${DAY}/hour=3/written-by-someone-else.parquet`;
      await store.put(foreign, new Uint8Array([1, 2, 3]));
      const colors = dimTableOf("car_colors");
      const [oldDim] = [...(await readSnapshot(store, colors)).tombstones.keys()].map((path) => fileKeyOf(colors, path));
      const retentionMs = 1_000;
      await Bun.sleep(retentionMs + 200);
      const youngOrphan = await upload("young");
      const live = [...(await readSnapshot(store, table)).files.keys()].map((path) => fileKeyOf(table, path));

      const started = performance.now();
      const result = await vacuumOnce({ store, files, logger: quiet, retentionMs });
      const elapsedMs = Math.round(performance.now() - started);
      // 16 flush files removed by OPTIMIZE and the first car_colors file; the log below checkpoint 10 (versions 0-9).
      expect(result).toMatchObject({ removed: removedByOptimize.length + 1, orphans: 1, logEntries: 10, failed: 0 });

      const remaining = new Set([...(await dataKeys(store, table)), ...(await dataKeys(store, colors))]);
      expect(removedByOptimize.filter((key) => remaining.has(key))).toEqual([]);
      expect(remaining.has(oldOrphan)).toBe(false);
      expect(remaining.has(oldDim ?? "")).toBe(false);
      for (const key of [...live, youngOrphan, foreign]) expect(remaining.has(key)).toBe(true);
      if (store.kind === "s3") expect(removedByOptimize.filter((key) => existsSync(join(cacheDir, key)))).toEqual([]);
      expect(await store.get(commitKey(table, 9))).toBeNull();
      expect(await store.get(commitKey(table, 10))).not.toBeNull();

      const read = await readEvents();
      expectAllRowsOnce(read);
      expect({ version: read.version, files: read.files }).toEqual({ version: FLUSHES + 2, files: 2 });
      expect(await readDelta(uriOf(colors), { s3 })).toMatchObject({ version: 2, num_rows: 2 });
      expect((await readSnapshot(store, table)).files.size).toBe(2);
      // Idempotent: a second run (as another worker's would) finds nothing more.
      expect(await vacuumOnce({ store, files, logger: quiet, retentionMs })).toMatchObject({ removed: 0, orphans: 0, logEntries: 0, failed: 0 });
      console.log(JSON.stringify({ test: "vacuum", lake: lake.name, ...result, ms: elapsedMs }));
    }, 60_000);
  });
}
