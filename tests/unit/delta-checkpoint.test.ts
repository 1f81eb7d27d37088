import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Action } from "../../lib/lake/delta/actions.ts";
import { writeCheckpoint } from "../../lib/lake/delta/checkpoint.ts";
import { cleanupLog } from "../../lib/lake/delta/cleanup.ts";
import { commit, ensureTable } from "../../lib/lake/delta/commit.ts";
import { readCheckpoint, readSnapshot, TableLog } from "../../lib/lake/delta/log.ts";
import { checkpointKey, commitKey, lastCheckpointKey } from "../../lib/lake/delta/paths.ts";
import { eventPartitionColumns, eventTableColumns } from "../../lib/lake/delta/schema.ts";
import type { Snapshot } from "../../lib/lake/delta/snapshot.ts";
import { createDirStore } from "../../lib/lake/dir-store.ts";
import { Duck, sqlString } from "../../lib/lake/duckdb.ts";

/** A tombstone within the default retention, so checkpoints keep it. */
const deletedAt = Date.now() - 60_000;
import type { ObjectStore } from "../../lib/lake/types.ts";

let root: string;
let store: ObjectStore;
const table = "events/sensor_reading";

const add = (path: string, hour: number): Action => ({
  add: { path, partitionValues: { date: "2026-11-21", hour: String(hour) }, size: 10 + hour, modificationTime: 1_700_000_000_000 + hour, dataChange: true, stats: JSON.stringify({ numRecords: hour + 1 }) },
});

/** The same store with no checkpoint visible: readers must replay every JSON commit. */
const withoutCheckpoints = (inner: ObjectStore): ObjectStore => ({
  ...inner,
  list: async (prefix) => (await inner.list(prefix)).filter((o) => !o.key.includes(".checkpoint.")),
  get: (key) => (key.endsWith("_last_checkpoint") ? Promise.resolve(null) : inner.get(key)),
});

const comparable = (s: Snapshot) => ({
  version: s.version,
  protocol: s.protocol,
  metadata: s.metadata,
  files: Object.fromEntries([...s.files].sort()),
  txns: Object.fromEntries([...s.txns].sort()),
  tombstones: Object.fromEntries([...s.tombstones].sort()),
});

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), "delta-checkpoint-"));
  store = createDirStore(root);
  await ensureTable(store, table, { columns: eventTableColumns("sensor.reading"), partitionColumns: eventPartitionColumns.map((c) => c.name) });
  // Versions 1..12: appends with txn, and a compaction at 6 (remove with a tombstone).
  for (let v = 1; v <= 12; v++) {
    const actions: Action[] =
      v === 6
        ? [{ remove: { path: "f1.parquet", deletionTimestamp: deletedAt, dataChange: false, partitionValues: { date: "2026-11-21", hour: "1" }, size: 11 } }, add("compacted-1.parquet", 1)]
        : [add(`f${v}.parquet`, v % 24), { txn: { appId: `sink-p${v % 3}`, version: v * 100, lastUpdated: 1_700_000_000_000 } }];
    await commit(store, table, actions, { readVersion: v - 1, isBlindAppend: v !== 6 });
  }
});
afterAll(() => rm(root, { recursive: true, force: true }));

test("version 10 is checkpointed: Parquet with one struct column per action, and _last_checkpoint", async () => {
  expect(await store.get(checkpointKey(table, 0))).toBeNull();
  const path = store.localPath(checkpointKey(table, 10)) ?? "";
  const last = JSON.parse(new TextDecoder().decode((await store.get(lastCheckpointKey(table))) ?? new Uint8Array()));
  // protocol + metaData + 3 txn + 9 live files + 1 tombstone
  expect(last).toMatchObject({ version: 10, size: 15, numOfAddFiles: 9 });
  const duck = await Duck.open();
  try {
    const { rows } = await duck.query(`select name, type, converted_type from parquet_schema(${sqlString(path)}) where name in ('txn', 'add', 'remove', 'metaData', 'protocol', 'partitionValues', 'stats', 'minReaderVersion')`);
    expect(rows.map((r) => r[0])).toEqual(["txn", "add", "partitionValues", "stats", "remove", "partitionValues", "metaData", "protocol", "minReaderVersion"]);
    expect(rows.filter((r) => r[0] === "partitionValues").map((r) => r[2])).toEqual(["MAP", "MAP"]);
    const counts = await duck.objects(`select count(add) adds, count(remove) removes, count(txn) txns, count(metaData) metas, count(protocol) protocols, count(*) as n from read_parquet(${sqlString(path)})`);
    expect(counts[0]).toEqual({ adds: 9, removes: 1, txns: 3, metas: 1, protocols: 1, n: 15 });
    const hours = await duck.query(`select add.partitionValues['hour'] from read_parquet(${sqlString(path)}) where add.path = 'f7.parquet'`);
    expect(hours.rows).toEqual([["7"]]);
  } finally {
    duck.close();
  }
});

