/**
 * Ingest throughput and latency: the gateway runs as its own process in services mode on the real
 * Kafka broker; this process drives it over keep-alive HTTP. Prints JSON lines:
 *   phase "peak"       closed loop, `concurrency` requests in flight: accepted events/s, requests/s
 *   phase "half_peak"  open loop at half the peak request rate: p50/p99 latency
 * for batches of 1, 100 and 1,000 events per request, with the gateway's RSS and the CPU each process used
 * (gateway, Kafka, this driver) to show the bound. Then:
 *   phase "single_event_clients_peak" / "single_event_clients_half_peak"  one event per request from separate
 *       load-generator processes (2 bun processes, 32 keep-alive connections each: 64 in all), closed loop and
 *       open loop at half its rate: requests/s, p50/p99 and the gateway's CPU per request (CPU µs of the
 *       gateway process / requests), so that the driver's own CPU does not share the gateway's process
 *   phase "peer_bare_bun_serve"  the same clients against a bare Bun.serve (reads and parses the body, answers
 *       202) in its own process: this box's HTTP ceiling for them, and our single-event rate over it
 *   phase "peer_java_producer"  Kafka's own Java producer (org.apache.kafka.tools.ProducerPerformance from
 *       kafka-tools, acks=all, idempotent) writing records of our envelope's size into a fresh topic with as
 *       many partitions as events.raw: records/s
 *   phase "peer_ratio"  our batch-1000 events/s over the Java producer's records/s
 *   bash scripts/services.sh up && bun run bench/ingest.ts
 * BENCH_DURATION_MS (5000) per measured phase; BENCH_JAVA_RECORDS (2000000) for the Java producer.
 */
import { existsSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { Kafka, logLevel } from "kafkajs";
import { defaultEventTimePolicy, encodeEnvelope, eventTypes, validateRecord } from "../lib/events/index.ts";
import { topicNames } from "../lib/topics.ts";
import { cpuSeconds, memoryMb, percentile } from "./proc.ts";
import { benchDatabase, kafkaInstall, serviceEnv } from "./services.ts";

const DURATION_MS = Number(process.env.BENCH_DURATION_MS ?? 5_000);
const JAVA_RECORDS = Number(process.env.BENCH_JAVA_RECORDS ?? 2_000_000);
const KEY = "bench-ingest-key";
/** The load-generator processes of the single-event phases, and the connections (requests in flight) of each. */
const CLIENT_PROCESSES = 2;
const CONNECTIONS_PER_CLIENT = 32;

function body(batch: number): string {
  const time = new Date().toISOString();
  const events = Array.from({ length: batch }, (_, i) => ({ type: "vehicle.telemetry", car_id: i % 500, speed: 80 + (i % 90), rpm: 2500 + (i % 4000), gear: 1 + (i % 7), event_time: time }));
  return JSON.stringify(batch === 1 ? events[0] : events);
}

const headers = { "content-type": "application/json", authorization: `Bearer ${KEY}` };

async function post(url: string, payload: string): Promise<{ ms: number; accepted: number }> {
  const started = performance.now();
  const response = await fetch(url, { method: "POST", body: payload, headers });
  const result = (await response.json()) as { accepted?: number };
  if (response.status !== 202) throw new Error(`gateway answered ${response.status}: ${JSON.stringify(result)}`);
  return { ms: performance.now() - started, accepted: result.accepted ?? 0 };
}

type Record_ = (r: { ms: number; accepted: number }) => void;
type Loop = (url: string, payload: string, record: Record_, deadline: number) => Promise<void>;

const closedLoop = (concurrency: number): Loop => async (url, payload, record, deadline) => {
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (performance.now() < deadline) record(await post(url, payload));
  }));
};

const openLoop = (requestsPerSecond: number): Loop => async (url, payload, record, deadline) => {
  const inFlight = new Set<Promise<void>>();
  const interval = 1000 / requestsPerSecond;
  const start = performance.now();
  for (let k = 0; ; k++) {
    const due = start + k * interval;
    if (due >= deadline) break;
    const wait = due - performance.now();
    if (wait > 1) await Bun.sleep(wait);
    const request: Promise<void> = post(url, payload).then(record).finally(() => inFlight.delete(request));
    inFlight.add(request);
  }
  await Promise.all(inFlight);
};

