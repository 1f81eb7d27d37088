import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createEmbeddedBus } from "../../lib/bus/embedded/index.ts";
import { createKafkaBus } from "../../lib/bus/kafka.ts";
import { createKafkaClient } from "../../lib/bus/kafka-client.ts";
import { partitionFor } from "../../lib/bus/partitioner.ts";
import type { Bus, Consumer, DeliveredRecord, TopicPartition } from "../../lib/bus/types.ts";
import { BusRequestError, DeltaConflictError } from "../../lib/errors.ts";
import { createLogger } from "../../lib/log.ts";
import { services, uniqueName } from "../support/services.ts";
import { tempDir } from "../support/tmp.ts";
import { waitFor } from "../support/wait.ts";

/**
 * One contract, two implementations: everything here holds for the Kafka bus (real broker) and for
 * the embedded file-backed bus alike. `reopen` is a process restart: a new client on the same data.
 */
interface Implementation {
  name: string;
  open(): Promise<Bus>;
  cleanup(): void;
}

const logger = createLogger({ test: "bus.contract" });
const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** The directory is made at the first `open` (beforeAll), so a run that filters these tests out leaves none behind; a later `open` is a restart on the same data. */
const embedded = (): Implementation => {
  let dir: ReturnType<typeof tempDir> | undefined;
  return {
    name: "embedded",
    open: () => {
      dir ??= tempDir("devpipe-bus-");
      return createEmbeddedBus({ dir: dir.path, logger });
    },
    cleanup: () => dir?.remove(),
  };
};

/**
 * The Kafka lines under test: the current one (KAFKA_BROKERS; 4.2 with scripts/services.sh) always, and 3.9
 * when a broker of that line is given (KAFKA_BROKERS_39: `scripts/services.sh up --with-kafka39`, which
 * `bun run test` does), so that kafkajs keeps working against both.
 */
const kafkaLines: { label: string; brokers: () => string[] }[] = [
  { label: "kafka 4.2", brokers: () => services().kafkaBrokers },
  ...(kafka39Brokers() ? [{ label: "kafka 3.9", brokers: () => kafka39Brokers() ?? [] }] : []),
];

/** Undefined without a 3.9 broker, or without services at all (then the kafka 4.2 cases fail, as they should). */
function kafka39Brokers(): string[] | undefined {
  try {
    return services().kafkaBrokers39;
  } catch {
    return undefined;
  }
}

const kafka = (line: (typeof kafkaLines)[number]) => (): Implementation => ({
  name: line.label,
  open: async () => createKafkaBus({ brokers: line.brokers(), logger }),
  cleanup: () => undefined,
});

function records(count: number, keyOf: (i: number) => string = (i) => `device-${i % 5}`) {
  return Array.from({ length: count }, (_, i) => ({ key: keyOf(i), value: encoder.encode(JSON.stringify({ i })), headers: { seq: String(i) }, timestamp: 1_700_000_000_000 + i }));
}

/** Consumes into an array; returns the consumer and the array it fills. */
async function collect(bus: Bus, options: { group: string; topics: string[]; onAssign?: (a: TopicPartition[]) => Promise<{ topic: string; partition: number; offset: number }[] | void>; start?: "earliest" | "latest" }) {
  const seen: DeliveredRecord[] = [];
  const consumer = await bus.consume({ ...options, onBatch: async (batch) => void seen.push(...batch.records) });
  return { consumer, seen };
}

const sequenceOf = (r: DeliveredRecord) => Number(r.headers.seq);

