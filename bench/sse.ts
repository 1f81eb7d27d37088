/**
 * Alert fan-out over SSE: the gateway runs as its own process (services mode, real Postgres and Kafka);
 * CLIENTS streams subscribe to GET /v1/alerts/stream; alerts are committed to Postgres at RATE per
 * second as the alerts job commits them (batches every 10 ms), for SECONDS. Prints JSON lines:
 *   fanout  p50/p99/max ms from an alert's commit to its receipt (measured on SAMPLED clients), alerts
 *           delivered to every client, gateway RSS and CPU
 *   BENCH_SSE_CLIENTS (1000), BENCH_SSE_RATE (1000), BENCH_SSE_SECONDS (10)
 */
import { join } from "node:path";
import postgres from "postgres";
import { alertIdFor } from "../lib/alerts.ts";
import { cpuSeconds, memoryMb, percentile } from "./proc.ts";
import { benchDatabase } from "./services.ts";

// Bun's fetch keeps at most 256 connections open unless told otherwise, and every stream holds one.
if (!process.env.BUN_CONFIG_MAX_HTTP_REQUESTS) {
  const child = Bun.spawn([process.execPath, import.meta.path], { env: { ...process.env, BUN_CONFIG_MAX_HTTP_REQUESTS: "65535" }, stdout: "inherit", stderr: "inherit" });
  process.exit(await child.exited);
}

const CLIENTS = Number(process.env.BENCH_SSE_CLIENTS ?? 1_000);
const RATE = Number(process.env.BENCH_SSE_RATE ?? 1_000);
const SECONDS = Number(process.env.BENCH_SSE_SECONDS ?? 10);
const SAMPLED = Math.min(CLIENTS, 100);
const KEY = "bench-sse-key";

const bench = await benchDatabase("bench_sse");
const { name: database, env: serviceEnv } = bench;

const port = 3000 + Math.floor(Math.random() * 20_000);
const gateway = Bun.spawn(["bun", "api/main.ts"], {
  cwd: join(import.meta.dir, ".."),
  env: { ...process.env, ...serviceEnv, DATABASE_URL: bench.url, TOPIC_PREFIX: `${database}.`, PORT: String(port), DATA_DIR: `/tmp/${database}`, API_KEYS: `${KEY}:query`, SSE_MAX_STREAMS_PER_KEY: String(CLIENTS), LOG_LEVEL: "warn", LAKE_URL: `file:///tmp/${database}/lake` },
  stdout: "ignore",
  stderr: "inherit",
});
const base = `http://127.0.0.1:${port}`;
for (let i = 0; ; i++) {
  if ((await fetch(`${base}/readyz`).catch(() => undefined))?.ok) break;
  if (i > 300) throw new Error("gateway did not become ready");
  await Bun.sleep(100);
}
const sql = postgres(bench.url, { max: 2, onnotice: () => undefined });

// Each alert's event_id carries its commit time: "<ms>-<n>".
const latencies: number[] = [];
let delivered = 0;
const marker = '"event_id":"';
async function subscribe(measure: boolean) {
  const response = await fetch(`${base}/v1/alerts/stream`, { headers: { authorization: `Bearer ${KEY}` } });
  if (!response.ok || !response.body) throw new Error(`stream: ${response.status}`);
  const decoder = new TextDecoder();
  void (async () => {
    let rest = "";
    for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) {
      const text = rest + decoder.decode(chunk, { stream: true });
      const now = Date.now();
      let at = text.indexOf(marker);
      let consumed = 0;
      while (at >= 0) {
        const end = text.indexOf('"', at + marker.length);
        if (end < 0) break;
        delivered++;
        if (measure) latencies.push(now - Number(text.slice(at + marker.length, text.indexOf("-", at + marker.length))));
        consumed = end;
        at = text.indexOf(marker, end);
      }
      rest = text.slice(consumed).slice(-200);
    }
  })();
}
for (let i = 0; i < CLIENTS; i += 50) await Promise.all(Array.from({ length: Math.min(50, CLIENTS - i) }, (_, k) => subscribe(i + k < SAMPLED)));
await Bun.sleep(500);

const cpu0 = { gateway: cpuSeconds(gateway.pid), driver: cpuSeconds(process.pid) };
const started = performance.now();
let sent = 0;
const perTick = Math.max(1, Math.round(RATE / 100));
for (let tick = 0; tick < SECONDS * 100; tick++) {
  const due = started + tick * 10;
  const wait = due - performance.now();
  if (wait > 0) await Bun.sleep(wait);
  const ids = Array.from({ length: perTick }, (_, k) => `${Date.now()}-${tick * perTick + k}`);
  await sql.begin(async (tx) => {
    await tx`select pg_advisory_xact_lock(hashtext('devpipe:alerts'))`;
    await tx`insert into alerts (alert_id, event_id, type, key, event_time, rules, event)
             select alert_id::uuid, event_id, 'vehicle.telemetry', '42', now(), array['speeding'], '{"car_id":42,"speed":150,"rpm":3000,"gear":5,"color_name":"Black","expected_gear":5}'::jsonb
             from unnest(${ids.map(alertIdFor)}::text[], ${ids}::text[]) as a(alert_id, event_id)`;
  });
  sent += perTick;
}
await Bun.sleep(2_000);
const seconds = (performance.now() - started) / 1000;
latencies.sort((a, b) => a - b);
console.log(JSON.stringify({
  bench: "sse",
  phase: "fanout",
  clients: CLIENTS,
  alerts_per_s: Math.round(sent / SECONDS),
  alerts_sent: sent,
  deliveries: delivered,
  deliveries_expected: sent * CLIENTS,
  p50_ms: percentile(latencies, 0.5),
  p99_ms: percentile(latencies, 0.99),
  max_ms: percentile(latencies, 1),
  gateway: { ...memoryMb(gateway.pid), cpu_s: Math.round((cpuSeconds(gateway.pid) - cpu0.gateway) * 100) / 100 },
  driver_cpu_s: Math.round((cpuSeconds(process.pid) - cpu0.driver) * 100) / 100,
  seconds: Math.round(seconds * 10) / 10,
}));

gateway.kill("SIGTERM");
await gateway.exited;
await sql.end();
await bench.drop();
process.exit(0);