// ------------------------------------------------------------------ load-generator process (single-event phases)
/**
 * `bun bench/ingest.ts --client <url> <startAtEpochMs> <durationMs> <closed|requestsPerSecond>`: waits until
 * startAt, drives the gateway for durationMs with one event per request, prints one JSON line (latencies, CPU).
 */
async function client(args: string[]) {
  const [url = "", startAt = "0", duration = "0", mode = "closed"] = args;
  const payload = body(1);
  // A few requests first: connections open and the JIT warms before the clock starts.
  await Promise.all(Array.from({ length: CONNECTIONS_PER_CLIENT }, () => post(url, payload)));
  const latencies: number[] = [];
  const wait = Number(startAt) - Date.now();
  if (wait > 0) await Bun.sleep(wait);
  const cpuBefore = process.cpuUsage();
  const started = performance.now();
  const loop = mode === "closed" ? closedLoop(CONNECTIONS_PER_CLIENT) : openLoop(Number(mode));
  await loop(url, payload, (r) => latencies.push(r.ms), started + Number(duration));
  const cpu = process.cpuUsage(cpuBefore);
  console.log(JSON.stringify({ seconds: (performance.now() - started) / 1000, cpu_s: (cpu.user + cpu.system) / 1e6, latencies }));
}

// ------------------------------------------------------------------ the benchmark
async function main() {
  const env = serviceEnv();
  // A database of its own: the gateway migrates it at start, whatever state the shared one is in.
  const db = await benchDatabase("bench_ingest");
  try {
    await run(env, db.url);
  } finally {
    await db.drop();
  }
  await embedded();
}

/** The gateway in embedded mode (its own file-backed bus, PGlite): batches of 1,000 from 16 clients. */
async function embedded() {
  const port = 3000 + Math.floor(Math.random() * 20_000);
  const dir = `/tmp/devpipe-bench-embedded-${port}`;
  const { KAFKA_BROKERS: _k, DATABASE_URL: _d, LAKE_URL: _l, S3_ENDPOINT: _s, ...rest } = process.env;
  const gateway = Bun.spawn(["bun", "api/main.ts"], {
    cwd: join(import.meta.dir, ".."),
    env: { ...rest, PORT: String(port), DATA_DIR: dir, API_KEYS: `${KEY}:ingest`, LOG_LEVEL: "warn" },
    stdout: "ignore",
    stderr: "inherit",
  });
  try {
    for (let i = 0; ; i++) {
      if ((await fetch(`http://127.0.0.1:${port}/readyz`).catch(() => undefined))?.ok) break;
      if (i > 300) throw new Error("embedded gateway did not become ready");
      await Bun.sleep(100);
    }
    const url = `http://127.0.0.1:${port}/v1/events`;
    const payload = body(1000);
    const measure = async () => {
      let accepted = 0;
      const latencies: number[] = [];
      const cpuBefore = cpuSeconds(gateway.pid);
      const started = performance.now();
      await closedLoop(16)(url, payload, (r) => {
        latencies.push(r.ms);
        accepted += r.accepted;
      }, started + DURATION_MS);
      const seconds = (performance.now() - started) / 1000;
      latencies.sort((a, b) => a - b);
      return { events_per_s: Math.round(accepted / seconds), p50_ms: percentile(latencies, 0.5), p99_ms: percentile(latencies, 0.99), cpu_percent: { gateway: Math.round(((cpuSeconds(gateway.pid) - cpuBefore) / seconds) * 100) }, gateway: memoryMb(gateway.pid) };
    };
    await measure(); // warm-up
    console.log(JSON.stringify({ bench: "ingest", phase: "embedded_peak", batch: 1000, concurrency: 16, ...(await measure()) }));
  } finally {
    gateway.kill("SIGTERM");
    await gateway.exited;
    rmSync(dir, { recursive: true, force: true });
  }
}

