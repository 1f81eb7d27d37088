import { mkdir } from "node:fs/promises";
import type { Batch } from "../../lib/bus/types.ts";
import type { Sql, Tx } from "../../lib/db/index.ts";
import type { Duck } from "../../lib/lake/duckdb.ts";
import { hourOf } from "../../lib/lake/layout.ts";
import type { ObjectStore } from "../../lib/lake/types.ts";
import { type FlushBatch, type TypeRecords, writeFlush } from "../../lib/lake/writer.ts";
import type { Logger } from "../../lib/log.ts";
import { addFiles, type LakeFile, loadSourceOffsets, saveSourceOffsets } from "../../lib/store/lake-files.ts";
import { lakeFlushFailures, lakeFlushRecords, lakeFlushSeconds, undecodableRecords } from "../../lib/metrics.ts";
import { recordRun } from "../../lib/store/runs.ts";
import type { Topics } from "../../lib/topics.ts";
import { parseSource, SOURCE_HEADER } from "../../lib/windows/source.ts";
import type { DeadLetterSink } from "../dead-letters.ts";
import type { StreamJob } from "../runner.ts";

export const LAKE_JOB = "lake";

interface PartitionBuffer {
  fromOffset: number;
  toOffset: number;
  ids: Set<string>;
  byType: Map<string, TypeRecords>;
  records: number;
}

export interface LakeStats {
  written: number;
  files: number;
  replays_dropped: number;
  repeats_dropped: number;
  undecodable: number;
}

/**
 * events.enriched (late events too: the lake keeps raw data) → Parquet files in the lake. Each
 * checkpoint is a flush: the buffered records of each input partition are written as one file per type
 * and hour, named by the partition's offset range, uploaded, and listed in the manifest in the
 * transaction that commits the input positions. A crash before the commit leaves unlisted objects that
 * nobody reads and the next attempt overwrites; after it, the positions say the records are done.
 */
export function createLakeJob(deps: { sql: Sql; store: ObjectStore; duck: Duck; workDir: string; topics: Topics; logger: Logger }): StreamJob & { stats: () => LakeStats } {
  const buffers = new Map<number, PartitionBuffer>();
  /** Newest events.raw offset written per source partition: an enrich replay carries an older one. */
  const sourceOffsets = new Map<number, number>();
  const stats: LakeStats = { written: 0, files: 0, replays_dropped: 0, repeats_dropped: 0, undecodable: 0 };
  let buffered = 0;
  /** The flush the current checkpoint attempts, for the runs log when it fails. */
  let lastAttempt: { startedAt: Date; records: number } | undefined;

  const bufferOf = (partition: number, offset: number) => {
    let buffer = buffers.get(partition);
    if (!buffer) {
      buffer = { fromOffset: offset, toOffset: offset, ids: new Set(), byType: new Map(), records: 0 };
      buffers.set(partition, buffer);
    }
    return buffer;
  };

  return {
    name: LAKE_JOB,
    input: deps.topics.enriched,

    async assigned(partitions) {
      const loaded = await loadSourceOffsets(deps.sql, partitions.map((p) => p.partition));
      for (const [partition, offset] of loaded) sourceOffsets.set(partition, offset);
    },

    process(batch: Batch, dead: DeadLetterSink) {
      for (const record of batch.records) {
        const buffer = bufferOf(batch.partition, record.offset);
        buffer.toOffset = record.offset;
        const source = parseSource(record.headers[SOURCE_HEADER]);
        if (source) {
          if (source.offset <= (sourceOffsets.get(source.partition) ?? -1)) {
            stats.replays_dropped++;
            continue;
          }
          sourceOffsets.set(source.partition, source.offset);
        }
        let head: { type?: unknown; event_id?: unknown; event_time?: unknown };
        try {
          head = JSON.parse(new TextDecoder().decode(record.value)) as typeof head;
        } catch {
          head = {};
        }
        if (typeof head.type !== "string" || typeof head.event_id !== "string" || typeof head.event_time !== "number") {
          stats.undecodable++;
          undecodableRecords.inc({ job: LAKE_JOB });
          dead(record, "not an event envelope");
          continue;
        }
        // Each file holds an event once; repeats across files are removed by compaction and by readers.
        if (buffer.ids.has(head.event_id)) {
          stats.repeats_dropped++;
          continue;
        }
        buffer.ids.add(head.event_id);
        let typed = buffer.byType.get(head.type);
        if (!typed) {
          typed = { values: [], hours: new Map() };
          buffer.byType.set(head.type, typed);
        }
        typed.values.push(record.value);
        const hour = hourOf(head.event_time);
        typed.hours.set(hour, (typed.hours.get(hour) ?? 0) + 1);
        buffer.records++;
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
      const flushing = [...buffers.entries()];
      const progress = new Map(sourceOffsets);
      lastAttempt = undefined;
      if (flushing.length === 0) {
        await saveSourceOffsets(tx, progress);
        return;
      }
      const startedAt = new Date();
      const records = flushing.reduce((sum, [, b]) => sum + b.records, 0);
      lastAttempt = { startedAt, records };
      let files: LakeFile[] = [];
      await mkdir(deps.workDir, { recursive: true });
      for (const [partition, buffer] of flushing) {
        if (buffer.records === 0) continue;
        const batch: FlushBatch = { topic: deps.topics.enriched, partition, fromOffset: buffer.fromOffset, toOffset: buffer.toOffset, byType: buffer.byType };
        files = files.concat(await writeFlush(deps.duck, deps.store, deps.workDir, batch));
      }
      await addFiles(tx, files);
      await saveSourceOffsets(tx, progress);
      await recordRun(tx, { job: LAKE_JOB, startedAt, finishedAt: new Date(), status: "succeeded", records });
      return () => {
        lakeFlushSeconds.observe({}, (Date.now() - startedAt.getTime()) / 1000);
        lakeFlushRecords.inc({}, records);
        for (const [partition] of flushing) buffers.delete(partition);
        buffered -= records;
        stats.written += records;
        stats.files += files.length;
      };
    },

    reset() {
      buffers.clear();
      sourceOffsets.clear();
      buffered = 0;
    },

    revoked(partitions) {
      for (const p of partitions) {
        buffered -= buffers.get(p.partition)?.records ?? 0;
        buffers.delete(p.partition);
        sourceOffsets.delete(p.partition);
      }
    },

    stats: () => ({ ...stats }),
  };
}