test("a fresh reader from checkpoint + tail sees the snapshot that replaying every JSON commit gives", async () => {
  const gets: string[] = [];
  const counting: ObjectStore = { ...store, get: (key) => (gets.push(key), store.get(key)) };
  const fromCheckpoint = await readSnapshot(counting, table);
  expect(gets.filter((k) => k.endsWith(".json"))).toEqual([commitKey(table, 11), commitKey(table, 12)]);
  const fromJson = await readSnapshot(withoutCheckpoints(store), table);
  expect(fromCheckpoint.version).toBe(12);
  expect(comparable(fromCheckpoint)).toEqual(comparable(fromJson));
  expect(fromCheckpoint.files.has("f1.parquet")).toBe(false);
  expect(fromCheckpoint.tombstones.get("f1.parquet")?.deletionTimestamp).toBe(deletedAt);
  expect(fromCheckpoint.txns.get("sink-p0")).toBe(1200);
});

test("after log cleanup, readers (fresh or cached behind it) start from the checkpoint", async () => {
  const copyRoot = await mkdtemp(join(tmpdir(), "delta-cleanup-"));
  try {
    const copy = createDirStore(copyRoot);
    for (const { key } of await store.list(`${table}/_delta_log/`)) await copy.put(key, (await store.get(key)) ?? new Uint8Array());
    // A log that last saw version 3, while the checkpoint and the later commits were not there yet.
    let seenUpTo = 3;
    const growing: ObjectStore = { ...copy, list: async (p) => (await copy.list(p)).filter((o) => Number(/(\d{20})\./.exec(o.key)?.[1] ?? 0) <= seenUpTo) };
    const behind = new TableLog(growing, table);
    expect((await behind.refresh()).version).toBe(3);
    seenUpTo = Number.POSITIVE_INFINITY;
    await copy.delete(Array.from({ length: 10 }, (_, v) => commitKey(table, v)));
    const expected = comparable(await readSnapshot(store, table));
    // Commits 4..9 are gone: the cached log cannot be tailed and reloads from the checkpoint.
    expect(comparable(await behind.refresh())).toEqual(expected);
    expect(comparable(await readSnapshot(copy, table))).toEqual(expected);
  } finally {
    await rm(copyRoot, { recursive: true, force: true });
  }
});

test("a checkpoint leaves out tombstones older than the retention; recent and undated ones stay", async () => {
  const snapshot = await readSnapshot(store, table);
  const now = Date.now();
  const tombstone = (path: string, deletionTimestamp?: number) => ({ path, dataChange: false, ...(deletionTimestamp === undefined ? {} : { deletionTimestamp }) });
  const tombstones = new Map([tombstone("old.parquet", now - 25 * 3_600_000), tombstone("recent.parquet", now - 60_000), tombstone("undated.parquet")].map((t) => [t.path, t]));
  const target = "events/retention_checkpoint";
  await writeCheckpoint(store, target, { ...snapshot, tombstones }, { retentionMs: 24 * 3_600_000, now });
  const actions = await readCheckpoint(store, checkpointKey(target, snapshot.version));
  expect(actions.flatMap((a) => ("remove" in a ? [a.remove.path] : [])).sort()).toEqual(["recent.parquet", "undated.parquet"]);
  expect(actions.filter((a) => "add" in a)).toHaveLength(snapshot.files.size);
  // The default retention is LAKE_RETENTION_S's default, 24 hours.
  await writeCheckpoint(store, target, { ...snapshot, tombstones });
  const byDefault = await readCheckpoint(store, checkpointKey(target, snapshot.version));
  expect(byDefault.flatMap((a) => ("remove" in a ? [a.remove.path] : [])).sort()).toEqual(["recent.parquet", "undated.parquet"]);
});

