import { afterAll, afterEach, describe, expect, test } from "bun:test";
import { join } from "node:path";
import { type DimensionName, dimensions } from "../../lib/dims.ts";
import { columnsOf, envelopeColumns, payloadColumns } from "../../lib/lake/columns.ts";
import { type Action, type Add, encodeStats, type FileStats } from "../../lib/lake/delta/actions.ts";
import { commit, ensureTable } from "../../lib/lake/delta/commit.ts";
import { tableLogsOf } from "../../lib/lake/delta/log.ts";
import { copyToDataFiles, uploadDataFiles } from "../../lib/lake/data-files.ts";
import { createDirStore } from "../../lib/lake/dir-store.ts";
import { Duck, sqlString } from "../../lib/lake/duckdb.ts";
import { localFiles } from "../../lib/lake/local-files.ts";
import { createLakeReader, type LakeReader } from "../../lib/lake/reader.ts";
import { createS3Store } from "../../lib/lake/s3-store.ts";
import { dimTableDefinition, dimTableOf, eventTableDefinition, eventTableOf, hourPartitionOf, partitionValuesOf } from "../../lib/lake/tables.ts";
import type { ObjectStore } from "../../lib/lake/types.ts";
import { services, uniqueName } from "../support/services.ts";
import { tempDir } from "../support/tmp.ts";

/**
 * The app's lake reader on Delta tables this project writes (ensureTable, data files, commits): it reads
 * the latest snapshot's live files and nothing else, on a local directory and on MinIO.
 */
const TYPE = "sensor.reading";
const TABLE = eventTableOf(TYPE);
const HOUR = 3_600_000;
const MINUTE = 60_000;
/** What DuckDB says of a data file that is not Parquet. */
const NOT_PARQUET = /No magic bytes/;
const HOUR_A = Date.UTC(2026, 0, 10, 7);
const HOUR_B = HOUR_A + HOUR;

const dir = tempDir("devpipe-lake-reader-delta-");
const duck = await Duck.open();
afterAll(() => {
  duck.close();
  dir.remove();
});

const stores: Record<string, () => ObjectStore> = {
  "local dir": () => createDirStore(join(dir.path, uniqueName("lake"))),
  s3: () => createS3Store({ ...services().s3, prefix: uniqueName("lake-reader-delta") }),
};

interface Reading {
  id: string;
  key: string;
  atMs: number;
  humidity?: number;
}

interface TestLake {
  store: ObjectStore;
  reader: LakeReader;
}

/** A fresh lake and a reader over it, as the gateway builds them. */
function openLake(store: ObjectStore): TestLake {
  const work = join(dir.path, uniqueName("reader"));
  return { store, reader: createLakeReader({ store, files: localFiles(store, join(work, "cache")), tempDir: join(work, "tmp"), timeoutMs: 30_000, maxRows: 10_000 }) };
}

const micros = (ms: number) => `make_timestamptz(${ms}::bigint * 1000)`;

/** Sensor readings as rows of the event table; `withHumidity: false` leaves that column out, as before a schema evolution. */
function readingsSelect(readings: readonly Reading[], withHumidity = true): string {
  const rows = readings.map((r) => {
    const partition = hourPartitionOf(r.atMs);
    const values = [sqlString(r.id), sqlString(r.key), micros(r.atMs), micros(r.atMs + 250), sqlString(`sensor-${r.key}`), "21.5::double", ...(withHumidity ? [`${r.humidity ?? 40}::double`] : []), `${sqlString(partition.date)}::date`, `${partition.hour}::integer`];
    return `(${values.join(", ")})`;
  });
  const names = ["event_id", "key", "event_time", "ingest_time", "sensor_id", "temperature", ...(withHumidity ? ["humidity"] : []), "date", "hour"];
  return `select * from (values ${rows.join(", ")}) as t(${names.join(", ")})`;
}

/** Data files of the readings (one per hour) uploaded to the table, not committed. */
async function upload(store: ObjectStore, readings: readonly Reading[], options: { withHumidity?: boolean; dataChange?: boolean } = {}): Promise<Add[]> {
  const files = await copyToDataFiles(duck, readingsSelect(readings, options.withHumidity), join(dir.path, uniqueName("out")), { partitioned: true });
  return uploadDataFiles(store, TABLE, files, "part", options.dataChange ?? true);
}

async function commitActions(store: ObjectStore, table: string, actions: Action[], isBlindAppend: boolean): Promise<number> {
  const snapshot = await tableLogsOf(store).snapshot(table);
  if (!snapshot) throw new Error(`no table ${table}`);
  return commit(store, table, actions, { readVersion: snapshot.version, isBlindAppend });
}

const append = async (store: ObjectStore, readings: readonly Reading[], options: { withHumidity?: boolean } = {}) => {
  const adds = await upload(store, readings, options);
  await commitActions(store, TABLE, adds.map((add) => ({ add })), true);
  return adds;
};

