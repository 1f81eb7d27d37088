/**
 * The chain's dedupe state (workers/chain/dedupe.ts) over an hour of one partition's ids, kept in memory
 * and spilling to disk, each in a process of its own so that memory figures are its own. Prints JSON lines:
 *   fill    ns per isRepeat over the whole log, per record in its last horizon (table and runs full) and in its last hour
 *   memory  the state's bytes (dedupe_bytes), RSS and heap after the fill, runs on disk
 *   load    ms to load the persisted rows of the horizon into a fresh state (what an assignment does)
 *   restart with --restart: the rows of the horizon written to an embedded database (PGlite, as the chain
 *           persists them), the database reopened, and a fresh chain dedupe's assignment timed: what a
 *           restart waits for before the chain resumes, per partition
 * Flags (or environment): --rate 1000 [BENCH_DEDUPE_RATE] records/s on the partition (4,000 events/s over 4
 *   partitions), --minutes 75 [BENCH_DEDUPE_MINUTES] of log (the 1-hour horizon fills after 60–75),
 *   --retry-share 0.02 [BENCH_DEDUPE_RETRY_SHARE], --hot 262144 [BENCH_DEDUPE_HOT] (0: in memory only),
 *   --horizon-minutes 60 [BENCH_DEDUPE_HORIZON_MINUTES] (a day-long class: 1440, with --minutes past it and
 *   the rate of that class's types), --mode both|memory|spill, --restart.
 */
