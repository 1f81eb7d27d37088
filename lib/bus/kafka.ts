import { KafkaJSError, KafkaJSProtocolError, type Admin, type EachBatchHandler } from "kafkajs";
import { BusRequestError, BusUnavailableError } from "../errors.ts";
import type { Logger } from "../log.ts";
import { createKafkaClient } from "./kafka-client.ts";
import { startProducerThread } from "./kafka-producer-client.ts";
import { backoffDelay } from "../retry.ts";
import { runAssignmentHandler } from "./assign-retry.ts";
import { partitionFor } from "./partitioner.ts";
import { PositionTracker } from "./positions.ts";
import type { Batch, Bus, ConsumeOptions, Consumer, DeliveredRecord, OutgoingRecord, PartitionLag, PartitionOffset, ProducedRecord, TopicPartition, TopicSpec } from "./types.ts";

export interface KafkaBusOptions {
  brokers: string[];
  clientId?: string;
  logger: Logger;
  /** A produce that has not been acknowledged after this long fails with BusUnavailableError. */
  produceTimeoutMs?: number;
}


/** kafkajs marks each error retriable or not; keep that in our own hierarchy. */
function toBusError(error: unknown, what: string): Error {
  if (error instanceof BusUnavailableError || error instanceof BusRequestError) return error;
  const message = error instanceof Error ? error.message : String(error);
  return new BusUnavailableError(`${what}: ${message}`, { cause: error });
}

/**
 * kafkajs gives a consumer up for good when eachBatch throws an error marked not retriable (a
 * DeltaConflictError from a checkpoint, say). A batch handler's failure is wrapped as retriable instead, so
 * the batch is delivered again after a backoff (past kafkajs's retries, after a restart of the consumer).
 * kafkajs's own errors pass as they are: it rejoins at once on a rebalance.
 */
function retriedByKafkajs(error: unknown, what: string): unknown {
  if (error instanceof KafkaJSProtocolError || (error instanceof KafkaJSError && error.retriable)) return error;
  return new BusUnavailableError(`${what}: ${error instanceof Error ? error.message : String(error)}`, { cause: error, retriable: true });
}

/**
 * Kafka's time-based retention goes by record timestamps (a segment goes once its newest timestamp is older
 * than retention.ms, the active one included), and a record's timestamp here is the caller's: an event's
 * time. A produce of records whose timestamps all lie more than the retention in the past (a device sending
 * what it buffered for days, events.late) was deleted at the broker's next retention check, every 5 min,
 * whether a group had read it or not: a consumer then met OFFSET_OUT_OF_RANGE and kafkajs reset it to the
 * new log start, past them. A record whose timestamp is further than this from the produce time is stamped
 * with the produce time (retention runs on append time, as on the embedded bus) and carries its own in
 * TIMESTAMP_HEADER, which the consumer hands back as the record's timestamp. Live records (most) stay as they are.
 */
const TIMESTAMP_TOLERANCE_MS = 60_000;
const TIMESTAMP_HEADER = "devpipe-timestamp";

/** `records` with each far-off timestamp moved to TIMESTAMP_HEADER (a copy only when one is). */
export function stampedForRetention(records: OutgoingRecord[], now: number): OutgoingRecord[] {
  let stamped: OutgoingRecord[] | undefined;
  for (let i = 0; i < records.length; i++) {
    const record = records[i] as OutgoingRecord;
    if (record.timestamp === undefined || Math.abs(record.timestamp - now) <= TIMESTAMP_TOLERANCE_MS) continue;
    stamped ??= records.slice();
    stamped[i] = { ...record, timestamp: now, headers: { ...record.headers, [TIMESTAMP_HEADER]: String(record.timestamp) } };
  }
  return stamped ?? records;
}

/** A record's headers as strings (the first value of a repeated header), in a loop: this runs per record. */
function headersOf(headers: Record<string, Buffer | string | (Buffer | string)[] | undefined> | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  if (!headers) return out;
  for (const key in headers) {
    const value = headers[key];
    out[key] = Array.isArray(value) ? String(value[0] ?? "") : String(value ?? "");
  }
  return out;
}

/**
 * Bytes of record values per partition in one produce request: the broker refuses a partition's batch
 * over message.max.bytes (1 MiB by default). A request carries a batch for each partition it touches.
 */
