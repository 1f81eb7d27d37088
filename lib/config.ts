import { resolve } from "node:path";
import { z } from "zod";
import { ConfigError } from "./errors.ts";

/** Every environment variable the project reads, parsed once at start-up by one schema. */

export const scopes = ["ingest", "query", "admin"] as const;
export type Scope = (typeof scopes)[number];

const apiKeyEntry = z
  .string()
  .regex(/^[A-Za-z0-9._~-]{1,256}:[a-z+]+$/, "each entry is <key>:<scopes>, the key made of [A-Za-z0-9._~-]")
  .transform((entry, ctx) => {
    const [key = "", scopeList = ""] = entry.split(":");
    const parsed = scopeList.split("+");
    const unknown = parsed.filter((s) => !(scopes as readonly string[]).includes(s));
    if (unknown.length > 0) {
      ctx.addIssue({ code: "custom", message: `unknown scope "${unknown.join(", ")}" (scopes: ${scopes.join(", ")}, joined with +)` });
      return z.NEVER;
    }
    return { key, scopes: [...new Set(parsed)] as Scope[] };
  });

const apiKeys = z
  .string()
  .transform((value) => value.split(",").map((s) => s.trim()).filter((s) => s.length > 0))
  .pipe(z.array(apiKeyEntry).min(1, "at least one <key>:<scopes> entry"));

const hostPort = z.string().regex(/^[A-Za-z0-9.\-_[\]:]+:\d{1,5}$/, "host:port");

const kafkaBrokers = z
  .string()
  .transform((value) => value.split(",").map((s) => s.trim()).filter((s) => s.length > 0))
  .pipe(z.array(hostPort).min(1, "a comma-separated list of host:port"));

const databaseUrl = z
  .string()
  .refine((value) => /^postgres(ql)?:\/\/.+/.test(value) && URL.canParse(value), "a postgres://user@host:port/database URL");

export type LakeLocation = { kind: "dir"; path: string } | { kind: "s3"; bucket: string; prefix: string };

const lakeUrl = z.string().transform((value, ctx): LakeLocation => {
  if (value.startsWith("file://")) {
    const path = value.slice("file://".length);
    if (path.length === 0) ctx.addIssue({ code: "custom", message: "file:// needs a directory path" });
    return { kind: "dir", path: resolve(path) };
  }
  const s3 = /^s3:\/\/([a-z0-9][a-z0-9.-]{1,61}[a-z0-9])(?:\/(.*))?$/.exec(value);
  if (s3?.[1]) return { kind: "s3", bucket: s3[1], prefix: (s3[2] ?? "").replace(/^\/+|\/+$/g, "") };
  ctx.addIssue({ code: "custom", message: "file:///path/to/dir or s3://bucket/prefix" });
  return z.NEVER;
});

const integer = (min: number, max: number) =>
  z.coerce.number({ error: `an integer from ${min} to ${max}` }).int(`an integer from ${min} to ${max}`).min(min, `an integer from ${min} to ${max}`).max(max, `an integer from ${min} to ${max}`);
const port = integer(1, 65_535);
const optional = <T extends z.ZodType>(schema: T) =>
  z.preprocess((value) => (value === "" ? undefined : value), schema.optional());

