import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import { DeltaConflictError, LakeError } from "../errors.ts";
import { type Action, type Add, encodeStats, type FileStats } from "./delta/actions.ts";
import { type CommitOptions, commit } from "./delta/commit.ts";
import { type Duck, sqlString } from "./duckdb.ts";
import { fileKeyOf, type HourPartition, hourPartitionFrom, newDataFilePath, partitionValuesOf } from "./tables.ts";
import type { ObjectStore } from "./types.ts";

/** A Parquet file DuckDB wrote locally, with what its `add` action needs. */
export interface DataFile {
  localPath: string;
  partition: HourPartition | undefined;
  numRecords: number;
  size: number;
  /** `add.stats`: numRecords plus min/max/nulls of the columns readers skip files by. */
  stats: string;
}

/** Columns whose min/max go into `add.stats`: event tables are read by time and by key. */
const STATS_COLUMNS = ["event_time", "key"];
/** Longer strings get no min/max: a truncated max would make a reader skip a file that matches. */
const MAX_STATS_STRING = 64;

type MapEntries = { key: unknown; value: unknown }[];
const entries = (value: unknown): Map<string, unknown> => new Map(Array.isArray(value) ? (value as MapEntries).map((e) => [String(e.key), e.value]) : []);

/** DuckDB renders TIMESTAMPTZ statistics as `2026-11-21 07:00:00.123+00`; Delta stats hold ISO-8601 UTC. */
function statValue(column: string, text: string): string | undefined {
  if (column === "event_time") {
    const ms = Date.parse(text.replace(" ", "T").replace(/\+00$/, "Z"));
    return Number.isNaN(ms) ? undefined : new Date(ms).toISOString();
  }
  return text.length <= MAX_STATS_STRING ? text : undefined;
}

function statsOf(count: number, columnStatistics: unknown): FileStats {
  const stats: Required<FileStats> = { numRecords: count, minValues: {}, maxValues: {}, nullCount: {} };
  for (const [quoted, value] of entries(columnStatistics)) {
    const column = quoted.replace(/^"|"$/g, "");
    if (!STATS_COLUMNS.includes(column)) continue;
    const of = entries(value);
    const min = of.get("min");
    const max = of.get("max");
    const nulls = of.get("null_count");
    const lo = typeof min === "string" ? statValue(column, min) : undefined;
    const hi = typeof max === "string" ? statValue(column, max) : undefined;
    if (lo !== undefined && hi !== undefined) {
      stats.minValues[column] = lo;
      stats.maxValues[column] = hi;
    }
    if (nulls !== undefined && nulls !== null) stats.nullCount[column] = Number(nulls);
  }
  return stats;
}

/**
 * Writes `select` to zstd Parquet under `outDir` with DuckDB: one file per (date, hour) when
 * `partitioned` (the select then ends with `date` DATE and `hour` INTEGER columns, which go into the
 * directory names and not into the files, as Delta readers expect), else one file. Returns the files
 * with their row counts and stats, from DuckDB's own COPY statistics.
 */
export async function copyToDataFiles(duck: Duck, select: string, outDir: string, options: { partitioned: boolean; rowGroupRows?: number }): Promise<DataFile[]> {
  await mkdir(outDir, { recursive: true });
  const target = options.partitioned ? outDir : join(outDir, "data.parquet");
  const settings = ["format parquet", "compression zstd", "return_stats", ...(options.rowGroupRows ? [`row_group_size ${options.rowGroupRows}`] : []), ...(options.partitioned ? ["partition_by (date, hour)", "filename_pattern 'data_{i}'", "overwrite"] : [])];
  const { rows } = await duck.query(`copy (${select}) to ${sqlString(target)} (${settings.join(", ")})`);
  const files: DataFile[] = [];
  for (const [filename, count, size, , columnStatistics, partitionKeys] of rows) {
    const numRecords = Number(count);
    // An empty result still gives one (empty) file when not partitioned: a dim may be empty.
    if (numRecords === 0 && options.partitioned) continue;
    let partition: HourPartition | undefined;
    if (options.partitioned) {
      partition = hourPartitionFrom(Object.fromEntries([...entries(partitionKeys)].map(([k, v]) => [k, v === null ? null : String(v)])));
      if (!partition) throw new LakeError(`DuckDB wrote ${String(filename)} without a date and hour partition`);
    }
    files.push({ localPath: String(filename), partition, numRecords, size: Number(size), stats: encodeStats(statsOf(numRecords, columnStatistics)) });
  }
  return files;
}

const UPLOADS_AT_ONCE = 4;

/**
 * Uploads the files into `table` under fresh names and returns their `add` actions (`dataChange` as
 * given). Nothing is live until a commit lists them; an upload that never gets committed is an orphan
 * VACUUM removes after the retention.
 */
export async function uploadDataFiles(store: ObjectStore, table: string, files: readonly DataFile[], kind: "part" | "compacted" | "dim", dataChange: boolean): Promise<Add[]> {
  const adds: Add[] = [];
  for (let i = 0; i < files.length; i += UPLOADS_AT_ONCE) {
    const slice = files.slice(i, i + UPLOADS_AT_ONCE);
    const uploaded = await Promise.all(
      slice.map(async (file): Promise<Add> => {
        const path = newDataFilePath(file.partition, kind);
        await store.putFile(fileKeyOf(table, path), file.localPath);
        return { path, partitionValues: file.partition ? partitionValuesOf(file.partition) : {}, size: file.size, modificationTime: Date.now(), dataChange, stats: file.stats };
      }),
    );
    adds.push(...uploaded);
  }
  return adds;
}

/**
 * Commits the uploaded files (`adds`) with the other actions. When the commit is refused
 * (DeltaConflictError) the files were never live and are deleted before the error goes on; after any
 * other failure the commit may have landed, so they are left for VACUUM's orphan sweep.
 */
export async function commitDataFiles(store: ObjectStore, table: string, adds: readonly Add[], actions: readonly Action[], options: CommitOptions): Promise<number> {
  try {
    return await commit(store, table, [...actions, ...adds.map((add) => ({ add }))], options);
  } catch (error) {
    if (error instanceof DeltaConflictError) await store.delete(adds.map((add) => fileKeyOf(table, add.path)));
    throw error;
  }
}
