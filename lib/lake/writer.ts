import { rm } from "node:fs/promises";
import { join } from "node:path";
import { type LakeColumn, payloadColumns } from "./columns.ts";
import { copyToDataFiles, type DataFile } from "./data-files.ts";
import { type Duck, sqlString } from "./duckdb.ts";

const NEWLINE = new Uint8Array([10]);

/** read_json's column spec for a type's envelopes: the payload as a typed struct. */
function jsonColumns(columns: LakeColumn[]): string {
  const struct = columns.map((c) => `"${c.name}" ${c.duckType}`).join(", ");
  return `{type: 'VARCHAR', key: 'VARCHAR', event_id: 'VARCHAR', event_time: 'BIGINT', ingest_time: 'BIGINT', payload: 'STRUCT(${struct})'}`;
}

/** The select turning an envelope row into a table row: envelope columns, the payload's, then the partition columns. */
function tableRowSelect(type: string): string {
  const payload = payloadColumns(type).map((c) => `payload."${c.name}" as "${c.name}"`);
  const utc = "timezone('UTC', make_timestamptz(event_time * 1000))";
  return [
    "event_id",
    "key",
    "make_timestamptz(event_time * 1000) as event_time",
    "make_timestamptz(ingest_time * 1000) as ingest_time",
    ...payload,
    `${utc}::date as date`,
    `hour(${utc})::integer as hour`,
  ].join(", ");
}

/**
 * Writes one type's enriched envelopes (JSON) as zstd Parquet under `dir`, one file per UTC date and
 * hour of event time, with their stats. The files are local; nothing is uploaded or committed here.
 */
export async function writeTypeFiles(duck: Duck, dir: string, type: string, values: readonly Uint8Array[]): Promise<DataFile[]> {
  await rm(dir, { recursive: true, force: true });
  const input = `${dir}.ndjson`;
  const parts: Uint8Array[] = [];
  for (const value of values) parts.push(value, NEWLINE);
  await Bun.write(input, new Blob(parts));
  try {
    return await copyToDataFiles(duck, `select ${tableRowSelect(type)} from read_json(${sqlString(input)}, format = 'newline_delimited', columns = ${jsonColumns(payloadColumns(type))})`, join(dir, "out"), { partitioned: true });
  } finally {
    await rm(input, { force: true });
  }
}
