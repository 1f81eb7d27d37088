/**
 * The one interface the rest of the code uses to reach the event log. Two implementations:
 * Kafka (kafkajs) in services mode, and a file-backed embedded log in embedded mode.
 * Offsets are plain numbers: the offset of a record within its partition, from 0.
 */

export interface OutgoingRecord {
  /** Partitioning key: records with the same key land in the same partition, in order. */
  key: string;
  value: Uint8Array;
  headers?: Record<string, string>;
  /** Milliseconds since the epoch; the produce time when absent. */
  timestamp?: number;
}

export interface DeliveredRecord {
  topic: string;
  partition: number;
  offset: number;
  key: string;
  value: Uint8Array;
  headers: Record<string, string>;
  timestamp: number;
}

export interface ProducedRecord {
  partition: number;
  offset: number;
}

export interface TopicSpec {
  name: string;
  partitions: number;
}

export interface TopicPartition {
  topic: string;
  partition: number;
}

/** A position in a partition: the offset of the next record to read. */
export interface PartitionOffset extends TopicPartition {
  offset: number;
}

export interface PartitionLag extends TopicPartition {
  /** The group's committed position, null when the group never committed on this partition. */
  committed: number | null;
  /** The offset the next produced record will get. */
  end: number;
  lag: number;
}

export interface Batch {
  topic: string;
  partition: number;
  /** Non-empty, in offset order. */
  records: DeliveredRecord[];
}

export interface ConsumeOptions {
  group: string;
  topics: string[];
  /** Where a partition without a committed position starts. Default: earliest. */
  start?: "earliest" | "latest";
  /** Upper bound on records in one batch. Default: 1,000. */
  maxBatchRecords?: number;
  /**
   * Handles one batch. Resolve when done with it; the next batch of the partition comes after.
   * A rejection is logged and the same records are delivered again after a backoff.
   */
  onBatch: (batch: Batch) => Promise<void>;
  /**
   * Called after each (re)balance with this member's whole assignment, before any record of those
   * partitions is delivered. It may return positions to start from instead of the committed ones:
   * a job that keeps its offsets with its results (exactly-once) returns those.
   */
  onAssign?: (assigned: TopicPartition[]) => Promise<PartitionOffset[] | void>;
  /** Called with the partitions this member lost, after their last batch was handled. */
  onRevoke?: (revoked: TopicPartition[]) => Promise<void>;
}

export interface Consumer {
  /** Stores the group's positions (the next offsets to read), durably. */
  commit(positions: PartitionOffset[]): Promise<void>;
  /** Moves delivery of a partition this member owns to another position. */
  seek(position: PartitionOffset): void;
  assignment(): TopicPartition[];
  /** Finishes the batch in hand, leaves the group. */
  stop(): Promise<void>;
}

/** What one partition of a topic keeps on disk (embedded bus). */
export interface PartitionStorage {
  partition: number;
  bytes: number;
  segments: number;
  /** The oldest offset still kept (the log start offset): retention advances it. */
  startOffset: number;
  /** The offset the next produced record will get. */
  endOffset: number;
}

/** Why produces to a topic are refused: it is over its byte cap and a consumer group holds the segments that would go. */
export interface StorageBlock {
  /** A sentence naming the topic, the cap, and the group, partition and offset holding it. */
  reason: string;
  group: string;
  partition: number;
  /** The group's committed position on that partition; null when it never committed (it needs everything). */
  offset: number | null;
}

/** A topic's storage against its retention (embedded bus; Kafka keeps its own and reports none). */
export interface TopicStorage {
  topic: string;
  bytes: number;
  segments: number;
  partitions: PartitionStorage[];
  /** The topic's byte cap (BUS_RETENTION_BYTES) and age limit (BUS_RETENTION_MS). */
  retentionBytes: number;
  retentionMs: number;
  /** Set while produces to the topic are refused (backpressure instead of dropping unconsumed records). */
  blocked: StorageBlock | null;
}

export interface Bus {
  readonly kind: "kafka" | "embedded";
  /** Creates the topics that do not exist yet; existing ones are left as they are. */
  ensureTopics(topics: TopicSpec[]): Promise<void>;
  /** Appends records; resolves once every one of them is durable, with each record's position. */
  produce(topic: string, records: OutgoingRecord[]): Promise<ProducedRecord[]>;
  consume(options: ConsumeOptions): Promise<Consumer>;
  partitions(topic: string): Promise<number[]>;
  /** Per partition, the offset the next produced record will get. */
  endOffsets(topic: string): Promise<PartitionOffset[]>;
  lag(group: string, topic: string): Promise<PartitionLag[]>;
  /** Resolves when the bus answers; rejects with BusUnavailableError otherwise. */
  ping(): Promise<void>;
  /** Per topic, what is kept on disk against the retention limits, and why produces are refused if they are. Kafka: []. */
  storage(): Promise<TopicStorage[]>;
  close(): Promise<void>;
}
