/**
 * `bun run bench:soak`: the embedded all-in-one server (`bun start.ts`, no KAFKA_BROKERS / DATABASE_URL /
 * LAKE_URL) fed by the five device simulators over HTTP for `--minutes`, sampled every `--sample-s`:
 * server RSS and CPU (the process and any children), its memory parts from /metrics, the simulators' CPU,
 * the machine's speed (a fixed amount of hashing timed in this process), disk per part (bus, pg without WAL,
 * pg WAL, lake, total), the worst consumer lag from /metrics, the /readyz status and the events the
 * simulators had accepted. At the end it stops the simulators, waits for the lag to reach 0, checks that every accepted
 * event is in the lake exactly once, stops the server (timing the shutdown), starts it again on the same
 * data and times it until /readyz answers 200. Prints JSON lines (`phase`: config, ready, sample, drain,
 * counts, shutdown, restart, summary; `error` on failure, with a non-zero exit).
 *
 * Options: --minutes (30) --rate total events/s (4000) --sample-s (30) --warmup-min (5) --data-dir (a
 * fresh temp dir, removed at the end unless --keep) --port (a free one) --drain-s (180) --keep
 * --heap-probe FILE (the server appends live object counts by type every minute: bench/heap-probe.ts).
 * Any other env (e.g. BUS_RETENTION_BYTES=…) passes through to the server.
 */
import { type Subprocess } from "bun";
import { createWriteStream, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statfsSync, type WriteStream } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { procStat, rssKindsMb, rssMb } from "./proc.ts";

const ROOT = resolve(import.meta.dir, "..");

// ---------------------------------------------------------------- output and cleanup

function print(fields: Record<string, unknown>) {
  console.log(JSON.stringify({ bench: "soak", ...fields }));
}
const round = (n: number, digits = 1) => (Number.isFinite(n) ? Math.round(n * 10 ** digits) / 10 ** digits : null);

const children = new Set<Subprocess>();
let workDir: string | undefined;
let dataDir: string | undefined;
let ownsDataDir = false;
let serverLog: string | undefined;
let finished = false;

function killAll(signal: NodeJS.Signals | number) {
  for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill(signal);
}

function fail(message: string, extra: Record<string, unknown> = {}): never {
  print({ phase: "error", error: message, ...extra, ...(serverLog ? { server_log: serverLog, server_log_tail: tail(serverLog, 15) } : {}) });
  killAll("SIGKILL");
  cleanup(false);
  process.exit(1);
}

function tail(path: string, lines: number): string[] {
  try {
    // Without the access log of accepted requests, which would hide whatever went wrong.
    return readFileSync(path, "utf8").trimEnd().split("\n").filter((l) => !/"msg":"request".*"status":2\d\d/.test(l)).slice(-lines);
  } catch {
    return [];
  }
}

/** Removes the data (unless --keep or given with --data-dir) and, after a clean run, the logs. */
function cleanup(ok: boolean) {
  if (finished) return;
  finished = true;
  if (!args.keep && ownsDataDir && dataDir) rmSync(dataDir, { recursive: true, force: true });
  if (!args.keep && ok && workDir) rmSync(workDir, { recursive: true, force: true });
}

let interrupted = false;
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.on(signal, () => {
    if (interrupted) return;
    interrupted = true;
    // Children get a chance to stop cleanly (the server flushes), then are killed.
    killAll("SIGTERM");
    setTimeout(() => fail(`interrupted by ${signal}`), 3_000).unref?.();
    void Promise.all([...children].map((c) => c.exited)).then(() => fail(`interrupted by ${signal}`));
  });
}
process.on("exit", () => killAll("SIGKILL"));
process.on("uncaughtException", (error) => fail(`uncaught: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`));
process.on("unhandledRejection", (error) => fail(`unhandled rejection: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`));

// ---------------------------------------------------------------- options

const { values: args } = parseArgs({
  options: {
    minutes: { type: "string", default: "30" },
    rate: { type: "string", default: "4000" },
    "sample-s": { type: "string", default: "30" },
    "warmup-min": { type: "string", default: "5" },
    "data-dir": { type: "string" },
    port: { type: "string" },
    "drain-s": { type: "string", default: "180" },
    keep: { type: "boolean", default: false },
    "heap-probe": { type: "string" },
    help: { type: "boolean", default: false },
  },
});
if (args.help) {
  process.stderr.write("usage: bun bench/soak.ts [--minutes 30] [--rate 4000] [--sample-s 30] [--warmup-min 5] [--data-dir DIR] [--port N] [--drain-s 180] [--keep] [--heap-probe FILE]\n");
  process.exit(0);
}
const positive = (name: string, value: string | undefined) => {
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0) fail(`--${name}: a positive number, got ${value}`);
  return n;
};
const MINUTES = positive("minutes", args.minutes);
const RATE = positive("rate", args.rate);
const SAMPLE_S = positive("sample-s", args["sample-s"]);
const WARMUP_MIN = Number(args["warmup-min"]);
if (!Number.isFinite(WARMUP_MIN) || WARMUP_MIN < 0 || WARMUP_MIN >= MINUTES) fail(`--warmup-min: from 0 to below --minutes, got ${args["warmup-min"]}`);
const DRAIN_S = positive("drain-s", args["drain-s"]);

