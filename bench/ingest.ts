/**
 * Ingest throughput and latency: the gateway runs as its own process in services mode on the real
 * Kafka broker; this process drives it over keep-alive HTTP. Prints JSON lines:
 *   phase "peak"       closed loop, `concurrency` requests in flight: accepted events/s, requests/s
 *   phase "half_peak"  open loop at half the peak request rate: p50/p99 latency
 * with the gateway's RSS and the CPU each process used (gateway, Kafka, this driver) to show the bound.
 *   bash scripts/services.sh up && bun run bench/ingest.ts
 */
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { cpuSeconds, memoryMb, percentile } from "./proc.ts";
import { serviceEnv } from "./services.ts";

const DURATION_MS = Number(process.env.BENCH_DURATION_MS ?? 5_000);
const KEY = "bench-ingest-key";

function kafkaPid(): number | undefined {
  const file = join(process.env.DEVPIPE_SERVICES_DIR ?? "/tmp/devpipe-services", "kafka/pid");
  return existsSync(file) ? Number(readFileSync(file, "utf8")) : undefined;
}

const port = 3000 + Math.floor(Math.random() * 20_000);
const gateway = Bun.spawn(["bun", "api/main.ts"], {
  cwd: join(import.meta.dir, ".."),
  env: { ...process.env, ...serviceEnv(), PORT: String(port), DATA_DIR: `/tmp/devpipe-bench-${port}`, API_KEYS: `${KEY}:ingest`, LOG_LEVEL: "warn", LAKE_URL: `file:///tmp/devpipe-bench-${port}/lake` },
  stdout: "ignore",
  stderr: "inherit",
});
const url = `http://127.0.0.1:${port}/v1/events`;
for (let i = 0; ; i++) {
  if ((await fetch(`http://127.0.0.1:${port}/readyz`).catch(() => undefined))?.ok) break;
  if (i > 300) throw new Error("gateway did not become ready");
  await Bun.sleep(100);
}

function body(batch: number): string {
  const time = new Date().toISOString();
  const events = Array.from({ length: batch }, (_, i) => ({ type: "vehicle.telemetry", car_id: i % 500, speed: 80 + (i % 90), rpm: 2500 + (i % 4000), gear: 1 + (i % 7), event_time: time }));
  return JSON.stringify(batch === 1 ? events[0] : events);
}

const headers = { "content-type": "application/json", authorization: `Bearer ${KEY}` };

async function post(payload: string): Promise<{ ms: number; accepted: number }> {
  const started = performance.now();
  const response = await fetch(url, { method: "POST", body: payload, headers });
  const result = (await response.json()) as { accepted?: number };
  if (response.status !== 202) throw new Error(`gateway answered ${response.status}: ${JSON.stringify(result)}`);
  return { ms: performance.now() - started, accepted: result.accepted ?? 0 };
}

function cpuSnapshot() {
  const kafka = kafkaPid();
  return { gateway: cpuSeconds(gateway.pid), kafka: kafka ? cpuSeconds(kafka) : 0, driver: cpuSeconds(process.pid) };
}

async function phase(batch: number, run: (payload: string, record: (r: { ms: number; accepted: number }) => void, deadline: number) => Promise<void>) {
  const payload = body(batch);
  const latencies: number[] = [];
  let accepted = 0;
  const cpuBefore = cpuSnapshot();
  const started = performance.now();
  await run(payload, (r) => {
    latencies.push(r.ms);
    accepted += r.accepted;
  }, started + DURATION_MS);
  const seconds = (performance.now() - started) / 1000;
  const cpuAfter = cpuSnapshot();
  latencies.sort((a, b) => a - b);
  const cpu = (name: keyof typeof cpuBefore) => Math.round(((cpuAfter[name] - cpuBefore[name]) / seconds) * 100);
  return {
    batch,
    requests_per_s: Math.round(latencies.length / seconds),
    events_per_s: Math.round(accepted / seconds),
    p50_ms: percentile(latencies, 0.5),
    p99_ms: percentile(latencies, 0.99),
    cpu_percent: { gateway: cpu("gateway"), kafka: cpu("kafka"), driver: cpu("driver") },
    gateway: memoryMb(gateway.pid),
  };
}

const closedLoop = (concurrency: number) => async (payload: string, record: (r: { ms: number; accepted: number }) => void, deadline: number) => {
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (performance.now() < deadline) record(await post(payload));
  }));
};

const openLoop = (requestsPerSecond: number) => async (payload: string, record: (r: { ms: number; accepted: number }) => void, deadline: number) => {
  const inFlight = new Set<Promise<void>>();
  const interval = 1000 / requestsPerSecond;
  const start = performance.now();
  for (let k = 0; ; k++) {
    const due = start + k * interval;
    if (due >= deadline) break;
    const wait = due - performance.now();
    if (wait > 1) await Bun.sleep(wait);
    const request: Promise<void> = post(payload).then(record).finally(() => inFlight.delete(request));
    inFlight.add(request);
  }
  await Promise.all(inFlight);
};

try {
  for (const [batch, concurrency] of [[1, 64], [100, 32], [1000, 16]] as const) {
    await phase(batch, closedLoop(concurrency)); // warm-up: JIT, connections, producer
    const peak = await phase(batch, closedLoop(concurrency));
    console.log(JSON.stringify({ bench: "ingest", phase: "peak", concurrency, ...peak }));
    const half = await phase(batch, openLoop(Math.max(1, peak.requests_per_s / 2)));
    console.log(JSON.stringify({ bench: "ingest", phase: "half_peak", target_requests_per_s: Math.round(peak.requests_per_s / 2), ...half }));
  }
} finally {
  gateway.kill("SIGTERM");
  await gateway.exited;
}
