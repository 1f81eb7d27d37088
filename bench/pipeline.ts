/**
 * The operator chain's throughput and alert latency (`bash scripts/services.sh up` for the services mode).
 * Prints JSON lines, one per phase; each phase has a pipeline of its own (fresh database and topics):
 *   chain              a backlog of N events in events.raw drained by alerts + windows (six views), committed
 *   chain+lake         the same with the lake sink chained too (Delta tables in a local dir)
 *   alert_latency      ingest_time → alert committed at a steady BENCH_RATE (10,000) events/s, every operator running
 *   alert_latency_after_backlog   the same right after the chain has drained a backlog of N
 *   embedded           the `chain` phase on the embedded bus and PGlite
 *   rss                (only with BENCH_RSS_MINUTES) `bun run worker all` in its own process at BENCH_RSS_RATE
 *                      (20,000) events/s: its RSS and the slowest operator's lag every 30 s
 * BENCH_EVENTS (1,000,000) sets N; BENCH_PHASES (comma list) picks phases; BENCH_ALERT_SHARE (0.05) the
 * share of telemetry events that raise an alert.
 */
import { memoryMb, percentile } from "./proc.ts";
import { drainWithChain, eventSource, fillRaw, openPipeline, recordOf, round, rssMb } from "./chain-run.ts";
import { startChain } from "../workers/jobs.ts";
import type { Services } from "../lib/services.ts";

const N = Number(process.env.BENCH_EVENTS ?? 1_000_000);
const RATE = Number(process.env.BENCH_RATE ?? 10_000);
const RSS_MINUTES = Number(process.env.BENCH_RSS_MINUTES ?? 0);
const RSS_RATE = Number(process.env.BENCH_RSS_RATE ?? 20_000);
const phases = new Set((process.env.BENCH_PHASES ?? "chain,chain+lake,alert_latency,alert_latency_after_backlog,embedded").split(","));
if (RSS_MINUTES > 0) phases.add("rss");
const print = (fields: Record<string, unknown>) => console.log(JSON.stringify({ bench: "pipeline", ...fields }));
const ALL = ["enrich", "alerts", "windows", "lake"];

async function throughput(phase: string, mode: "services" | "embedded", operators: string[]) {
  const pipeline = await openPipeline(mode, `pipe_${phase.replace(/\W/g, "_")}`);
  try {
    const fill = await fillRaw(pipeline.services, N);
    const rssAfterFill = rssMb();
    const drain = await drainWithChain(pipeline.services, operators, N);
    const rss = rssMb();
    await drain.stop();
    const [rows] = await pipeline.services.db.sql<{ n: number }[]>`select count(*)::int as n from aggregates`;
    const { stop: _, ...figures } = drain;
    print({ phase, mode, operators, events: N, fill_events_per_s: fill.events_per_s, ...figures, aggregate_rows: rows?.n, rss_after_fill_mb: rssAfterFill, rss_mb: rss });
  } finally {
    await pipeline.close();
  }
}

/** Sends RATE events/s for `seconds` and returns ingest_time → alert committed for the telemetry events that alert. */
async function alertLatency(services: Services, seconds: number, prefix: string) {
  const sent = new Map<string, number>();
  const next = eventSource(prefix);
  const start = performance.now();
  for (let tick = 0; tick < seconds * 100; tick++) {
    const wait = start + tick * 10 - performance.now();
    if (wait > 0) await Bun.sleep(wait);
    const now = Date.now();
    const batch = Array.from({ length: RATE / 100 }, () => next(now));
    for (const e of batch) if (e.type === "vehicle.telemetry") sent.set(e.event_id, e.ingest_time);
    await services.bus.produce(services.topics.raw, batch.map(recordOf));
  }
  await Bun.sleep(3_000);
  // created_at is now() of the checkpoint's transaction (its start); the insert and commit follow within that checkpoint.
  const alerts = await services.db.sql<{ event_id: string; at: number }[]>`select event_id, (extract(epoch from created_at) * 1000)::float8 as at from alerts where event_id = any(${[...sent.keys()]})`;
  const latencies = alerts.map((a) => a.at - (sent.get(a.event_id) ?? a.at)).sort((a, b) => a - b);
  return { alerts: latencies.length, p50_ms: percentile(latencies, 0.5), p99_ms: percentile(latencies, 0.99), max_ms: percentile(latencies, 1) };
}