for (const make of [embedded, ...kafkaLines.map(kafka)]) {
  const impl = make();
  describe(`bus contract: ${impl.name}`, () => {
    let bus: Bus;
    const open: Consumer[] = [];
    beforeAll(async () => {
      bus = await impl.open();
    });
    afterAll(async () => {
      await Promise.allSettled(open.map((c) => c.stop()));
      await bus.close();
      impl.cleanup();
    });

    test("produce resolves with each record's partition and offset; a key always maps to the same partition", async () => {
      const topic = uniqueName("contract");
      await bus.ensureTopics([{ name: topic, partitions: 3 }]);
      await bus.ensureTopics([{ name: topic, partitions: 3 }]); // idempotent
      const produced = await bus.produce(topic, records(30));
      expect(produced).toHaveLength(30);
      const nextPerPartition = new Map<number, number>();
      produced.forEach((p, i) => {
        expect(p.partition).toBe(partitionFor(`device-${i % 5}`, 3));
        expect(p.offset).toBe(nextPerPartition.get(p.partition) ?? 0);
        nextPerPartition.set(p.partition, p.offset + 1);
      });
      const ends = await bus.endOffsets(topic);
      expect(ends.map((e) => e.offset)).toEqual([0, 1, 2].map((p) => nextPerPartition.get(p) ?? 0));
      expect(await bus.partitions(topic)).toEqual([0, 1, 2]);
    });

    test("a consumer gets every record once, in order per partition, with key, value, headers and timestamp intact", async () => {
      const topic = uniqueName("contract");
      await bus.ensureTopics([{ name: topic, partitions: 4 }]);
      await bus.produce(topic, records(200));
      const { consumer, seen } = await collect(bus, { group: uniqueName("g"), topics: [topic] });
      open.push(consumer);
      await waitFor(() => seen.length >= 200, { what: "200 records" });
      expect(new Set(seen.map(sequenceOf)).size).toBe(200);
      for (const partition of [0, 1, 2, 3]) {
        const offsets = seen.filter((r) => r.partition === partition).map((r) => r.offset);
        expect(offsets).toEqual(offsets.map((_, i) => i));
      }
      const first = seen.find((r) => sequenceOf(r) === 7);
      expect(first?.key).toBe("device-2");
      expect(JSON.parse(decoder.decode(first?.value))).toEqual({ i: 7 });
      expect(first?.timestamp).toBe(1_700_000_000_007);
      await consumer.stop();
    });

    test("committed positions survive a restart: a new member of the group resumes after them", async () => {
      const topic = uniqueName("contract");
      const group = uniqueName("g");
      await bus.ensureTopics([{ name: topic, partitions: 2 }]);
      await bus.produce(topic, records(40, (i) => `k${i}`));
      const first = await collect(bus, { group, topics: [topic] });
      await waitFor(() => first.seen.length >= 40, { what: "first pass" });
      // Commit half of each partition, then "crash".
      const ends = await bus.endOffsets(topic);
      const halfway = ends.map((e) => ({ ...e, offset: Math.floor(e.offset / 2) }));
      await first.consumer.commit(halfway);
      await first.consumer.stop();
      expect((await bus.lag(group, topic)).map((l) => l.lag)).toEqual(ends.map((e) => e.offset - Math.floor(e.offset / 2)));

      await bus.close();
      bus = await impl.open();
      const second = await collect(bus, { group, topics: [topic] });
      open.push(second.consumer);
      const expected = ends.reduce((sum, e) => sum + e.offset - Math.floor(e.offset / 2), 0);
      await waitFor(() => second.seen.length >= expected, { what: "resume after commit" });
      for (const h of halfway.filter((h) => h.offset > 0)) {
        const offsets = second.seen.filter((r) => r.partition === h.partition).map((r) => r.offset);
        expect(Math.min(...offsets)).toBe(h.offset);
      }
      expect(second.seen).toHaveLength(expected);
      await second.consumer.stop();
    });

    test("positions returned by onAssign override the committed ones", async () => {
      const topic = uniqueName("contract");
      const group = uniqueName("g");
      await bus.ensureTopics([{ name: topic, partitions: 1 }]);
      await bus.produce(topic, records(20, () => "one-key"));
      const { consumer, seen } = await collect(bus, { group, topics: [topic], onAssign: async (assigned) => assigned.map((tp) => ({ ...tp, offset: 15 })) });
      open.push(consumer);
      await waitFor(() => seen.length >= 5, { what: "records from offset 15" });
      expect(seen.map((r) => r.offset)).toEqual([15, 16, 17, 18, 19]);
      await consumer.stop();
    });

    test("seek moves delivery of a partition back", async () => {
      const topic = uniqueName("contract");
      await bus.ensureTopics([{ name: topic, partitions: 1 }]);
      await bus.produce(topic, records(10, () => "one-key"));
      const { consumer, seen } = await collect(bus, { group: uniqueName("g"), topics: [topic] });
      open.push(consumer);
      await waitFor(() => seen.length >= 10, { what: "first pass" });
      consumer.seek({ topic, partition: 0, offset: 4 });
      await waitFor(() => seen.length >= 16, { what: "redelivery after seek" });
      expect(seen.slice(10).map((r) => r.offset)).toEqual([4, 5, 6, 7, 8, 9]);
      await consumer.stop();
    });

    // A handler's error may be one the rest of the code marks not retriable (a lake commit that lost a race):
    // the bus must still deliver again, never give the consumer up (kafkajs stops a consumer for good on those).
    test("a batch whose handler failed, even with an error marked not retriable, is delivered again", async () => {
      const topic = uniqueName("contract");
      await bus.ensureTopics([{ name: topic, partitions: 1 }]);
      await bus.produce(topic, records(10, () => "one-key"));
      const seen: DeliveredRecord[] = [];
      let failures = 0;
      const consumer = await bus.consume({
        group: uniqueName("g"),
        topics: [topic],
        onBatch: async (batch) => {
          if (failures === 0 && batch.records.some((r) => r.offset === 5)) {
            failures++;
            throw new DeltaConflictError("contract", 1, "a handler's failure that is not retriable");
          }
          seen.push(...batch.records);
        },
      });
      open.push(consumer);
      await waitFor(() => seen.some((r) => r.offset === 9), { what: "delivery past the failed batch", timeoutMs: 60_000 });
      expect(failures).toBe(1);
      expect(seen.map((r) => r.offset)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9].slice(seen[0]?.offset ?? 0));
      expect(seen[0]?.offset).toBeLessThanOrEqual(5);
      await consumer.stop();
    }, 90_000);

    test("an onAssign that failed runs again, and no record is delivered before it succeeds", async () => {
      const topic = uniqueName("contract");
      await bus.ensureTopics([{ name: topic, partitions: 1 }]);
      await bus.produce(topic, records(10, () => "one-key"));
      let calls = 0;
      const { consumer, seen } = await collect(bus, {
        group: uniqueName("g"),
        topics: [topic],
        onAssign: async (assigned) => {
          calls++;
          if (calls === 1) throw new DeltaConflictError("contract", 1, "an assignment handler's failure that is not retriable");
          return assigned.map((tp) => ({ ...tp, offset: 6 }));
        },
      });
      open.push(consumer);
      await waitFor(() => seen.length >= 4, { what: "records from offset 6 after onAssign ran again", timeoutMs: 60_000 });
      expect(calls).toBeGreaterThanOrEqual(2);
      expect(seen.map((r) => r.offset)).toEqual([6, 7, 8, 9]);
      await consumer.stop();
    }, 90_000);

    test("members of one group split the partitions; when one leaves, the other takes its partitions over", async () => {
      const topic = uniqueName("contract");
      const group = uniqueName("g");
      await bus.ensureTopics([{ name: topic, partitions: 4 }]);
      const a = await collect(bus, { group, topics: [topic] });
      const b = await collect(bus, { group, topics: [topic] });
      open.push(a.consumer, b.consumer);
      await waitFor(() => a.consumer.assignment().length === 2 && b.consumer.assignment().length === 2, { what: "two partitions each", timeoutMs: 30_000 });
      await bus.produce(topic, records(100, (i) => `k${i}`));
      await waitFor(() => a.seen.length + b.seen.length >= 100, { what: "100 records across members" });
      const all = [...a.seen, ...b.seen].map(sequenceOf);
      expect(new Set(all).size).toBe(100);
      expect(all).toHaveLength(100);
      expect(new Set(a.seen.map((r) => r.partition)).size).toBeLessThanOrEqual(2);

      await a.consumer.commit(await bus.endOffsets(topic));
      await b.consumer.commit(await bus.endOffsets(topic));
      await a.consumer.stop();
      await waitFor(() => b.consumer.assignment().length === 4, { what: "b owns all partitions", timeoutMs: 30_000 });
      await bus.produce(topic, records(20, (i) => `later${i}`));
      await waitFor(() => b.seen.length + a.seen.length >= 120, { what: "records after takeover" });
      expect([...a.seen, ...b.seen]).toHaveLength(120);
      await b.consumer.stop();
    });

    test("producing to a topic that does not exist fails with a BusRequestError", async () => {
      const missing = uniqueName("missing");
      await expect(bus.produce(missing, records(1))).rejects.toBeInstanceOf(BusRequestError);
    });

    test("ping answers while the bus is up", async () => {
      expect(await bus.ping()).toBeUndefined();
    });
  });
}

