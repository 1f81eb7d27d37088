/**
 * Opening a Delta table's log (lib/lake/delta), in a local-directory lake or (`--lake s3`) on the S3 server
 * of `bash scripts/services.sh up`. Builds a table of `--commits` append commits (2,000; issue 11 asks for
 * 20,000, a day of 5-second flushes being 17,280), each one file plus a sink txn, checkpointed every 10
 * versions by `commit` as the writers do, then prints JSON lines:
 *   build          seconds to commit them all (put-if-absent + fsync per commit, a checkpoint every 10)
 *   open           ms for `readSnapshot` (a fresh reader): listing + _last_checkpoint + checkpoint + tail,
 *                  p50 and max of `--runs` (target < 500 ms), with the parts timed alone:
 *                  list_ms (the whole _delta_log/ listing) and checkpoint_ms (reading the newest checkpoint)
 *   open_json      ms to replay every JSON commit with the checkpoints hidden, for comparison
 *   refresh        ms for the process's cached log (`tableLogsOf(store).snapshot`) to take in one new commit
 *   refresh_idle   ms for the same call when nothing was committed (one absent-object probe)
 *
 * Flags (or environment): --commits N [BENCH_DELTA_COMMITS]  --lake dir|s3 [BENCH_DELTA_LAKE]
 *   --runs 5 [BENCH_DELTA_RUNS]  --json-runs 3 [BENCH_DELTA_JSON_RUNS] (0 skips open_json)
 *   --keep-dir PATH [BENCH_DELTA_DIR] (dir) or --keep-prefix NAME [BENCH_DELTA_PREFIX] (s3, under LAKE_URL):
 *   a lake kept after the run; a table already there with at least `--commits` commits is measured again
 *   without being rebuilt
 *   --wait-quiet 0 [BENCH_WAIT_QUIET_S]: wait up to this many seconds for an idle machine before measuring
 */
import { mkdir, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadConfig } from "../lib/config.ts";
import { commit, ensureTable } from "../lib/lake/delta/commit.ts";
import { readCheckpoint, readSnapshot, TableLog, tableLogsOf } from "../lib/lake/delta/log.ts";
import { checkpointKey, logPrefix, parseLogKey } from "../lib/lake/delta/paths.ts";
import { eventPartitionColumns, eventTableColumns } from "../lib/lake/delta/schema.ts";
import { createDirStore } from "../lib/lake/dir-store.ts";
import { openLake } from "../lib/lake/index.ts";
import type { ObjectStore } from "../lib/lake/types.ts";
import { flags } from "./lake-events.ts";
import { load1, waitQuiet } from "./lake-usage.ts";
import { percentile } from "./proc.ts";
import { serviceEnv } from "./services.ts";

const args = flags();
const COMMITS = args.number("commits", "BENCH_DELTA_COMMITS", 2_000);
const LAKE = args.string("lake", "BENCH_DELTA_LAKE", "dir");
const RUNS = Math.max(1, args.number("runs", "BENCH_DELTA_RUNS", 5));
const JSON_RUNS = args.number("json-runs", "BENCH_DELTA_JSON_RUNS", 3);
const KEEP_DIR = args.string("keep-dir", "BENCH_DELTA_DIR", "");
const KEEP_PREFIX = args.string("keep-prefix", "BENCH_DELTA_PREFIX", "");
const kept = LAKE === "dir" ? KEEP_DIR : KEEP_PREFIX;
const WAIT_QUIET_S = args.number("wait-quiet", "BENCH_WAIT_QUIET_S", 0);
if (LAKE !== "dir" && LAKE !== "s3") throw new Error(`--lake: dir or s3, got ${LAKE}`);
const table = "events/sensor_reading";
const ms = (start: number) => Math.round((performance.now() - start) * 10) / 10;
const print = (line: Record<string, unknown>) => console.log(JSON.stringify({ bench: "delta_log", lake: LAKE, commits: COMMITS, ...line, load1: load1() }));

async function timed(runs: number, open: () => Promise<unknown>): Promise<number[]> {
  const times: number[] = [];
  for (let i = 0; i < runs; i++) {
    const start = performance.now();
    await open();
    times.push(ms(start));
  }
  return times.sort((a, b) => a - b);
}

/** A directory to delete at the end (not a kept one). */
let root: string | undefined;
let store: ObjectStore;
if (LAKE === "dir" && KEEP_DIR) {
  await mkdir(KEEP_DIR, { recursive: true });
  store = createDirStore(KEEP_DIR);
} else if (LAKE === "dir") {
  root = await mkdtemp(join(tmpdir(), "bench-delta-"));
  store = createDirStore(root);
} else {
  const env = { ...process.env, ...serviceEnv() };
  if (!env.LAKE_URL?.startsWith("s3://")) throw new Error("--lake s3 needs LAKE_URL=s3://bucket/prefix and S3_ENDPOINT/AWS_* (services.env of `bash scripts/services.sh up`)");
  store = openLake(loadConfig({ ...env, LAKE_URL: `${env.LAKE_URL.replace(/\/+$/, "")}/${KEEP_PREFIX || `bench-delta-${Date.now().toString(36)}`}` }));
}

