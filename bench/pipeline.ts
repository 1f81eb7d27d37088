/**
 * Stream-job throughput and alert latency on the real Kafka and Postgres (`bash scripts/services.sh up`).
 * Prints JSON lines:
 *   enrich+alerts  a backlog of N events in events.raw drained by enrich and alerts in this process
 *   windows        the same events (enriched) drained by the windows job, commits every 250 ms
 *   alert_latency  p50/p99 from ingest_time to the alert committed, at a steady 10,000 events/s
 * BENCH_EVENTS (200,000) sets N; BENCH_ALERT_SHARE (0.05) the share of telemetry events that raise an alert.
 */
import type { OutgoingRecord } from "../lib/bus/types.ts";
import { loadConfig } from "../lib/config.ts";
import { encodeEnvelope, type Envelope } from "../lib/events/index.ts";
import { createLogger } from "../lib/log.ts";
import { closeServices, openServices } from "../lib/services.ts";
import { replaceDimension } from "../lib/store/dims.ts";
import { jobs } from "../workers/jobs.ts";
import { percentile } from "./proc.ts";
import { benchDatabase, drained } from "./services.ts";

const N = Number(process.env.BENCH_EVENTS ?? 200_000);
/** Share of telemetry events that raise an alert (half the events are telemetry). */
const ALERT_SHARE = Number(process.env.BENCH_ALERT_SHARE ?? 0.05);
if (!(ALERT_SHARE > 0 && ALERT_SHARE <= 1)) throw new Error("BENCH_ALERT_SHARE: a share in (0, 1]");
const ALERT_EVERY = Math.round(1 / ALERT_SHARE);
const bench = await benchDatabase("bench");
const { name: database, env: serviceEnv } = bench;
const services = await openServices(
  loadConfig({ ...serviceEnv, DATABASE_URL: bench.url, DATA_DIR: `/tmp/${database}`, TOPIC_PREFIX: `${database}.`, LOG_LEVEL: "warn" }),
  createLogger({ bench: "pipeline" }, () => undefined),
);
const { sql } = services.db;
await replaceDimension(sql, "car_models", [{ model_id: 1, car_brand: "Volvo", car_model: "V60" }]);
await replaceDimension(sql, "car_colors", ["Black", "White", "Silver", "Red"].map((color_name, i) => ({ color_id: i + 1, color_name })));
await replaceDimension(sql, "cars", Array.from({ length: 1_000 }, (_, i) => ({ car_id: i, driver_id: 5_000 + i, model_id: 1, color_id: 1 + (i % 4) })));

let sequence = 0;
function envelope(now: number): Envelope {
  const i = sequence++;
  if (i % 2 === 0) {
    // Every ALERT_EVERY-th telemetry event breaks a rule (speeding, and its gear is off); the rest break none.
    const alerting = (i / 2) % ALERT_EVERY === 0;
    const speed = alerting ? 130 + (i % 60) : 30 + (i % 90);
    const gear = alerting ? 1 : Math.round(speed / 30);
    return { type: "vehicle.telemetry", key: String(i % 1_000), event_id: `b${i}`, event_time: now, ingest_time: now, payload: { car_id: i % 1_000, speed, rpm: 1_000 + ((i * 131) % 5_000), gear } };
  }
  return { type: "sensor.reading", key: `s${i % 2_000}`, event_id: `b${i}`, event_time: now, ingest_time: now, payload: { sensor_id: `s${i % 2_000}`, temperature: (i % 600) / 10, humidity: (i % 1_000) / 10 } };
}
const record = (e: Envelope): OutgoingRecord => ({ key: e.key, value: encodeEnvelope(e), timestamp: e.event_time });

const rss = () => Math.round(process.memoryUsage().rss / 2 ** 20);

