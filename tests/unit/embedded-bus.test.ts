import { afterEach, expect, test } from "bun:test";
import { heapStats } from "bun:jsc";
import { appendFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { createEmbeddedBus } from "../../lib/bus/embedded/index.ts";
import { PartitionLog } from "../../lib/bus/embedded/partition-log.ts";
import { decodeFrame, encodeFrame, frameLengthAt } from "../../lib/bus/embedded/record-codec.ts";
import { BusUnavailableError } from "../../lib/errors.ts";
import { createLogger } from "../../lib/log.ts";
import { tempDir } from "../support/tmp.ts";

const logger = createLogger({ test: "embedded-bus" }, () => undefined);
const dirs: { remove: () => void }[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) d.remove();
});
const scratch = () => {
  const d = tempDir("devpipe-embedded-");
  dirs.push(d);
  return d.path;
};
const bytes = (s: string) => new TextEncoder().encode(s);

test("a frame round-trips key, value, headers and timestamp, and a flipped bit fails its checksum", () => {
  const frame = encodeFrame({ key: "clé-1", value: bytes('{"a":1}'), headers: { h: "v" }, timestamp: 1_700_000_000_123 });
  expect(frameLengthAt(frame, 0)).toBe(frame.length);
  expect(decodeFrame(frame, 0)).toEqual({ key: "clé-1", value: bytes('{"a":1}'), headers: { h: "v" }, timestamp: 1_700_000_000_123 });
  const corrupt = frame.slice();
  corrupt[corrupt.length - 1] = (corrupt[corrupt.length - 1] ?? 0) ^ 1;
  expect(frameLengthAt(corrupt, 0)).toBeNull();
  expect(frameLengthAt(frame.subarray(0, frame.length - 1), 0)).toBeNull();
});

test("a torn tail left by a crash mid-write is cut off on open; every complete record survives", async () => {
  const dir = join(scratch(), "0");
  const path = join(dir, "00000000000000000000.log");
  const log = await PartitionLog.open(dir, logger);
  for (let i = 0; i < 50; i++) log.stage({ key: `k${i}`, value: bytes(`v${i}`), headers: {}, timestamp: i });
  expect(await log.flush()).toBe(0);
  await log.close();
  const intactSize = statSync(path).size;
  const partial = encodeFrame({ key: "torn", value: bytes("never acknowledged"), headers: {}, timestamp: 0 }).subarray(0, 17);
  appendFileSync(path, partial);

  const reopened = await PartitionLog.open(dir, logger);
  expect(reopened.end()).toBe(50);
  expect(statSync(path).size).toBe(intactSize);
  const read = await reopened.read(45, 100);
  expect(read.map((r) => r.record.key)).toEqual(["k45", "k46", "k47", "k48", "k49"]);
  reopened.stage({ key: "after", value: bytes("x"), headers: {}, timestamp: 0 });
  expect(await reopened.flush()).toBe(50);
  expect((await reopened.read(50, 1))[0]?.record.key).toBe("after");
  await reopened.close();
});

test("reads respect the record and byte budgets but always return at least one record", async () => {
  const log = await PartitionLog.open(join(scratch(), "0"), logger);
  for (let i = 0; i < 20; i++) log.stage({ key: `k${i}`, value: new Uint8Array(1000), headers: {}, timestamp: i });
  await log.flush();
  expect(await log.read(0, 5)).toHaveLength(5);
  expect((await log.read(0, 100, 3_500)).length).toBeLessThanOrEqual(4);
  expect(await log.read(0, 100, 1)).toHaveLength(1);
  expect(await log.read(20, 5)).toEqual([]);
  await log.close();
});

test("records and committed positions survive a restart of the process", async () => {
  const dir = scratch();
  const first = await createEmbeddedBus({ dir, logger });
  await first.ensureTopics([{ name: "events.raw", partitions: 2 }]);
  const produced = await first.produce("events.raw", [{ key: "a", value: bytes("1") }, { key: "b", value: bytes("2") }, { key: "a", value: bytes("3") }]);
  const consumer = await first.consume({ group: "g", topics: ["events.raw"], onBatch: async () => undefined });
  await consumer.commit([{ topic: "events.raw", partition: produced[0]?.partition ?? 0, offset: 1 }]);
  await first.close();

  const second = await createEmbeddedBus({ dir, logger });
  expect((await second.endOffsets("events.raw")).reduce((sum, p) => sum + p.offset, 0)).toBe(3);
  const lag = await second.lag("g", "events.raw");
  const partition = produced[0]?.partition;
  const end = produced.filter((p) => p.partition === partition).length;
  expect(lag.find((l) => l.partition === partition)).toMatchObject({ committed: 1, end, lag: end - 1 });
  await second.close();
});

test("concurrent produces are group-committed and each gets its own offsets", async () => {
  const bus = await createEmbeddedBus({ dir: scratch(), logger });
  await bus.ensureTopics([{ name: "t", partitions: 1 }]);
  const results = await Promise.all(Array.from({ length: 50 }, (_, i) => bus.produce("t", [{ key: "same", value: bytes(String(i)) }, { key: "same", value: bytes(`${i}b`) }])));
  const offsets = results.flat().map((r) => r.offset).sort((a, b) => a - b);
  expect(offsets).toEqual(Array.from({ length: 100 }, (_, i) => i));
  await bus.close();
});

test("a second process cannot open a data directory whose bus is in use", async () => {
  const dir = scratch();
  const bus = await createEmbeddedBus({ dir, logger });
  const child = Bun.spawn(["bun", "-e", `import { createEmbeddedBus } from "${join(import.meta.dir, "../../lib/bus/embedded/index.ts")}"; import { createLogger } from "${join(import.meta.dir, "../../lib/log.ts")}"; try { await createEmbeddedBus({ dir: ${JSON.stringify(dir)}, logger: createLogger() }); console.log("opened"); } catch (e) { console.log(e.name); }`], { stdout: "pipe", stderr: "ignore" });
  expect((await new Response(child.stdout).text()).trim()).toBe(BusUnavailableError.name);
  await bus.close();
});

test("a consumer's idle waits leave nothing behind: live promises stay level over 1,500 wake-ups", async () => {
  const bus = await createEmbeddedBus({ dir: scratch(), logger });
  await bus.ensureTopics([{ name: "t", partitions: 1 }]);
  let consumed = 0;
  const consumer = await bus.consume({ group: "g", topics: ["t"], onBatch: async ({ records }) => void (consumed += records.length) });
  // Each produce is flushed alone, wakes the idle consumer, which reads it and waits again.
  const produceAndDeliver = async (n: number) => {
    for (let i = 0; i < n; i++) {
      const target = consumed + 1;
      await bus.produce("t", [{ key: "k", value: bytes(String(i)) }]);
      while (consumed < target) await Bun.sleep(0);
    }
  };
  const livePromises = () => {
    Bun.gc(true);
    return heapStats().objectTypeCounts.Promise ?? 0;
  };
  await produceAndDeliver(100);
  const before = livePromises();
  await produceAndDeliver(1_500);
  const after = livePromises();
  // Racing the consumer's stop promise on every idle turn kept ~1,500 more alive here.
  expect(after - before).toBeLessThan(150);
  expect(consumed).toBe(1_600);
  await consumer.stop();
  await bus.close();
});
