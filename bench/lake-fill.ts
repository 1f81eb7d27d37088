/**
 * Fills `<prefix>events.raw` on the real Kafka with envelopes (telemetry already carrying its enrichment), for the lake sink benchmark. Run by bench/lake.ts in a process of
 * its own, so that a CPU profile of the sink holds the sink alone; also usable by hand:
 *
 *   bun bench/lake-fill.ts --prefix bench_lake_x. --events 1000000 [--partitions 4] [--types vehicle.telemetry]
 *                          [--devices 1000] [--start-ms <epoch ms>] [--span-ms 600000]
 *
 * Prints one JSON line (phase fill). Event times run evenly from start-ms over span-ms.
 */
import { openBus } from "../lib/bus/index.ts";
import type { OutgoingRecord } from "../lib/bus/types.ts";
import { loadConfig } from "../lib/config.ts";
import { encodeEnvelope } from "../lib/events/index.ts";
import { createLogger } from "../lib/log.ts";
import { topicNames, topicSpecs } from "../lib/topics.ts";
import { flags, lakeEvent, TELEMETRY } from "./lake-events.ts";
import { serviceEnv } from "./services.ts";

const args = flags();
const prefix = args.string("prefix", "BENCH_FILL_PREFIX", "");
if (!prefix) throw new Error("--prefix: the TOPIC_PREFIX of the topics to fill");
const events = args.number("events", "BENCH_SINK_EVENTS", 1_000_000);
const partitions = args.number("partitions", "BUS_PARTITIONS", 4);
const types = args.list("types", "BENCH_SINK_TYPES", [TELEMETRY]);
const devices = args.number("devices", "BENCH_DEVICES", 1_000);
const spanMs = args.number("span-ms", "BENCH_SPAN_MS", 600_000);
const startMs = args.number("start-ms", "BENCH_START_MS", Date.now() - spanMs);
const BATCH = 10_000;

const config = loadConfig({ ...serviceEnv(), TOPIC_PREFIX: prefix, BUS_PARTITIONS: String(partitions), LOG_LEVEL: "warn" });
const bus = await openBus(config, createLogger({ bench: "lake-fill" }, () => undefined));
const topics = topicNames(prefix);
await bus.ensureTopics(topicSpecs(topics, partitions));

const t0 = performance.now();
let bytes = 0;
for (let from = 0; from < events; from += BATCH) {
  const records: OutgoingRecord[] = [];
  for (let i = from; i < Math.min(events, from + BATCH); i++) {
    const envelope = lakeEvent(types[i % types.length] ?? TELEMETRY, i, startMs + Math.floor((i / events) * spanMs), devices);
    const value = encodeEnvelope(envelope);
    bytes += value.byteLength;
    records.push({ key: envelope.key, value, timestamp: envelope.ingest_time });
  }
  await bus.produce(topics.raw, records);
}
const seconds = (performance.now() - t0) / 1000;
await bus.close();
console.log(JSON.stringify({ bench: "lake", phase: "fill", topic: topics.raw, partitions, types, events, mb: Math.round(bytes / 2 ** 20), seconds: Math.round(seconds * 10) / 10, events_per_s: Math.round(events / seconds) }));