/**
 * The demo's mix (start.ts), scaled to RATE: [domain, devices, share of the rate]. Each simulator takes
 * `--rate` as events/s for all its devices together.
 */
const MIX: [domain: string, devices: number, weight: number][] = [
  ["vehicle", 100, 50],
  ["location", 80, 20],
  ["smartcity", 20, 20],
  ["iot", 80, 40],
  ["activity", 120, 40],
];
const WEIGHTS = MIX.reduce((sum, [, , w]) => sum + w, 0);
/** A seed of this run: the simulators' event ids start `<domain>-s<seed>-`, so the counts find this run's events only. */
const SEED = 100_000 + Math.floor(Math.random() * 900_000);

// ---------------------------------------------------------------- /proc and disk

/** procStat and rssMb of bench/proc.ts for a process that may have gone meanwhile. */
function statOf(pid: number): { ppid: number; cpuS: number } | undefined {
  try {
    return procStat(pid);
  } catch {
    return undefined;
  }
}

function rssMbOf(pid: number): number {
  try {
    return rssMb(pid);
  } catch {
    return 0;
  }
}

function rssKindsOf(pid: number): { anon: number; file: number } {
  try {
    return rssKindsMb(pid);
  } catch {
    return { anon: Number.NaN, file: Number.NaN };
  }
}

/** The process and its descendants (children of the server, if it ever has any). */
function processTree(root: number): number[] {
  const parents = new Map<number, number[]>();
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    const stat = statOf(Number(entry));
    if (!stat) continue;
    const list = parents.get(stat.ppid) ?? [];
    list.push(Number(entry));
    parents.set(stat.ppid, list);
  }
  const tree = [root];
  for (let i = 0; i < tree.length; i++) tree.push(...(parents.get(tree[i] ?? -1) ?? []));
  return tree;
}

function treeUsage(root: number) {
  const pids = processTree(root);
  let rss = 0;
  let cpu = 0;
  for (const pid of pids) {
    rss += rssMbOf(pid);
    cpu += statOf(pid)?.cpuS ?? 0;
  }
  return { rssMb: rss, cpuS: cpu, processes: pids.length };
}

/** Allocated bytes under a path (like `du`), skipping what disappears while it is walked. */
function diskBytes(path: string, skip?: string): number {
  let total = 0;
  const walk = (p: string) => {
    if (p === skip) return;
    let stat;
    try {
      stat = lstatSync(p);
    } catch {
      return;
    }
    total += stat.blocks * 512;
    if (!stat.isDirectory()) return;
    let entries: string[];
    try {
      entries = readdirSync(p);
    } catch {
      return;
    }
    for (const entry of entries) walk(join(p, entry));
  };
  walk(path);
  return total;
}

/** `dedupe`: the dedupe state's frozen files (DEDUPE_SPILL_DIR, DATA_DIR/tmp by default). */
const PARTS = ["bus", "pg", "wal", "lake", "dedupe", "total"] as const;
type Part = (typeof PARTS)[number];

function diskMb(dir: string): Record<Part, number> {
  const mb = (bytes: number) => bytes / 1024 / 1024;
  const wal = join(dir, "pg", "pg_wal");
  return { bus: mb(diskBytes(join(dir, "bus"))), pg: mb(diskBytes(join(dir, "pg"), wal)), wal: mb(diskBytes(wal)), lake: mb(diskBytes(join(dir, "lake"))), dedupe: mb(diskBytes(join(dir, "tmp"))), total: mb(diskBytes(dir)) };
}

/** Free space (MB) of the file system holding `dir`: the run stops before it fills the disk. */
function freeMb(dir: string): number {
  const fs = statfsSync(dir);
  return (fs.bavail * fs.bsize) / 1024 / 1024;
}
const MIN_FREE_MB = 1_024;

// ---------------------------------------------------------------- HTTP

let baseUrl = "";
let apiKey = "";

async function readyStatus(timeoutMs = 5_000): Promise<number> {
  try {
    const response = await fetch(`${baseUrl}/readyz`, { signal: AbortSignal.timeout(timeoutMs) });
    await response.body?.cancel();
    return response.status;
  } catch {
    return 0;
  }
}

/** Memory parts the server reports (MB): PGlite's WASM memory, the JS heap, what JS holds outside it, and DuckDB's buffer managers. */
interface MemoryParts {
  pglite: number | null;
  jsHeap: number | null;
  jsExternal: number | null;
  duckdb: number | null;
}
const noMemory: MemoryParts = { pglite: null, jsHeap: null, jsExternal: null, duckdb: null };

