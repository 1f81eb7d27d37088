import { afterAll, beforeAll, expect, test } from "bun:test";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DeltaConflictError, LakeError } from "../../lib/errors.ts";
import { type Action, type Add, decodeCommit, encodeCommit, encodeStats } from "../../lib/lake/delta/actions.ts";
import { commit, ensureTable } from "../../lib/lake/delta/commit.ts";
import { readSnapshot, TableLog } from "../../lib/lake/delta/log.ts";
import { commitKey } from "../../lib/lake/delta/paths.ts";
import { eventPartitionColumns, eventTableColumns, parseSchemaString, schemaString } from "../../lib/lake/delta/schema.ts";
import { createDirStore } from "../../lib/lake/dir-store.ts";
import type { ObjectStore } from "../../lib/lake/types.ts";

let root: string;
let store: ObjectStore;
let tableNo = 0;
const definition = { columns: eventTableColumns("sensor.reading"), partitionColumns: eventPartitionColumns.map((c) => c.name) };

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), "delta-log-"));
  store = createDirStore(root);
});
afterAll(() => rm(root, { recursive: true, force: true }));

async function newTable(): Promise<string> {
  const table = `events/sensor_reading_${++tableNo}`;
  await ensureTable(store, table, definition);
  return table;
}

const add = (path: string, dataChange = true): Add => ({
  path,
  partitionValues: { date: "2026-11-21", hour: "7" },
  size: 100,
  modificationTime: 1_700_000_000_000,
  dataChange,
  stats: encodeStats({ numRecords: 3, minValues: { temperature: 1.5 }, maxValues: { temperature: 9 }, nullCount: { temperature: 0 } }),
});
const remove = (path: string, dataChange = true): Action => ({ remove: { path, deletionTimestamp: 1_700_000_100_000, dataChange, partitionValues: { date: "2026-11-21", hour: "7" }, size: 100 } });

test("actions: a commit encodes as one JSON line per action and decodes skipping unknown actions", () => {
  const actions: Action[] = [{ add: add("a.parquet") }, { txn: { appId: "lake-sink", version: 4 } }];
  const text = new TextDecoder().decode(encodeCommit(actions));
  expect(text.split("\n")).toHaveLength(3);
  const withForeign = new TextEncoder().encode(`${text}{"domainMetadata":{"domain":"x","configuration":"{}","removed":false}}\n\n{"commitInfo":{"operation":"WRITE","engineInfo":"spark"}}\n`);
  const decoded = decodeCommit(withForeign, "test");
  expect(decoded.slice(0, 2)).toEqual(actions);
  expect(decoded[2]).toEqual({ commitInfo: { operation: "WRITE", engineInfo: "spark" } });
  expect(() => decodeCommit(new TextEncoder().encode(`{"add":{"path":"x"}}\n`), "bad")).toThrow(LakeError);
});

test("schema: event tables are a Spark StructType with date/hour partition columns", () => {
  const columns = parseSchemaString(schemaString(definition.columns));
  expect(columns.slice(0, 4).map((c) => `${c.name}:${c.type}:${c.nullable}`)).toEqual(["event_id:string:false", "key:string:false", "event_time:timestamp:false", "ingest_time:timestamp:false"]);
  expect(columns.find((c) => c.name === "temperature")?.type).toBe("double");
  expect(columns.slice(-2)).toEqual([
    { name: "date", type: "date", nullable: false },
    { name: "hour", type: "integer", nullable: false },
  ]);
  expect(() => schemaString([{ name: "a", type: "long", nullable: true }, { name: "A", type: "long", nullable: true }])).toThrow();
});

test("create table: version 0 has protocol and metadata, no files; creating it again is a no-op, with another schema an error", async () => {
  const table = await newTable();
  const snapshot = await readSnapshot(store, table);
  expect(snapshot.version).toBe(0);
  expect(snapshot.protocol).toEqual({ minReaderVersion: 1, minWriterVersion: 2 });
  expect(snapshot.metadata.partitionColumns).toEqual(["date", "hour"]);
  expect(snapshot.metadata.format.provider).toBe("parquet");
  expect(snapshot.files.size).toBe(0);
  expect(await ensureTable(store, table, definition)).toEqual({ created: false, evolved: false });
  expect((await readSnapshot(store, table)).version).toBe(0);
  await expect(ensureTable(store, table, { ...definition, partitionColumns: ["date"] })).rejects.toThrow(LakeError);
  await expect(readSnapshot(store, "events/none")).rejects.toThrow(LakeError);
});