export const envSchema = z.object({
  PORT: optional(port).default(3000),
  DATA_DIR: optional(z.string().min(1)).default("./data"),
  KAFKA_BROKERS: optional(kafkaBrokers),
  DATABASE_URL: optional(databaseUrl),
  LAKE_URL: optional(lakeUrl),
  S3_ENDPOINT: optional(z.url({ protocol: /^https?$/, error: "an http(s):// URL" })),
  AWS_ACCESS_KEY_ID: optional(z.string().min(1)),
  AWS_SECRET_ACCESS_KEY: optional(z.string().min(1)),
  AWS_REGION: optional(z.string().regex(/^[a-z0-9-]+$/, "a region name such as us-east-1")).default("us-east-1"),
  API_KEYS: optional(apiKeys),
  /** Partitions per topic, for both the Kafka and the embedded bus. */
  BUS_PARTITIONS: optional(integer(1, 256)).default(4),
  /** Prefixes every topic and consumer group: several pipelines (or test runs) can share one Kafka. */
  TOPIC_PREFIX: optional(z.string().regex(/^[A-Za-z0-9._-]{1,100}$/, "1–100 of [A-Za-z0-9._-]")).default(""),
  LOG_LEVEL: optional(z.enum(["debug", "info", "warn", "error"])).default("info"),
  /** `1`: one log line per HTTP request. Off by default: requests answered 5xx and failures are logged either way. */
  ACCESS_LOG: optional(z.enum(["0", "1"])).default("0"),
  /** Ingest limits and batching. */
  MAX_BODY_BYTES: optional(integer(1_024, 256 * 1024 * 1024)).default(5 * 1024 * 1024),
  MAX_RECORDS_PER_REQUEST: optional(integer(1, 1_000_000)).default(10_000),
  EVENT_MAX_FUTURE_S: optional(integer(0, 365 * 86_400)).default(3_600),
  EVENT_MAX_AGE_DAYS: optional(integer(1, 36_500)).default(365),
  PRODUCE_TIMEOUT_MS: optional(integer(100, 120_000)).default(5_000),
  INGEST_LINGER_MS: optional(integer(0, 1_000)).default(0),
  INGEST_MAX_BATCH_RECORDS: optional(integer(1, 100_000)).default(5_000),
  /** A partition without records for this long stops holding the windows' watermark back. */
  WATERMARK_IDLE_TIMEOUT_MS: optional(integer(100, 3_600_000)).default(30_000),
  INGEST_MAX_PENDING_BYTES: optional(integer(1_024 * 1_024, 4 * 1024 * 1024 * 1024)).default(128 * 1024 * 1024),
  /** The lake sink writes a file per input partition at least this often (and sooner past the record limit). */
  LAKE_FLUSH_INTERVAL_MS: optional(integer(100, 60_000)).default(5_000),
  LAKE_FLUSH_MAX_RECORDS: optional(integer(1, 10_000_000)).default(250_000),
  /** How often compaction looks for closed hours, and how long after its end an hour counts as closed. */
  LAKE_COMPACT_INTERVAL_MS: optional(integer(1_000, 86_400_000)).default(60_000),
  LAKE_COMPACT_AFTER_S: optional(integer(0, 7 * 86_400)).default(600),
  /**
   * Files a Delta commit removed (compaction, dims overwrites) and files never committed stay this long
   * before VACUUM deletes them, so a reader of an older snapshot still finds its files; commits older
   * than this are cleaned from the log past a checkpoint.
   */
  LAKE_RETENTION_S: optional(integer(60, 365 * 86_400)).default(86_400),
  /**
   * A repeated event_id is dropped when it arrives within this long of the later of its event time and
   * its first arrival (longer for types a view reads: their window span plus grace).
   */
  DEDUPE_HORIZON_S: optional(integer(1, 30 * 86_400)).default(3_600),
  /**
   * Ids of the dedupe state kept in memory per partition and horizon class; the rest of the horizon is
   * frozen to files in DEDUPE_SPILL_DIR (about 1.3 bytes of memory an id). 0: all in memory.
   */
  DEDUPE_HOT_IDS: optional(integer(0, 2_097_152).refine((n) => n === 0 || n >= 1_024, "0 (all in memory) or an integer from 1024 to 2097152")).default(262_144),
  /** Where the dedupe state's frozen files go (a directory per process, removed when it exits). Default: DATA_DIR/tmp. */
  DEDUPE_SPILL_DIR: optional(z.string().min(1)),
  /** `off`: the workers do not produce events.enriched (it only serves consumers outside the pipeline). */
  ENRICHED_TOPIC: optional(z.enum(["on", "off"])).default("on"),
  /**
   * Embedded bus retention (per topic, like Kafka's log.retention.ms / .bytes): whole segments are deleted
   * once older than BUS_RETENTION_MS or while the topic is over BUS_RETENTION_BYTES, never one a consumer
   * group still needs; past the byte cap with nothing deletable, produce answers 503.
   */
  BUS_RETENTION_MS: optional(integer(1_000, 365 * 86_400_000)).default(86_400_000),
  BUS_RETENTION_BYTES: optional(integer(4_096, 1024 * 1024 * 1024 * 1024)).default(1024 * 1024 * 1024),
  /** A partition's active segment is rolled past this size or age. */
  BUS_SEGMENT_BYTES: optional(integer(1_024, 1024 * 1024 * 1024)).default(64 * 1024 * 1024),
  BUS_SEGMENT_MS: optional(integer(1_000, 30 * 86_400_000)).default(3_600_000),
  /**
   * A consumer group with no running member that has not committed for this long (counted while the bus
   * is open) no longer holds segments, as Kafka's offsets.retention.minutes: a group left behind by a
   * changed set of operators must not hold the log, and every job of the embedded mode runs in-process.
   */
  BUS_GROUP_RETENTION_MS: optional(integer(60_000, 365 * 86_400_000)).default(3_600_000),
  /** Table retention, enforced by a periodic job in small batches. */
  ALERTS_RETENTION_DAYS: optional(integer(1, 36_500)).default(30),
  AGGREGATES_RETENTION_DAYS: optional(integer(1, 36_500)).default(90),
  RUNS_RETENTION_DAYS: optional(integer(1, 36_500)).default(30),
  RETENTION_INTERVAL_MS: optional(integer(1_000, 86_400_000)).default(60_000),
  /** POST /v1/query limits. */
  QUERY_TIMEOUT_MS: optional(integer(100, 600_000)).default(10_000),
  QUERY_MAX_ROWS: optional(integer(1, 1_000_000)).default(10_000),
  /** Result bytes (serialised JSON) a query may return before it is cut with truncated: true. */
  QUERY_MAX_BYTES: optional(integer(1_024, 1024 * 1024 * 1024)).default(16 * 1024 * 1024),
  /** Lake queries (POST /v1/query, GET /v1/events) running at once per gateway; more wait in a short queue, then 429. */
  QUERY_MAX_CONCURRENT: optional(integer(1, 64)).default(2),
  /** Queries that may wait for a slot; past it, 429 with Retry-After. */
  QUERY_MAX_QUEUED: optional(integer(0, 1_000)).default(8),
  /** Longest a query waits in the queue for a slot before 429. */
  QUERY_QUEUE_TIMEOUT_MS: optional(integer(0, 60_000)).default(2_000),
  /** Alert streams: comment heartbeat period, poll period for new alerts, bytes buffered for a slow client before it is disconnected. */
  SSE_HEARTBEAT_MS: optional(integer(100, 15_000)).default(15_000),
  /** A worker process (`bun run worker`) serves its own GET /metrics on this port when set. */
  METRICS_PORT: optional(port),
  /** Seconds before the HTTP server closes an idle connection (alert streams are exempt). */
  HTTP_IDLE_TIMEOUT_S: optional(integer(1, 255)).default(60),
  SSE_POLL_MS: optional(integer(5, 5_000)).default(50),
  SSE_MAX_BUFFER_BYTES: optional(integer(1_024, 256 * 1024 * 1024)).default(1024 * 1024),
  /** Alert streams open at once per API key; past it, 429. */
  SSE_MAX_STREAMS_PER_KEY: optional(integer(1, 100_000)).default(100),
  /** A job whose checkpoints have failed (or whose lag grows with no progress) this long makes /readyz 503. */
  READY_STALL_MS: optional(integer(1_000, 3_600_000)).default(60_000),
  /** Longest a graceful shutdown may take before the process exits 1. */
  SHUTDOWN_GRACE_MS: optional(integer(1_000, 600_000)).default(30_000),
  /**
   * `bun run start` with no terminal (a supervisor, a pipe) logs a status line this often; `0` switches it off.
   * On a terminal one live line is redrawn in place every second instead.
   */
  STATUS_INTERVAL_MS: optional(integer(0, 86_400_000).refine((ms) => ms === 0 || ms >= 1_000, "0 (off) or an integer from 1000 to 86400000")).default(10_000),
});

