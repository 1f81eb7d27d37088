/**
 * Fills a Kafka topic with devpipe envelopes for the peer benchmarks, through the project's own bus.
 * The envelopes are those of bench/pipeline.ts: even sequence numbers are vehicle.telemetry (one in
 * 1/alertShare of them breaks the speeding and gear rules, the rest break none), odd ones sensor.reading.
 * Unlike bench/pipeline.ts, event times advance (by default 1,000 events per second of event time, ending
 * now), so a 15-minute window sliding every minute sees many windows and the watermark closes them.
 *
 *   bun bench/peers/fill.ts --topic peerbench.events.raw --records 1000000 [--brokers 127.0.0.1:19092]
 *
 * Idempotent: a topic that already holds N records is left alone, one with fewer gets the rest.
 */
import type { Envelope } from "../../lib/events/index.ts";
import { encodeEnvelope } from "../../lib/events/index.ts";
import { createKafkaBus } from "../../lib/bus/kafka.ts";
import type { OutgoingRecord } from "../../lib/bus/types.ts";
import { createLogger } from "../../lib/log.ts";

export interface FillOptions {
  brokers: string;
  topic: string;
  records: number;
  /** Partitions when the topic is created (default 8); an existing topic keeps its own. */
  partitions?: number;
  /** Share of telemetry events that raise an alert (default 0.05, as bench/pipeline.ts). */
  alertShare?: number;
  /** Events per second of event time (default 1,000). */
  eventsPerSecond?: number;
}

export interface FillResult {
  topic: string;
  partitions: number;
  records: number;
  produced: number;
  seconds: number;
}

/** The i-th envelope of bench/pipeline.ts's `envelope()`, at `eventTime`. */
export function peerEnvelope(i: number, eventTime: number, alertEvery: number): Envelope {
  if (i % 2 === 0) {
    const alerting = (i / 2) % alertEvery === 0;
    const speed = alerting ? 130 + (i % 60) : 30 + (i % 90);
    const gear = alerting ? 1 : Math.round(speed / 30);
    return { type: "vehicle.telemetry", key: String(i % 1_000), event_id: `b${i}`, event_time: eventTime, ingest_time: eventTime, payload: { car_id: i % 1_000, speed, rpm: 1_000 + ((i * 131) % 5_000), gear } };
  }
  return { type: "sensor.reading", key: `s${i % 2_000}`, event_id: `b${i}`, event_time: eventTime, ingest_time: eventTime, payload: { sensor_id: `s${i % 2_000}`, temperature: (i % 600) / 10, humidity: (i % 1_000) / 10 } };
}

/** Alerts that `records` envelopes from sequence 0 carry: every alertEvery-th telemetry event. */
export const expectedAlerts = (records: number, alertShare = 0.05) => Math.ceil(Math.ceil(records / 2) / Math.round(1 / alertShare));

export async function fillTopic(options: FillOptions): Promise<FillResult> {
  const alertShare = options.alertShare ?? 0.05;
  if (!(alertShare > 0 && alertShare <= 1)) throw new RangeError("alertShare: a share in (0, 1]");
  const alertEvery = Math.round(1 / alertShare);
  const rate = options.eventsPerSecond ?? 1_000;
  const logger = createLogger({ bench: "peer-fill" });
  const bus = createKafkaBus({ brokers: options.brokers.split(","), logger, clientId: "devpipe-peer-fill" });
  const t0 = performance.now();
  try {
    await bus.ensureTopics([{ name: options.topic, partitions: options.partitions ?? 8 }]);
    const ends = await bus.endOffsets(options.topic);
    const existing = ends.reduce((n, p) => n + p.offset, 0);
    if (existing > options.records) logger.warn("topic holds more records than asked for; left as it is", { topic: options.topic, existing, records: options.records });
    const start = Date.now() - Math.ceil((options.records * 1_000) / rate);
    const chunk = 10_000;
    let inFlight: Promise<unknown>[] = [];
    for (let from = existing; from < options.records; from += chunk) {
      const batch: OutgoingRecord[] = [];
      for (let i = from; i < Math.min(from + chunk, options.records); i++) {
        const e = peerEnvelope(i, start + Math.floor((i * 1_000) / rate), alertEvery);
        batch.push({ key: e.key, value: encodeEnvelope(e), timestamp: e.event_time });
      }
      inFlight.push(bus.produce(options.topic, batch));
      // Two requests in flight keep the producer thread busy; at worst two chunks (20 s of event time at the
      // default rate) interleave on a partition, well within the peers' 2-minute watermark.
      if (inFlight.length >= 2) {
        await Promise.all(inFlight);
        inFlight = [];
      }
    }
    await Promise.all(inFlight);
    const after = await bus.endOffsets(options.topic);
    return { topic: options.topic, partitions: after.length, records: after.reduce((n, p) => n + p.offset, 0), produced: Math.max(0, options.records - existing), seconds: Math.round((performance.now() - t0) / 10) / 100 };
  } finally {
    await bus.close();
  }
}

if (import.meta.main) {
  const { values } = (await import("node:util")).parseArgs({
    options: { brokers: { type: "string" }, topic: { type: "string", default: "peerbench.events.raw" }, records: { type: "string", default: "1000000" }, partitions: { type: "string", default: "8" } },
  });
  const { serviceEnv } = await import("../services.ts");
  const brokers = values.brokers ?? serviceEnv().KAFKA_BROKERS ?? "127.0.0.1:19092";
  console.log(JSON.stringify(await fillTopic({ brokers, topic: values.topic, records: Number(values.records), partitions: Number(values.partitions) })));
}