test("appends with txn list their files and txn versions; a remove drops the file and keeps a tombstone", async () => {
  const table = await newTable();
  expect(await commit(store, table, [{ add: add("date=2026-11-21/hour=7/a.parquet") }, { txn: { appId: "sink-p0", version: 10 } }], { readVersion: 0, isBlindAppend: true })).toBe(1);
  expect(await commit(store, table, [{ add: add("date=2026-11-21/hour=7/b.parquet") }, { txn: { appId: "sink-p0", version: 20 } }, { txn: { appId: "sink-p1", version: 5 } }], { readVersion: 1, isBlindAppend: true })).toBe(2);
  let snapshot = await readSnapshot(store, table);
  expect(snapshot.version).toBe(2);
  expect([...snapshot.files.keys()].sort()).toEqual(["date=2026-11-21/hour=7/a.parquet", "date=2026-11-21/hour=7/b.parquet"]);
  expect(Object.fromEntries(snapshot.txns)).toEqual({ "sink-p0": 20, "sink-p1": 5 });
  expect(JSON.parse(snapshot.files.get("date=2026-11-21/hour=7/a.parquet")?.stats ?? "{}").numRecords).toBe(3);

  expect(await commit(store, table, [remove("date=2026-11-21/hour=7/a.parquet")], { readVersion: 2, isBlindAppend: false, operation: "DELETE" })).toBe(3);
  snapshot = await readSnapshot(store, table);
  expect([...snapshot.files.keys()]).toEqual(["date=2026-11-21/hour=7/b.parquet"]);
  expect(snapshot.tombstones.get("date=2026-11-21/hour=7/a.parquet")?.deletionTimestamp).toBe(1_700_000_100_000);
  // A commit carries its provenance.
  const first = decodeCommit((await store.get(commitKey(table, 1))) ?? new Uint8Array(), "v1");
  expect(first[0]).toMatchObject({ commitInfo: { operation: "WRITE", readVersion: 0, isBlindAppend: true } });
  await expect(commit(store, table, [remove("x.parquet")], { readVersion: 3, isBlindAppend: true })).rejects.toThrow(LakeError);
});

test("racing writers: blind appends both land; a double remove and an overlapping txn are refused", async () => {
  const table = await newTable();
  await commit(store, table, [{ add: add("base-1.parquet") }, { add: add("base-2.parquet") }], { readVersion: 0, isBlindAppend: true });
  const k = 1;
  const versions = await Promise.all(
    ["w1.parquet", "w2.parquet"].map((path, i) => commit(store, table, [{ add: add(path) }, { txn: { appId: `writer-${i}`, version: 1 } }], { readVersion: k, isBlindAppend: true })),
  );
  expect(versions.sort()).toEqual([k + 1, k + 2]);
  expect([...(await readSnapshot(store, table)).files.keys()].sort()).toEqual(["base-1.parquet", "base-2.parquet", "w1.parquet", "w2.parquet"]);

  // Two compactions of the same file, planned on the same snapshot: one wins, the other conflicts.
  const readVersion = 3;
  const compactions = await Promise.allSettled(
    ["c1.parquet", "c2.parquet"].map((path) => commit(store, table, [remove("base-1.parquet", false), { add: add(path, false) }], { readVersion, isBlindAppend: false, operation: "OPTIMIZE" })),
  );
  expect(compactions.filter((r) => r.status === "fulfilled")).toHaveLength(1);
  const refused = compactions.find((r) => r.status === "rejected");
  expect(refused?.status === "rejected" && refused.reason).toBeInstanceOf(DeltaConflictError);

  // A compaction racing an append is fine: it removes nothing the append touched.
  const now = (await readSnapshot(store, table)).version;
  await commit(store, table, [{ add: add("w3.parquet") }], { readVersion: now, isBlindAppend: true });
  expect(await commit(store, table, [remove("base-2.parquet", false), { add: add("c3.parquet", false) }], { readVersion: now, isBlindAppend: false })).toBe(now + 2);

  // The same sink partition committed by another writer since this one read: fenced, whatever the versions
  // (an old owner flushing late after a rebalance must not add rows the new owner has also written).
  const stale = (await readSnapshot(store, table)).version;
  await commit(store, table, [{ add: add("s1.parquet") }, { txn: { appId: "sink-p9", version: 7 } }], { readVersion: stale, isBlindAppend: true });
  await expect(commit(store, table, [{ add: add("s1-again.parquet") }, { txn: { appId: "sink-p9", version: 7 } }], { readVersion: stale, isBlindAppend: true })).rejects.toBeInstanceOf(DeltaConflictError);
  await expect(commit(store, table, [{ add: add("s1-later.parquet") }, { txn: { appId: "sink-p9", version: 8 } }], { readVersion: stale, isBlindAppend: true })).rejects.toBeInstanceOf(DeltaConflictError);
  // Another appId is compatible, and so is the same appId read at the version that holds its last commit.
  expect(await commit(store, table, [{ add: add("s3.parquet") }, { txn: { appId: "sink-p8", version: 7 } }], { readVersion: stale, isBlindAppend: true })).toBe(stale + 2);
  expect(await commit(store, table, [{ add: add("s2.parquet") }, { txn: { appId: "sink-p9", version: 8 } }], { readVersion: stale + 1, isBlindAppend: true })).toBe(stale + 3);
  const files = (await readSnapshot(store, table)).files;
  expect(files.has("s1-again.parquet")).toBe(false);
  expect(files.has("s1-later.parquet")).toBe(false);
  expect(files.has("s2.parquet")).toBe(true);
});

