import { mkdir, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { BusRequestError, BusUnavailableError } from "../../errors.ts";
import type { Logger } from "../../log.ts";
import { backoffDelay } from "../../retry.ts";
import { runAssignmentHandler } from "../assign-retry.ts";
import { partitionFor } from "../partitioner.ts";
import { PositionTracker } from "../positions.ts";
import type { Bus, ConsumeOptions, Consumer, OutgoingRecord, PartitionLag, PartitionOffset, ProducedRecord, TopicPartition, TopicSpec, TopicStorage } from "../types.ts";
import { OffsetStore } from "./offset-store.ts";
import { PartitionLog } from "./partition-log.ts";
import { assessBlock, DEFAULT_RETENTION, enforceRetention, type Protector, type RetentionContext, type RetentionSettings } from "./retention.ts";

export interface EmbeddedBusOptions {
  /** Directory holding topics and committed group positions. */
  dir: string;
  logger: Logger;
  /** Segments and retention; each setting defaults to the configuration's default (see retention.ts). */
  retention?: Partial<RetentionSettings>;
  /** How often retention runs besides when a produce finds a topic over its cap. Default: 15 s. */
  retentionCheckMs?: number;
  /** The wall clock (tests move it). */
  clock?: () => number;
}

export type { RetentionSettings } from "./retention.ts";

const TOPIC_NAME = /^[A-Za-z0-9._-]{1,200}$/;
const IDLE_POLL_MS = 250;
const RETENTION_CHECK_MS = 15_000;

interface Member {
  id: number;
  options: ConsumeOptions;
  assigned: TopicPartition[];
  positions: PartitionOffset[];
  /** Batches and rebalances of one member run one after the other on this chain. */
  lane: Promise<void>;
  /** Counts the rebalances given to the member: an onAssign failing for an older one stops being retried. */
  rebalances: number;
  stopped: boolean;
  /** Ends the member's current wait (set while it waits). */
  wake?: () => void;
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
  const settings: RetentionSettings = { ...DEFAULT_RETENTION, ...options.retention };
  const clock = options.clock ?? Date.now;
  const topicsDir = join(options.dir, "topics");
  await mkdir(topicsDir, { recursive: true });
  const lockPath = await takeLock(options.dir);
  const offsets = await OffsetStore.open(join(options.dir, "groups"), clock);
  const topics = new Map<string, PartitionLog[]>();
  /** Partition p of a topic is the directory `<topic>/<p>/`; a `<topic>/<p>.log` of the single-file layout is adopted. */
  const openPartition = (topicDir: string, p: number) =>
    PartitionLog.open(join(topicDir, String(p)), logger, { segmentBytes: settings.segmentBytes, segmentMs: settings.segmentMs, clock, legacyFile: join(topicDir, `${p}.log`) });
  const openedLogs: PartitionLog[] = [];
  try {
    for (const name of await readdir(topicsDir)) {
      const meta = JSON.parse(await readFile(join(topicsDir, name, "topic.json"), "utf8")) as { partitions: number };
      // Partitions open side by side: each scans only its active segment.
      const opening = await Promise.allSettled(Array.from({ length: meta.partitions }, (_, p) => openPartition(join(topicsDir, name), p)));
      const logs = opening.flatMap((o) => (o.status === "fulfilled" ? [o.value] : []));
      openedLogs.push(...logs);
      const failed = opening.find((o) => o.status === "rejected");
      if (failed) throw failed.reason;
      topics.set(name, logs);
    }
  } catch (error) {
    await Promise.allSettled(openedLogs.map((log) => log.close()));
    await rm(lockPath, { force: true });
    throw error;
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
  /** Members waiting for the next flush. */
  const waitingForData = new Set<() => void>();
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
      for (const wake of [...waitingForData]) wake();
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
    const log = logsOf(tp.topic)[tp.partition];
    return start === "latest" ? (log?.end() ?? 0) : (log?.start() ?? 0);
  };

  // ---- retention: whole old segments go, never one a protecting group still needs
  /**
   * The groups whose positions keep a partition's records: those with a live member here subscribed to
   * the topic (no committed position: they need everything), and those whose last commit on the topic is
   * within groupRetentionMs (Kafka's offsets.retention.minutes).
   */
  const protectors = (topic: string, partition: number): Protector[] => {
    const found = new Map<string, Protector>();
    for (const [group, members] of groups) {
      if (members.some((m) => !m.stopped && m.options.topics.includes(topic))) found.set(group, { group, committed: offsets.get(group, topic, partition), member: true });
    }
    const horizon = clock() - settings.groupRetentionMs;
    for (const group of offsets.groupsOn(topic)) {
      if (found.has(group) || (offsets.lastCommit(group, topic) ?? Number.NEGATIVE_INFINITY) < horizon) continue;
      found.set(group, { group, committed: offsets.get(group, topic, partition), member: false });
    }
    return [...found.values()];
  };
  const retentionContext: RetentionContext = { settings, clock, protectors, logger };
  /** One retention pass per topic at a time; produces over the cap wait for the pass in flight. */
  const retentionRuns = new Map<string, Promise<void>>();
  const runRetention = (topic: string): Promise<void> => {
    const previous = retentionRuns.get(topic) ?? Promise.resolve();
    const run = previous.then(async () => {
      const logs = topics.get(topic);
      if (!logs || closed) return;
      await enforceRetention(topic, logs, retentionContext);
    });
    const settled = run.catch((error: unknown) => logger.error("bus retention failed", { topic, error }));
    retentionRuns.set(topic, settled);
    return run;
  };
  const blockedTopics = new Set<string>();
  const retentionTimer = setInterval(() => {
    for (const topic of topics.keys()) void runRetention(topic).catch(() => undefined);
  }, options.retentionCheckMs ?? RETENTION_CHECK_MS);
  retentionTimer.unref();

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
      const turn = ++member.rebalances;
      member.lane = member.lane.then(async () => {
        const revoked = member.assigned.filter((a) => !next.some((n) => sameTp(a, n)));
        member.assigned = next;
        if (revoked.length > 0) {
          // A failed revoke (its last checkpoint) leaves the results to the new owner; the assignment goes on.
          await member.options.onRevoke?.(revoked).catch((error: unknown) => logger.warn("revoke handler failed; what it had not committed is read again by the new owner", { group, error }));
        }
        // No record of the assignment is delivered before onAssign has said where each partition starts.
        const current = () => !member.stopped && member.rebalances === turn;
        const chosen = await runAssignmentHandler(async () => (await member.options.onAssign?.(next)) ?? [], { current, logger, group });
        if (chosen === undefined) return;
        member.positions = next.map((tp) => chosen.find((c) => sameTp(c, tp)) ?? { ...tp, offset: startPosition(group, tp, member.options.start ?? "earliest") });
      });
    }
  };

  /** Delivers at most one batch per assigned partition; true when anything was delivered. */
  const deliverOnce = async (member: Member, tracker: PositionTracker): Promise<boolean> => {
    let delivered = false;
    for (const position of member.positions) {
      if (member.stopped) break;
      let from = tracker.get(position.topic, position.partition) ?? position.offset;
      const log = logsOf(position.topic)[position.partition];
      if (log && from < log.start()) {
        // Its records were deleted by retention (the group was not protecting them): go on from the log start, as Kafka's auto.offset.reset=earliest.
        logger.warn("consumer position is below the log start offset; continuing from the log start", { group: member.options.group, topic: position.topic, partition: position.partition, position: from, log_start_offset: log.start() });
        from = log.start();
      }
      tracker.advance(position.topic, position.partition, from);
      if (!log || from >= log.end()) continue;
      const read = await log.read(from, member.options.maxBatchRecords ?? 1_000);
      if (read.length === 0) continue;
      const records = read.map(({ offset, record }) => ({ topic: position.topic, partition: position.partition, offset, ...record }));
      await member.options.onBatch({ topic: position.topic, partition: position.partition, records });
      // A seek during the batch wins over moving past it.
      if (tracker.get(position.topic, position.partition) === from) tracker.advance(position.topic, position.partition, (records[records.length - 1]?.offset ?? from) + 1);
      delivered = true;
    }
    return delivered;
  };

  /**
   * Resolves after `ms`, on the consumer's stop, or (with `untilData`) after the next flush. A wait leaves
   * nothing behind once it ends: racing a long-lived stop promise instead added a reaction to it on every
   * idle turn, ~80 a second at 4,000 events/s, never freed until the consumer stopped.
   */
  const wait = (member: Member, ms: number, untilData: boolean) =>
    new Promise<void>((resolve) => {
      if (member.stopped) return resolve();
      const wake = () => {
        clearTimeout(timer);
        waitingForData.delete(wake);
        member.wake = undefined;
        resolve();
      };
      const timer = setTimeout(wake, ms);
      member.wake = wake;
      if (untilData) waitingForData.add(wake);
    });

  const runMember = async (member: Member, tracker: PositionTracker) => {
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
        await wait(member, delayMs, false);
        continue;
      }
      if (!delivered) await wait(member, IDLE_POLL_MS, true);
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
        for (let p = 0; p < spec.partitions; p++) logs.push(await openPartition(dir, p));
        await writeFile(join(dir, "topic.json"), JSON.stringify({ partitions: spec.partitions }));
        topics.set(spec.name, logs);
      }
    },

    async produce(topic: string, records: OutgoingRecord[]): Promise<ProducedRecord[]> {
      ensureOpen();
      const logs = logsOf(topic);
      if (records.length === 0) return [];
      // Over the cap: make room first; if a lagging group holds the oldest segments, refuse rather than drop them.
      if (logs.reduce((sum, log) => sum + log.bytes(), 0) > settings.retentionBytes) {
        await runRetention(topic).catch(() => undefined);
        const block = assessBlock(topic, logs, retentionContext);
        if (block) {
          if (!blockedTopics.has(topic)) logger.warn("refusing produces: topic over its retention cap, held by a consumer group", { topic, group: block.group, partition: block.partition, offset: block.offset });
          blockedTopics.add(topic);
          throw new BusUnavailableError(block.reason, { retriable: true });
        }
      }
      if (blockedTopics.delete(topic)) logger.info("accepting produces again", { topic });
      const now = clock();
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
      const member: Member = { id: nextMemberId++, options: consumeOptions, assigned: [], positions: [], lane: Promise.resolve(), rebalances: 0, stopped: false };
      const tracker = new PositionTracker();
      const members = groups.get(consumeOptions.group) ?? [];
      members.push(member);
      groups.set(consumeOptions.group, members);
      rebalance(consumeOptions.group);
      await member.lane;
      const running = runMember(member, tracker);

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
          member.wake?.();
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
        return { topic, partition, committed, end: log.end(), lag: log.end() - Math.max(committed ?? 0, log.start()) };
      });
    },

    async ping() {
      ensureOpen();
    },

    async storage(): Promise<TopicStorage[]> {
      return [...topics].sort(([a], [b]) => a.localeCompare(b)).map(([topic, logs]) => {
        const partitions = logs.map((log, partition) => ({ partition, bytes: log.bytes(), segments: log.segmentCount(), startOffset: log.start(), endOffset: log.end() }));
        return {
          topic,
          bytes: partitions.reduce((sum, p) => sum + p.bytes, 0),
          segments: partitions.reduce((sum, p) => sum + p.segments, 0),
          partitions,
          retentionBytes: settings.retentionBytes,
          retentionMs: settings.retentionMs,
          blocked: assessBlock(topic, logs, retentionContext),
        };
      });
    },

    async close() {
      if (closed) return;
      await Promise.all([...consumers].map((c) => c.stop()));
      closed = true;
      clearInterval(retentionTimer);
      await Promise.allSettled(retentionRuns.values());
      await flushing;
      await offsets.flush();
      await Promise.all([...topics.values()].flat().map((log) => log.close()));
      await rm(lockPath, { force: true });
    },
  };
}