/** Commits 1..COMMITS after the table's creation, as the sink does: one file and a txn each, a checkpoint every 10. */
async function build(): Promise<void> {
  const t0 = performance.now();
  await ensureTable(store, table, { columns: eventTableColumns("sensor.reading"), partitionColumns: eventPartitionColumns.map((c) => c.name) });
  const writerLog = new TableLog(store, table);
  for (let v = 1; v <= COMMITS; v++) {
    const hour = v % 24;
    const path = `date=2026-11-21/hour=${hour}/events.enriched.p${v % 8}.${v * 1000}-${v * 1000 + 999}.parquet`;
    const stats = JSON.stringify({ numRecords: 1000, minValues: { temperature: -5.5 }, maxValues: { temperature: 40.25 }, nullCount: { temperature: 0 } });
    await commit(store, table, [{ add: { path, partitionValues: { date: "2026-11-21", hour: String(hour) }, size: 65_536, modificationTime: Date.now(), dataChange: true, stats } }, { txn: { appId: `lake-sink-p${v % 8}`, version: v * 1000 + 999 } }], { readVersion: v - 1, isBlindAppend: true, tableLog: writerLog });
    if (v % 2_000 === 0 && v < COMMITS) process.stderr.write(`delta-log: ${v} of ${COMMITS} commits, ${Math.round((performance.now() - t0) / 1000)} s\n`);
  }
  print({ phase: "build", checkpoint_every: 10, seconds: Math.round((performance.now() - t0) / 100) / 10 });
}

const built = kept ? await readSnapshot(store, table).catch(() => null) : null;
try {
  if (built && built.version >= COMMITS) print({ phase: "build", reused: kept, version: built.version });
  else if (built) throw new Error(`${kept} holds a table at version ${built.version}: remove it to build ${COMMITS} commits`);
  else await build();

  const waited = WAIT_QUIET_S > 0 ? await waitQuiet(WAIT_QUIET_S) : 0;
  // The parts of a cold open, each alone: the listing of the whole log, then the newest checkpoint.
  const listing = await timed(RUNS, () => store.list(logPrefix(table)));
  const entries = (await store.list(logPrefix(table))).map((o) => parseLogKey(o.key)).filter((e) => e !== null);
  const newestCheckpoint = entries.reduce((newest, e) => (e.kind === "checkpoint" ? Math.max(newest, e.version) : newest), -1);
  const checkpoint = newestCheckpoint < 0 ? [] : await timed(RUNS, () => readCheckpoint(store, checkpointKey(table, newestCheckpoint)));

  const open = await timed(RUNS, () => readSnapshot(store, table));
  const snapshot = await readSnapshot(store, table);
  print({
    phase: "open",
    version: snapshot.version,
    files: snapshot.files.size,
    txns: snapshot.txns.size,
    log_objects: entries.length,
    p50_ms: percentile(open, 0.5),
    max_ms: percentile(open, 1),
    target_ms: 500,
    list_ms: percentile(listing, 0.5),
    checkpoint_version: newestCheckpoint,
    checkpoint_ms: percentile(checkpoint, 0.5),
    ...(WAIT_QUIET_S > 0 ? { waited_quiet_s: waited } : {}),
  });

  if (JSON_RUNS > 0) {
    const hidden: ObjectStore = {
      ...store,
      list: async (prefix) => (await store.list(prefix)).filter((o) => !o.key.includes(".checkpoint.")),
      get: (key) => (key.endsWith("_last_checkpoint") ? Promise.resolve(null) : store.get(key)),
    };
    const openJson = await timed(JSON_RUNS, () => readSnapshot(hidden, table));
    print({ phase: "open_json", version: snapshot.version, p50_ms: percentile(openJson, 0.5), max_ms: percentile(openJson, 1) });
  }

  // The process's shared cache, as the sink, compaction and the gateway's reader use it.
  const logs = tableLogsOf(store);
  await logs.snapshot(table);
  const refresh: number[] = [];
  const idle: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    const version = logs.log(table).cached?.version ?? 0;
    await commit(store, table, [{ txn: { appId: "bench", version } }], { readVersion: version, isBlindAppend: true, checkpointInterval: 0 });
    let start = performance.now();
    const refreshed = await logs.snapshot(table);
    refresh.push(ms(start));
    if (refreshed?.version !== version + 1) throw new Error(`the cached log refreshed to ${refreshed?.version}, not ${version + 1}`);
    start = performance.now();
    await logs.snapshot(table);
    idle.push(ms(start));
  }
  refresh.sort((a, b) => a - b);
  idle.sort((a, b) => a - b);
  print({ phase: "refresh", new_commits: 1, p50_ms: percentile(refresh, 0.5), max_ms: percentile(refresh, 1) });
  print({ phase: "refresh_idle", new_commits: 0, p50_ms: percentile(idle, 0.5), max_ms: percentile(idle, 1) });
} finally {
  if (root) await rm(root, { recursive: true, force: true });
  else if (LAKE === "s3" && !KEEP_PREFIX) {
    const keys = (await store.list(`${table}/`)).map((o) => o.key);
    for (let i = 0; i < keys.length; i += 1_000) await store.delete(keys.slice(i, i + 1_000));
  }
}