test("a concurrent metadata change fails an append; a remove of a file this commit read fails it", async () => {
  const table = await newTable();
  await commit(store, table, [{ add: add("r.parquet") }], { readVersion: 0, isBlindAppend: true });
  const snapshot = await readSnapshot(store, table);
  await commit(store, table, [{ metaData: { ...snapshot.metadata, configuration: { "delta.appendOnly": "false" } } }], { readVersion: 1, isBlindAppend: false });
  await expect(commit(store, table, [{ add: add("late.parquet") }], { readVersion: 1, isBlindAppend: true })).rejects.toBeInstanceOf(DeltaConflictError);
  await commit(store, table, [remove("r.parquet")], { readVersion: 2, isBlindAppend: false });
  await expect(commit(store, table, [{ add: add("derived.parquet") }], { readVersion: 2, isBlindAppend: false, reads: { files: ["r.parquet"] } })).rejects.toBeInstanceOf(DeltaConflictError);
});

test("a table log refresh reads only the commits after its snapshot, without listing the log", async () => {
  const table = await newTable();
  const gets: string[] = [];
  let lists = 0;
  const counting: ObjectStore = { ...store, get: (key) => (gets.push(key), store.get(key)), list: (prefix) => (lists++, store.list(prefix)) };
  const tableLog = new TableLog(counting, table);
  expect((await tableLog.refresh()).version).toBe(0);
  for (let v = 1; v <= 3; v++) await commit(store, table, [{ add: add(`f${v}.parquet`) }], { readVersion: v - 1, isBlindAppend: true });
  gets.length = 0;
  lists = 0;
  const snapshot = await tableLog.refresh();
  expect(snapshot.version).toBe(3);
  expect([...snapshot.files.keys()].sort()).toEqual(["f1.parquet", "f2.parquet", "f3.parquet"]);
  const fetched = gets.filter((k) => k.endsWith(".json"));
  // Commit 0 is not read again; 1..3 are, plus probes past the end.
  expect(fetched).not.toContain(commitKey(table, 0));
  expect(fetched.slice(0, 3)).toEqual([1, 2, 3].map((v) => commitKey(table, v)));
  expect(lists).toBe(0);
  gets.length = 0;
  // Nothing new: one probe of the next version (and the checkpoint hint), no listing.
  expect(await tableLog.refresh()).toBe(snapshot);
  expect(gets.filter((k) => k.endsWith(".json"))).toEqual([commitKey(table, 4)]);
  expect(lists).toBe(0);
});
