/**
 * Opening a Delta table's log (lib/lake/delta) in a local-directory lake. Builds a table of
 * BENCH_DELTA_COMMITS (2,000) append commits, each one file plus a sink txn, checkpointed every 10
 * versions as writers do, then prints JSON lines:
 *   build       seconds to commit them all (put-if-absent + fsync per commit, a checkpoint every 10)
 *   open        ms for a fresh reader: listing + _last_checkpoint + checkpoint (DuckDB) + tail (p50 of 5)
 *   open_json   ms to replay every JSON commit with the checkpoints hidden, for comparison (p50 of 5)
 *   refresh     ms for a cached log to take in one new commit (p50 of 5)
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { commit, ensureTable } from "../lib/lake/delta/commit.ts";
import { TableLog } from "../lib/lake/delta/log.ts";
import { eventPartitionColumns, eventTableColumns } from "../lib/lake/delta/schema.ts";
import { createDirStore } from "../lib/lake/dir-store.ts";
import type { ObjectStore } from "../lib/lake/types.ts";
import { percentile } from "./proc.ts";

const COMMITS = Number(process.env.BENCH_DELTA_COMMITS ?? 2_000);
const RUNS = 5;
const table = "events/sensor_reading";
const root = await mkdtemp(join(tmpdir(), "bench-delta-"));
const store = createDirStore(root);
const ms = (start: number) => Math.round((performance.now() - start) * 10) / 10;

async function timed(runs: number, open: () => Promise<unknown>): Promise<number[]> {
  const times: number[] = [];
  for (let i = 0; i < runs; i++) {
    const start = performance.now();
    await open();
    times.push(ms(start));
  }
  return times.sort((a, b) => a - b);
}

try {
  const t0 = performance.now();
  await ensureTable(store, table, { columns: eventTableColumns("sensor.reading"), partitionColumns: eventPartitionColumns.map((c) => c.name) });
  const writerLog = new TableLog(store, table);
  for (let v = 1; v <= COMMITS; v++) {
    const hour = v % 24;
    const path = `date=2026-11-21/hour=${hour}/events.enriched.p${v % 8}.${v * 1000}-${v * 1000 + 999}.parquet`;
    const stats = JSON.stringify({ numRecords: 1000, minValues: { temperature: -5.5 }, maxValues: { temperature: 40.25 }, nullCount: { temperature: 0 } });
    await commit(store, table, [{ add: { path, partitionValues: { date: "2026-11-21", hour: String(hour) }, size: 65_536, modificationTime: Date.now(), dataChange: true, stats } }, { txn: { appId: `lake-sink-p${v % 8}`, version: v * 1000 + 999 } }], { readVersion: v - 1, isBlindAppend: true, tableLog: writerLog });
  }
  console.log(JSON.stringify({ bench: "delta_log", phase: "build", commits: COMMITS, checkpoint_every: 10, seconds: Math.round((performance.now() - t0) / 100) / 10 }));

  const open = await timed(RUNS, () => new TableLog(store, table).refresh());
  const snapshot = await new TableLog(store, table).refresh();
  console.log(JSON.stringify({ bench: "delta_log", phase: "open", version: snapshot.version, files: snapshot.files.size, p50_ms: percentile(open, 0.5), max_ms: percentile(open, 1) }));

  const hidden: ObjectStore = {
    ...store,
    list: async (prefix) => (await store.list(prefix)).filter((o) => !o.key.includes(".checkpoint.")),
    get: (key) => (key.endsWith("_last_checkpoint") ? Promise.resolve(null) : store.get(key)),
  };
  const openJson = await timed(RUNS, () => new TableLog(hidden, table).refresh());
  console.log(JSON.stringify({ bench: "delta_log", phase: "open_json", version: snapshot.version, p50_ms: percentile(openJson, 0.5), max_ms: percentile(openJson, 1) }));

  const cached = new TableLog(store, table);
  await cached.refresh();
  const refresh: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    const version = cached.cached?.version ?? 0;
    await commit(store, table, [{ txn: { appId: "bench", version } }], { readVersion: version, isBlindAppend: true, checkpointInterval: 0 });
    const start = performance.now();
    await cached.refresh();
    refresh.push(ms(start));
  }
  refresh.sort((a, b) => a - b);
  console.log(JSON.stringify({ bench: "delta_log", phase: "refresh", new_commits: 1, p50_ms: percentile(refresh, 0.5), max_ms: percentile(refresh, 1) }));
} finally {
  await rm(root, { recursive: true, force: true });
}
