import { afterAll, describe, expect, test } from "bun:test";
import { join } from "node:path";
import { copyToDataFiles, uploadDataFiles } from "../../lib/lake/data-files.ts";
import { commit, ensureTable } from "../../lib/lake/delta/commit.ts";
import { readCommit, readSnapshot } from "../../lib/lake/delta/log.ts";
import { createDirStore } from "../../lib/lake/dir-store.ts";
import { Duck, sqlStringList } from "../../lib/lake/duckdb.ts";
import { localFiles } from "../../lib/lake/local-files.ts";
import { createS3Store } from "../../lib/lake/s3-store.ts";
import { eventTableDefinition, eventTableOf, fileKeyOf } from "../../lib/lake/tables.ts";
import type { ObjectStore } from "../../lib/lake/types.ts";
import { createLogger } from "../../lib/log.ts";
import { compactableGroups, compactGroup, type GroupDeps } from "../../workers/lake/compaction.ts";
import { readDelta } from "../support/delta-reader.ts";
import { services, uniqueName } from "../support/services.ts";
import { tempDir } from "../support/tmp.ts";

/**
 * Two compactors of the same closed hour, planned on the same snapshot, racing to commit while a flush
 * appends into that hour: one OPTIMIZE commit wins, the loser writes nothing live and deletes its output,
 * and every row is in the table once (finding 1 of issue 11 lost 53 events this way).
 */
const scratch = tempDir("devpipe-compaction-race-");
afterAll(() => scratch.remove());

const type = "sensor.reading";
const table = eventTableOf(type);
const DAY_MS = Date.UTC(2026, 0, 10);
const HOUR = 3;
const quiet = createLogger({ test: "compaction-race" }, () => undefined);

const lakes: { name: string; open: () => { store: ObjectStore; uri: string; s3?: ReturnType<typeof services>["s3"] } }[] = [
  {
    name: "dir",
    open: () => {
      const root = join(scratch.path, uniqueName("lake"));
      return { store: createDirStore(root), uri: join(root, table) };
    },
  },
  {
    name: "minio",
    open: () => {
      const { s3 } = services();
      const prefix = uniqueName("compaction-race");
      return { store: createS3Store({ ...s3, prefix }), uri: `s3://${s3.bucket}/${prefix}/${table}`, s3 };
    },
  },
];

/** `rows` sensor readings of flush `n` in the test hour, as the sink writes them: one file, one blind append with a txn. */
async function flush(store: ObjectStore, duck: Duck, n: number, rows: number): Promise<void> {
  const start = DAY_MS + HOUR * 3_600_000;
  const select = `select 'e-${n}-' || i as event_id, 'dev-' || (i % 37) as key,
      make_timestamptz((${start} + (i * 7919) % 3600000) * 1000) as event_time, make_timestamptz(${start + 3_600_000} * 1000) as ingest_time,
      's-' || (i % 37) as sensor_id, 20.0 + (i % 10) as temperature, 50.0 as humidity,
      DATE '2026-01-10' as date, ${HOUR}::INTEGER as hour
    from range(${rows}) t(i)`;
  const files = await copyToDataFiles(duck, select, join(scratch.path, `flush-${crypto.randomUUID()}`), { partitioned: true });
  const adds = await uploadDataFiles(store, table, files, "part", true);
  const snapshot = await readSnapshot(store, table);
  await commit(store, table, [...adds.map((add) => ({ add })), { txn: { appId: "test.sink.p0", version: n } }], { readVersion: snapshot.version, isBlindAppend: true });
}