export type Env = z.infer<typeof envSchema>;

export interface Config {
  mode: "embedded" | "services";
  port: number;
  dataDir: string;
  kafkaBrokers: string[] | undefined;
  databaseUrl: string | undefined;
  lake: LakeLocation;
  s3: { endpoint: string | undefined; region: string; accessKeyId: string | undefined; secretAccessKey: string | undefined };
  apiKeys: { key: string; scopes: Scope[] }[] | undefined;
  busPartitions: number;
  topicPrefix: string;
  logLevel: Env["LOG_LEVEL"];
  accessLog: boolean;
  watermarkIdleTimeoutMs: number;
  dedupeHorizonMs: number;
  /** Undefined: the dedupe state stays in memory. */
  dedupeSpill: { directory: string; hotLimit: number } | undefined;
  enrichedTopic: boolean;
  lakeSink: { flushIntervalMs: number; flushMaxRecords: number; compactIntervalMs: number; compactAfterMs: number; retentionMs: number };
  query: { timeoutMs: number; maxRows: number; maxBytes: number; maxConcurrent: number; maxQueued: number; queueTimeoutMs: number };
  sse: { heartbeatMs: number; pollMs: number; maxBufferBytes: number; maxStreamsPerKey: number };
  busRetention: { retentionMs: number; retentionBytes: number; segmentBytes: number; segmentMs: number; groupRetentionMs: number };
  retention: { alertsMs: number; aggregatesMs: number; runsMs: number; intervalMs: number };
  readyStallMs: number;
  shutdownGraceMs: number;
  /** Periodic status log of `bun run start` when not on a terminal; 0: none. */
  statusIntervalMs: number;
  httpIdleTimeoutS: number;
  metricsPort: number | undefined;
  ingest: {
    maxBodyBytes: number;
    maxRecordsPerRequest: number;
    eventTime: { maxFutureMs: number; maxAgeMs: number };
    produceTimeoutMs: number;
    lingerMs: number;
    maxBatchRecords: number;
    maxPendingBytes: number;
  };
}