import { mkdtempSync, readdirSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { openDb } from "../lib/db/index.ts";
import { createLogger } from "../lib/log.ts";
import { createDedupe, DedupeState, type SegmentRow, writeSegmentRows } from "../workers/chain/dedupe.ts";
import { rssMb } from "./proc.ts";

const { values } = parseArgs({
  args: Bun.argv.slice(2),
  options: {
    rate: { type: "string", default: process.env.BENCH_DEDUPE_RATE ?? "1000" },
    minutes: { type: "string", default: process.env.BENCH_DEDUPE_MINUTES ?? "75" },
    "retry-share": { type: "string", default: process.env.BENCH_DEDUPE_RETRY_SHARE ?? "0.02" },
    hot: { type: "string", default: process.env.BENCH_DEDUPE_HOT ?? "262144" },
    "horizon-minutes": { type: "string", default: process.env.BENCH_DEDUPE_HORIZON_MINUTES ?? "60" },
    mode: { type: "string", default: "both" },
    restart: { type: "boolean", default: false },
    child: { type: "boolean", default: false },
  },
});
const RATE = Number(values.rate);
const MINUTES = Number(values.minutes);
const RETRY_SHARE = Number(values["retry-share"]);
const HOT = Number(values.hot);
const HORIZON_MS = Number(values["horizon-minutes"]) * 60_000;
const T0 = 1_780_000_000_000;
const quiet = createLogger({ bench: "dedupe" }, () => undefined);

async function measure(mode: "memory" | "spill") {
  const directory = mkdtempSync(join(tmpdir(), "devpipe-bench-dedupe-"));
  const spill = mode === "spill" ? { directory, hotLimit: HOT } : undefined;
  const n = Math.round(RATE * MINUTES * 60);
  const horizonRecords = Math.min(n, Math.round((RATE * HORIZON_MS) / 1000));
  const hourRecords = Math.min(n, RATE * 3600);
  const state = new DedupeState(HORIZON_MS, quiet, spill);
  const rows: SegmentRow[] = [];
  // Ids drawn again from up to 2 minutes back: a client's retries.
  const idOf = (offset: number) => `d-${offset.toString(36)}-${(offset * 2_654_435_761) % 1_000_003}`;
  let seed = 12345;
  const next = () => {
    seed = (Math.imul(seed, 1_103_515_245) + 12_345) >>> 0;
    return seed / 2 ** 32;
  };
  let repeats = 0;
  const started = Bun.nanoseconds();
  let lastHorizonStarted = started;
  let lastHourStarted = started;
  for (let offset = 0; offset < n; offset++) {
    if (offset === n - horizonRecords) lastHorizonStarted = Bun.nanoseconds();
    if (offset === n - hourRecords) lastHourStarted = Bun.nanoseconds();
    const retry = offset > 0 && next() < RETRY_SHARE;
    const id = retry ? idOf(Math.max(0, offset - 1 - Math.floor(next() * RATE * 120))) : idOf(offset);
    if (state.isRepeat(0, offset, id, T0 + Math.floor((offset * 1000) / RATE))) repeats++;
    // A persist every second of log, as the chain does.
    if (offset % RATE === RATE - 1) rows.push(...state.take().rows);
  }
  const ended = Bun.nanoseconds();
  Bun.gc(true);
  const runFiles = readdirSync(directory);
  const diskMb = runFiles.reduce((sum, f) => sum + statSync(join(directory, f)).size, 0) / 2 ** 20;
  const print = (line: Record<string, unknown>) => console.log(JSON.stringify({ bench: "dedupe", mode, rate: RATE, minutes: MINUTES, horizon_minutes: HORIZON_MS / 60_000, hot: spill ? HOT : 0, ...line }));
  print({ phase: "fill", records: n, repeats, ns_per_record: Math.round((ended - started) / n), ns_per_record_last_horizon: Math.round((ended - lastHorizonStarted) / horizonRecords), ns_per_record_last_hour: Math.round((ended - lastHourStarted) / hourRecords) });
  print({ phase: "memory", ids_held: state.size(), dedupe_mb: +(state.bytes() / 2 ** 20).toFixed(1), rss_mb: Math.round(rssMb(process.pid)), heap_mb: Math.round(process.memoryUsage().heapUsed / 2 ** 20), runs: runFiles.length, runs_disk_mb: Math.round(diskMb) });
  state.close();
  const kept = rows.filter((r) => r.max_time >= state.keepFrom(T0 + (n * 1000) / RATE));
  const fresh = new DedupeState(HORIZON_MS, quiet, spill);
  const loadStarted = performance.now();
  fresh.load(0, kept);
  const loadMs = performance.now() - loadStarted;
  print({ phase: "load", ids_loaded: fresh.size(), rows: kept.length, ms: Math.round(loadMs), ns_per_id: Math.round((loadMs * 1e6) / Math.max(1, fresh.size())) });
  fresh.close();
  if (values.restart) print({ phase: "restart", rows: kept.length, ...(await restart(directory, kept, spill)) });
  rmSync(directory, { recursive: true, force: true });
}

/** Writes `rows` to an embedded database, reopens it, and times a fresh chain dedupe's assignment of partition 0. */
async function restart(directory: string, rows: SegmentRow[], spill: { directory: string; hotLimit: number } | undefined) {
  const config = { databaseUrl: undefined, dataDir: join(directory, "data") };
  const topic = "bench.dedupe";
  const first = await openDb(config, quiet);
  await writeSegmentRows(first.sql, topic, rows);
  await first.close();
  const opening = performance.now();
  const db = await openDb(config, quiet);
  const openMs = performance.now() - opening;
  const dedupe = createDedupe({ sql: db.sql, topic, horizonMs: HORIZON_MS, logger: quiet, spill });
  const assigning = performance.now();
  const coverage = await dedupe.assigned([0]);
  const assignMs = performance.now() - assigning;
  const idsLoaded = dedupe.size();
  dedupe.close();
  await db.close();
  return { open_ms: Math.round(openMs), assign_ms: Math.round(assignMs), ids_loaded: idsLoaded, covered_to: coverage.get(0) ?? null };
}

if (values.child) await measure(values.mode === "spill" ? "spill" : "memory");
else {
  const modes = values.mode === "both" ? ["memory", "spill"] : [values.mode ?? "spill"];
  for (const mode of modes) {
    const args = ["--rate", String(RATE), "--minutes", String(MINUTES), "--retry-share", String(RETRY_SHARE), "--hot", String(HOT), "--horizon-minutes", String(HORIZON_MS / 60_000), "--mode", mode, "--child", ...(values.restart ? ["--restart"] : [])];
    const child = Bun.spawn([process.execPath, import.meta.path, ...args], { stdout: "inherit", stderr: "inherit" });
    if ((await child.exited) !== 0) process.exit(1);
  }
}
