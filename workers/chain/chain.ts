import type { Bus, Consumer, DeliveredRecord, PartitionOffset, TopicPartition } from "../../lib/bus/types.ts";
import { decodeTrustedEnvelope } from "../../lib/events/index.ts";
import type { Logger } from "../../lib/log.ts";
import { undecodableRecords } from "../../lib/metrics.ts";
import type { DimsCache } from "../enrich/dims-cache.ts";
import { enrich } from "../enrich/enrich.ts";
import type { Repeats } from "./repeats.ts";
import type { ChainBatch, ChainRecord } from "./types.ts";

/** What an operator's runner asks of its input: the shape of `Bus.consume`, fed by the chain. */
export interface OperatorSubscription {
  /** The operator's name, for logs. */
  name: string;
  /** Positions to resume each partition from (its committed ones); a partition absent from them starts at the earliest record. */
  onAssign: (assigned: TopicPartition[]) => Promise<PartitionOffset[]>;
  onRevoke: (revoked: TopicPartition[]) => Promise<void>;
  onBatch: (batch: ChainBatch) => Promise<void>;
}

/** The chain's consumer as one operator sees it. */
export interface OperatorConsumer extends Consumer {
  /**
   * The records as this operator was handed them, decoded again: a runner keeps only the bus's records
   * until its checkpoint (a lake flush holds seconds of them) and decodes them again to isolate a poison
   * record. The dedupe answers are the same on a re-read.
   */
  redecode(records: DeliveredRecord[]): ChainRecord[];
}

export interface ChainSource {
  /** Adds an operator; the chain's consumer starts once all `operators` have subscribed. */
  subscribe(subscription: OperatorSubscription): Promise<OperatorConsumer>;
}

export interface ChainOptions {
  bus: Bus;
  /** events.raw */
  topic: string;
  /** The consumer group: one per set of operators, so processes that run the same operators share the partitions. */
  group: string;
  operators: number;
  dims: DimsCache;
  repeats: Repeats;
  logger: Logger;
}

/** How often the dedupe state's new ids are written. */
const DEDUPE_PERSIST_MS = 1_000;

interface Operator {
  subscription: OperatorSubscription;
  /** Per partition, the offset of the next record this operator takes; absent: from the first one delivered. */
  next: Map<number, number>;
  /** Per partition, the position it last committed (lag metrics only). */
  committed: Map<number, number>;
  /** The first operator dead-letters records that are no envelope; the others skip them. */
  primary: boolean;
}

