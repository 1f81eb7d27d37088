/**
 * What bench/pipeline.ts and bench/peer.ts share: the benchmark's events, a pipeline of its own (a fresh
 * database and topic prefix on the real services, or an embedded data dir), a backlog in events.raw, and
 * the operator chain draining it.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { OutgoingRecord } from "../lib/bus/types.ts";
import { loadConfig } from "../lib/config.ts";
import { encodeEnvelope, type Envelope } from "../lib/events/index.ts";
import { createLogger } from "../lib/log.ts";
import { closeServices, openServices, type Services } from "../lib/services.ts";
import { replaceDimension } from "../lib/store/dims.ts";
import type { RunnerOptions } from "../workers/runner.ts";
import { startChain } from "../workers/jobs.ts";
import { benchDatabase, drained } from "./services.ts";

/** Share of telemetry events that raise an alert (half the events are telemetry). */
export const ALERT_SHARE = Number(process.env.BENCH_ALERT_SHARE ?? 0.05);
if (!(ALERT_SHARE > 0 && ALERT_SHARE <= 1)) throw new Error("BENCH_ALERT_SHARE: a share in (0, 1]");
const ALERT_EVERY = Math.round(1 / ALERT_SHARE);
export const CARS = 1_000;

export const benchDims = {
  car_models: [{ model_id: 1, car_brand: "Volvo", car_model: "V60" }],
  car_colors: ["Black", "White", "Silver", "Red"].map((color_name, i) => ({ color_id: i + 1, color_name })),
  cars: Array.from({ length: CARS }, (_, i) => ({ car_id: i, driver_id: 5_000 + i, model_id: 1, color_id: 1 + (i % 4) })),
};

/** The benchmark's events: half vehicle.telemetry (a share of them alerting), half sensor.reading. */
export function eventSource(prefix = "b") {
  let sequence = 0;
  return (now: number): Envelope => {
    const i = sequence++;
    if (i % 2 === 0) {
      // Every ALERT_EVERY-th telemetry event breaks a rule (speeding, and its gear is off); the rest break none.
      const alerting = (i / 2) % ALERT_EVERY === 0;
      const speed = alerting ? 130 + (i % 60) : 30 + (i % 90);
      const gear = alerting ? 1 : Math.round(speed / 30);
      return { type: "vehicle.telemetry", key: String(i % CARS), event_id: `${prefix}${i}`, event_time: now, ingest_time: now, payload: { car_id: i % CARS, speed, rpm: 1_000 + ((i * 131) % 5_000), gear } };
    }
    return { type: "sensor.reading", key: `s${i % 2_000}`, event_id: `${prefix}${i}`, event_time: now, ingest_time: now, payload: { sensor_id: `s${i % 2_000}`, temperature: (i % 600) / 10, humidity: (i % 1_000) / 10 } };
  };
}

export const recordOf = (e: Envelope): OutgoingRecord => ({ key: e.key, value: encodeEnvelope(e), timestamp: e.event_time });

export interface BenchPipeline {
  services: Services;
  mode: "services" | "embedded";
  /** The configuration's environment: a worker process started with it joins this pipeline. */
  env: Record<string, string>;
  close(): Promise<void>;
}

/** A pipeline of its own: on the real services (a fresh database and topic prefix), or embedded in a temp dir. */
export async function openPipeline(mode: "services" | "embedded", name: string, extraEnv: Record<string, string> = {}): Promise<BenchPipeline> {
  const quiet = createLogger({ bench: name }, () => undefined);
  const dataDir = mkdtempSync(join(tmpdir(), `devpipe-bench-${name}-`));
  const common = { DATA_DIR: dataDir, LOG_LEVEL: "warn", LAKE_URL: `file://${join(dataDir, "lake")}`, ...extraEnv };
  if (mode === "embedded") {
    const services = await openServices(loadConfig(common), quiet);
    await seedDims(services);
    return { services, mode, env: common, close: async () => (await closeServices(services), rmSync(dataDir, { recursive: true, force: true })) };
  }
  const database = await benchDatabase(name.replace(/[^a-z0-9_]/g, "_"));
  const env = { ...database.env, ...common, DATABASE_URL: database.url, TOPIC_PREFIX: `${database.name}.` };
  const services = await openServices(loadConfig(env), quiet);
  await seedDims(services);
  return {
    services,
    mode,
    env,
    async close() {
      await closeServices(services);
      await database.drop();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

async function seedDims(services: Services) {
  const { sql } = services.db;
  await replaceDimension(sql, "car_models", benchDims.car_models);
  await replaceDimension(sql, "car_colors", benchDims.car_colors);
  await replaceDimension(sql, "cars", benchDims.cars);
}

/**
 * Appends `events` records to events.raw: all with event time `now` (a backlog a fleet sent just now), or with
 * `perSecond`, event times advancing one second every that many events and ending now, so windows close.
 */
export async function fillRaw(services: Services, events: number, options: { next?: (now: number) => Envelope; perSecond?: number } = {}): Promise<{ seconds: number; events_per_s: number }> {
  const next = options.next ?? eventSource();
  const t0 = performance.now();
  const now = Date.now();
  const timeOf = (i: number) => (options.perSecond ? now - Math.ceil(events / options.perSecond) * 1000 + Math.floor(i / options.perSecond) * 1000 : now);
  for (let i = 0; i < events; i += 10_000) await services.bus.produce(services.topics.raw, Array.from({ length: Math.min(10_000, events - i) }, (_, k) => recordOf(next(timeOf(i + k)))));
  const seconds = (performance.now() - t0) / 1000;
  return { seconds: round(seconds), events_per_s: Math.round(events / seconds) };
}

export const round = (n: number, digits = 2) => Math.round(n * 10 ** digits) / 10 ** digits;
export const rssMb = () => Math.round(process.memoryUsage().rss / 2 ** 20);

/**
 * Starts the chain of `operators` and waits until each has committed `events` records of events.raw.
 * Events/s counts from the chain's start (its consumer joining the group included) to the last commit.
 */
export async function drainWithChain(services: Services, operators: string[], events: number, options?: RunnerOptions) {
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const stop = await startChain(operators, services, options);
  const perOperator: Record<string, number> = {};
  await Promise.all(operators.map(async (job) => (perOperator[job] = round(await drained(services.db.sql, job, services.topics.raw, events, t0)))));
  const seconds = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  const window = { window_from_ms: Math.round(performance.timeOrigin + t0), window_to_ms: Math.round(performance.timeOrigin + t0 + seconds * 1000) };
  return { stop, seconds: round(seconds), events_per_s: Math.round(events / seconds), seconds_per_operator: perOperator, cpu_seconds: round((cpu.user + cpu.system) / 1e6), ...window };
}