/**
 * From GET /metrics (it needs no key): the worst `devpipe_consumer_lag` series (lag null when /metrics does
 * not answer) and the topics `devpipe_bus_blocked` reports as refusing produces (null when the server has no
 * such series).
 */
async function scrapeMetrics(): Promise<{ lag: number | null; series: number; worst?: string; blocked: string[] | null; dedupeMb: number | null; memory: MemoryParts }> {
  try {
    const response = await fetch(`${baseUrl}/metrics`, { signal: AbortSignal.timeout(15_000) });
    if (!response.ok) {
      await response.body?.cancel();
      return { lag: null, series: 0, blocked: null, dedupeMb: null, memory: noMemory };
    }
    const text = await response.text();
    let lag = 0;
    let series = 0;
    let worst: string | undefined;
    let blocked: string[] | null = null;
    let dedupeBytes: number | null = null;
    const memory: MemoryParts = { ...noMemory };
    for (const line of text.split("\n")) {
      const value = Number(line.slice(line.lastIndexOf(" ") + 1));
      if (line.startsWith("devpipe_pglite_memory_bytes ")) memory.pglite = value / 1e6;
      if (line.startsWith('devpipe_process_memory_bytes{part="js_heap"}')) memory.jsHeap = value / 1e6;
      if (line.startsWith('devpipe_process_memory_bytes{part="js_external"}')) memory.jsExternal = value / 1e6;
      if (line.startsWith("devpipe_duckdb_memory_bytes{")) memory.duckdb = (memory.duckdb ?? 0) + value / 1e6;
      if (line.startsWith("devpipe_dedupe_bytes{")) {
        dedupeBytes = (dedupeBytes ?? 0) + value;
        continue;
      }
      if (line.startsWith("devpipe_bus_blocked{")) {
        blocked ??= [];
        if (value > 0) blocked.push(/topic="([^"]*)"/.exec(line)?.[1] ?? line);
        continue;
      }
      if (!line.startsWith("devpipe_consumer_lag{")) continue;
      series++;
      if (value > lag || worst === undefined) {
        if (value > lag) lag = value;
        worst = line.slice("devpipe_consumer_lag".length, line.lastIndexOf(" "));
      }
    }
    return { lag, series, worst, blocked, dedupeMb: dedupeBytes === null ? null : dedupeBytes / 1e6, memory };
  } catch {
    return { lag: null, series: 0, blocked: null, dedupeMb: null, memory: noMemory };
  }
}

async function lakeQuery(sql: string): Promise<{ columns: { name: string }[]; rows: unknown[][] }> {
  for (let attempt = 1; ; attempt++) {
    const response = await fetch(`${baseUrl}/v1/query`, {
      method: "POST",
      body: JSON.stringify({ sql }),
      headers: { "content-type": "application/json", authorization: `Bearer ${apiKey}` },
      signal: AbortSignal.timeout(180_000),
    });
    if (response.ok) return (await response.json()) as { columns: { name: string }[]; rows: unknown[][] };
    const body = await response.text();
    if (response.status === 429 && attempt < 10) {
      await Bun.sleep(Number(response.headers.get("retry-after") ?? 1) * 1000);
      continue;
    }
    throw new Error(`POST /v1/query answered ${response.status}: ${body.slice(0, 500)}`);
  }
}

/**
 * After a restart /readyz answers once the gateway takes events; the chain may still be loading its
 * state. Sends one sensor reading with a key of its own and times, in ms, until its window shows it
 * (the chain consumed, deduplicated, enriched and committed it).
 */
async function timeProbeThroughChain(timeoutMs = 180_000): Promise<number> {
  const startedAt = performance.now();
  const sensor = `soak-probe-${SEED}`;
  const headers = { "content-type": "application/json", authorization: `Bearer ${apiKey}` };
  const event = { type: "sensor.reading", event_id: `${sensor}-1`, sensor_id: sensor, temperature: 20, humidity: 50, event_time: new Date().toISOString() };
  const posted = await fetch(`${baseUrl}/v1/events`, { method: "POST", body: JSON.stringify(event), headers, signal: AbortSignal.timeout(15_000) });
  if (posted.status !== 202) fail(`the probe event was answered ${posted.status}: ${await posted.text()}`);
  while (performance.now() - startedAt < timeoutMs) {
    const response = await fetch(`${baseUrl}/v1/aggregates/sensor_stats_1m?key=${sensor}`, { headers, signal: AbortSignal.timeout(15_000) });
    if (response.ok && ((await response.json()) as { items: unknown[] }).items.length > 0) return performance.now() - startedAt;
    await Bun.sleep(50);
  }
  return fail(`the probe event did not reach sensor_stats_1m within ${timeoutMs} ms`);
}