for (const lake of lakes) {
  describe(`compaction race on ${lake.name}`, () => {
    test("one of two compactions of the same hour commits; the loser's output is deleted; an append meanwhile survives; every row once", async () => {
      const { store, uri, s3 } = lake.open();
      const ducks = await Promise.all([Duck.open({ threads: "1" }), Duck.open({ threads: "1" })]);
      const [duck] = ducks;
      if (!duck) throw new Error("no DuckDB");
      try {
        await ensureTable(store, table, eventTableDefinition(type));
        for (let n = 1; n <= 4; n++) await flush(store, duck, n, 500);
        const planned = await readSnapshot(store, table);
        const [group] = compactableGroups(table, planned, Date.now(), 10);
        expect(group?.files).toHaveLength(4);
        if (!group) return;

        // A flush into the same hour lands after both compactors read the snapshot.
        await flush(store, duck, 5, 500);
        const compactor = (duck: Duck, i: number): GroupDeps => ({ store, duck, files: localFiles(store, join(scratch.path, `cache-${lake.name}-${i}`)), workDir: join(scratch.path, `work-${lake.name}-${i}`), logger: quiet });
        const started = performance.now();
        const outcomes = await Promise.all(ducks.map((d, i) => compactGroup(compactor(d, i), planned, group)));
        const elapsedMs = Math.round(performance.now() - started);

        const winners = outcomes.filter((o) => o.status === "committed");
        const losers = outcomes.filter((o) => o.status === "conflict");
        expect(winners).toHaveLength(1);
        expect(losers).toHaveLength(1);
        for (const key of losers[0]?.outputs ?? []) expect(await store.get(key)).toBeNull();
        for (const key of winners[0]?.outputs ?? []) expect(await store.get(key)).not.toBeNull();

        // Versions: 0 create, 1-4 flushes, 5 the flush meanwhile, 6 the one OPTIMIZE, nothing after.
        const latest = await readSnapshot(store, table);
        expect(latest.version).toBe(6);
        expect((await readCommit(store, table, 6))?.find((a) => "commitInfo" in a)).toMatchObject({ commitInfo: { operation: "OPTIMIZE", readVersion: 4 } });
        const live = [...latest.files.keys()].map((path) => fileKeyOf(table, path));
        expect(live).toHaveLength(2);
        expect(live).toContain(winners[0]?.outputs[0] ?? "");
        expect(latest.txns.get("test.sink.p0")).toBe(5);

        const byDelta = await readDelta(uri, { countDistinct: ["event_id"], s3 });
        expect({ version: byDelta.version, rows: byDelta.num_rows, ids: byDelta.distinct.event_id, files: byDelta.files }).toEqual({ version: 6, rows: 2_500, ids: 2_500, files: 2 });
        const paths = await localFiles(store, join(scratch.path, `cache-${lake.name}-check`)).paths(live);
        const [counted] = await duck.objects(`select count(*) as n, count(distinct event_id) as ids, count(*) filter (where event_id like 'e-5-%') as appended from read_parquet(${sqlStringList(paths)})`);
        expect(counted).toEqual({ n: 2_500, ids: 2_500, appended: 500 });
        console.log(JSON.stringify({ test: "compaction-race", lake: lake.name, files: group.files.length, rows: winners[0]?.rows, race_ms: elapsedMs }));
      } finally {
        for (const d of ducks) d.close();
      }
    }, 60_000);
  });
}

describe("compaction bounds the rows of one merge", () => {
  test("an hour's small files are packed in write order into merges of at most fileRows rows; big files stay; every row once, each output sorted", async () => {
    const root = join(scratch.path, uniqueName("lake-bins"));
    const store = createDirStore(root);
    const duck = await Duck.open({ threads: "1" });
    const deps: GroupDeps = { store, duck, files: localFiles(store, join(scratch.path, "cache-bins")), workDir: join(scratch.path, "work-bins"), logger: quiet };
    const rowsOf = (files: { stats?: string }[]) => files.map((f) => JSON.parse(f.stats ?? "{}").numRecords as number);
    try {
      await ensureTable(store, table, eventTableDefinition(type));
      const sizes = [120, 40, 90, 200, 10, 300, 60, 60, 60, 5];
      for (const [i, rows] of sizes.entries()) {
        await flush(store, duck, i + 1, rows);
        await Bun.sleep(2); // files are ordered by their write time, in milliseconds
      }
      const planned = await readSnapshot(store, table);
      // The default bound puts the whole hour in one merge, as before.
      expect(compactableGroups(table, planned, Date.now(), 10).map((g) => g.files.length)).toEqual([10]);

      // With 250: files of 125 rows or more (200, 300) are not small; the rest fill merges in write order.
      const groups = compactableGroups(table, planned, Date.now(), 10, 250);
      expect(groups.map((g) => rowsOf(g.files))).toEqual([
        [120, 40, 90],
        [10, 60, 60, 60, 5],
      ]);
      let snapshot = planned;
      for (const group of groups) {
        const outcome = await compactGroup(deps, snapshot, group);
        expect(outcome.status).toBe("committed");
        snapshot = await readSnapshot(store, table);
      }
      expect(rowsOf([...snapshot.files.values()]).sort((a, b) => a - b)).toEqual([195, 200, 250, 300]);
      // The outputs are not small: nothing is left to merge.
      expect(compactableGroups(table, snapshot, Date.now(), 10, 250)).toEqual([]);

      const compacted = [...snapshot.files.values()].filter((add) => add.path.includes("/compacted-"));
      expect(compacted).toHaveLength(2);
      for (const path of await deps.files.paths(compacted.map((add) => fileKeyOf(table, add.path)))) {
        const [order] = await duck.objects(`select count(*) filter (where key < prev_key or (key = prev_key and event_time < prev_time)) as unsorted
          from (select key, event_time, lag(key) over () as prev_key, lag(event_time) over () as prev_time from read_parquet(${sqlStringList([path])}))`);
        expect(order).toEqual({ unsorted: 0 });
      }
      const byDelta = await readDelta(join(root, table), { countDistinct: ["event_id"] });
      expect({ rows: byDelta.num_rows, ids: byDelta.distinct.event_id, files: byDelta.files }).toEqual({ rows: 945, ids: 945, files: 4 });
    } finally {
      duck.close();
    }
  }, 60_000);
});
