import { mkdir, readdir, rm, stat } from "node:fs/promises";
import { join } from "node:path";
import type { LakeFile } from "../store/lake-files.ts";
import { type LakeColumn, payloadColumns } from "./columns.ts";
import { type Duck, sqlString } from "./duckdb.ts";
import { flushFileKey } from "./layout.ts";
import type { ObjectStore } from "./types.ts";

/** What one flush of one input partition holds: the enriched envelopes as JSON, by type. */
export interface FlushBatch {
  topic: string;
  partition: number;
  fromOffset: number;
  toOffset: number;
  byType: Map<string, TypeRecords>;
}

export interface TypeRecords {
  values: Uint8Array[];
  /** Records per UTC hour of event time (epoch ms of the hour's start). */
  hours: Map<number, number>;
}

const UPLOADS_AT_ONCE = 4;
const NEWLINE = new Uint8Array([10]);

/** read_json's column spec for a type's envelopes: the payload as a typed struct. */
function jsonColumns(columns: LakeColumn[]): string {
  const struct = columns.map((c) => `"${c.name}" ${c.duckType}`).join(", ");
  return `{type: 'VARCHAR', key: 'VARCHAR', event_id: 'VARCHAR', event_time: 'BIGINT', ingest_time: 'BIGINT', payload: 'STRUCT(${struct})'}`;
}

/** The select turning an envelope row into a lake row: envelope columns, then the payload's, then the hive keys. */
function lakeRowSelect(type: string): string {
  const payload = payloadColumns(type).map((c) => `payload."${c.name}" as "${c.name}"`);
  return [
    "event_id",
    "key",
    "make_timestamptz(event_time * 1000) as event_time",
    "make_timestamptz(ingest_time * 1000) as ingest_time",
    ...payload,
    "strftime(make_timestamptz(event_time * 1000), '%Y-%m-%d') as date",
    "strftime(make_timestamptz(event_time * 1000), '%H') as hour",
  ].join(", ");
}

/**
 * Writes a flush as Parquet (zstd), one file per type and hour of event time, and uploads them under
 * keys named by the partition and offset range. Returns the files for the manifest; nothing is listed
 * anywhere yet, so a failure here leaves at most unlisted objects that a retry overwrites.
 */
export async function writeFlush(duck: Duck, store: ObjectStore, workDir: string, batch: FlushBatch): Promise<LakeFile[]> {
  const dir = join(workDir, `${batch.partition}-${batch.fromOffset}`);
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { recursive: true });
  try {
    const written: { file: LakeFile; path: string }[] = [];
    for (const [type, { values, hours }] of batch.byType) {
      const input = join(dir, `${type}.ndjson`);
      const parts: Uint8Array[] = [];
      for (const value of values) parts.push(value, NEWLINE);
      await Bun.write(input, new Blob(parts));
      const output = join(dir, `out-${type}`);
      await duck.run(`
        copy (select ${lakeRowSelect(type)} from read_json(${sqlString(input)}, format = 'newline_delimited', columns = ${jsonColumns(payloadColumns(type))}))
        to ${sqlString(output)} (format parquet, compression zstd, partition_by (date, hour), filename_pattern 'part_{i}', overwrite)`);
      for (const [hour, rows] of hours) {
        const iso = new Date(hour).toISOString();
        const hourDir = join(output, `date=${iso.slice(0, 10)}`, `hour=${iso.slice(11, 13)}`);
        const [name] = (await readdir(hourDir)).filter((n) => n.endsWith(".parquet"));
        if (!name) throw new Error(`DuckDB wrote no file for ${type} at ${iso}`);
        const path = join(hourDir, name);
        written.push({
          path,
          file: {
            key: flushFileKey(type, hour, batch.topic, batch.partition, batch.fromOffset, batch.toOffset),
            type,
            hour,
            partition: batch.partition,
            fromOffset: batch.fromOffset,
            toOffset: batch.toOffset,
            rows,
            bytes: (await stat(path)).size,
            compacted: false,
          },
        });
      }
    }
    for (let i = 0; i < written.length; i += UPLOADS_AT_ONCE) {
      await Promise.all(written.slice(i, i + UPLOADS_AT_ONCE).map((w) => store.putFile(w.file.key, w.path)));
    }
    return written.map((w) => w.file);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