const MAX_PARTITION_BATCH_BYTES = 768 * 1024;
/** Bytes per produce request overall, well under the broker's socket.request.max.bytes (100 MiB). */
const MAX_REQUEST_BYTES = 8 * 1024 * 1024;

/**
 * [from, to) index ranges of `records` for one request each: no partition gets more than `partitionLimit`
 * bytes and no request more than `requestLimit` (every range holds at least one record). Ranges keep
 * the records' order, so sending them one after another keeps each partition's order.
 */
export function byteChunks(records: OutgoingRecord[], partitions: number[], partitionLimit: number, requestLimit = MAX_REQUEST_BYTES): [number, number][] {
  const chunks: [number, number][] = [];
  let from = 0;
  let total = 0;
  let perPartition = new Map<number, number>();
  records.forEach((record, i) => {
    const size = record.value.byteLength + record.key.length + 64;
    const partition = partitions[i] ?? 0;
    const inPartition = perPartition.get(partition) ?? 0;
    if (i > from && (inPartition + size > partitionLimit || total + size > requestLimit)) {
      chunks.push([from, i]);
      from = i;
      total = 0;
      perPartition = new Map();
    }
    total += size;
    perPartition.set(partition, (perPartition.get(partition) ?? 0) + size);
  });
  if (from < records.length) chunks.push([from, records.length]);
  return chunks;
}

/**
 * Admin reads right after topics are created can meet a broker whose metadata has not caught up
 * (NOT_LEADER_FOR_PARTITION, LEADER_NOT_AVAILABLE). kafkajs marks those retriable but its admin does
 * not retry them here, so these reads are retried a few times with jittered backoff.
 */
async function retriedRead<T>(read: () => Promise<T>): Promise<T> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await read();
    } catch (error) {
      const unknownTopic = error instanceof KafkaJSProtocolError && error.type === "UNKNOWN_TOPIC_OR_PARTITION";
      if (!(error instanceof KafkaJSError && error.retriable) || unknownTopic || attempt >= 5) throw error;
      await Bun.sleep(backoffDelay(attempt, { initialDelayMs: 100, maxDelayMs: 2_000 }));
    }
  }
}

/**
 * Waits until every partition of `topics` has a leader. A broker that has just started, or topics just
 * created, can answer metadata requests with "does not host this topic-partition" for a moment.
 */
async function leadersElected(client: Admin, topics: string[], timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (let attempt = 0; ; attempt++) {
    const metadata = await client.fetchTopicMetadata({ topics }).catch(() => undefined);
    const ready = metadata?.topics.length === topics.length && metadata.topics.every((t) => t.partitions.length > 0 && t.partitions.every((p) => p.leader >= 0));
    if (ready) return;
    if (Date.now() > deadline) throw new BusUnavailableError(`topics ${topics.join(", ")} have no leader after ${timeoutMs} ms`);
    await Bun.sleep(backoffDelay(attempt, { initialDelayMs: 50, maxDelayMs: 1_000 }) + 20);
  }
}

function withDeadline<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: Timer | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new BusUnavailableError(`${what}: no answer from Kafka within ${ms} ms`)), ms);
  });
  return Promise.race([promise, deadline]).finally(() => clearTimeout(timer));
}

