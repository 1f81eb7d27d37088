import { afterAll, beforeAll, expect, test } from "bun:test";
import { mkdtemp, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { encodeStats } from "../../lib/lake/delta/actions.ts";
import { commit, ensureTable } from "../../lib/lake/delta/commit.ts";
import { commitKey } from "../../lib/lake/delta/paths.ts";
import { eventPartitionColumns, eventTableColumns } from "../../lib/lake/delta/schema.ts";
import { createDirStore } from "../../lib/lake/dir-store.ts";
import { Duck, sqlString } from "../../lib/lake/duckdb.ts";
import { readDelta } from "../support/delta-reader.ts";

/** delta-rs (Python `deltalake`, from the test virtualenv) reads a table whose log this project wrote. */
let root: string;
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), "delta-interop-"));
});
afterAll(() => rm(root, { recursive: true, force: true }));

test("delta-rs reads a table written by this module: version, rows, checkpoint + tail", async () => {
  const store = createDirStore(root);
  const table = "events/sensor_reading";
  await ensureTable(store, table, { columns: eventTableColumns("sensor.reading"), partitionColumns: eventPartitionColumns.map((c) => c.name) });
  const duck = await Duck.open();
  try {
    for (let v = 1; v <= 12; v++) {
      const path = `date=2026-11-21/hour=${v}/part-${v}.parquet`;
      const local = store.localPath(`${table}/${path}`) ?? "";
      await Bun.write(local, "");
      await duck.run(
        `COPY (select 'e' || ${v} || '-' || i as event_id, 'dev-' || i as key, TIMESTAMPTZ '2026-11-21 00:00:00+00' + to_hours(${v}) as event_time, TIMESTAMPTZ '2026-11-21 00:00:01+00' + to_hours(${v}) as ingest_time,
          's' || i as sensor_id, 20.0 + i as temperature, 50.0 as humidity from range(3) t(i)) TO ${sqlString(local)} (FORMAT parquet)`,
      );
      const add = { path, partitionValues: { date: "2026-11-21", hour: String(v) }, size: (await stat(local)).size, modificationTime: Date.now(), dataChange: true, stats: encodeStats({ numRecords: 3 }) };
      await commit(store, table, [{ add }, { txn: { appId: "sink-p0", version: v } }], { readVersion: v - 1, isBlindAppend: true });
    }
  } finally {
    duck.close();
  }
  const read = async () => {
    const snapshot = await readDelta(join(root, table), { columns: ["hour"], rowsByPartition: true });
    return { version: snapshot.version, rows: snapshot.num_rows, files: snapshot.files, hours: Object.keys(snapshot.rows_by_partition ?? {}).map((p) => Number(/hour=(\d+)/.exec(p)?.[1])).sort((a, b) => a - b), partitions: snapshot.partition_columns };
  };
  const expected = { version: 12, rows: 36, files: 12, hours: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12], partitions: ["date", "hour"] };
  expect(await read()).toEqual(expected);
  // Without commits 0..10 only the checkpoint at 10 can give delta-rs the table: it must read our Parquet checkpoint.
  await store.delete(Array.from({ length: 11 }, (_, v) => commitKey(table, v)));
  expect(await read()).toEqual(expected);
}, 60_000);