describe("log cleanup", () => {
  const minute = 60_000;
  const base = 1_800_000_000_000;
  let cleanRoot: string;
  let clean: ObjectStore;
  const cleaned = "events/cleanup";
  const logVersions = async (kind: "json" | "checkpoint.parquet") =>
    (await clean.list(`${cleaned}/_delta_log/`)).flatMap((o) => (o.key.endsWith(`.${kind}`) ? [Number(/(\d{20})\./.exec(o.key)?.[1])] : []));

  beforeAll(async () => {
    cleanRoot = await mkdtemp(join(tmpdir(), "delta-cleanup-"));
    clean = createDirStore(cleanRoot);
    await ensureTable(clean, cleaned, { columns: eventTableColumns("sensor.reading"), partitionColumns: eventPartitionColumns.map((c) => c.name) });
    // Version v is committed at base + v minutes; checkpoints land at 10 and 20.
    for (let v = 1; v <= 25; v++) {
      await commit(clean, cleaned, [{ commitInfo: { timestamp: base + v * minute, operation: "WRITE" } }, add(`f${v}.parquet`, v % 24)], { readVersion: v - 1, isBlindAppend: true });
    }
  });
  afterAll(() => rm(cleanRoot, { recursive: true, force: true }));

  test("nothing goes while every checkpoint's commit is younger than the retention", async () => {
    expect(await cleanupLog(clean, cleaned, { retentionMs: 60 * minute, now: base + 30 * minute })).toEqual({ startsAt: undefined, deleted: 0 });
    expect(await logVersions("json")).toHaveLength(26);
  });

  test("entries below the newest expired checkpoint go; that checkpoint and everything after it stay", async () => {
    const before = comparable(await readSnapshot(clean, cleaned));
    // Cutoff between commits 15 and 16: checkpoint 20 is too young, 10 is the newest expired one.
    expect(await cleanupLog(clean, cleaned, { retentionMs: 60 * minute, now: base + 75.5 * minute })).toEqual({ startsAt: 10, deleted: 10 });
    expect(await logVersions("json")).toEqual(Array.from({ length: 16 }, (_, i) => 10 + i));
    expect(await logVersions("checkpoint.parquet")).toEqual([10, 20]);
    expect(comparable(await readSnapshot(clean, cleaned))).toEqual(before);
    // Everything expired: the log starts at checkpoint 20; running it again deletes nothing more.
    expect(await cleanupLog(clean, cleaned, { retentionMs: 60 * minute, now: base + 200 * minute })).toEqual({ startsAt: 20, deleted: 11 });
    expect(await cleanupLog(clean, cleaned, { retentionMs: 60 * minute, now: base + 200 * minute })).toEqual({ startsAt: 20, deleted: 0 });
    expect(await logVersions("json")).toEqual([20, 21, 22, 23, 24, 25]);
    expect(await logVersions("checkpoint.parquet")).toEqual([20]);
    expect(comparable(await readSnapshot(clean, cleaned))).toEqual(before);
  });

  test("a checkpoint past _last_checkpoint is not used: readers cached behind it would not learn of the cleanup", async () => {
    const other = "events/cleanup_hint";
    await ensureTable(clean, other, { columns: eventTableColumns("sensor.reading"), partitionColumns: eventPartitionColumns.map((c) => c.name) });
    for (let v = 1; v <= 20; v++) await commit(clean, other, [{ commitInfo: { timestamp: base + v * minute } }, add(`f${v}.parquet`, v % 24)], { readVersion: v - 1, isBlindAppend: true });
    await clean.put(lastCheckpointKey(other), new TextEncoder().encode(JSON.stringify({ version: 10, size: 13 })));
    expect(await cleanupLog(clean, other, { retentionMs: minute, now: base + 100 * minute })).toEqual({ startsAt: 10, deleted: 10 });
    await clean.delete([lastCheckpointKey(other)]);
    expect(await cleanupLog(clean, other, { retentionMs: minute, now: base + 100 * minute })).toEqual({ startsAt: undefined, deleted: 0 });
  });
});