/** Index of the first record at or after `offset` (records are in offset order). */
function firstAtOrAfter(records: DeliveredRecord[], offset: number): number {
  let lo = 0;
  let hi = records.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if ((records[mid]?.offset ?? 0) < offset) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/**
 * One consumer of events.raw feeding every operator of a worker (operator chaining, as Flink chains
 * operators and Kafka Streams runs a sub-topology in one task). Each record is decoded once, checked
 * against the partition's dedupe state once and enriched once; each operator then gets the records past
 * its own position, runs on its own runner (own commits, cadence, fencing) and may seek back alone: the
 * consumer reads from the smallest position any operator (or the dedupe state) needs, and each operator
 * skips what it has already taken. A batch is done when every operator is done with it, so the slowest
 * operator's backpressure holds the consumer.
 */
export function createChain(options: ChainOptions): ChainSource & { stop: () => Promise<void> } {
  const operators: Operator[] = [];
  let started: Promise<Consumer> | undefined;
  let ready: (consumer: Consumer) => void = () => undefined;
  let failed: (error: unknown) => void = () => undefined;
  const opened = new Promise<Consumer>((resolve, reject) => {
    ready = resolve;
    failed = reject;
  });
  /** Bumped on every seek of a partition, so a batch in flight does not overwrite where the seek put an operator. */
  const seeks = new Map<number, number>();

  let persisting: Promise<void> | undefined;
  const persistDedupe = () => {
    persisting ??= options.repeats.persist().finally(() => {
      persisting = undefined;
    });
    return persisting;
  };
  /** Waits for a persist in flight (ids up to when it started), then writes everything read since. */
  const persistAllRead = async () => {
    await persistDedupe();
    await persistDedupe();
  };
  const persistTimer = setInterval(() => void persistDedupe(), DEDUPE_PERSIST_MS);

  /** Where the consumer must read a partition from: the smallest position any operator still needs. */
  const readFrom = (partition: number): number | undefined => {
    let lowest: number | undefined;
    for (const op of operators) {
      const next = op.next.get(partition);
      if (next === undefined) return undefined;
      lowest = lowest === undefined ? next : Math.min(lowest, next);
    }
    return lowest;
  };

  /** `count`: a first reading (a re-read for isolation counts nothing again). */
  const decode = (record: DeliveredRecord, count = true): { record: ChainRecord; undecodable: boolean } => {
    const envelope = decodeTrustedEnvelope(record.value);
    if (!envelope) {
      options.repeats.pass(record.partition, record.offset, record.timestamp);
      if (count) undecodableRecords.inc({ job: "chain" });
      return { record: { ...record, raw: record }, undecodable: true };
    }
    if (options.repeats.isRepeat(record.partition, record.offset, envelope.type, envelope.event_id, envelope.ingest_time)) return { record: { ...record, raw: record }, undecodable: false };
    const enriched = enrich(envelope, options.dims.current());
    // Only telemetry changes; its bytes are encoded when an operator asks (enrichedValue).
    const changed: ChainRecord = enriched.envelope === envelope ? { ...record, raw: record, event: envelope } : { ...record, raw: record, event: enriched.envelope, enriched: true };
    return { record: changed, undecodable: false };
  };

  const onBatch = async (batch: { topic: string; partition: number; records: DeliveredRecord[] }) => {
    const { partition } = batch;
    const decoded = batch.records.map((record) => decode(record));
    const records = decoded.map((d) => d.record);
    const hasUndecodable = decoded.some((d) => d.undecodable);
    const forPrimary = hasUndecodable ? decoded.map((d): ChainRecord => (d.undecodable ? { ...d.record, undecodable: true } : d.record)) : records;
    await Promise.all(
      operators.map(async (op) => {
        const next = op.next.get(partition);
        const from = next === undefined ? 0 : firstAtOrAfter(records, next);
        // After a seek, a batch fetched before it may still arrive: only the one that starts where the operator is goes on.
        if (from >= records.length || (next !== undefined && records[from]?.offset !== next)) return;
        const mine = (op.primary ? forPrimary : records).slice(from);
        const last = mine[mine.length - 1];
        if (!last) return;
        const seek = seeks.get(partition) ?? 0;
        op.next.set(partition, last.offset + 1);
        try {
          await op.subscription.onBatch({ topic: batch.topic, partition, records: mine });
        } catch (error) {
          // Delivered again after a backoff: the operator takes it from where it was, unless it sought meanwhile.
          if ((seeks.get(partition) ?? 0) === seek) op.next.set(partition, mine[0]?.offset ?? last.offset);
          throw error;
        }
      }),
    );
  };

  const onAssign = async (assigned: TopicPartition[]): Promise<PartitionOffset[]> => {
    const partitions = assigned.map((tp) => tp.partition);
    const [starts, coverage] = await Promise.all([Promise.all(operators.map((op) => op.subscription.onAssign(assigned))), options.repeats.assigned(partitions)]);
    operators.forEach((op, i) => {
      for (const p of partitions) {
        const start = starts[i]?.find((s) => s.partition === p)?.offset;
        if (start === undefined) op.next.delete(p);
        else op.next.set(p, start);
      }
    });
    const positions: PartitionOffset[] = [];
    for (const tp of assigned) {
      const from = readFrom(tp.partition);
      if (from === undefined) continue;
      // Ids seen before the operators' positions must be known: read from where the persisted dedupe state ends if that is earlier.
      const covered = coverage.get(tp.partition);
      positions.push({ ...tp, offset: covered === undefined ? from : Math.min(from, covered) });
    }
    options.logger.info("chain partitions assigned", { partitions, resume: positions.map((p) => [p.partition, p.offset]), dedupe_coverage: [...coverage] });
    return positions;
  };

  const onRevoke = async (revoked: TopicPartition[]) => {
    // Every operator gets its revoke, and the partitions are let go of even when one operator's last checkpoint failed.
    const settled = await Promise.allSettled(operators.map((op) => op.subscription.onRevoke(revoked)));
    try {
      await persistAllRead();
    } finally {
      const partitions = revoked.map((tp) => tp.partition);
      options.repeats.revoked(partitions);
      for (const op of operators) {
        for (const p of partitions) {
          op.next.delete(p);
          op.committed.delete(p);
        }
      }
    }
    const failure = settled.find((s): s is PromiseRejectedResult => s.status === "rejected");
    if (failure) throw failure.reason;
  };

  /**
   * The group's offsets are what every operator has committed, at most once a second and off the
   * operators' critical sections. They feed the bus's own tools (kafka-consumer-groups) and hold the
   * embedded bus's retention: a segment goes only once this group is past it. The positions of record
   * are each operator's own, in job_offsets (the lake's in its Delta log). A commit asked for within the
   * second is made at its end, so the last positions of a burst reach the bus too.
   */
  let groupCommittedAt = 0;
  let trailingGroupCommit: ReturnType<typeof setTimeout> | undefined;
  const commitGroup = (shared: Consumer) => {
    const waitMs = groupCommittedAt + 1_000 - Date.now();
    if (waitMs > 0) {
      trailingGroupCommit ??= setTimeout(() => {
        trailingGroupCommit = undefined;
        if (!stopping) commitGroup(shared);
      }, waitMs);
      return;
    }
    groupCommittedAt = Date.now();
    const positions = shared.assignment().flatMap((tp) => {
      const lowest = Math.min(...operators.map((o) => o.committed.get(tp.partition) ?? -1));
      return lowest >= 0 ? [{ ...tp, offset: lowest }] : [];
    });
    if (positions.length > 0) shared.commit(positions).catch((error: unknown) => options.logger.warn("bus offset commit failed (the bus's lag view and retention only; retried within a second)", { error }));
  };

  const start = async () => {
    started ??= options.bus.consume({ group: options.group, topics: [options.topic], onAssign, onRevoke, onBatch });
    try {
      ready(await started);
    } catch (error) {
      failed(error);
    }
  };

  let stopping: Promise<void> | undefined;
  const stop = () => {
    stopping ??= (async () => {
      clearInterval(persistTimer);
      clearTimeout(trailingGroupCommit);
      await (started ? opened.then((c) => c.stop()) : Promise.resolve());
      await persistAllRead();
    })();
    return stopping;
  };

  return {
    async subscribe(subscription) {
      const op: Operator = { subscription, next: new Map(), committed: new Map(), primary: operators.length === 0 };
      operators.push(op);
      if (operators.length === options.operators) void start();
      const shared = await opened;
      return {
        async commit(positions) {
          for (const p of positions) op.committed.set(p.partition, p.offset);
          commitGroup(shared);
        },
        seek(position) {
          seeks.set(position.partition, (seeks.get(position.partition) ?? 0) + 1);
          op.next.set(position.partition, position.offset);
          shared.seek({ ...position, offset: readFrom(position.partition) ?? position.offset });
        },
        assignment: () => shared.assignment(),
        stop,
        redecode: (records) =>
          records.map((raw) => {
            const { record, undecodable } = decode(raw, false);
            return undecodable && op.primary ? { ...record, undecodable: true } : record;
          }),
      };
    },
    stop,
  };
}
