import type { Logger } from "../../log.ts";
import type { StorageBlock } from "../types.ts";
import { type PartitionLog, type SegmentInfo, segmentName } from "./partition-log.ts";

/** Kafka-like retention of the embedded bus (BUS_RETENTION_MS, BUS_RETENTION_BYTES, BUS_SEGMENT_BYTES, BUS_SEGMENT_MS, BUS_GROUP_RETENTION_MS). */
export interface RetentionSettings {
  /** A closed segment whose last append is older than this may go. */
  retentionMs: number;
  /** While a topic holds more bytes than this (all partitions), its oldest closed segments may go. */
  retentionBytes: number;
  /** The active segment is rolled when a flush would take it past this size… */
  segmentBytes: number;
  /** …or when its first record is this old. */
  segmentMs: number;
  /** A group with no member here protects a topic's records while its last commit on it is this recent. */
  groupRetentionMs: number;
}

export const DEFAULT_RETENTION: RetentionSettings = {
  retentionMs: 86_400_000,
  retentionBytes: 1024 * 1024 * 1024,
  segmentBytes: 64 * 1024 * 1024,
  segmentMs: 3_600_000,
  groupRetentionMs: 3_600_000,
};

/** A consumer group whose position keeps records of a partition from being deleted. */
export interface Protector {
  group: string;
  /** Its committed position on the partition; null means it needs everything. */
  committed: number | null;
  /** Whether it has a live member in this process (else it protects by a recent commit). */
  member: boolean;
}

export interface RetentionContext {
  settings: RetentionSettings;
  clock: () => number;
  /** The groups protecting a partition now. */
  protectors: (topic: string, partition: number) => Protector[];
  logger: Logger;
}

/** The protector furthest behind among those that still need an offset below `nextBase`, if any. */
export function holderOf(protectors: Protector[], nextBase: number): Protector | undefined {
  let holder: Protector | undefined;
  for (const p of protectors) {
    if (p.committed !== null && p.committed >= nextBase) continue;
    if (!holder || (p.committed ?? -1) < (holder.committed ?? -1)) holder = p;
  }
  return holder;
}

const topicBytes = (logs: PartitionLog[]) => logs.reduce((sum, log) => sum + log.bytes(), 0);

interface Candidate {
  partition: number;
  log: PartitionLog;
  segment: SegmentInfo;
  holder: Protector | undefined;
}

/** Each partition's oldest closed segment: only the front of a log is ever deleted. */
function candidates(topic: string, logs: PartitionLog[], context: RetentionContext): Candidate[] {
  return logs.flatMap((log, partition) => {
    const segment = log.closedSegments()[0];
    if (!segment) return [];
    return [{ partition, log, segment, holder: holderOf(context.protectors(topic, partition), segment.next) }];
  });
}

/**
 * Deletes what the rules allow, Kafka style, in whole closed segments from the front of each partition:
 * those whose last append is older than `retentionMs`, then, while the topic is over `retentionBytes`,
 * the oldest ones first. Never a segment a protecting group has not committed past. Returns how many went.
 */
export async function enforceRetention(topic: string, logs: PartitionLog[], context: RetentionContext): Promise<number> {
  const { settings, logger } = context;
  let deleted = 0;
  const remove = async (candidate: Candidate, reason: "age" | "size") => {
    await candidate.log.deleteOldestSegment();
    deleted++;
    logger.info("deleted a bus segment", {
      topic,
      partition: candidate.partition,
      segment: segmentName(candidate.segment.base),
      offsets: `${candidate.segment.base}-${candidate.segment.next - 1}`,
      bytes: candidate.segment.bytes,
      reason,
      log_start_offset: candidate.log.start(),
    });
  };
  const horizon = context.clock() - settings.retentionMs;
  for (let partition = 0; partition < logs.length; partition++) {
    const log = logs[partition] as PartitionLog;
    for (;;) {
      const segment = log.closedSegments()[0];
      if (!segment || segment.lastAppendMs >= horizon) break;
      if (holderOf(context.protectors(topic, partition), segment.next)) break;
      await remove({ partition, log, segment, holder: undefined }, "age");
    }
  }
  while (topicBytes(logs) > settings.retentionBytes) {
    const deletable = candidates(topic, logs, context)
      .filter((c) => !c.holder)
      .sort((a, b) => a.segment.lastAppendMs - b.segment.lastAppendMs || a.partition - b.partition);
    const oldest = deletable[0];
    if (!oldest) break;
    await remove(oldest, "size");
  }
  return deleted;
}

/**
 * Why produces to the topic must be refused, or null: it is over `retentionBytes`, it has closed
 * segments, and every one that would go next is held by a group (which the reason names).
 * Over the cap with nothing closed (all bytes in active segments) is not a block: rolling makes them deletable.
 */
export function assessBlock(topic: string, logs: PartitionLog[], context: RetentionContext): StorageBlock | null {
  const bytes = topicBytes(logs);
  const cap = context.settings.retentionBytes;
  if (bytes <= cap) return null;
  const front = candidates(topic, logs, context);
  if (front.length === 0 || front.some((c) => !c.holder)) return null;
  const oldest = front.sort((a, b) => a.segment.lastAppendMs - b.segment.lastAppendMs || a.partition - b.partition)[0] as Candidate;
  const holder = oldest.holder as Protector;
  const position = holder.committed === null ? "has committed no position" : `is at offset ${holder.committed}`;
  const reason =
    `topic ${topic} holds ${bytes} bytes, over its retention cap of ${cap} bytes (BUS_RETENTION_BYTES), and consumer group "${holder.group}" ` +
    `${position} on partition ${oldest.partition}: it still needs the oldest segment (offsets ${oldest.segment.base}–${oldest.segment.next - 1}), ` +
    `so produces are refused until the group commits offset ${oldest.segment.next} or later`;
  return { reason, group: holder.group, partition: oldest.partition, offset: holder.committed };
}
