import { rm } from "node:fs/promises";
import { join } from "node:path";
import type { Sql, Tx } from "../../lib/db/index.ts";
import { DeltaConflictError } from "../../lib/errors.ts";
import { eventTypes } from "../../lib/events/index.ts";
import { commitDataFiles, type DataFile, uploadDataFiles } from "../../lib/lake/data-files.ts";
import type { Action, Add } from "../../lib/lake/delta/actions.ts";
import { ensureTable } from "../../lib/lake/delta/commit.ts";
import { tableLogsOf } from "../../lib/lake/delta/log.ts";
import type { Snapshot } from "../../lib/lake/delta/snapshot.ts";
import type { Duck } from "../../lib/lake/duckdb.ts";
import { eventTableDefinition, eventTableOf } from "../../lib/lake/tables.ts";
import type { ObjectStore } from "../../lib/lake/types.ts";
import { writeTypeFiles } from "../../lib/lake/writer.ts";
import type { Logger } from "../../lib/log.ts";
import { lakeFlushFailures, lakeFlushFiles, lakeFlushRecords, lakeFlushSeconds, undecodableRecords } from "../../lib/metrics.ts";
import { recordRun } from "../../lib/store/runs.ts";
import type { Topics } from "../../lib/topics.ts";
import { type ChainBatch, enrichedValue } from "../chain/types.ts";
import type { DeadLetterSink } from "../dead-letters.ts";
import type { StreamJob } from "../runner.ts";

export const LAKE_JOB = "lake";

const tables = new Map([...eventTypes.keys()].map((type) => [type, eventTableOf(type)]));
/** The table of a known type, without building the name per record. */
const tableOf = (type: string) => tables.get(type) ?? eventTableOf(type);

/** One input partition's records of one type since the last flush. */
interface Buffered {
  values: Uint8Array[];
  offsets: number[];
}

export interface LakeStats {
  written: number;
  files: number;
  commits: number;
  replays_dropped: number;
  undecodable: number;
}

/**
 * The `txn` appId of an input partition in a table: Delta's idempotent-writer rule, as Spark's own
 * Delta sink uses it. The version is the last events.raw offset the table holds.
 */
const inputAppId = (topic: string, partition: number) => `devpipe.lake:${topic}:${partition}`;

/**
 * The last events.raw offset of `partition` that a table holds. Tables written before the chain (fed by
 * events.enriched) carry it as `devpipe.lake:<events.enriched>:<p>:source:<raw partition>`.
 */
function heldOffset(snapshot: Snapshot | null, topics: Topics, partition: number): number {
  let held = snapshot?.txns.get(inputAppId(topics.raw, partition)) ?? -1;
  const before = `devpipe.lake:${topics.enriched}:`;
  const source = `:source:${partition}`;
  for (const [appId, version] of snapshot?.txns ?? []) if (appId.startsWith(before) && appId.endsWith(source)) held = Math.max(held, version);
  return held;
}

/**
 * The chain's enriched events (late ones too: the lake keeps raw data) → one Delta table per event type. Each
 * checkpoint is a flush: per table, the buffered records of every input partition are written as
 * Parquet (one file per date and hour), uploaded, and added by one commit that carries a `txn` per
 * input partition. The txn versions are the truth about what the lake holds: records at or below them
 * are dropped on the way in (after a restart the runner's positions may be behind them) and again
 * just before the commit, against the latest snapshot; a commit of the same partition by another
 * worker since this one read (an old owner after a rebalance) fails the commit, which is then retried.
 */