// 1. A backlog in events.raw, then enrich + alerts drain it.
const now = Date.now();
for (let i = 0; i < N; i += 5_000) await services.bus.produce(services.topics.raw, Array.from({ length: Math.min(5_000, N - i) }, () => record(envelope(now))));
const cpu0 = process.cpuUsage();
const t0 = performance.now();
const enrichStop = await jobs.enrich?.start(services, { commitIntervalMs: 250 });
const alertsStop = await jobs.alerts?.start(services, { commitIntervalMs: 250 });
const tEnrich = await drained(sql, "enrich", services.topics.raw, N, t0);
const tAlerts = await drained(sql, "alerts", services.topics.enriched, N, t0);
const cpu1 = process.cpuUsage(cpu0);
console.log(JSON.stringify({ bench: "pipeline", phase: "enrich+alerts", events: N, alert_share: ALERT_SHARE, seconds: Math.round(tAlerts * 100) / 100, events_per_s: Math.round(N / tAlerts), enrich_events_per_s: Math.round(N / tEnrich), cpu_seconds: Math.round((cpu1.user + cpu1.system) / 1e4) / 100, rss_mb: rss() }));

// 2. The windows job drains the enriched backlog.
const cpu2 = process.cpuUsage();
const t2 = performance.now();
const windowsStop = await jobs.windows?.start(services, { commitIntervalMs: 250 });
const tWindows = await drained(sql, "windows", services.topics.enriched, N, t2);
const cpu3 = process.cpuUsage(cpu2);
const [rows] = await sql<{ n: number }[]>`select count(*)::int as n from aggregates`;
console.log(JSON.stringify({ bench: "pipeline", phase: "windows", events: N, seconds: Math.round(tWindows * 100) / 100, events_per_s: Math.round(N / tWindows), commit_interval_ms: 250, aggregate_rows: rows?.n, cpu_seconds: Math.round((cpu3.user + cpu3.system) / 1e4) / 100, rss_mb: rss() }));

// 3. Steady 10,000 events/s for 10 s with every job running: ingest_time → alert committed. The alert
// path crosses two checkpoints (enrich produces at its checkpoint, alerts commits at its own), so for
// latency they run with a short commit interval (BENCH_LATENCY_COMMIT_MS, 25 ms).
await Promise.all([enrichStop?.(), alertsStop?.()]);
const LATENCY_COMMIT_MS = Number(process.env.BENCH_LATENCY_COMMIT_MS ?? 25);
const latencyEnrichStop = await jobs.enrich?.start(services, { commitIntervalMs: LATENCY_COMMIT_MS });
const latencyAlertsStop = await jobs.alerts?.start(services, { commitIntervalMs: LATENCY_COMMIT_MS });
const RATE = 10_000;
const sent = new Map<string, number>();
const start = performance.now();
for (let tick = 0; tick < 100; tick++) {
  const due = start + tick * 100;
  const wait = due - performance.now();
  if (wait > 0) await Bun.sleep(wait);
  const batch = Array.from({ length: RATE / 10 }, () => envelope(Date.now()));
  for (const e of batch) if (e.type === "vehicle.telemetry") sent.set(e.event_id, e.ingest_time);
  await services.bus.produce(services.topics.raw, batch.map(record));
}
const ids = [...sent.keys()];
await Bun.sleep(3_000);
const alerts = await sql<{ event_id: string; at: number }[]>`select event_id, (extract(epoch from created_at) * 1000)::float8 as at from alerts where event_id = any(${ids})`;
const latencies = alerts.map((a) => a.at - (sent.get(a.event_id) ?? a.at)).sort((a, b) => a - b);
console.log(JSON.stringify({ bench: "pipeline", phase: "alert_latency", rate_per_s: RATE, alert_share: ALERT_SHARE, commit_interval_ms: LATENCY_COMMIT_MS, alerts: latencies.length, p50_ms: percentile(latencies, 0.5), p99_ms: percentile(latencies, 0.99), max_ms: percentile(latencies, 1), rss_mb: rss() }));

await Promise.all([latencyEnrichStop?.(), latencyAlertsStop?.(), windowsStop?.()]);
await closeServices(services);
await bench.drop();
