/**
 * Produce throughput of each bus, durable acknowledgements only (embedded: fsync'd; Kafka: acks=all),
 * for batch sizes of 1, 100 and 1,000 records with concurrent producers. Prints one JSON line each.
 *   bun run bench/bus.ts                 embedded only
 *   KAFKA_BROKERS=127.0.0.1:19092 bun run bench/bus.ts   embedded and Kafka
 */
import { createEmbeddedBus } from "../lib/bus/embedded/index.ts";
import { createKafkaBus } from "../lib/bus/kafka.ts";
import type { Bus } from "../lib/bus/types.ts";
import { createLogger } from "../lib/log.ts";
import { tempDir } from "../tests/support/tmp.ts";

const logger = createLogger({ bench: "bus" }, () => undefined);
const value = new TextEncoder().encode(JSON.stringify({ type: "vehicle.telemetry", car_id: 42, speed: 88.5, rpm: 3200, gear: 3, event_time: Date.now() }));
const CONCURRENCY = 16;
const DURATION_MS = Number(process.env.BENCH_DURATION_MS ?? 3_000);

async function measure(bus: Bus, topic: string, batchSize: number) {
  const latencies: number[] = [];
  let records = 0;
  let key = 0;
  const started = performance.now();
  const deadline = started + DURATION_MS;
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (performance.now() < deadline) {
        const batch = Array.from({ length: batchSize }, () => ({ key: `car-${key++ % 1000}`, value }));
        const t0 = performance.now();
        await bus.produce(topic, batch);
        latencies.push(performance.now() - t0);
        records += batchSize;
      }
    }),
  );
  const seconds = (performance.now() - started) / 1000;
  latencies.sort((a, b) => a - b);
  const pct = (p: number) => Math.round((latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))] ?? 0) * 100) / 100;
  return { records, seconds: Math.round(seconds * 100) / 100, records_per_s: Math.round(records / seconds), p50_ms: pct(0.5), p99_ms: pct(0.99) };
}

const buses: { name: string; open: () => Promise<Bus>; cleanup: () => void }[] = [];
const dir = tempDir("devpipe-bench-");
buses.push({ name: "embedded", open: () => createEmbeddedBus({ dir: dir.path, logger }), cleanup: dir.remove });
if (process.env.KAFKA_BROKERS) buses.push({ name: "kafka", open: async () => createKafkaBus({ brokers: process.env.KAFKA_BROKERS?.split(",") ?? [], logger }), cleanup: () => undefined });

for (const { name, open, cleanup } of buses) {
  const bus = await open();
  const topic = `bench-${Date.now().toString(36)}`;
  await bus.ensureTopics([{ name: topic, partitions: 4 }]);
  for (const batchSize of [1, 100, 1000]) {
    const result = await measure(bus, topic, batchSize);
    console.log(JSON.stringify({ bench: "bus.produce", bus: name, batch: batchSize, concurrency: CONCURRENCY, value_bytes: value.length, ...result, rss_mb: Math.round(process.memoryUsage().rss / 2 ** 20) }));
  }
  await bus.close();
  cleanup();
}