export function createKafkaBus(options: KafkaBusOptions): Bus {
  if (options.brokers.length === 0) throw new BusRequestError("createKafkaBus: at least one broker is required");
  const logger = options.logger.child({ component: "bus.kafka" });
  const produceTimeoutMs = options.produceTimeoutMs ?? 10_000;
  const kafka = createKafkaClient({ brokers: options.brokers, clientId: options.clientId ?? "devpipe", log: (level, message, fields) => logger[level](message, fields) });

  const partitionCounts = new Map<string, number>();
  /** Each open consumer's stop: disconnects it and cancels a pending restart. */
  const consumers = new Set<() => Promise<void>>();

  /** Connects once, however many callers ask at the same time; a failed connect is tried again next call. */
  const connectOnce = <T extends { connect(): Promise<void> }>(create: () => T) => {
    let connecting: Promise<T> | undefined;
    const get = () => {
      connecting ??= (async () => {
        const client = create();
        await client.connect();
        return client;
      })().catch((error: unknown) => {
        connecting = undefined;
        throw error;
      });
      return connecting;
    };
    const current = () => connecting;
    const reset = () => {
      connecting = undefined;
    };
    return { get, current, reset };
  };

  const admin = connectOnce<Admin>(() => kafka.admin());
  // kafkajs encodes records in JS at several microseconds each: that work runs on its own thread so it
  // does not compete with the caller's (the gateway's HTTP and validation).
  let producer: ReturnType<typeof startProducerThread> | undefined;
  const producerThread = () => {
    producer ??= startProducerThread({ brokers: options.brokers, clientId: options.clientId ?? "devpipe", logger });
    return producer;
  };
  const getAdmin = admin.get;

  const partitionCount = async (topic: string) => {
    const known = partitionCounts.get(topic);
    if (known !== undefined) return known;
    const client = await getAdmin();
    const metadata = await retriedRead(() => client.fetchTopicMetadata({ topics: [topic] })).catch((error: unknown) => {
      if (error instanceof KafkaJSProtocolError && error.type === "UNKNOWN_TOPIC_OR_PARTITION") throw new BusRequestError(`topic ${topic} does not exist`, { cause: error });
      throw error;
    });
    const count = metadata.topics[0]?.partitions.length ?? 0;
    if (count === 0) throw new BusRequestError(`topic ${topic} does not exist`);
    partitionCounts.set(topic, count);
    return count;
  };

  const endOffsets = async (topic: string): Promise<PartitionOffset[]> => {
    try {
      const offsets = await retriedRead(async () => (await getAdmin()).fetchTopicOffsets(topic));
      return offsets.map((o) => ({ topic, partition: o.partition, offset: Number(o.high) })).sort((a, b) => a.partition - b.partition);
    } catch (error) {
      throw toBusError(error, `end offsets of ${topic}`);
    }
  };

  return {
    kind: "kafka",

    async ensureTopics(topics: TopicSpec[]) {
      try {
        const client = await getAdmin();
        const existing = new Set(await retriedRead(() => client.listTopics()));
        const missing = topics.filter((t) => !existing.has(t.name));
        if (missing.length === 0) return;
        await client
          .createTopics({ waitForLeaders: false, topics: missing.map((t) => ({ topic: t.name, numPartitions: t.partitions, replicationFactor: 1 })) })
          .catch((error: unknown) => {
            // Another process may have created them in between: that is the outcome we wanted.
            if (!(error instanceof KafkaJSError && /already exists/i.test(error.message))) throw error;
          });
        await leadersElected(client, missing.map((t) => t.name));
        logger.info("topics created", { topics: missing.map((t) => t.name) });
      } catch (error) {
        throw toBusError(error, "create topics");
      }
    },

    async produce(topic: string, records: OutgoingRecord[]): Promise<ProducedRecord[]> {
      if (records.length === 0) return [];
      const deadline = Date.now() + produceTimeoutMs;
      const stamped = stampedForRetention(records, Date.now());
      const send = async () => {
        const count = await partitionCount(topic);
        const partitions = records.map((r) => partitionFor(r.key, count));
        const produced: ProducedRecord[] = [];
        // Every chunk is handed to the producer thread at once: it sends them in order, merged as they fit.
        const chunks = byteChunks(stamped, partitions, MAX_PARTITION_BATCH_BYTES).map(([from, to]) => {
          const chunkPartitions = partitions.slice(from, to);
          const acknowledged = producerThread().send(topic, stamped.slice(from, to), chunkPartitions, deadline);
          // A later chunk's failure is reported by the first one awaited that fails; none goes unhandled.
          acknowledged.catch(() => undefined);
          return { chunkPartitions, acknowledged };
        });
        for (const { chunkPartitions, acknowledged } of chunks) {
          const baseOffsets = await acknowledged;
          // One entry per partition with the base offset; records keep their order within a partition.
          const nextOffset = new Map(baseOffsets);
          for (const partition of chunkPartitions) {
            const offset = nextOffset.get(partition);
            if (offset === undefined) throw new BusUnavailableError(`produce to ${topic}: no acknowledgement for partition ${partition}`);
            nextOffset.set(partition, offset + 1);
            produced.push({ partition, offset });
          }
        }
        return produced;
      };
      try {
        return await withDeadline(send(), produceTimeoutMs, `produce to ${topic}`);
      } catch (error) {
        throw toBusError(error, `produce to ${topic}`);
      }
    },

    async consume(opts: ConsumeOptions): Promise<Consumer> {
      const consumer = kafka.consumer({
        groupId: opts.group,
        allowAutoTopicCreation: false,
        sessionTimeout: 10_000,
        rebalanceTimeout: 20_000,
        heartbeatInterval: 1_000,
        maxWaitTimeInMs: 100,
        maxBytesPerPartition: 4 * 1024 * 1024,
      });
      const positions = new PositionTracker();
      let assigned: TopicPartition[] = [];
      let stopped = false;
      // Delivery of a partition waits until onAssign has settled where it starts.
      let assignmentReady: Promise<void> = Promise.resolve();
      let generation = 0;
      let crashes = 0;
      let restartTimer: ReturnType<typeof setTimeout> | undefined;
      let assignmentsQueued = 0;
      /** A failed revoke (its last checkpoint) leaves the results to the new owner; what follows goes on. */
      const revoke = async (lost: TopicPartition[]) => {
        for (const tp of lost) positions.forget(tp);
        if (lost.length > 0) await opts.onRevoke?.(lost).catch((error: unknown) => logger.warn("revoke handler failed; what it had not committed is read again by the new owner", { group: opts.group, error }));
      };
      /** Runs `work` after the assignment work queued before it, whether that failed or not. */
      const queueAssignmentWork = (work: () => Promise<void>) => {
        assignmentsQueued++;
        assignmentReady = assignmentReady
          .catch(() => undefined)
          .then(work)
          .finally(() => {
            assignmentsQueued--;
          });
      };

      consumer.on(consumer.events.GROUP_JOIN, (event) => {
        const next = Object.entries(event.payload.memberAssignment).flatMap(([topic, parts]) => parts.map((partition) => ({ topic, partition })));
        const revoked = assigned.filter((a) => !next.some((n) => n.topic === a.topic && n.partition === a.partition));
        assigned = next;
        const joined = ++generation;
        crashes = 0;
        // One handler at a time, in join order: a slow onAssign must not seek after a later join's did.
        queueAssignmentWork(async () => {
          await revoke(revoked);
          // Retried here, with eachBatch waiting (and heartbeating): a failure handed to kafkajs would only come
          // back after its retries and a restart of the consumer, if at all.
          const current = () => joined === generation && !stopped;
          const starts = await runAssignmentHandler(async () => (await opts.onAssign?.(next)) ?? [], { current, logger, group: opts.group });
          // A later join (or a crash) runs its own onAssign and seeks; these positions are stale.
          if (starts === undefined || !current()) return;
          for (const start of starts) {
            positions.set(start);
            consumer.seek({ topic: start.topic, partition: start.partition, offset: String(start.offset) });
          }
        });
      });

      /** Waits for the assignment handlers, heartbeating meanwhile: a revoke checkpoint and onAssign may outlast the session timeout. */
      const assignmentSettled = async (heartbeat: () => Promise<void>) => {
        if (assignmentsQueued === 0) return assignmentReady;
        const ready = assignmentReady.then(() => true);
        while (!(await Promise.race([ready, Bun.sleep(1_000).then(() => false)]))) await heartbeat();
      };

      const eachBatch: EachBatchHandler = async ({ batch, resolveOffset, heartbeat, isRunning, isStale }) => {
        await assignmentSettled(heartbeat);
        const records: DeliveredRecord[] = [];
        for (const message of batch.messages) {
          const offset = Number(message.offset);
          if (!positions.accepts(batch.topic, batch.partition, offset)) continue;
          const headers = headersOf(message.headers);
          const carried = headers[TIMESTAMP_HEADER];
          if (carried !== undefined) delete headers[TIMESTAMP_HEADER];
          records.push({
            topic: batch.topic,
            partition: batch.partition,
            offset,
            key: message.key?.toString("utf8") ?? "",
            value: message.value ? new Uint8Array(message.value.buffer, message.value.byteOffset, message.value.byteLength) : new Uint8Array(0),
            headers,
            timestamp: carried === undefined ? Number(message.timestamp) : Number(carried),
          });
        }
        for (let i = 0; i < records.length && isRunning() && !isStale(); i += maxBatch) {
          const slice: Batch = { topic: batch.topic, partition: batch.partition, records: records.slice(i, i + maxBatch) };
          const expected = positions.get(batch.topic, batch.partition);
          await opts.onBatch(slice);
          // A seek during delivery (a fenced checkpoint) moved the position: the rest of this fetch is stale,
          // and advancing past it would skip what the seek asked for again.
          if (positions.get(batch.topic, batch.partition) !== expected) break;
          const last = slice.records[slice.records.length - 1];
          if (last) {
            positions.advance(batch.topic, batch.partition, last.offset + 1);
            resolveOffset(String(last.offset));
          }
          await heartbeat();
        }
        if (records.length === 0 && batch.messages.length > 0 && !isStale()) resolveOffset(batch.lastOffset());
      };
      const maxBatch = opts.maxBatchRecords ?? 1_000;
      const run = () =>
        consumer.run({
          autoCommit: false,
          eachBatchAutoResolve: false,
          partitionsConsumedConcurrently: 1,
          eachBatch: (payload) => eachBatch(payload).catch((error: unknown) => Promise.reject(retriedByKafkajs(error, `deliver ${payload.batch.topic}/${payload.batch.partition} to ${opts.group}`))),
        });

      // After a crash kafkajs has left the group: whatever it owned may have gone to another member meanwhile,
      // so it is revoked (the next join assigns afresh). A crash kafkajs will not restart itself (an error it
      // deems fatal) is restarted here: otherwise a live worker would go on reading nothing.
      consumer.on(consumer.events.CRASH, (event) => {
        const lost = assigned;
        assigned = [];
        generation++;
        queueAssignmentWork(() => revoke(lost));
        if (event.payload.restart || stopped) return;
        const delayMs = backoffDelay(crashes++, { initialDelayMs: 1_000, maxDelayMs: 30_000 });
        logger.error("consumer crashed; starting it again", { group: opts.group, error: event.payload.error, in_ms: delayMs });
        restartTimer = setTimeout(() => {
          consumer
            .connect()
            .then(() => (stopped ? undefined : run()))
            .catch((error: unknown) => logger.error("restarting the consumer failed", { group: opts.group, error }));
        }, delayMs);
      });
      const stop = async () => {
        stopped = true;
        clearTimeout(restartTimer);
        consumers.delete(stop);
        await consumer.disconnect();
      };

      try {
        await consumer.connect();
        for (const topic of opts.topics) await consumer.subscribe({ topic, fromBeginning: (opts.start ?? "earliest") === "earliest" });
        await run();
        consumers.add(stop);
      } catch (error) {
        await stop().catch(() => undefined);
        throw toBusError(error, `consume ${opts.topics.join(",")} as ${opts.group}`);
      }

      return {
        async commit(toCommit: PartitionOffset[]) {
          if (toCommit.length === 0) return;
          try {
            await consumer.commitOffsets(toCommit.map((p) => ({ topic: p.topic, partition: p.partition, offset: String(p.offset) })));
          } catch (error) {
            throw toBusError(error, `commit for ${opts.group}`);
          }
        },
        seek(position: PartitionOffset) {
          positions.set(position);
          consumer.seek({ topic: position.topic, partition: position.partition, offset: String(position.offset) });
        },
        assignment: () => [...assigned],
        stop,
      };
    },

    async partitions(topic: string) {
      try {
        const count = await partitionCount(topic);
        return Array.from({ length: count }, (_, i) => i);
      } catch (error) {
        throw toBusError(error, `partitions of ${topic}`);
      }
    },

    endOffsets,

    async lag(group: string, topic: string): Promise<PartitionLag[]> {
      try {
        const ends = await endOffsets(topic);
        const [committed] = await retriedRead(async () => (await getAdmin()).fetchOffsets({ groupId: group, topics: [topic] }));
        return ends.map((end) => {
          const raw = committed?.partitions.find((p) => p.partition === end.partition)?.offset;
          const position = raw === undefined || raw === "-1" ? null : Number(raw);
          return { topic, partition: end.partition, committed: position, end: end.offset, lag: end.offset - (position ?? 0) };
        });
      } catch (error) {
        throw toBusError(error, `lag of ${group} on ${topic}`);
      }
    },

    async ping() {
      try {
        await withDeadline((await withDeadline(getAdmin(), 5_000, "connect to Kafka")).describeCluster(), 5_000, "describe cluster");
      } catch (error) {
        throw toBusError(error, "ping");
      }
    },

    /** Kafka keeps and reports its own retention (log.retention.*); the gateway's bus view has nothing to add. */
    async storage() {
      return [];
    },

    async close() {
      await Promise.allSettled([...consumers].map((stop) => stop()));
      consumers.clear();
      await producer?.close().catch(() => undefined);
      producer = undefined;
      const client = await admin.current()?.catch(() => undefined);
      await client?.disconnect().catch(() => undefined);
      admin.reset();
    },
  };
}
