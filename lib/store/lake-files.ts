import type { Sql } from "postgres";
import type { Tx } from "../db/index.ts";
import { AppError } from "../errors.ts";
import { hourOf } from "../lake/layout.ts";

/** Another compactor retired some of a group's files first: this compaction must change nothing. */
export class CompactionConflictError extends AppError {
  constructor(message: string) {
    super("compaction_conflict", message, { retriable: false });
  }
}

/** A Parquet file of the lake as the manifest lists it. */
export interface LakeFile {
  key: string;
  type: string;
  /** Start of the UTC hour of event time the file holds, epoch ms. */
  hour: number;
  partition: number;
  fromOffset: number;
  toOffset: number;
  rows: number;
  bytes: number;
  compacted: boolean;
}

type Row = { key: string; type: string; hour: Date; partition: number; from_offset: string; to_offset: string; rows: string; bytes: string; compacted: boolean };
const toFile = (r: Row): LakeFile => ({
  key: r.key,
  type: r.type,
  hour: r.hour.getTime(),
  partition: r.partition,
  fromOffset: Number(r.from_offset),
  toOffset: Number(r.to_offset),
  rows: Number(r.rows),
  bytes: Number(r.bytes),
  compacted: r.compacted,
});

/** Adds files to the manifest; a key already listed (a retried flush of the same range) is left as it is. */
export async function addFiles(tx: Tx, files: LakeFile[]): Promise<void> {
  if (files.length === 0) return;
  await tx`
    insert into lake_files (key, type, hour, partition, from_offset, to_offset, rows, bytes, compacted)
    select * from unnest(${files.map((f) => f.key)}::text[], ${files.map((f) => f.type)}::text[], ${files.map((f) => new Date(f.hour).toISOString())}::timestamptz[],
      ${files.map((f) => f.partition)}::int[], ${files.map((f) => f.fromOffset)}::bigint[], ${files.map((f) => f.toOffset)}::bigint[],
      ${files.map((f) => f.rows)}::bigint[], ${files.map((f) => f.bytes)}::bigint[], ${files.map((f) => (f.compacted ? "t" : "f"))}::text[]::boolean[]) -- as text: the driver mangles boolean[] parameters
    on conflict (key) do nothing`;
}

/** Live files, narrowed by type, by hours overlapping [fromMs, toMs) and by input partition. */
export async function liveFiles(sql: Sql, filter: { types?: string[]; fromMs?: number; toMs?: number; partitions?: number[] } = {}): Promise<LakeFile[]> {
  const rows = await sql<Row[]>`
    select key, type, hour, partition, from_offset, to_offset, rows, bytes, compacted from lake_files
    where removed_at is null
      ${filter.types ? sql`and type = any(${filter.types})` : sql``}
      ${filter.fromMs !== undefined ? sql`and hour >= ${new Date(hourOf(filter.fromMs)).toISOString()}::timestamptz` : sql``}
      ${filter.toMs !== undefined ? sql`and hour < ${new Date(filter.toMs).toISOString()}::timestamptz` : sql``}
      ${filter.partitions ? sql`and partition = any(${filter.partitions})` : sql``}
    order by type, hour, partition, from_offset`;
  return rows.map(toFile);
}

/** Hours (per type and input partition) that ended before `closedBefore` and still have several files. */
export async function compactableGroups(sql: Sql, closedBefore: number, limit: number): Promise<LakeFile[][]> {
  const rows = await sql<Row[]>`
    with groups as (
      select type, hour, partition from lake_files
      where removed_at is null and hour + interval '1 hour' <= ${new Date(closedBefore).toISOString()}::timestamptz
      group by type, hour, partition having count(*) > 1
      order by hour, type, partition limit ${limit})
    select f.key, f.type, f.hour, f.partition, f.from_offset, f.to_offset, f.rows, f.bytes, f.compacted
    from lake_files f join groups g using (type, hour, partition)
    where f.removed_at is null
    order by f.hour, f.type, f.partition, f.from_offset`;
  const groups = new Map<string, LakeFile[]>();
  for (const file of rows.map(toFile)) {
    const id = `${file.type}|${file.hour}|${file.partition}`;
    const group = groups.get(id);
    if (group) group.push(file);
    else groups.set(id, [file]);
  }
  return [...groups.values()];
}

/**
 * Lists `merged` and retires `replaced` inside `tx`. Throws CompactionConflictError when any of
 * `replaced` is no longer live (another compaction got there first), so the transaction rolls back
 * whole: committing the files it did retire would lose their rows.
 */
export async function replaceFiles(tx: Tx, merged: LakeFile, replaced: string[]): Promise<void> {
  const retired = await tx`update lake_files set removed_at = now() where key = any(${replaced}) and removed_at is null returning key`;
  if (retired.length !== replaced.length) throw new CompactionConflictError(`${replaced.length - retired.length} of the ${replaced.length} files merged into ${merged.key} were already retired by another compaction`);
  await addFiles(tx, [merged]);
}

/** Whether `key` is listed and not retired. */
export async function isLive(sql: Sql, key: string): Promise<boolean> {
  const [row] = await sql<{ live: boolean }[]>`select exists (select 1 from lake_files where key = ${key} and removed_at is null) as live`;
  return row?.live ?? false;
}

/** Files retired more than `graceMs` ago: no query that could still read them is running. */
export async function retiredFiles(sql: Sql, graceMs: number): Promise<string[]> {
  const rows = await sql<{ key: string }[]>`select key from lake_files where removed_at < now() - ${graceMs / 1000} * interval '1 second'`;
  return rows.map((r) => r.key);
}

export async function forgetFiles(sql: Sql, keys: string[]): Promise<void> {
  if (keys.length > 0) await sql`delete from lake_files where key = any(${keys}) and removed_at is not null`;
}

/** The events.raw offset each enriched partition's lake files reach (for dropping enrich replays). */
export async function loadSourceOffsets(sql: Sql, partitions: number[]): Promise<Map<number, number>> {
  if (partitions.length === 0) return new Map();
  const rows = await sql<{ partition: number; source_offset: string }[]>`select partition, source_offset from lake_progress where partition = any(${partitions})`;
  return new Map(rows.map((r) => [r.partition, Number(r.source_offset)]));
}

export async function saveSourceOffsets(tx: Tx, offsets: Map<number, number>): Promise<void> {
  if (offsets.size === 0) return;
  await tx`
    insert into lake_progress (partition, source_offset)
    select * from unnest(${[...offsets.keys()]}::int[], ${[...offsets.values()]}::bigint[])
    on conflict (partition) do update set source_offset = excluded.source_offset`;
}

export interface LakeDim {
  name: string;
  version: number;
  key: string;
}

export async function lakeDims(sql: Sql): Promise<LakeDim[]> {
  const rows = await sql<{ name: string; version: string; key: string }[]>`select name, version, key from lake_dims`;
  return rows.map((r) => ({ name: r.name, version: Number(r.version), key: r.key }));
}

export async function setLakeDim(sql: Sql, dim: LakeDim & { rows: number }): Promise<void> {
  await sql`insert into lake_dims (name, version, key, rows, updated_at) values (${dim.name}, ${dim.version}, ${dim.key}, ${dim.rows}, now())
            on conflict (name) do update set version = excluded.version, key = excluded.key, rows = excluded.rows, updated_at = excluded.updated_at
            where lake_dims.version < excluded.version`;
}