/** Parses the environment; throws a ConfigError naming every invalid variable. */
export function loadConfig(env: Record<string, string | undefined> = process.env): Config {
  const result = envSchema.safeParse(env);
  if (!result.success) {
    throw new ConfigError(
      result.error.issues.map((issue) => ({ variable: String(issue.path[0] ?? "environment"), message: issue.message })),
    );
  }
  const e = result.data;
  const crossIssues: { variable: string; message: string }[] = [];
  if (e.KAFKA_BROKERS && !e.DATABASE_URL) {
    crossIssues.push({ variable: "DATABASE_URL", message: "required when KAFKA_BROKERS is set (services mode processes share one database)" });
  }
  if ((e.AWS_ACCESS_KEY_ID === undefined) !== (e.AWS_SECRET_ACCESS_KEY === undefined)) {
    crossIssues.push({ variable: e.AWS_ACCESS_KEY_ID ? "AWS_SECRET_ACCESS_KEY" : "AWS_ACCESS_KEY_ID", message: "set both AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or neither" });
  }
  if (crossIssues.length > 0) throw new ConfigError(crossIssues);

  const dataDir = resolve(e.DATA_DIR);
  return {
    mode: e.KAFKA_BROKERS ? "services" : "embedded",
    port: e.PORT,
    dataDir,
    kafkaBrokers: e.KAFKA_BROKERS,
    databaseUrl: e.DATABASE_URL,
    lake: e.LAKE_URL ?? { kind: "dir", path: resolve(dataDir, "lake") },
    s3: { endpoint: e.S3_ENDPOINT, region: e.AWS_REGION, accessKeyId: e.AWS_ACCESS_KEY_ID, secretAccessKey: e.AWS_SECRET_ACCESS_KEY },
    apiKeys: e.API_KEYS,
    busPartitions: e.BUS_PARTITIONS,
    topicPrefix: e.TOPIC_PREFIX,
    logLevel: e.LOG_LEVEL,
    accessLog: e.ACCESS_LOG === "1",
    watermarkIdleTimeoutMs: e.WATERMARK_IDLE_TIMEOUT_MS,
    dedupeHorizonMs: e.DEDUPE_HORIZON_S * 1000,
    dedupeSpill: e.DEDUPE_HOT_IDS === 0 ? undefined : { directory: resolve(e.DEDUPE_SPILL_DIR ?? resolve(dataDir, "tmp")), hotLimit: e.DEDUPE_HOT_IDS },
    enrichedTopic: e.ENRICHED_TOPIC === "on",
    lakeSink: { flushIntervalMs: e.LAKE_FLUSH_INTERVAL_MS, flushMaxRecords: e.LAKE_FLUSH_MAX_RECORDS, compactIntervalMs: e.LAKE_COMPACT_INTERVAL_MS, compactAfterMs: e.LAKE_COMPACT_AFTER_S * 1000, retentionMs: e.LAKE_RETENTION_S * 1000 },
    query: { timeoutMs: e.QUERY_TIMEOUT_MS, maxRows: e.QUERY_MAX_ROWS, maxBytes: e.QUERY_MAX_BYTES, maxConcurrent: e.QUERY_MAX_CONCURRENT, maxQueued: e.QUERY_MAX_QUEUED, queueTimeoutMs: e.QUERY_QUEUE_TIMEOUT_MS },
    sse: { heartbeatMs: e.SSE_HEARTBEAT_MS, pollMs: e.SSE_POLL_MS, maxBufferBytes: e.SSE_MAX_BUFFER_BYTES, maxStreamsPerKey: e.SSE_MAX_STREAMS_PER_KEY },
    busRetention: { retentionMs: e.BUS_RETENTION_MS, retentionBytes: e.BUS_RETENTION_BYTES, segmentBytes: e.BUS_SEGMENT_BYTES, segmentMs: e.BUS_SEGMENT_MS, groupRetentionMs: e.BUS_GROUP_RETENTION_MS },
    retention: { alertsMs: e.ALERTS_RETENTION_DAYS * 86_400_000, aggregatesMs: e.AGGREGATES_RETENTION_DAYS * 86_400_000, runsMs: e.RUNS_RETENTION_DAYS * 86_400_000, intervalMs: e.RETENTION_INTERVAL_MS },
    readyStallMs: e.READY_STALL_MS,
    shutdownGraceMs: e.SHUTDOWN_GRACE_MS,
    statusIntervalMs: e.STATUS_INTERVAL_MS,
    httpIdleTimeoutS: e.HTTP_IDLE_TIMEOUT_S,
    metricsPort: e.METRICS_PORT,
    ingest: {
      maxBodyBytes: e.MAX_BODY_BYTES,
      maxRecordsPerRequest: e.MAX_RECORDS_PER_REQUEST,
      eventTime: { maxFutureMs: e.EVENT_MAX_FUTURE_S * 1000, maxAgeMs: e.EVENT_MAX_AGE_DAYS * 86_400_000 },
      produceTimeoutMs: e.PRODUCE_TIMEOUT_MS,
      lingerMs: e.INGEST_LINGER_MS,
      maxBatchRecords: e.INGEST_MAX_BATCH_RECORDS,
      maxPendingBytes: e.INGEST_MAX_PENDING_BYTES,
    },
  };
}
