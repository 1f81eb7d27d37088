/**
 * The Parquet lake on the real Postgres (`bash scripts/services.sh up`) and a local-directory lake
 * (BENCH_LAKE=s3: the MinIO bucket). Prints JSON lines:
 *   sink          events/s from a backlog in events.enriched (Kafka) into Parquet by the lake job
 *   write         events/s through the Parquet writer alone (DuckDB + storage + manifest), 250k per flush
 *   compaction    seconds to compact the day written by `write`
 *   query_device  p50/p99 ms of GET /v1/events's lookup: one device, one day, over BENCH_LAKE_EVENTS (10M)
 *   query_day     p50 ms of a full-day aggregate over the same events (POST /v1/query)
 */
import { join } from "node:path";
import { partitionFor } from "../lib/bus/partitioner.ts";
import { loadConfig } from "../lib/config.ts";
import { encodeEnvelope, type Envelope } from "../lib/events/index.ts";
import { Duck } from "../lib/lake/duckdb.ts";
import { hourOf } from "../lib/lake/layout.ts";
import { lakeCacheDir, localFiles } from "../lib/lake/local-files.ts";
import { createLakeReader, readerTempDir } from "../lib/lake/reader.ts";
import { type TypeRecords, writeFlush } from "../lib/lake/writer.ts";
import { createLogger } from "../lib/log.ts";
import { closeServices, openServices } from "../lib/services.ts";
import { addFiles, liveFiles } from "../lib/store/lake-files.ts";
import { jobs } from "../workers/jobs.ts";
import { compactOnce } from "../workers/lake/compaction.ts";
import { percentile } from "./proc.ts";
import { benchDatabase, drained } from "./services.ts";

const TOTAL = Number(process.env.BENCH_LAKE_EVENTS ?? 10_000_000);
const SINK_EVENTS = Number(process.env.BENCH_SINK_EVENTS ?? 500_000);
const FLUSH = 250_000;
const DEVICES = 1_000;
const PARTITIONS = 4;
const DAY = Date.UTC(2026, 10, 20);
const bench = await benchDatabase("bench_lake");
const { name, env: serviceEnv } = bench;
const dataDir = `/tmp/${name}`;
const lakeEnv = process.env.BENCH_LAKE === "s3" ? { LAKE_URL: `${serviceEnv.LAKE_URL}/${name}` } : { LAKE_URL: `file://${dataDir}/lake` };
const services = await openServices(
  loadConfig({ ...serviceEnv, ...lakeEnv, DATABASE_URL: bench.url, DATA_DIR: dataDir, TOPIC_PREFIX: `${name}.`, BUS_PARTITIONS: String(PARTITIONS), LOG_LEVEL: "warn" }),
  createLogger({ bench: "lake" }, () => undefined),
);
const { sql } = services.db;
const rss = () => Math.round(process.memoryUsage().rss / 2 ** 20);

let sequence = 0;
/** An enriched telemetry event of one of DEVICES cars, spread over the day. */
function event(i: number, timeMs: number): Envelope {
  const car = i % DEVICES;
  const speed = (i * 7) % 180;
  return {
    type: "vehicle.telemetry",
    key: String(car),
    event_id: `e${sequence++}`,
    event_time: timeMs,
    ingest_time: timeMs + 150,
    payload: { car_id: car, speed, rpm: (i * 131) % 7_000, gear: 1 + (i % 6), driver_id: 5_000 + car, model_id: 1 + (car % 5), color_id: 1 + (car % 4), car_brand: "Volvo", car_model: "V60", color_name: ["Black", "White", "Silver", "Red"][car % 4] ?? null, expected_gear: Math.round(speed / 30) },
  };
}

// 1. The lake job drains a backlog in events.enriched.
{
  for (let i = 0; i < SINK_EVENTS; i += 10_000) {
    const batch = Array.from({ length: Math.min(10_000, SINK_EVENTS - i) }, (_, k) => event(i + k, DAY + ((i + k) % 86_400) * 1_000));
    await services.bus.produce(services.topics.enriched, batch.map((e) => ({ key: e.key, value: encodeEnvelope(e), timestamp: e.event_time })));
  }
  const t0 = performance.now();
  const stop = await jobs.lake?.start(services, { commitIntervalMs: 1_000, maxPending: FLUSH });
  const seconds = await drained(sql, "lake", services.topics.enriched, SINK_EVENTS, t0);
  await stop?.();
  console.log(JSON.stringify({ bench: "lake", phase: "sink", lake: services.lake.kind, events: SINK_EVENTS, seconds: Math.round(seconds * 100) / 100, events_per_s: Math.round(SINK_EVENTS / seconds), rss_mb: rss() }));
  await sql`delete from lake_files`;
}