const removeOf = (add: Add): Action => ({ remove: { path: add.path, deletionTimestamp: Date.now(), dataChange: false, partitionValues: add.partitionValues, size: add.size } });

/** An object that is not Parquet, committed as a data file of the hour, with the given stats. */
async function commitGarbage(store: ObjectStore, atMs: number, stats?: FileStats): Promise<Add> {
  const partition = hourPartitionOf(atMs);
  const path = `date=${partition.date}/hour=${partition.hour}/garbage-${crypto.randomUUID()}.parquet`;
  const bytes = new TextEncoder().encode("this is not a Parquet file");
  await store.put(`${TABLE}/${path}`, bytes);
  const add: Add = { path, partitionValues: partitionValuesOf(partition), size: bytes.length, modificationTime: Date.now(), dataChange: true, ...(stats ? { stats: encodeStats(stats) } : {}) };
  await commitActions(store, TABLE, [{ add }], true);
  return add;
}

const readings = (prefix: string, key: string, fromMs: number, count: number, stepMs = MINUTE): Reading[] => Array.from({ length: count }, (_, i) => ({ id: `${prefix}-${i}`, key, atMs: fromMs + i * stepMs }));

const ids = (items: Record<string, unknown>[]) => items.map((item) => String(item.event_id));

async function rowsOf(reader: LakeReader, sql: string): Promise<unknown[][]> {
  const { body } = await reader.query(sql);
  return (JSON.parse(new TextDecoder().decode(body)) as { rows: unknown[][] }).rows;
}