for (const line of kafkaLines) {
  // Kafka's retention deletes a segment once its newest record timestamp is older than retention.ms (the broker's
  // check runs every 5 min). The records here carry timestamps from 2023, past the 24 h retention: stamped with
  // them, they were deleted at the next check, whether read or not (the seek test's flake: OFFSET_OUT_OF_RANGE,
  // kafkajs reset to the new log start, nothing left to deliver). The broker must see their append time.
  test(`${line.label}: records with timestamps older than the retention are stamped with their append time in the broker, and delivered with their own`, async () => {
    const bus = createKafkaBus({ brokers: line.brokers(), logger });
    const topic = uniqueName("old-stamps");
    await bus.ensureTopics([{ name: topic, partitions: 1 }]);
    const before = Date.now() - 1_000;
    const fresh = { key: "one-key", value: encoder.encode("fresh"), headers: { seq: "10" }, timestamp: Date.now() };
    await bus.produce(topic, [...records(10, () => "one-key"), fresh]);
    // The broker's own view (its time index, what retention reads): the first record stamped at or after `before`.
    const admin = createKafkaClient({ brokers: line.brokers(), clientId: "contract-test", log: () => undefined }).admin();
    await admin.connect();
    try {
      expect((await admin.fetchTopicOffsetsByTimestamp(topic, before)).map((p) => p.offset)).toEqual(["0"]);
    } finally {
      await admin.disconnect();
    }
    const { consumer, seen } = await collect(bus, { group: uniqueName("g"), topics: [topic] });
    try {
      await waitFor(() => seen.length >= 11, { what: "11 records" });
      expect(seen.map((r) => r.timestamp)).toEqual([...Array.from({ length: 10 }, (_, i) => 1_700_000_000_000 + i), fresh.timestamp]);
      expect(seen.map((r) => r.headers)).toEqual(Array.from({ length: 11 }, (_, i) => ({ seq: String(i) })));
    } finally {
      await consumer.stop();
      await bus.close();
    }
  });

  test(`${line.label}: a produce larger than the broker's request limit goes out in order, in chunks`, async () => {
    const bus = createKafkaBus({ brokers: line.brokers(), logger });
    const topic = uniqueName("large");
    await bus.ensureTopics([{ name: topic, partitions: 1 }]);
    const value = new Uint8Array(1_000).fill(7);
    const produced = await bus.produce(topic, Array.from({ length: 3_000 }, (_, i) => ({ key: "one", value, headers: { seq: String(i) } })));
    expect(produced.map((p) => p.offset)).toEqual(Array.from({ length: 3_000 }, (_, i) => i));
    expect((await bus.endOffsets(topic))[0]?.offset).toBe(3_000);
    await bus.close();
  });

  test(`${line.label}: a large produce over several partitions keeps each partition's order`, async () => {
    const bus = createKafkaBus({ brokers: line.brokers(), logger });
    const topic = uniqueName("large-spread");
    await bus.ensureTopics([{ name: topic, partitions: 4 }]);
    const value = new Uint8Array(1_000).fill(3);
    const sent = Array.from({ length: 6_000 }, (_, i) => ({ key: `k${i % 40}`, value, headers: { seq: String(i) } }));
    const produced = await bus.produce(topic, sent);
    // Offsets count up from 0 within each partition, in the order the records were given.
    const next = new Map<number, number>();
    for (const p of produced) {
      expect(p.offset).toBe(next.get(p.partition) ?? 0);
      next.set(p.partition, p.offset + 1);
    }
    const ends = await bus.endOffsets(topic);
    expect(ends.reduce((sum, e) => sum + e.offset, 0)).toBe(6_000);
    expect(ends.filter((e) => e.offset > 0).length).toBe(4);
    await bus.close();
  });
}