// ---------------------------------------------------------------- server and simulators

const STRIPPED = ["KAFKA_BROKERS", "DATABASE_URL", "LAKE_URL", "S3_ENDPOINT"];

function serverEnv(port: number): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined && !STRIPPED.includes(k)) env[k] = v;
  env.DATA_DIR = dataDir ?? "";
  env.PORT = String(port);
  // Our key first; keys of the caller's API_KEYS still work.
  env.API_KEYS = [`${apiKey}:ingest+query+admin`, process.env.API_KEYS].filter(Boolean).join(",");
  // The exact count scans every event of the run at the end; allow it more than the default 10 s.
  env.QUERY_TIMEOUT_MS ??= "120000";
  return env;
}

function startServer(port: number, logName: string): Subprocess {
  const log = join(workDir ?? tmpdir(), logName);
  serverLog = log;
  const out = createWriteStream(log, { flags: "a" });
  const probe = args["heap-probe"] ? ["--preload", join(ROOT, "bench/heap-probe.ts")] : [];
  const env = { ...serverEnv(port), ...(args["heap-probe"] ? { HEAP_PROBE_FILE: resolve(args["heap-probe"]) } : {}) };
  const child = Bun.spawn([process.execPath, ...probe, join(ROOT, "start.ts")], { cwd: ROOT, env, stdout: "pipe", stderr: "pipe" });
  children.add(child);
  void pipeTo(child.stdout, out);
  void pipeTo(child.stderr, out);
  void child.exited.then(() => children.delete(child));
  return child;
}

async function pipeTo(stream: ReadableStream<Uint8Array>, out: WriteStream) {
  for await (const chunk of stream) out.write(chunk);
}

/** Polls /readyz until 200; the milliseconds it took, or a failure (the server exited, or the time ran out). */
async function waitReady(server: Subprocess, timeoutMs: number): Promise<number> {
  const started = performance.now();
  while (performance.now() - started < timeoutMs) {
    if (server.exitCode !== null || server.signalCode !== null) fail(`the server exited before /readyz answered 200 (exit ${server.exitCode ?? server.signalCode})`);
    if ((await readyStatus(2_000)) === 200) return Math.round(performance.now() - started);
    await Bun.sleep(100);
  }
  fail(`/readyz did not answer 200 within ${timeoutMs} ms (last status ${await readyStatus()})`);
}

/** SIGTERM and wait; the milliseconds to exit, killing it after `graceMs`. */
async function stopServer(server: Subprocess, graceMs = 60_000): Promise<{ shutdown_ms: number; exit_code: number | null; killed: boolean }> {
  const started = performance.now();
  server.kill("SIGTERM");
  const timer = setTimeout(() => server.kill("SIGKILL"), graceMs);
  await server.exited;
  clearTimeout(timer);
  return { shutdown_ms: Math.round(performance.now() - started), exit_code: server.exitCode, killed: server.signalCode === "SIGKILL" };
}

interface SimState {
  domain: string;
  rate: number;
  child: Subprocess;
  accepted: number;
  rejected: number;
  failed: number;
  summary?: Record<string, number | string>;
  stderr: string[];
}

function startSimulator(domain: string, devices: number, rate: number): SimState {
  const argv = [process.execPath, join(ROOT, "generators/cli.ts"), domain, "--devices", String(devices), "--rate", String(rate), "--duration", "0", "--seed", String(SEED), "--url", baseUrl, "--key", apiKey];
  // The dims go to the gateway (PUT /v1/dims); --dims-dir is only the fallback of a gateway without it.
  const child = Bun.spawn(argv, { cwd: ROOT, env: { ...process.env, DATA_DIR: dataDir }, stdout: "pipe", stderr: "pipe" });
  children.add(child);
  void child.exited.then(() => children.delete(child));
  const sim: SimState = { domain, rate, child, accepted: 0, rejected: 0, failed: 0, stderr: [] };
  void readLines(child.stderr, (line) => {
    // The live progress line (stderr is not a TTY: one line a second): "... accepted N  rejected M  failed F ...".
    const progress = /accepted (\d+)\s+rejected (\d+)\s+failed (\d+)/.exec(line);
    if (progress) {
      sim.accepted = Number(progress[1]);
      sim.rejected = Number(progress[2]);
      sim.failed = Number(progress[3]);
      return;
    }
    sim.stderr.push(line);
    if (sim.stderr.length > 20) sim.stderr.shift();
  });
  void readLines(child.stdout, (line) => {
    try {
      sim.summary = JSON.parse(line) as Record<string, number | string>;
    } catch {
      // not the summary
    }
  });
  return sim;
}