async function run(env: Record<string, string>, databaseUrl: string) {
  const kafka = kafkaInstall();
  const pidFile = join(process.env.DEVPIPE_SERVICES_DIR ?? "/tmp/devpipe-services", "kafka/pid");
  const kafkaPid = existsSync(pidFile) ? Number(readFileSync(pidFile, "utf8")) : undefined;
  const kafkaCpu = () => (kafkaPid ? cpuSeconds(kafkaPid) : 0);

  const port = 3000 + Math.floor(Math.random() * 20_000);
  const gateway = Bun.spawn(["bun", "api/main.ts"], {
    cwd: join(import.meta.dir, ".."),
    env: { ...process.env, ...env, DATABASE_URL: databaseUrl, PORT: String(port), DATA_DIR: `/tmp/devpipe-bench-${port}`, API_KEYS: `${KEY}:ingest`, LOG_LEVEL: "warn", LAKE_URL: `file:///tmp/devpipe-bench-${port}/lake` },
    stdout: "ignore",
    stderr: "inherit",
  });
  const url = `http://127.0.0.1:${port}/v1/events`;
  for (let i = 0; ; i++) {
    if ((await fetch(`http://127.0.0.1:${port}/readyz`).catch(() => undefined))?.ok) break;
    if (i > 300) throw new Error("gateway did not become ready");
    await Bun.sleep(100);
  }

  const cpuSnapshot = () => ({ gateway: cpuSeconds(gateway.pid), kafka: kafkaCpu(), driver: cpuSeconds(process.pid) });

  async function phase(batch: number, run: Loop) {
    const payload = body(batch);
    const latencies: number[] = [];
    let accepted = 0;
    const cpuBefore = cpuSnapshot();
    const started = performance.now();
    await run(url, payload, (r) => {
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

  /** One event per request from CLIENT_PROCESSES bun processes; `rate` undefined: closed loop, else requests/s in all. */
  async function clientsPhase(rate: number | undefined, durationMs: number, target: { url: string; pid: number } = { url, pid: gateway.pid }) {
    const startAt = Date.now() + 1_500;
    const mode = rate === undefined ? "closed" : String(rate / CLIENT_PROCESSES);
    const procs = Array.from({ length: CLIENT_PROCESSES }, () =>
      Bun.spawn(["bun", import.meta.path, "--client", target.url, String(startAt), String(durationMs), mode], { stdout: "pipe", stderr: "inherit" }),
    );
    await Bun.sleep(Math.max(0, startAt - Date.now()));
    const before = { gateway: cpuSeconds(target.pid), kafka: kafkaCpu() };
    const started = performance.now();
    const outputs = await Promise.all(procs.map(async (p) => {
      const text = await new Response(p.stdout).text();
      if ((await p.exited) !== 0) throw new Error(`load generator exited with ${p.exitCode}`);
      return JSON.parse(text.trim().split("\n").at(-1) ?? "{}") as { seconds: number; cpu_s: number; latencies: number[] };
    }));
    const seconds = (performance.now() - started) / 1000;
    const after = { gateway: cpuSeconds(target.pid), kafka: kafkaCpu() };
    const latencies = outputs.flatMap((o) => o.latencies).sort((a, b) => a - b);
    const clientSeconds = Math.max(...outputs.map((o) => o.seconds));
    const gatewayCpu = after.gateway - before.gateway;
    return {
      clients: CLIENT_PROCESSES,
      connections: CLIENT_PROCESSES * CONNECTIONS_PER_CLIENT,
      requests_per_s: Math.round(latencies.length / clientSeconds),
      p50_ms: percentile(latencies, 0.5),
      p99_ms: percentile(latencies, 0.99),
      gateway_cpu_us_per_request: Math.round((gatewayCpu / latencies.length) * 1e6),
      cpu_percent: {
        gateway: Math.round((gatewayCpu / seconds) * 100),
        kafka: Math.round(((after.kafka - before.kafka) / seconds) * 100),
        clients: Math.round((outputs.reduce((s, o) => s + o.cpu_s, 0) / clientSeconds) * 100),
      },
      gateway: memoryMb(target.pid),
    };
  }

  let batch1000 = 0;
  try {
    for (const [batch, concurrency] of [[1, 64], [100, 32], [1000, 16]] as const) {
      await phase(batch, closedLoop(concurrency)); // warm-up: JIT, connections, producer
      const peak = await phase(batch, closedLoop(concurrency));
      console.log(JSON.stringify({ bench: "ingest", phase: "peak", concurrency, ...peak }));
      const half = await phase(batch, openLoop(Math.max(1, peak.requests_per_s / 2)));
      console.log(JSON.stringify({ bench: "ingest", phase: "half_peak", target_requests_per_s: Math.round(peak.requests_per_s / 2), ...half }));
      if (batch === 1000) batch1000 = peak.events_per_s;
    }

    await clientsPhase(undefined, Math.min(3_000, DURATION_MS)); // warm-up
    const clientsPeak = await clientsPhase(undefined, DURATION_MS);
    console.log(JSON.stringify({ bench: "ingest", phase: "single_event_clients_peak", ...clientsPeak }));
    const halfRate = Math.max(2, Math.round(clientsPeak.requests_per_s / 2));
    const clientsHalf = await clientsPhase(halfRate, DURATION_MS);
    console.log(JSON.stringify({ bench: "ingest", phase: "single_event_clients_half_peak", target_requests_per_s: halfRate, ...clientsHalf }));

    // The HTTP ceiling of this box for the same clients: a bare Bun.serve that reads and parses the body
    // and answers 202, in its own process like the gateway.
    const barePort = port + 1;
    const bare = Bun.spawn(["bun", import.meta.path, "--bare-server", String(barePort)], { stdout: "ignore", stderr: "inherit" });
    try {
      const bareUrl = `http://127.0.0.1:${barePort}/v1/events`;
      for (let i = 0; !(await fetch(bareUrl, { method: "POST", body: "{}" }).catch(() => undefined))?.ok; i++) {
        if (i > 100) throw new Error("bare Bun.serve did not start");
        await Bun.sleep(50);
      }
      await clientsPhase(undefined, Math.min(3_000, DURATION_MS), { url: bareUrl, pid: bare.pid }); // warm-up
      const barePeak = await clientsPhase(undefined, DURATION_MS, { url: bareUrl, pid: bare.pid });
      console.log(JSON.stringify({ bench: "ingest", phase: "peer_bare_bun_serve", ...barePeak, gateway_over_bare: Math.round((clientsPeak.requests_per_s / barePeak.requests_per_s) * 1000) / 1000 }));
    } finally {
      bare.kill("SIGTERM");
      await bare.exited;
    }
  } finally {
    gateway.kill("SIGTERM");
    await gateway.exited;
    rmSync(`/tmp/devpipe-bench-${port}`, { recursive: true, force: true });
  }

  // ---------------------------------------------------------------- Kafka's own Java producer as the peer
  if (!kafka) {
    console.log(JSON.stringify({ bench: "ingest", phase: "peer_java_producer", skipped: "no broker started by scripts/services.sh (its libs dir holds ProducerPerformance)" }));
    return;
  }
  const recordSize = envelopeBytes();
  const brokers = (env.KAFKA_BROKERS ?? "").split(",");
  const admin = new Kafka({ clientId: "bench-ingest", brokers, logLevel: logLevel.NOTHING }).admin();
  await admin.connect();
  const raw = topicNames(process.env.TOPIC_PREFIX ?? "").raw;
  const [rawMeta] = (await admin.fetchTopicMetadata({ topics: [raw] })).topics;
  const partitions = rawMeta?.partitions.length ?? Number(process.env.BUS_PARTITIONS ?? 4);
  const topic = `bench.java-producer.${Date.now().toString(36)}`;
  await admin.createTopics({ waitForLeaders: true, topics: [{ topic, numPartitions: partitions, replicationFactor: 1 }] });
  try {
    const kafkaBefore = kafkaCpu();
    const started = performance.now();
    const java = Bun.spawn([
      "java", "-Xms256m", "-Xmx512m", "-cp", `${kafka.libs}/*`, "org.apache.kafka.tools.ProducerPerformance",
      "--topic", topic, "--num-records", String(JAVA_RECORDS), "--record-size", String(recordSize), "--throughput", "-1",
      "--producer-props", `bootstrap.servers=${brokers.join(",")}`, "acks=all", "enable.idempotence=true",
    ], { stdout: "pipe", stderr: "pipe" });
    const [out, err] = await Promise.all([new Response(java.stdout).text(), new Response(java.stderr).text()]);
    if ((await java.exited) !== 0) throw new Error(`ProducerPerformance exited with ${java.exitCode}: ${err.slice(-2_000)}`);
    const seconds = (performance.now() - started) / 1000;
    const javaCpu = java.resourceUsage();
    // The summary line: "N records sent, R records/sec (M MB/sec), A ms avg latency, X ms max latency, p50 ms 50th, p95 ms 95th, p99 ms 99th, p999 ms 99.9th."
    const summary = out.split("\n").findLast((line) => line.includes(" 50th")) ?? out.slice(-500);
    const m = /([\d.]+) records sent, ([\d.]+) records\/sec \(([\d.]+) MB\/sec\), ([\d.]+) ms avg latency, ([\d.]+) ms max latency, (\d+) ms 50th, (\d+) ms 95th, (\d+) ms 99th/.exec(summary);
    if (!m) throw new Error(`unexpected ProducerPerformance output: ${summary}`);
    const javaPerS = Math.round(Number(m[2]));
    const cpuS = javaCpu ? (Number(javaCpu.cpuTime.user) + Number(javaCpu.cpuTime.system)) / 1e6 : undefined;
    console.log(JSON.stringify({
      bench: "ingest",
      phase: "peer_java_producer",
      tool: "org.apache.kafka.tools.ProducerPerformance",
      kafka_version: kafka.version,
      records: Number(m[1]),
      record_size: recordSize,
      partitions,
      producer: { acks: "all", "enable.idempotence": true, other: "client defaults (batch.size 16384, linger.ms 5)" },
      records_per_s: javaPerS,
      mb_per_s: Number(m[3]),
      avg_latency_ms: Number(m[4]),
      max_latency_ms: Number(m[5]),
      p50_ms: Number(m[6]),
      p95_ms: Number(m[7]),
      p99_ms: Number(m[8]),
      cpu_percent: { java: cpuS === undefined ? undefined : Math.round((cpuS / seconds) * 100), kafka: Math.round(((kafkaCpu() - kafkaBefore) / seconds) * 100) },
      wall_s: Math.round(seconds * 10) / 10,
    }));
    console.log(JSON.stringify({
      bench: "ingest",
      phase: "peer_ratio",
      ours_batch1000_events_per_s: batch1000,
      java_producer_records_per_s: javaPerS,
      ratio: Math.round((batch1000 / javaPerS) * 1000) / 1000,
      note: "ours: HTTP JSON batches of 1,000 through the gateway (validation, envelope, kafkajs); Java: records of the envelope's size straight from the producer, no keys",
    }));
  } finally {
    await admin.deleteTopics({ topics: [topic] }).catch(() => undefined);
    await admin.disconnect();
  }
}

/** Mean bytes of the value our gateway produces for the batch-1000 phase's events (the JSON envelope). */
function envelopeBytes(): number {
  const events = JSON.parse(body(1000)) as unknown[];
  const now = Date.now();
  let total = 0;
  for (const event of events) {
    const result = validateRecord(event, { types: eventTypes, now, policy: defaultEventTimePolicy, newEventId: Bun.randomUUIDv7 });
    if (!result.ok) throw new Error(`bench event rejected: ${JSON.stringify(result.errors)}`);
    total += encodeEnvelope(result.envelope).byteLength;
  }
  return Math.round(total / events.length);
}

/** `bun bench/ingest.ts --bare-server <port>`: the peer of the single-event phases (reads and parses the body, answers 202). */
function bareServer(port: number) {
  Bun.serve({
    port,
    hostname: "127.0.0.1",
    async fetch(request) {
      const event = JSON.parse(await request.text()) as unknown;
      return Response.json({ accepted: event === null ? 0 : 1, rejected: 0, event_ids: [Bun.randomUUIDv7()], errors: [] }, { status: 202 });
    },
  });
}

const clientAt = process.argv.indexOf("--client");
const bareAt = process.argv.indexOf("--bare-server");
if (clientAt >= 0) await client(process.argv.slice(clientAt + 1));
else if (bareAt >= 0) bareServer(Number(process.argv[bareAt + 1]));
else await main();