export function createLakeJob(deps: { sql: Sql; store: ObjectStore; duck: Duck; workDir: string; topics: Topics; logger: Logger; retentionMs?: number }): StreamJob & { stats: () => LakeStats } {
  const topic = deps.topics.raw;
  const logs = tableLogsOf(deps.store);
  /** Per table, per input partition: the last offset committed or buffered. */
  const progress = new Map<string, Map<number, number>>();
  /** Per event type, per input partition: the records to flush. */
  const buffers = new Map<string, Map<number, Buffered>>();
  /** Tables whose definition this process has made sure of (created, or evolved to the current schema). */
  const ensured = new Set<string>();
  const stats: LakeStats = { written: 0, files: 0, commits: 0, replays_dropped: 0, undecodable: 0 };
  let buffered = 0;
  /** The flush the current checkpoint attempts, for the runs log when it fails. */
  let lastAttempt: { startedAt: Date; records: number } | undefined;

  const progressOf = (table: string) => {
    let tables = progress.get(table);
    if (!tables) progress.set(table, (tables = new Map()));
    return tables;
  };

  const bufferOf = (type: string, partition: number): Buffered => {
    let tables = buffers.get(type);
    if (!tables) buffers.set(type, (tables = new Map()));
    let found = tables.get(partition);
    if (!found) tables.set(partition, (found = { values: [], offsets: [] }));
    return found;
  };

  const snapshotOf = async (type: string, table: string): Promise<Snapshot> => {
    if (!ensured.has(table)) {
      const { created, evolved } = await ensureTable(deps.store, table, eventTableDefinition(type));
      if (created || evolved) deps.logger.info(created ? "lake table created" : "lake table schema evolved", { table });
      ensured.add(table);
    }
    const snapshot = await logs.snapshot(table);
    if (!snapshot) throw new Error(`lake table ${table} has no log right after it was ensured`);
    return snapshot;
  };

  /** Writes, uploads and commits one table's records that its latest snapshot does not hold yet. */
  const flushTable = async (type: string, partitions: Map<number, Buffered>): Promise<{ records: number; files: number }> => {
    const table = eventTableOf(type);
    const snapshot = await snapshotOf(type, table);
    const values: Uint8Array[] = [];
    const txns: Action[] = [];
    for (const [partition, buffer] of partitions) {
      const held = heldOffset(snapshot, deps.topics, partition);
      let last = -1;
      buffer.values.forEach((value, i) => {
        const offset = buffer.offsets[i] ?? -1;
        if (offset <= held) return;
        values.push(value);
        last = offset;
      });
      if (last < 0) continue;
      txns.push({ txn: { appId: inputAppId(topic, partition), version: last, lastUpdated: Date.now() } });
    }
    if (values.length === 0) return { records: 0, files: 0 };
    const scratch = join(deps.workDir, `${type}-${crypto.randomUUID()}`);
    let adds: Add[];
    let files: DataFile[];
    try {
      files = await writeTypeFiles(deps.duck, scratch, type, values);
      adds = await uploadDataFiles(deps.store, table, files, "part", true);
    } finally {
      await rm(scratch, { recursive: true, force: true });
    }
    try {
      await commitDataFiles(deps.store, table, adds, txns, { readVersion: snapshot.version, isBlindAppend: true, operation: "STREAMING UPDATE", tableLog: logs.log(table), retentionMs: deps.retentionMs });
    } catch (error) {
      if (error instanceof DeltaConflictError) deps.logger.warn("lake commit fenced: another worker committed this table's partitions; the records it holds are dropped on retry", { table, reason: error.message });
      throw error;
    }
    return { records: values.length, files: files.length };
  };

  return {
    name: LAKE_JOB,
    input: topic,

    async assigned(partitions) {
      for (const type of eventTypes.keys()) {
        const table = eventTableOf(type);
        const snapshot = await logs.snapshot(table);
        for (const { partition } of partitions) progressOf(table).set(partition, heldOffset(snapshot, deps.topics, partition));
      }
    },

    process(batch: ChainBatch, dead: DeadLetterSink) {
      for (const record of batch.records) {
        const event = record.event;
        // A repeat, or bytes that are no envelope (the runner dead-letters those).
        if (!event) continue;
        if (!eventTypes.has(event.type)) {
          // An envelope of a type this build has no table for: only a foreign producer writes one.
          stats.undecodable++;
          undecodableRecords.inc({ job: LAKE_JOB });
          dead(record, "not an event envelope");
          continue;
        }
        const known = progressOf(tableOf(event.type));
        if (record.offset <= (known.get(batch.partition) ?? -1)) {
          stats.replays_dropped++;
          continue;
        }
        known.set(batch.partition, record.offset);
        const buffer = bufferOf(event.type, batch.partition);
        buffer.values.push(enrichedValue(record));
        buffer.offsets.push(record.offset);
        buffered++;
      }
    },

    pending: () => buffered,

    async checkpointFailed(error: unknown) {
      if (!lastAttempt) return;
      lakeFlushFailures.inc();
      await recordRun(deps.sql, { job: LAKE_JOB, startedAt: lastAttempt.startedAt, finishedAt: new Date(), status: "failed", records: lastAttempt.records, error: error instanceof Error ? error.message : String(error) });
    },

    async checkpoint(tx: Tx) {
      lastAttempt = undefined;
      const flushing = [...buffers.entries()];
      if (flushing.length === 0) return;
      const startedAt = new Date();
      const count = buffered;
      lastAttempt = { startedAt, records: count };
      let records = 0;
      let files = 0;
      let commits = 0;
      for (const [type, partitions] of flushing) {
        const flushed = await flushTable(type, partitions);
        records += flushed.records;
        files += flushed.files;
        if (flushed.files > 0) commits++;
      }
      if (records > 0) await recordRun(tx, { job: LAKE_JOB, startedAt, finishedAt: new Date(), status: "succeeded", records });
      return () => {
        lakeFlushSeconds.observe({}, (Date.now() - startedAt.getTime()) / 1000);
        lakeFlushRecords.inc({}, records);
        lakeFlushFiles.inc({}, files);
        for (const [type] of flushing) buffers.delete(type);
        buffered -= count;
        stats.written += records;
        stats.replays_dropped += count - records;
        stats.files += files;
        stats.commits += commits;
      };
    },

    reset() {
      buffers.clear();
      progress.clear();
      buffered = 0;
    },

    revoked(partitions) {
      for (const { partition } of partitions) {
        for (const tables of buffers.values()) {
          buffered -= tables.get(partition)?.values.length ?? 0;
          tables.delete(partition);
        }
        for (const tables of progress.values()) tables.delete(partition);
      }
    },

    stats: () => ({ ...stats }),
  };
}
