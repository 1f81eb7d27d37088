import { mkdir, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { BusRequestError, BusUnavailableError } from "../../errors.ts";
import type { Logger } from "../../log.ts";
import { backoffDelay } from "../../retry.ts";
import { partitionFor } from "../partitioner.ts";
import { PositionTracker } from "../positions.ts";
import type { Bus, ConsumeOptions, Consumer, OutgoingRecord, PartitionLag, PartitionOffset, ProducedRecord, TopicPartition, TopicSpec } from "../types.ts";
import { OffsetStore } from "./offset-store.ts";
import { PartitionLog } from "./partition-log.ts";

export interface EmbeddedBusOptions {
  /** Directory holding topics and committed group positions. */
  dir: string;
  logger: Logger;
}

const TOPIC_NAME = /^[A-Za-z0-9._-]{1,200}$/;
const IDLE_POLL_MS = 250;

interface Member {
  id: number;
  options: ConsumeOptions;
  assigned: TopicPartition[];
  positions: PartitionOffset[];
  /** Batches and rebalances of one member run one after the other on this chain. */
  lane: Promise<void>;
  stopped: boolean;
}

function sameTp(a: TopicPartition, b: TopicPartition) {
  return a.topic === b.topic && a.partition === b.partition;
}

/** Only one process may own a data directory's bus: a second would corrupt the logs. */
async function takeLock(dir: string) {
  const lockPath = join(dir, "LOCK");
  const holder = Number(await readFile(lockPath, "utf8").catch(() => "0"));
  if (holder > 0 && holder !== process.pid) {
    let alive = true;
    try {
      process.kill(holder, 0);
    } catch {
      alive = false;
    }
    if (alive) throw new BusUnavailableError(`the embedded bus in ${dir} is in use by process ${holder}`, { retriable: false });
  }
  await writeFile(lockPath, String(process.pid));
  return lockPath;
}

export async function createEmbeddedBus(options: EmbeddedBusOptions): Promise<Bus> {
  const logger = options.logger.child({ component: "bus.embedded" });
  const topicsDir = join(options.dir, "topics");
  await mkdir(topicsDir, { recursive: true });
  const lockPath = await takeLock(options.dir);
  const offsets = await OffsetStore.open(join(options.dir, "groups"));
  const topics = new Map<string, PartitionLog[]>();
  for (const name of await readdir(topicsDir)) {
    const meta = JSON.parse(await readFile(join(topicsDir, name, "topic.json"), "utf8")) as { partitions: number };
    const logs: PartitionLog[] = [];
    for (let p = 0; p < meta.partitions; p++) logs.push(await PartitionLog.open(join(topicsDir, name, `${p}.log`), logger));
    topics.set(name, logs);
  }

  let closed = false;
  const logsOf = (topic: string) => {
    const logs = topics.get(topic);
    if (!logs) throw new BusRequestError(`topic ${topic} does not exist`);
    return logs;
  };
  const ensureOpen = () => {
    if (closed) throw new BusUnavailableError("the embedded bus is closed", { retriable: false });
  };

  // ---- group commit: produces staged while a flush runs go out together in the next one
  /** Resolves with the first offset each flushed log gave its staged records. */
  let cycle = Promise.withResolvers<Map<PartitionLog, number>>();
  let flushing: Promise<void> | undefined;
  let dataArrived = Promise.withResolvers<void>();
  const dirty = new Set<PartitionLog>();

  const flushAll = async () => {
    while (dirty.size > 0) {
      const done = cycle;
      cycle = Promise.withResolvers<Map<PartitionLog, number>>();
      const logs = [...dirty];
      dirty.clear();
      const results = await Promise.allSettled(logs.map(async (log) => [log, await log.flush()] as const));
      const failure = results.find((r) => r.status === "rejected");
      if (failure) done.reject(new BusUnavailableError(`embedded bus write failed: ${String(failure.reason)}`, { cause: failure.reason }));
      else done.resolve(new Map(results.flatMap((r) => (r.status === "fulfilled" ? [r.value] : []))));
      dataArrived.resolve();
      dataArrived = Promise.withResolvers<void>();
    }
    flushing = undefined;
  };

  // ---- consumer groups
  const groups = new Map<string, Member[]>();
  const consumers = new Set<Consumer>();
  let nextMemberId = 1;

  const startPosition = (group: string, tp: TopicPartition, start: "earliest" | "latest") => {
    const committed = offsets.get(group, tp.topic, tp.partition);
    if (committed !== null) return committed;
    return start === "latest" ? logsOf(tp.topic)[tp.partition]?.end() ?? 0 : 0;
  };

  /** Spreads the partitions of the group's topics over its members, round-robin by member id. */
  const rebalance = (group: string) => {
    const members = (groups.get(group) ?? []).filter((m) => !m.stopped).sort((a, b) => a.id - b.id);
    const owners = new Map<Member, TopicPartition[]>(members.map((m) => [m, []]));
    const allTopics = [...new Set(members.flatMap((m) => m.options.topics))].sort();
    for (const topic of allTopics) {
      const subscribers = members.filter((m) => m.options.topics.includes(topic));
      logsOf(topic).forEach((_, partition) => owners.get(subscribers[partition % subscribers.length] as Member)?.push({ topic, partition }));
    }
    for (const member of members) {
      const next = owners.get(member) ?? [];
      member.lane = member.lane.then(async () => {
        const revoked = member.assigned.filter((a) => !next.some((n) => sameTp(a, n)));
        member.assigned = next;
        if (revoked.length > 0) await member.options.onRevoke?.(revoked);
        const chosen = (await member.options.onAssign?.(next)) ?? [];
        member.positions = next.map((tp) => chosen.find((c) => sameTp(c, tp)) ?? { ...tp, offset: startPosition(group, tp, member.options.start ?? "earliest") });
      });
    }
  };

  /** Delivers at most one batch per assigned partition; true when anything was delivered. */
  const deliverOnce = async (member: Member, tracker: PositionTracker): Promise<boolean> => {
    let delivered = false;
    for (const position of member.positions) {
      if (member.stopped) break;
      const from = tracker.get(position.topic, position.partition) ?? position.offset;
      tracker.advance(position.topic, position.partition, from);
      const log = logsOf(position.topic)[position.partition];
      if (!log || from >= log.end()) continue;
      const read = await log.read(from, member.options.maxBatchRecords ?? 1_000);
      const records = read.map(({ offset, record }) => ({ topic: position.topic, partition: position.partition, offset, ...record }));
      await member.options.onBatch({ topic: position.topic, partition: position.partition, records });
      // A seek during the batch wins over moving past it.
      if (tracker.get(position.topic, position.partition) === from) tracker.advance(position.topic, position.partition, from + records.length);
      delivered = true;
    }
    return delivered;
  };

  const runMember = async (member: Member, tracker: PositionTracker, stopSignal: Promise<void>) => {
    let failures = 0;
    while (!member.stopped) {
      let delivered = false;
      try {
        const turn = member.lane.then(() => deliverOnce(member, tracker));
        member.lane = turn.then(() => undefined, () => undefined);
        delivered = await turn;
        failures = 0;
      } catch (error) {
        failures++;
        const delayMs = backoffDelay(Math.min(failures, 8), { initialDelayMs: 100, maxDelayMs: 5_000 });
        logger.error("batch handler failed; the batch will be delivered again", { group: member.options.group, attempt: failures, delay_ms: delayMs, error });
        await Promise.race([Bun.sleep(delayMs), stopSignal]);
        continue;
      }
      if (!delivered) await Promise.race([dataArrived.promise, Bun.sleep(IDLE_POLL_MS), stopSignal]);
    }
  };

  return {
    kind: "embedded",

    async ensureTopics(specs: TopicSpec[]) {
      ensureOpen();
      for (const spec of specs) {
        if (!TOPIC_NAME.test(spec.name)) throw new BusRequestError(`invalid topic name "${spec.name}" (1–200 of [A-Za-z0-9._-])`);
        if (!Number.isInteger(spec.partitions) || spec.partitions < 1) throw new BusRequestError(`topic ${spec.name}: partitions must be a positive integer`);
        if (topics.has(spec.name)) continue;
        const dir = join(topicsDir, spec.name);
        await mkdir(dir, { recursive: true });
        const logs: PartitionLog[] = [];
        for (let p = 0; p < spec.partitions; p++) logs.push(await PartitionLog.open(join(dir, `${p}.log`), logger));
        await writeFile(join(dir, "topic.json"), JSON.stringify({ partitions: spec.partitions }));
        topics.set(spec.name, logs);
      }
    },

    async produce(topic: string, records: OutgoingRecord[]): Promise<ProducedRecord[]> {
      ensureOpen();
      const logs = logsOf(topic);
      if (records.length === 0) return [];
      const now = Date.now();
      const staged = records.map((r) => {
        const partition = partitionFor(r.key, logs.length);
        const log = logs[partition] as PartitionLog;
        dirty.add(log);
        return { partition, log, index: log.stage({ key: r.key, value: r.value, headers: r.headers ?? {}, timestamp: r.timestamp ?? now }) };
      });
      const durable = cycle.promise;
      flushing ??= Promise.resolve().then(flushAll);
      const firstOffsets = await durable;
      return staged.map(({ partition, log, index }) => ({ partition, offset: (firstOffsets.get(log) ?? 0) + index }));
    },

    async consume(consumeOptions: ConsumeOptions): Promise<Consumer> {
      ensureOpen();
      for (const topic of consumeOptions.topics) logsOf(topic);
      const member: Member = { id: nextMemberId++, options: consumeOptions, assigned: [], positions: [], lane: Promise.resolve(), stopped: false };
      const tracker = new PositionTracker();
      const stop = Promise.withResolvers<void>();
      const members = groups.get(consumeOptions.group) ?? [];
      members.push(member);
      groups.set(consumeOptions.group, members);
      rebalance(consumeOptions.group);
      await member.lane;
      const running = runMember(member, tracker, stop.promise);

      const consumer: Consumer = {
        commit: (positions) => offsets.commit(consumeOptions.group, positions),
        seek(position) {
          if (!member.assigned.some((a) => sameTp(a, position))) throw new BusRequestError(`seek: ${position.topic}/${position.partition} is not assigned to this consumer`);
          tracker.set(position);
        },
        assignment: () => [...member.assigned],
        async stop() {
          if (member.stopped) return;
          member.stopped = true;
          stop.resolve();
          await running;
          await member.lane;
          const rest = (groups.get(consumeOptions.group) ?? []).filter((m) => m !== member);
          groups.set(consumeOptions.group, rest);
          if (member.assigned.length > 0) await consumeOptions.onRevoke?.(member.assigned);
          if (rest.length > 0) rebalance(consumeOptions.group);
          consumers.delete(consumer);
        },
      };
      consumers.add(consumer);
      return consumer;
    },

    async partitions(topic: string) {
      return logsOf(topic).map((_, i) => i);
    },

    async endOffsets(topic: string) {
      return logsOf(topic).map((log, partition) => ({ topic, partition, offset: log.end() }));
    },

    async lag(group: string, topic: string): Promise<PartitionLag[]> {
      return logsOf(topic).map((log, partition) => {
        const committed = offsets.get(group, topic, partition);
        return { topic, partition, committed, end: log.end(), lag: log.end() - (committed ?? 0) };
      });
    },

    async ping() {
      ensureOpen();
    },

    async close() {
      if (closed) return;
      await Promise.all([...consumers].map((c) => c.stop()));
      closed = true;
      await flushing;
      await offsets.flush();
      await Promise.all([...topics.values()].flat().map((log) => log.close()));
      await rm(lockPath, { force: true });
    },
  };
}