// 2. The writer alone: TOTAL events over one day, FLUSH per flush, each flush split by partition as the job does.
const writeDuck = await Duck.open({ threads: "2", memory_limit: "2GB" });
const encoder = new TextEncoder();
let writeSeconds = 0;
for (let from = 0; from < TOTAL; from += FLUSH) {
  const count = Math.min(FLUSH, TOTAL - from);
  const byPartition = new Map<number, Map<string, TypeRecords>>();
  for (let i = from; i < from + count; i++) {
    const e = event(i, DAY + Math.floor((i / TOTAL) * 86_400_000));
    const partition = partitionFor(e.key, PARTITIONS);
    let types = byPartition.get(partition);
    if (!types) byPartition.set(partition, (types = new Map([["vehicle.telemetry", { values: [], hours: new Map() }]])));
    const typed = types.get("vehicle.telemetry");
    if (!typed) continue;
    typed.values.push(encoder.encode(JSON.stringify(e)));
    const hour = hourOf(e.event_time);
    typed.hours.set(hour, (typed.hours.get(hour) ?? 0) + 1);
  }
  const t = performance.now();
  for (const [partition, byType] of byPartition) {
    const files = await writeFlush(writeDuck, services.lake, join(dataDir, "work"), { topic: "bench", partition, fromOffset: from, toOffset: from + count - 1, byType });
    await sql.begin((tx) => addFiles(tx, files));
  }
  writeSeconds += (performance.now() - t) / 1000;
}
writeDuck.close();
const written = await liveFiles(sql);
console.log(JSON.stringify({ bench: "lake", phase: "write", lake: services.lake.kind, events: TOTAL, seconds: Math.round(writeSeconds * 10) / 10, events_per_s: Math.round(TOTAL / writeSeconds), files: written.length, mb: Math.round(written.reduce((s, f) => s + f.bytes, 0) / 2 ** 20), rss_mb: rss() }));

// 3. Compaction of the whole day (every hour is closed).
const files = localFiles(services.lake, lakeCacheDir(dataDir));
const compactDuck = await Duck.open({ threads: "2", memory_limit: "2GB" });
const tc = performance.now();
let merged = 0;
for (;;) {
  const result = await compactOnce({ sql, store: services.lake, files, duck: compactDuck, workDir: join(dataDir, "compact"), logger: services.logger, closeAfterMs: 0, retireGraceMs: 3_600_000 });
  merged += result.merged;
  if (result.merged === 0) break;
}
compactDuck.close();
const compacted = await liveFiles(sql);
console.log(JSON.stringify({ bench: "lake", phase: "compaction", events: TOTAL, seconds: Math.round((performance.now() - tc) / 100) / 10, files_before: written.length, files_after: compacted.length, merged, rss_mb: rss() }));

// 4. Queries through the reader the gateway uses.
const reader = createLakeReader({ sql, files, tempDir: readerTempDir(dataDir), timeoutMs: 60_000, maxRows: 10_000 });
const timed = async (run: () => Promise<unknown>, times: number) => {
  await run(); // the first run warms the S3 cache and the OS page cache
  const ms: number[] = [];
  for (let i = 0; i < times; i++) {
    const t = performance.now();
    await run();
    ms.push(performance.now() - t);
  }
  return ms.sort((a, b) => a - b);
};
let rows = 0;
const device = await timed(async () => {
  const key = String(Math.floor(Math.random() * DEVICES));
  rows = (await reader.events({ type: "vehicle.telemetry", key, partition: partitionFor(key, PARTITIONS), fromMs: DAY, toMs: DAY + 86_400_000, limit: 10_000 })).length;
}, 20);
console.log(JSON.stringify({ bench: "lake", phase: "query_device", events_in_lake: TOTAL, rows_per_query: rows, p50_ms: percentile(device, 0.5), p99_ms: percentile(device, 0.99), rss_mb: rss() }));
const day = await timed(() => reader.query("select hour(event_time) as hour, count(*) as events, avg(speed) as avg_speed, count(*) filter (where speed > 120) as speeding from vehicle_telemetry group by 1 order by 1"), 5);
console.log(JSON.stringify({ bench: "lake", phase: "query_day", events_in_lake: TOTAL, p50_ms: percentile(day, 0.5), max_ms: percentile(day, 1), rss_mb: rss() }));

await closeServices(services);
await bench.drop();