for (const [name, storeOf] of Object.entries(stores)) {
  describe(`lake reader over Delta tables on ${name}`, () => {
    let lake: TestLake | undefined;
    const fresh = async () => {
      lake = openLake(storeOf());
      await ensureTable(lake.store, TABLE, eventTableDefinition(TYPE));
      return lake;
    };
    afterEach(async () => {
      await lake?.reader.close();
      lake = undefined;
    });

    test("events of a key and time range come back once, oldest first; tables not created yet are empty views", async () => {
      const { store, reader } = await fresh();
      const k1 = readings("k1-a", "k1", HOUR_A + 5 * MINUTE, 40);
      const k2 = readings("k2-a", "k2", HOUR_A + 5 * MINUTE, 40);
      await append(store, [...k1, ...k2]);
      const k1Later = readings("k1-b", "k1", HOUR_A + 50 * MINUTE, 30, 30_000);
      await append(store, k1Later);
      await append(store, readings("k2-b", "k2", HOUR_B + 10 * MINUTE, 10));

      const fromMs = HOUR_A + 30 * MINUTE;
      const toMs = HOUR_B + 5 * MINUTE;
      const expected = [...k1, ...k1Later].filter((r) => r.atMs >= fromMs && r.atMs < toMs).sort((a, b) => a.atMs - b.atMs || a.id.localeCompare(b.id));
      const items = await reader.events({ type: TYPE, key: "k1", fromMs, toMs, limit: 1_000 });
      expect(ids(items)).toEqual(expected.map((r) => r.id));
      expect(items[0]).toMatchObject({ type: TYPE, key: "k1", sensor_id: "sensor-k1", temperature: 21.5, humidity: 40, event_time: new Date(expected[0]?.atMs ?? 0).toISOString() });

      expect(await rowsOf(reader, "select count(*), count(distinct event_id) from sensor_reading")).toEqual([[120, 120]]);
      expect(await rowsOf(reader, "select (select count(*) from gps_fix), (select count(*) from cars)")).toEqual([[0, 0]]);
      expect(await reader.events({ type: "gps.fix", limit: 10 })).toEqual([]);
    }, 60_000);

    test("a file a commit removed is not read although it is still stored; an uploaded file never committed is not read", async () => {
      const { store, reader } = await fresh();
      const batch = readings("e", "k1", HOUR_A, 20);
      const [small] = await append(store, batch);
      if (!small) throw new Error("no file written");
      // A compaction: the same rows in one new file, the old one removed in the same commit.
      const compacted = await upload(store, batch, { dataChange: false });
      await commitActions(store, TABLE, [removeOf(small), ...compacted.map((add): Action => ({ add }))], false);
      expect(await store.get(`${TABLE}/${small.path}`)).not.toBeNull();

      const orphan = await upload(store, readings("orphan", "k1", HOUR_A + 30 * MINUTE, 5));
      expect(orphan).toHaveLength(1);
      expect(await store.get(`${TABLE}/${orphan[0]?.path}`)).not.toBeNull();

      const items = await reader.events({ type: TYPE, key: "k1", fromMs: HOUR_A, toMs: HOUR_B, limit: 1_000 });
      expect(ids(items)).toEqual(batch.map((r) => r.id));
      expect(await rowsOf(reader, "select count(*), count(distinct event_id) from sensor_reading")).toEqual([[20, 20]]);
    }, 60_000);

    test("a dim replaced by two overwrite commits shows only the second version", async () => {
      const { store, reader } = await fresh();
      const name: DimensionName = "car_colors";
      const table = dimTableOf(name);
      await ensureTable(store, table, dimTableDefinition(name));
      const columns = columnsOf(dimensions[name].schema.shape).map((c) => c.name);
      expect(columns).toEqual(["color_id", "color_name"]);
      const version = async (rows: string) => {
        const files = await copyToDataFiles(duck, `select * from (values ${rows}) as t(color_id, color_name)`, join(dir.path, uniqueName("dim")), { partitioned: false });
        return uploadDataFiles(store, table, files, "dim", true);
      };
      const first = await version("(1::bigint, 'Black'), (2::bigint, 'White')");
      await commitActions(store, table, first.map((add) => ({ add })), false);
      expect(await rowsOf(reader, "select color_id, color_name from car_colors order by color_id")).toEqual([
        [1, "Black"],
        [2, "White"],
      ]);
      const second = await version("(2::bigint, 'Silver'), (3::bigint, 'Red')");
      await commitActions(store, table, [...first.map((add): Action => ({ remove: { path: add.path, deletionTimestamp: Date.now(), dataChange: true } })), ...second.map((add) => ({ add }))], false);
      expect(await rowsOf(reader, "select color_id, color_name from car_colors order by color_id")).toEqual([
        [2, "Silver"],
        [3, "Red"],
      ]);
    }, 60_000);

    test("a file written before a schema evolution reads the added column as NULL", async () => {
      lake = openLake(storeOf());
      const { store, reader } = lake;
      const full = eventTableDefinition(TYPE);
      await ensureTable(store, TABLE, { ...full, columns: full.columns.filter((c) => c.name !== "humidity") });
      const before = readings("old", "k1", HOUR_A, 5);
      await append(store, before, { withHumidity: false });
      expect(await ensureTable(store, TABLE, full)).toEqual({ created: false, evolved: true });
      const after = readings("new", "k1", HOUR_B, 5).map((r) => ({ ...r, humidity: 55 }));
      await append(store, after);

      // Only the old file is read here: no file of the read has the column.
      const old = await reader.events({ type: TYPE, fromMs: HOUR_A, toMs: HOUR_B, limit: 100 });
      expect(old.map((item) => [item.event_id, item.humidity])).toEqual(before.map((r) => [r.id, null]));
      expect(Object.keys(old[0] ?? {})).toEqual(["type", ...envelopeColumns.map((c) => c.name), ...payloadColumns(TYPE).map((c) => c.name)]);
      expect(await rowsOf(reader, "select event_id, humidity from sensor_reading order by event_time")).toEqual([...before.map((r) => [r.id, null]), ...after.map((r) => [r.id, 55])]);
    }, 60_000);

    test("files are skipped by hour partition and by event_time and key stats, never on absent or truncated stats", async () => {
      const { store, reader } = await fresh();
      const batch = readings("p", "k1", HOUR_A, 20);
      await append(store, batch);
      // Unreadable files the query below must never open: another hour (no stats), the same hour with
      // event times after the range, and the same hour and times with other keys.
      await commitGarbage(store, HOUR_B + MINUTE);
      await commitGarbage(store, HOUR_A, { numRecords: 3, minValues: { event_time: new Date(HOUR_A + 40 * MINUTE).toISOString() }, maxValues: { event_time: new Date(HOUR_A + 50 * MINUTE).toISOString() } });
      await commitGarbage(store, HOUR_A, { numRecords: 3, minValues: { key: "m", event_time: new Date(HOUR_A).toISOString() }, maxValues: { key: "z", event_time: new Date(HOUR_A + 10 * MINUTE).toISOString() } });

      const range = { type: TYPE, fromMs: HOUR_A, toMs: HOUR_A + 30 * MINUTE, limit: 1_000 };
      const expected = batch.filter((r) => r.atMs < range.toMs).map((r) => r.id);
      expect(ids(await reader.events({ ...range, key: "k1" }))).toEqual(expected);
      // The garbage is live: a read that cannot skip it fails.
      await expect(reader.events(range)).rejects.toThrow(NOT_PARQUET);
      await expect(reader.query("select count(*) from sensor_reading")).rejects.toThrow(NOT_PARQUET);

      // Stats that cannot rule the read out do not skip the file: a max cut to a prefix ("k" for "k1…"), no stats.
      for (const stats of [{ numRecords: 3, minValues: { key: "a" }, maxValues: { key: "k" } }, undefined]) {
        const garbage = await commitGarbage(store, HOUR_A, stats);
        await expect(reader.events({ ...range, key: "k1" })).rejects.toThrow(NOT_PARQUET);
        await commitActions(store, TABLE, [removeOf(garbage)], false);
        expect(ids(await reader.events({ ...range, key: "k1" }))).toEqual(expected);
      }
    }, 60_000);
  });
}