async function readLines(stream: ReadableStream<Uint8Array>, onLine: (line: string) => void) {
  const decoder = new TextDecoder();
  let buffer = "";
  for await (const chunk of stream) {
    buffer += decoder.decode(chunk, { stream: true });
    let newline = buffer.search(/[\r\n]/);
    while (newline >= 0) {
      const line = buffer.slice(0, newline).trim();
      buffer = buffer.slice(newline + 1);
      if (line) onLine(line);
      newline = buffer.search(/[\r\n]/);
    }
  }
  if (buffer.trim()) onLine(buffer.trim());
}

// ---------------------------------------------------------------- statistics

/** Least-squares slope of y over x. */
function slope(points: [x: number, y: number][]): number {
  if (points.length < 2) return Number.NaN;
  const n = points.length;
  const mx = points.reduce((s, [x]) => s + x, 0) / n;
  const my = points.reduce((s, [, y]) => s + y, 0) / n;
  const sxx = points.reduce((s, [x]) => s + (x - mx) ** 2, 0);
  const sxy = points.reduce((s, [x, y]) => s + (x - mx) * (y - my), 0);
  return sxx === 0 ? Number.NaN : sxy / sxx;
}

/** Means of y in 10-minute buckets of x (minutes) from `from`: a trend without single samples' noise. */
function byTenMinutes(points: [minute: number, y: number][], from = 0): (number | null)[] {
  const buckets: number[][] = [];
  for (const [minute, y] of points) {
    if (minute < from - 1e-9) continue;
    const bucket = Math.floor((minute - from + 1e-9) / 10);
    (buckets[bucket] ??= []).push(y);
  }
  return Array.from(buckets, (bucket) => round((bucket ?? []).reduce((a, b) => a + b, 0) / Math.max(1, bucket?.length ?? 0)));
}

// ---------------------------------------------------------------- the run

const TYPES = ["vehicle_telemetry", "vehicle_location", "gps_fix", "traffic_camera", "weather_observation", "emergency_incident", "sensor_reading", "user_activity"];

/** This run's events in the lake per simulator (the event id's prefix): rows and distinct event ids. */
async function lakeCounts(): Promise<Record<string, { rows: number; distinct: number }>> {
  const counts: Record<string, { rows: number; distinct: number }> = {};
  for (const view of TYPES) {
    const sql = `select split_part(event_id, '-', 1) as domain, count(*) as n, count(distinct event_id) as d from ${view} where event_id like '%-s${SEED}-%' group by 1`;
    let result;
    try {
      result = await lakeQuery(sql);
    } catch (error) {
      // A type no simulator has sent yet has no table, hence no view.
      if (error instanceof Error && /does not exist|not found|unknown/i.test(error.message) && !/answered (5|429)/.test(error.message)) continue;
      throw error;
    }
    for (const [domain, n, d] of result.rows) {
      const entry = (counts[String(domain)] ??= { rows: 0, distinct: 0 });
      entry.rows += Number(n);
      entry.distinct += Number(d);
    }
  }
  return counts;
}

function compareCounts(sims: SimState[], lake: Record<string, { rows: number; distinct: number }>) {
  const per_simulator = Object.fromEntries(
    sims.map((s) => {
      const accepted = Number(s.summary?.accepted ?? s.accepted);
      const l = lake[s.domain] ?? { rows: 0, distinct: 0 };
      return [s.domain, { accepted, lake_rows: l.rows, lake_distinct: l.distinct, exact: accepted === l.rows && l.rows === l.distinct }];
    }),
  );
  const accepted = Object.values(per_simulator).reduce((s, c) => s + c.accepted, 0);
  const lakeRows = Object.values(per_simulator).reduce((s, c) => s + c.lake_rows, 0);
  const lakeDistinct = Object.values(per_simulator).reduce((s, c) => s + c.lake_distinct, 0);
  return { accepted, lake_rows: lakeRows, lake_distinct: lakeDistinct, counts_exact: Object.values(per_simulator).every((c) => c.exact), per_simulator };
}

async function freePort(): Promise<number> {
  const probe = Bun.serve({ port: 0, fetch: () => new Response() });
  const port = probe.port;
  await probe.stop(true);
  if (!port) fail("no free port");
  return port;
}