if (phases.has("chain")) await throughput("chain", "services", ["alerts", "windows"]);
if (phases.has("chain+lake")) await throughput("chain+lake", "services", ["alerts", "windows", "lake"]);

if (phases.has("alert_latency")) {
  const pipeline = await openPipeline("services", "pipe_latency");
  try {
    const stop = await startChain(ALL, pipeline.services);
    await Bun.sleep(2_000);
    print({ phase: "alert_latency", rate_per_s: RATE, operators: ALL, ...(await alertLatency(pipeline.services, 10, "l")), rss_mb: rssMb() });
    await stop();
  } finally {
    await pipeline.close();
  }
}

if (phases.has("alert_latency_after_backlog")) {
  const pipeline = await openPipeline("services", "pipe_latency_backlog");
  try {
    await fillRaw(pipeline.services, N);
    const drain = await drainWithChain(pipeline.services, ALL, N);
    print({ phase: "alert_latency_after_backlog", backlog: N, drain_seconds: drain.seconds, rate_per_s: RATE, operators: ALL, ...(await alertLatency(pipeline.services, 10, "lb")), rss_mb: rssMb() });
    await drain.stop();
  } finally {
    await pipeline.close();
  }
}

if (phases.has("embedded")) await throughput("embedded", "embedded", ["alerts", "windows"]);

if (phases.has("rss")) {
  // The worker in a process of its own (`bun run worker all`), so its RSS is the worker's alone.
  const pipeline = await openPipeline("services", "pipe_rss");
  const worker = Bun.spawn(["bun", "run", new URL("../workers/main.ts", import.meta.url).pathname, "all"], { env: { ...process.env, ...pipeline.env }, stdout: "ignore", stderr: "inherit" });
  try {
    const next = eventSource("r");
    const samples: { minute: number; rss_mb: number }[] = [];
    const start = performance.now();
    for (let tick = 0; performance.now() - start < RSS_MINUTES * 60_000; tick++) {
      const wait = start + tick * 50 - performance.now();
      if (wait > 0) await Bun.sleep(wait);
      const now = Date.now();
      await pipeline.services.bus.produce(pipeline.services.topics.raw, Array.from({ length: RSS_RATE / 20 }, () => recordOf(next(now))));
      if (tick % 600 === 0) {
        samples.push({ minute: round((performance.now() - start) / 60_000, 1), rss_mb: memoryMb(worker.pid).rss_mb });
        print({ phase: "rss_sample", ...samples.at(-1), lag: await lagOf(pipeline.services) });
      }
    }
    // After the first 2 minutes (start-up, the first windows filling).
    const settled = samples.filter((s) => s.minute >= 2).map((s) => s.rss_mb);
    const low = Math.min(...settled);
    const high = Math.max(...settled);
    print({ phase: "rss", rate_per_s: RSS_RATE, minutes: RSS_MINUTES, worker_rss_min_mb: low, worker_rss_max_mb: high, spread_pct: round(((high - low) / low) * 100, 1), lag_at_end: await lagOf(pipeline.services) });
  } finally {
    worker.kill("SIGTERM");
    await worker.exited;
    await pipeline.close();
  }
}

/** Records of events.raw the slowest operator has not committed yet. */
async function lagOf(services: Services): Promise<number> {
  const ends = await services.bus.endOffsets(services.topics.raw);
  const rows = await services.db.sql<{ job: string; partition: number; next_offset: number }[]>`select job, partition, next_offset from job_offsets where topic = ${services.topics.raw}`;
  const jobs = [...new Set(rows.map((r) => r.job))];
  return Math.max(0, ...jobs.map((job) => ends.reduce((sum, e) => sum + e.offset - (rows.find((r) => r.job === job && r.partition === e.partition)?.next_offset ?? 0), 0)));
}
