import { afterEach, expect, test } from "bun:test";
import { appendFileSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { createEmbeddedBus, type EmbeddedBusOptions } from "../../lib/bus/embedded/index.ts";
import { PartitionLog, segmentBases, segmentName } from "../../lib/bus/embedded/partition-log.ts";
import { encodeFrame } from "../../lib/bus/embedded/record-codec.ts";
import { INDEX_ENTRY_BYTES } from "../../lib/bus/embedded/segment-index.ts";
import type { Bus, Consumer, DeliveredRecord } from "../../lib/bus/types.ts";
import { BusUnavailableError } from "../../lib/errors.ts";
import { createLogger } from "../../lib/log.ts";
import { tempDir } from "../support/tmp.ts";
import { waitFor } from "../support/wait.ts";

/**
 * The embedded bus keeps each partition as Kafka-like segments with a sparse index, deletes old segments
 * by age and by the topic's byte cap, never one a consumer group still needs, and refuses produces
 * (BusUnavailableError, retriable) rather than drop records a lagging group has not consumed.
 */
const logger = createLogger({ test: "embedded-bus-retention" }, () => undefined);
const dirs: { remove: () => void }[] = [];
const open: Bus[] = [];
afterEach(async () => {
  await Promise.allSettled(open.splice(0).map((b) => b.close()));
  for (const d of dirs.splice(0)) d.remove();
});
const scratch = () => {
  const d = tempDir("devpipe-retention-");
  dirs.push(d);
  return d.path;
};
const bytes = (s: string) => new TextEncoder().encode(s);
const text = (b: Uint8Array) => new TextDecoder().decode(b);
/** ~130 bytes a frame: about 7 records fill a 1 KiB segment. */
const value = (i: number) => bytes(`${String(i).padStart(6, "0")}-${"x".repeat(93)}`);

const HOUR = 3_600_000;
const DAY = 86_400_000;

/** A clock the test moves; retention and rolling go by it. */
function testClock(start = 1_800_000_000_000) {
  let now = start;
  return { now: () => now, advance: (ms: number) => void (now += ms) };
}

async function openBus(dir: string, clock: { now: () => number }, retention: EmbeddedBusOptions["retention"] = {}) {
  const bus = await createEmbeddedBus({
    dir,
    logger,
    clock: clock.now,
    retentionCheckMs: 20,
    retention: { segmentBytes: 1024, segmentMs: DAY, retentionBytes: 100 * 1024 * 1024, retentionMs: 30 * DAY, groupRetentionMs: 7 * DAY, ...retention },
  });
  open.push(bus);
  return bus;
}

const close = async (bus: Bus) => {
  open.splice(open.indexOf(bus), 1);
  await bus.close();
};

/** Produces records one request at a time (each its own flush, so segments roll between them). */
async function produceEach(bus: Bus, topic: string, from: number, count: number) {
  for (let i = from; i < from + count; i++) await bus.produce(topic, [{ key: "k", value: value(i) }]);
}

/** Every record of partition 0 from `from`, read by a fresh consumer group. */
async function readAll(bus: Bus, topic: string, expected: number): Promise<DeliveredRecord[]> {
  const got: DeliveredRecord[] = [];
  const consumer = await bus.consume({ group: `reader-${Bun.randomUUIDv7()}`, topics: [topic], maxBatchRecords: 5, onBatch: async (b) => void got.push(...b.records) });
  await waitFor(() => got.length >= expected, { what: `${expected} records read` });
  await consumer.stop();
  return got;
}

const storageOf = async (bus: Bus, topic: string) => {
  const found = (await bus.storage()).find((t) => t.topic === topic);
  if (!found) throw new Error(`no storage for ${topic}`);
  return found;
};
const partitionDir = (dir: string, topic: string, p = 0) => join(dir, "topics", topic, String(p));

test("segments roll by size and by age, named by base offset; offsets stay global and reads cross segment boundaries", async () => {
  const dir = scratch();
  const clock = testClock();
  const bus = await openBus(dir, clock, { segmentMs: HOUR });
  await bus.ensureTopics([{ name: "t", partitions: 1 }]);
  await produceEach(bus, "t", 0, 40);

  const bases = await segmentBases(partitionDir(dir, "t"));
  expect(bases.length).toBeGreaterThanOrEqual(5);
  expect(bases[0]).toBe(0);
  const files = readdirSync(partitionDir(dir, "t"));
  for (const base of bases.slice(0, -1)) {
    // A closed segment is at most segmentBytes, with its index and metadata beside it.
    expect(statSync(join(partitionDir(dir, "t"), `${segmentName(base)}.log`)).size).toBeLessThanOrEqual(1024);
    expect(files).toContain(`${segmentName(base)}.index`);
    expect(JSON.parse(readFileSync(join(partitionDir(dir, "t"), `${segmentName(base)}.meta`), "utf8"))).toMatchObject({ base });
  }
  expect(files).toContain("00000000000000000000.log");
  // Each segment starts where the previous one ended.
  for (let i = 1; i < bases.length; i++) {
    const meta = JSON.parse(readFileSync(join(partitionDir(dir, "t"), `${segmentName(bases[i - 1] as number)}.meta`), "utf8")) as { next: number };
    expect(meta.next).toBe(bases[i] as number);
  }

  // By age: the active segment is an hour old, so the next flush starts a new one at the next offset.
  const before = (await segmentBases(partitionDir(dir, "t"))).length;
  clock.advance(HOUR);
  await bus.produce("t", [{ key: "k", value: value(40) }]);
  const after = await segmentBases(partitionDir(dir, "t"));
  expect(after.length).toBe(before + 1);
  expect(after[after.length - 1]).toBe(40);

  const records = await readAll(bus, "t", 41);
  expect(records.map((r) => r.offset)).toEqual(Array.from({ length: 41 }, (_, i) => i));
  expect(records.map((r) => text(r.value))).toEqual(Array.from({ length: 41 }, (_, i) => text(value(i))));
  expect(await storageOf(bus, "t")).toMatchObject({ segments: after.length, partitions: [{ partition: 0, startOffset: 0, endOffset: 41, segments: after.length }] });
});

test("random reads find records through the sparse index; memory grows with index entries, not records", async () => {
  const dir = join(scratch(), "0");
  const log = await PartitionLog.open(dir, logger, { segmentBytes: 256 * 1024 });
  const total = 20_000;
  for (let i = 0; i < total; i += 500) {
    for (let j = i; j < i + 500; j++) log.stage({ key: `k${j}`, value: value(j), headers: j % 7 === 0 ? { n: String(j) } : {}, timestamp: j });
    await log.flush();
  }
  expect(log.end()).toBe(total);
  expect(log.segmentCount()).toBeGreaterThan(5);
  for (const from of [0, 1, 1_999, 2_000, 7_777, 12_345, 19_990, total - 1]) {
    const read = await log.read(from, 15);
    expect(read[0]?.offset).toBe(from);
    expect(read.map((r) => r.record.key)).toEqual(Array.from({ length: Math.min(15, total - from) }, (_, i) => `k${from + i}`));
  }
  // A read may run on into the next segment while its budget allows.
  const bases = await segmentBases(dir);
  const boundary = bases[2] as number;
  expect((await log.read(boundary - 3, 6)).map((r) => r.offset)).toEqual([boundary - 3, boundary - 2, boundary - 1, boundary, boundary + 1, boundary + 2]);
  // One index entry per 4 KiB of log, for the active segment and a few cached closed ones: kilobytes, not one entry per record.
  expect(log.indexMemoryBytes()).toBeLessThan(64 * 1024);
  const entries = statSync(join(dir, `${segmentName(bases[0] as number)}.index`)).size / INDEX_ENTRY_BYTES;
  const segmentSize = statSync(join(dir, `${segmentName(bases[0] as number)}.log`)).size;
  expect(entries).toBeGreaterThanOrEqual(Math.floor(segmentSize / 4096) - 1);
  expect(entries).toBeLessThanOrEqual(Math.ceil(segmentSize / 4096));
  await log.close();

  // After a restart, closed segments are trusted through their index and meta: open does not read their records.
  const closedLog = join(dir, `${segmentName(bases[1] as number)}.log`);
  const corrupt = readFileSync(closedLog);
  corrupt[100] = (corrupt[100] ?? 0) ^ 0xff;
  writeFileSync(closedLog, corrupt);
  const reopened = await PartitionLog.open(dir, logger, { segmentBytes: 256 * 1024 });
  expect(reopened.end()).toBe(total);
  expect((await reopened.read(12_345, 3)).map((r) => r.record.key)).toEqual(["k12345", "k12346", "k12347"]);
  await reopened.close();
});

test("a restart reads across segments, rebuilds a missing or corrupt index, and truncates a torn tail of the active segment", async () => {
  const dir = scratch();
  const clock = testClock();
  const first = await openBus(dir, clock);
  await first.ensureTopics([{ name: "t", partitions: 1 }]);
  await produceEach(first, "t", 0, 30);
  await close(first);

  const bases = await segmentBases(partitionDir(dir, "t"));
  const active = join(partitionDir(dir, "t"), `${segmentName(bases[bases.length - 1] as number)}.log`);
  const intact = statSync(active).size;
  appendFileSync(active, encodeFrame({ key: "torn", value: bytes("never acknowledged"), headers: {}, timestamp: 0 }).subarray(0, 20));
  const lostIndex = join(partitionDir(dir, "t"), `${segmentName(bases[1] as number)}.index`);
  rmSync(lostIndex);
  const corruptIndex = join(partitionDir(dir, "t"), `${segmentName(bases[2] as number)}.index`);
  writeFileSync(corruptIndex, "not an index");

  const second = await openBus(dir, clock);
  expect(statSync(active).size).toBe(intact);
  expect(existsSync(lostIndex)).toBe(true);
  expect((await second.endOffsets("t"))[0]?.offset).toBe(30);
  const records = await readAll(second, "t", 30);
  expect(records.map((r) => text(r.value))).toEqual(Array.from({ length: 30 }, (_, i) => text(value(i))));
  // A read in the middle of that segment needs its index: the corrupt one is rebuilt, the read is right.
  const middle = (bases[2] as number) + 2;
  const setter = await second.consume({ group: "mid", topics: ["t"], onBatch: async () => undefined });
  await setter.commit([{ topic: "t", partition: 0, offset: middle }]);
  await setter.stop();
  const got: DeliveredRecord[] = [];
  const mid = await second.consume({ group: "mid", topics: ["t"], onBatch: async (b) => void got.push(...b.records) });
  await waitFor(() => got.length > 0, { what: "a read from the middle of a segment" });
  await mid.stop();
  expect(got[0]?.offset).toBe(middle);
  expect(text(got[0]?.value ?? new Uint8Array())).toBe(text(value(middle)));
  expect(statSync(corruptIndex).size % INDEX_ENTRY_BYTES).toBe(0);
  const [produced] = await second.produce("t", [{ key: "k", value: value(30) }]);
  expect(produced?.offset).toBe(30);
});

test("an old single-file <p>.log and an old group file are adopted: offsets, records and positions carry on", async () => {
  const dir = scratch();
  const topicDir = join(dir, "topics", "legacy");
  mkdirSync(topicDir, { recursive: true });
  writeFileSync(join(topicDir, "topic.json"), JSON.stringify({ partitions: 1 }));
  const frames = Array.from({ length: 20 }, (_, i) => encodeFrame({ key: "k", value: value(i), headers: {}, timestamp: 1_700_000_000_000 + i }));
  writeFileSync(join(topicDir, "0.log"), Buffer.concat(frames));
  mkdirSync(join(dir, "groups"), { recursive: true });
  writeFileSync(join(dir, "groups", "old-group.json"), JSON.stringify({ legacy: { "0": 5 } }));

  const clock = testClock(Date.now());
  const bus = await openBus(dir, clock);
  expect(existsSync(join(topicDir, "0.log"))).toBe(false);
  expect(await segmentBases(join(topicDir, "0"))).toEqual([0]);
  expect(await bus.endOffsets("legacy")).toEqual([{ topic: "legacy", partition: 0, offset: 20 }]);
  expect(await bus.lag("old-group", "legacy")).toEqual([{ topic: "legacy", partition: 0, committed: 5, end: 20, lag: 15 }]);
  // The adopted file is larger than a segment: the next append rolls it, and offsets go on from 20.
  await produceEach(bus, "legacy", 20, 5);
  expect((await segmentBases(join(topicDir, "0")))[1]).toBe(20);
  expect(existsSync(join(topicDir, "0", `${segmentName(0)}.meta`))).toBe(true);
  const records = await readAll(bus, "legacy", 25);
  expect(records.map((r) => text(r.value))).toEqual(Array.from({ length: 25 }, (_, i) => text(value(i))));

  // The old group file (no commit times) protects by its mtime: recent, so what it has not consumed is kept.
  await close(bus);
  const again = await openBus(dir, clock, { retentionBytes: 4096 });
  let refused: unknown;
  for (let i = 25; i < 200 && !refused; i++) await again.produce("legacy", [{ key: "k", value: value(i) }]).catch((error: unknown) => void (refused = error));
  expect((refused as Error).message).toContain('consumer group "old-group" is at offset 5 on partition 0');
  expect((await storageOf(again, "legacy")).partitions[0]?.startOffset).toBe(0);
});

test("old segments go once every group has committed past them, never before; a lagging group holds them and produce is refused naming it until it commits", async () => {
  const dir = scratch();
  const clock = testClock();
  const bus = await openBus(dir, clock, { retentionBytes: 4096 });
  await bus.ensureTopics([{ name: "t", partitions: 1 }]);
  const noop = async () => undefined;
  const fast = await bus.consume({ group: "fast", topics: ["t"], onBatch: noop });
  const slow = await bus.consume({ group: "slow", topics: ["t"], onBatch: noop });
  const commitEnd = async (consumer: Consumer) => consumer.commit(await bus.endOffsets("t"));

  // "fast" keeps up; "slow" never commits (a live member with no position needs everything).
  let refused: unknown;
  let produced = 0;
  for (; produced < 200 && !refused; produced++) {
    try {
      await bus.produce("t", [{ key: "k", value: value(produced) }]);
      await commitEnd(fast);
    } catch (error) {
      refused = error;
    }
  }
  expect(refused).toBeInstanceOf(BusUnavailableError);
  expect((refused as BusUnavailableError).retriable).toBe(true);
  expect((refused as Error).message).toContain('consumer group "slow"');
  expect((refused as Error).message).toContain("topic t");
  expect((refused as Error).message).toContain("4096");
  expect((refused as Error).message).toContain("partition 0");
  const blocked = await storageOf(bus, "t");
  expect(blocked.bytes).toBeGreaterThan(4096);
  expect(blocked.retentionBytes).toBe(4096);
  expect(blocked.blocked).toMatchObject({ group: "slow", partition: 0, offset: null });
  // Nothing was deleted: every record is still there for "slow".
  expect(blocked.partitions[0]?.startOffset).toBe(0);
  const end = (await bus.endOffsets("t"))[0]?.offset ?? 0;
  expect(end).toBe(produced - 1);
  await expect(bus.produce("t", [{ key: "k", value: value(999) }])).rejects.toBeInstanceOf(BusUnavailableError);

  // "slow" commits into the middle: only segments wholly before its position may go (the oldest first, while
  // over the cap), never the one it is in; produces are accepted again.
  const bases = await segmentBases(partitionDir(dir, "t"));
  const middle = (bases[2] as number) + 1;
  await slow.commit([{ topic: "t", partition: 0, offset: middle }]);
  const [accepted] = await bus.produce("t", [{ key: "k", value: value(end) }]);
  expect(accepted?.offset).toBe(end);
  const after = await storageOf(bus, "t");
  expect(after.blocked).toBeNull();
  expect(after.partitions[0]?.startOffset).toBeGreaterThan(0);
  expect(after.partitions[0]?.startOffset).toBeLessThanOrEqual(bases[2] as number);
  expect(await segmentBases(partitionDir(dir, "t"))).not.toContain(0);
  // Filling up again, the segment "slow" is in is held: the next refusal names its position.
  let again: unknown;
  for (let i = 0; i < 200 && !again; i++) {
    await bus.produce("t", [{ key: "k", value: value(end + 1 + i) }]).then(() => commitEnd(fast), (error: unknown) => void (again = error));
  }
  expect((again as Error).message).toContain(`consumer group "slow" is at offset ${middle} on partition 0`);
  expect((await storageOf(bus, "t")).partitions[0]?.startOffset).toBe(bases[2] as number);

  // Once both are at the end, the topic shrinks back under its cap as it goes on.
  await commitEnd(slow);
  await commitEnd(fast);
  for (let i = 0; i < 40; i++) {
    await bus.produce("t", [{ key: "k", value: value(i) }]);
    await commitEnd(fast);
    await commitEnd(slow);
  }
  const steady = await storageOf(bus, "t");
  expect(steady.blocked).toBeNull();
  expect(steady.bytes).toBeLessThanOrEqual(4096 + 1024 + 200);
  // A consumer reading from the log start gets every record still kept, in order.
  const kept = (steady.partitions[0]?.endOffset ?? 0) - (steady.partitions[0]?.startOffset ?? 0);
  const records = await readAll(bus, "t", kept);
  expect(records[0]?.offset).toBe(steady.partitions[0]?.startOffset ?? -1);
  expect(records.map((r) => r.offset)).toEqual(Array.from({ length: kept }, (_, i) => (steady.partitions[0]?.startOffset ?? 0) + i));
});

test("time-based retention deletes closed segments by age, only up to what every group has consumed", async () => {
  const dir = scratch();
  const clock = testClock();
  const bus = await openBus(dir, clock, { retentionMs: HOUR });
  await bus.ensureTopics([{ name: "t", partitions: 1 }]);
  await produceEach(bus, "t", 0, 40);
  const consumer = await bus.consume({ group: "g", topics: ["t"], onBatch: async () => undefined });
  const bases = await segmentBases(partitionDir(dir, "t"));
  const position = (bases[3] as number) + 2;
  await consumer.commit([{ topic: "t", partition: 0, offset: position }]);

  clock.advance(HOUR + 1);
  // The periodic check deletes the expired segments the group is past, and none it still needs.
  await waitFor(async () => (await storageOf(bus, "t")).partitions[0]?.startOffset === bases[3], { what: "expired segments deleted" });
  expect(await segmentBases(partitionDir(dir, "t"))).toEqual(bases.slice(3));

  await consumer.commit(await bus.endOffsets("t"));
  await waitFor(async () => (await storageOf(bus, "t")).segments === 1, { what: "every closed segment deleted" });
  const [storage] = (await bus.storage()).filter((t) => t.topic === "t");
  // The active segment always stays; offsets go on.
  expect(storage?.partitions[0]?.startOffset).toBe(bases[bases.length - 1] as number);
  expect(storage?.partitions[0]?.endOffset).toBe(40);
  expect((await bus.produce("t", [{ key: "k", value: value(40) }]))[0]?.offset).toBe(40);
});

test("a group with no live member stops protecting once its last commit is older than groupRetentionMs", async () => {
  const dir = scratch();
  const clock = testClock();
  const bus = await openBus(dir, clock, { retentionBytes: 4096, groupRetentionMs: HOUR });
  await bus.ensureTopics([{ name: "t", partitions: 1 }]);
  const gone = await bus.consume({ group: "gone", topics: ["t"], onBatch: async () => undefined });
  await gone.commit([{ topic: "t", partition: 0, offset: 0 }]);
  await gone.stop();

  const fill = async () => {
    for (let i = 0; i < 200; i++) await bus.produce("t", [{ key: "k", value: value(i) }]);
  };
  const refused = await fill().then(
    () => undefined,
    (error: unknown) => error,
  );
  expect(refused).toBeInstanceOf(BusUnavailableError);
  expect((refused as Error).message).toContain('consumer group "gone" is at offset 0 on partition 0');

  clock.advance(HOUR + 1);
  await bus.produce("t", [{ key: "k", value: value(0) }]);
  const storage = await storageOf(bus, "t");
  expect(storage.blocked).toBeNull();
  expect(storage.partitions[0]?.startOffset).toBeGreaterThan(0);
  expect(storage.bytes).toBeLessThanOrEqual(4096 + 1024);

  // Coming back below the log start, the group goes on from the oldest record kept.
  const got: DeliveredRecord[] = [];
  const back = await bus.consume({ group: "gone", topics: ["t"], onBatch: async (b) => void got.push(...b.records) });
  await waitFor(() => got.length > 0, { what: "records delivered" });
  expect(got[0]?.offset).toBe(storage.partitions[0]?.startOffset ?? -1);
  await back.stop();
});

test("a group's retention clock stops while the bus is closed: after a long stop its unread records are still kept", async () => {
  const dir = scratch();
  const clock = testClock();
  const first = await openBus(dir, clock, { retentionBytes: 4096, groupRetentionMs: HOUR });
  await first.ensureTopics([{ name: "t", partitions: 1 }]);
  const pipeline = await first.consume({ group: "pipeline", topics: ["t"], onBatch: async () => undefined });
  await pipeline.commit([{ topic: "t", partition: 0, offset: 0 }]);
  await pipeline.stop();
  await first.close();

  clock.advance(24 * HOUR);
  const second = await openBus(dir, clock, { retentionBytes: 4096, groupRetentionMs: HOUR });
  const refused = await (async () => {
    for (let i = 0; i < 200; i++) await second.produce("t", [{ key: "k", value: value(i) }]);
  })().then(
    () => undefined,
    (error: unknown) => error,
  );
  expect(refused).toBeInstanceOf(BusUnavailableError);
  expect((refused as Error).message).toContain('consumer group "pipeline" is at offset 0 on partition 0');
  expect((await storageOf(second, "t")).partitions[0]?.startOffset).toBe(0);
  await second.close();
});