async function main() {
  workDir = mkdtempSync(join(tmpdir(), "devpipe-soak-"));
  if (args["data-dir"]) dataDir = resolve(args["data-dir"]);
  else {
    dataDir = join(workDir, "data");
    ownsDataDir = true;
  }
  mkdirSync(dataDir, { recursive: true });
  const port = args.port ? positive("port", args.port) : await freePort();
  baseUrl = `http://127.0.0.1:${port}`;
  apiKey = `soak${crypto.randomUUID().replaceAll("-", "")}`;
  const passedEnv = Object.keys(process.env).filter((k) => /^(BUS|LAKE|INGEST|QUERY|DEDUPE|WATERMARK|ENRICHED|RETENTION|ALERTS|AGGREGATES|RUNS|PG|PGLITE|DB|READY|SHUTDOWN|MAX|PRODUCE|SSE|HTTP|LOG)_/.test(k) || k === "LOG_LEVEL");
  const stripped = STRIPPED.filter((k) => process.env[k] !== undefined);
  const sims = MIX.map(([domain, devices, weight]) => ({ domain, devices, rate: Math.max(1, Math.round((RATE * weight) / WEIGHTS)) }));
  print({
    phase: "config",
    minutes: MINUTES,
    rate_per_s: RATE,
    sample_s: SAMPLE_S,
    warmup_min: WARMUP_MIN,
    data_dir: dataDir,
    keep: args.keep,
    port,
    seed: SEED,
    simulators: sims,
    env: Object.fromEntries(passedEnv.map((k) => [k, process.env[k]])),
    stripped_env: stripped,
    logs: workDir,
    free_mb: Math.round(freeMb(dataDir)),
  });

  // ---- start
  let server = startServer(port, "server.log");
  const startReadyMs = await waitReady(server, 180_000);
  print({ phase: "ready", start_ready_ms: startReadyMs, pid: server.pid });

  const runStart = performance.now();
  const simStates = sims.map((s) => startSimulator(s.domain, s.devices, s.rate));
  const runEnd = runStart + MINUTES * 60_000;
  let lastCpu = treeUsage(server.pid).cpuS;
  let lastAt = performance.now();
  let lastAccepted = 0;
  let lastSimCpu = 0;
  const samples: { minute: number; rss: number; dedupe: number | null; memory: MemoryParts & { rssAnon: number; rssFile: number }; cpu: number | null; disk: Record<Part, number>; lag: number | null; ready: number; blocked: boolean }[] = [];

  /**
   * CPU milliseconds this process takes for a fixed amount of hashing: if it rises over the run, the machine
   * slowed down (another tenant, a slower core), and so did everything measured on it.
   */
  const calibrationBuffer = new Uint8Array(4 << 20).fill(7);
  const calibrationMs = () => {
    const before = process.cpuUsage();
    for (let i = 0; i < 64; i++) Bun.hash.wyhash(calibrationBuffer, BigInt(i));
    const spent = process.cpuUsage(before);
    return (spent.user + spent.system) / 1000;
  };
  const calibrations: [number, number][] = [];

  /** One sample; the first (at 0 s, the baseline of the disk figures) has no CPU figure. */
  const sample = async () => {
    const now = performance.now();
    const usage = treeUsage(server.pid);
    const kinds = rssKindsOf(server.pid);
    const seconds = (now - lastAt) / 1000;
    const cpuPct = seconds >= 1 ? ((usage.cpuS - lastCpu) / seconds) * 100 : null;
    lastCpu = usage.cpuS;
    lastAt = now;
    // The simulators share the machine: their CPU tells how much of it the server had.
    const simCpu = simStates.reduce((sum, s) => sum + (statOf(s.child.pid)?.cpuS ?? 0), 0);
    const simCpuPct = seconds >= 1 ? ((simCpu - lastSimCpu) / seconds) * 100 : null;
    lastSimCpu = simCpu;
    const disk = diskMb(dataDir ?? "");
    const free = freeMb(dataDir ?? "");
    const [lag, ready] = await Promise.all([scrapeMetrics(), readyStatus()]);
    const accepted = simStates.reduce((s, x) => s + x.accepted, 0);
    const elapsed = (now - runStart) / 1000;
    const calibration = calibrationMs();
    calibrations.push([elapsed / 60, calibration]);
    samples.push({ minute: elapsed / 60, rss: usage.rssMb, dedupe: lag.dedupeMb, memory: { ...lag.memory, rssAnon: kinds.anon, rssFile: kinds.file }, cpu: cpuPct, disk, lag: lag.lag, ready, blocked: (lag.blocked?.length ?? 0) > 0 });
    print({
      phase: "sample",
      elapsed_s: Math.round(elapsed),
      rss_mb: round(usage.rssMb),
      dedupe_mb: lag.dedupeMb === null ? null : round(lag.dedupeMb),
      rss_anon_mb: round(kinds.anon),
      rss_file_mb: round(kinds.file),
      pglite_mb: lag.memory.pglite === null ? null : round(lag.memory.pglite),
      js_heap_mb: lag.memory.jsHeap === null ? null : round(lag.memory.jsHeap),
      js_external_mb: lag.memory.jsExternal === null ? null : round(lag.memory.jsExternal),
      duckdb_mb: lag.memory.duckdb === null ? null : round(lag.memory.duckdb),
      cpu_pct: cpuPct === null ? null : round(cpuPct),
      processes: usage.processes,
      simulators_cpu_pct: simCpuPct === null ? null : round(simCpuPct),
      calibration_cpu_ms: round(calibration, 2),
      disk_mb: Object.fromEntries(PARTS.map((p) => [p, round(disk[p], 2)])),
      free_mb: Math.round(free),
      max_lag: lag.lag,
      max_lag_series: lag.worst,
      lag_series: lag.series,
      bus_blocked: lag.blocked,
      readyz: ready,
      accepted,
      accepted_per_s: seconds >= 1 ? Math.round((accepted - lastAccepted) / seconds) : null,
      rejected: simStates.reduce((s, x) => s + x.rejected, 0),
      failed: simStates.reduce((s, x) => s + x.failed, 0),
    });
    lastAccepted = accepted;
    if (free < MIN_FREE_MB) fail(`less than ${MIN_FREE_MB} MB free on the data dir's file system (${Math.round(free)} MB); stopped before filling it`);
  };
  await sample();

  for (let k = 1; ; k++) {
    const due = Math.min(runStart + k * SAMPLE_S * 1000, runEnd);
    while (performance.now() < due) {
      await Bun.sleep(Math.min(1_000, due - performance.now()));
      if (server.exitCode !== null || server.signalCode !== null) fail(`the server exited during the run (exit ${server.exitCode ?? server.signalCode})`);
      const dead = simStates.find((s) => s.child.exitCode !== null);
      if (dead) fail(`simulator ${dead.domain} exited during the run (exit ${dead.child.exitCode})`, { simulator_stderr: dead.stderr });
    }
    await sample();
    if (due >= runEnd) break;
  }
  const runSeconds = (performance.now() - runStart) / 1000;

  // ---- stop the simulators (SIGINT: they finish their requests in flight and print a summary)
  for (const s of simStates) s.child.kill("SIGINT");
  const simTimer = setTimeout(() => {
    for (const s of simStates) s.child.kill("SIGKILL");
  }, 60_000);
  await Promise.all(simStates.map((s) => s.child.exited));
  clearTimeout(simTimer);
  // Let the last stdout line be parsed.
  await Bun.sleep(200);
  const missing = simStates.filter((s) => !s.summary);
  if (missing.length > 0) fail(`simulators without a summary: ${missing.map((s) => s.domain).join(", ")}`, { simulator_stderr: Object.fromEntries(missing.map((s) => [s.domain, s.stderr])) });
  const simTotals = Object.fromEntries(simStates.map((s) => [s.domain, { accepted: s.summary?.accepted, rejected: s.summary?.rejected, failed_events: s.summary?.failed_events, retries: s.summary?.retries, events_per_s: s.summary?.events_per_s, p50_ms: s.summary?.p50_ms, p99_ms: s.summary?.p99_ms }]));

  // ---- drain: the lag back to 0, bounded
  const drainStart = performance.now();
  let lag: number | null = null;
  while (performance.now() - drainStart < DRAIN_S * 1000) {
    lag = (await scrapeMetrics()).lag;
    if (lag === 0) break;
    await Bun.sleep(1_000);
  }
  const drainMs = Math.round(performance.now() - drainStart);
  print({ phase: "drain", drained: lag === 0, drain_ms: drainMs, lag, simulators: simTotals });

  // ---- counts: every accepted event in the lake exactly once. Lag 0 means the lake sink committed;
  // a reader may still hold the previous snapshot for a moment, so a mismatch is re-read a few times.
  let counts = compareCounts(simStates, await lakeCounts());
  for (let attempt = 1; !counts.counts_exact && attempt <= 5; attempt++) {
    await Bun.sleep(2_000);
    counts = compareCounts(simStates, await lakeCounts());
  }
  print({ phase: "counts", ...counts });

  // ---- stop, restart, time readiness, stop
  const diskBeforeStop = diskMb(dataDir);
  const shutdown = await stopServer(server);
  print({ phase: "shutdown", ...shutdown });
  const restartStart = performance.now();
  server = startServer(port, "server-restart.log");
  await waitReady(server, 180_000);
  const restartReadyMs = Math.round(performance.now() - restartStart);
  const restartResumedMs = Math.round(restartReadyMs + (await timeProbeThroughChain()));
  const countsAfterRestart = compareCounts(simStates, await lakeCounts());
  const lagAfterRestart = (await scrapeMetrics()).lag;
  const restartShutdown = await stopServer(server);
  print({ phase: "restart", restart_ready_ms: restartReadyMs, restart_resumed_ms: restartResumedMs, counts_after_restart_exact: countsAfterRestart.counts_exact, lake_rows_after_restart: countsAfterRestart.lake_rows, lag_after_restart: lagAfterRestart, restart_shutdown_ms: restartShutdown.shutdown_ms });

  // ---- summary
  const flatness = (values: number[]) => {
    const mean = values.reduce((a, b) => a + b, 0) / Math.max(1, values.length);
    return { min: round(Math.min(...values)), max: round(Math.max(...values)), mean: round(mean), flat_10pct: values.length > 0 && Math.max(...values) <= mean * 1.1 && Math.min(...values) >= mean * 0.9 };
  };
  const warm = samples.filter((s) => s.minute >= WARMUP_MIN - 1e-9);
  const perPart = Object.fromEntries(
    PARTS.map((part) => {
      const all = samples.map((s) => [s.minute, s.disk[part]] as [number, number]);
      const after = warm.map((s) => [s.minute, s.disk[part]] as [number, number]);
      return [part, { end_mb: round(diskBeforeStop[part], 2), mb_per_min: round((diskBeforeStop[part] - (samples[0]?.disk[part] ?? 0)) / (runSeconds / 60), 3), mb_per_min_fit: round(slope(all), 3), mb_per_min_after_warmup: round(slope(after), 3) }];
    }),
  );
  const rssWarm = warm.map((s) => s.rss);
  const rssMean = rssWarm.reduce((a, b) => a + b, 0) / rssWarm.length;
  const rssMin = Math.min(...rssWarm);
  const rssMax = Math.max(...rssWarm);
  const rssBy10 = byTenMinutes(warm.map((s) => [s.minute, s.rss]), WARMUP_MIN);
  const cpuAll = samples.map((s) => s.cpu).filter((c): c is number => c !== null);
  const lags = samples.map((s) => s.lag).filter((l): l is number => l !== null);
  const totalAccepted = counts.accepted;
  print({
    phase: "summary",
    minutes: round(runSeconds / 60, 2),
    rate_per_s: RATE,
    achieved_per_s: Math.round(totalAccepted / runSeconds),
    warmup_min: WARMUP_MIN,
    samples: samples.length,
    samples_after_warmup: warm.length,
    disk: perPart,
    rss_mb_after_warmup: { min: round(rssMin), max: round(rssMax), mean: round(rssMean), mb_per_min: round(slope(warm.map((s) => [s.minute, s.rss])), 3) },
    // Means of 10-minute buckets after warm-up: the trend, without the garbage collector's sawtooth of single samples.
    rss_mb_by_10min: rssBy10,
    rss_flat_10pct: rssWarm.length > 0 && rssMax <= rssMean * 1.1 && rssMin >= rssMean * 0.9,
    // The same rule on the 10-minute means: the trend, where rss_flat_10pct also holds every single sample to it.
    rss_by_10min_flat_10pct: flatness(rssBy10.filter((m): m is number => m !== null)).flat_10pct,
    // The dedupe state grows by design until its horizons fill (rate × horizon ids): the rest of the memory apart from it.
    dedupe_mb_after_warmup: { first: warm[0]?.dedupe ?? null, last: warm[warm.length - 1]?.dedupe ?? null, mb_per_min: round(slope(warm.map((s) => [s.minute, s.dedupe ?? 0])), 3) },
    rss_minus_dedupe_after_warmup: flatness(warm.map((s) => s.rss - (s.dedupe ?? 0))),
    // Where the memory is: each part's first and last value after warm-up and its slope.
    memory_mb_after_warmup: Object.fromEntries(
      (["rssAnon", "rssFile", "pglite", "jsHeap", "jsExternal", "duckdb"] as const).map((part) => {
        const values = warm.flatMap((s) => {
          const value = s.memory[part];
          return value === null || Number.isNaN(value) ? [] : [[s.minute, value] as [number, number]];
        });
        return [part, { first: round(values[0]?.[1] ?? Number.NaN), last: round(values[values.length - 1]?.[1] ?? Number.NaN), mb_per_min: round(slope(values), 3) }];
      }),
    ),
    cpu_pct_mean: round(cpuAll.reduce((a, b) => a + b, 0) / Math.max(1, cpuAll.length)),
    cpu_pct_by_10min: byTenMinutes(samples.flatMap((s) => (s.cpu === null ? [] : [[s.minute, s.cpu] as [number, number]]))),
    // The machine's speed over the run (see calibrationMs): the same work's CPU ms, by 10-minute bucket.
    calibration_cpu_ms_by_10min: byTenMinutes(calibrations),
    max_lag: lags.length > 0 ? Math.max(...lags) : null,
    readyz_not_200: samples.filter((s) => s.ready !== 200).length,
    samples_bus_blocked: samples.filter((s) => s.blocked).length,
    start_ready_ms: startReadyMs,
    drain_ms: drainMs,
    drained: lag === 0,
    shutdown_ms: shutdown.shutdown_ms,
    shutdown_exit_code: shutdown.exit_code,
    restart_ready_ms: restartReadyMs,
    restart_resumed_ms: restartResumedMs,
    accepted: totalAccepted,
    lake_rows: counts.lake_rows,
    lake_distinct: counts.lake_distinct,
    counts_exact: counts.counts_exact,
    counts_after_restart_exact: countsAfterRestart.counts_exact,
  });
  cleanup(true);
  if (!counts.counts_exact || lag !== 0 || shutdown.exit_code !== 0) process.exitCode = 2;
}

await main().catch((error: unknown) => fail(error instanceof Error ? error.message : String(error)));
