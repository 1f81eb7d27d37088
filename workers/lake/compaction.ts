import { mkdir, rm } from "node:fs/promises";
import { join } from "node:path";
import { z } from "zod";
import type { Sql } from "../../lib/db/index.ts";
import { DeltaConflictError, LakeError } from "../../lib/errors.ts";
import { eventTypes } from "../../lib/events/index.ts";
import { commitDataFiles, copyToDataFiles, uploadDataFiles } from "../../lib/lake/data-files.ts";
import { type Add, type Metadata, removeOf } from "../../lib/lake/delta/actions.ts";
import { tableLogsOf } from "../../lib/lake/delta/log.ts";
import { type DeltaType, parseSchemaString } from "../../lib/lake/delta/schema.ts";
import type { Snapshot } from "../../lib/lake/delta/snapshot.ts";
import { type Duck, sqlString, sqlStringList } from "../../lib/lake/duckdb.ts";
import type { LocalFiles } from "../../lib/lake/local-files.ts";
import { eventTableOf, fileKeyOf, HOUR_MS, type HourPartition, hourPartitionFrom, hourStartOf } from "../../lib/lake/tables.ts";
import type { ObjectStore } from "../../lib/lake/types.ts";
import type { Logger } from "../../lib/log.ts";
import { recordRun } from "../../lib/store/runs.ts";

export const COMPACTION_JOB = "compaction";
/**
 * Rows per Parquet row group of a compacted file. Rows are sorted by key, so small groups let a
 * one-device query skip most of a file by the groups' min/max statistics.
 */
const ROW_GROUP_ROWS = 16_384;
/** Groups merged per run, so one run stays short. */
const GROUPS_PER_RUN = 50;
/**
 * Rows of one compacted file, so one merge sorts at most this many rows whatever the event rate: its memory
 * (DuckDB's limit plus ~100 MB it keeps outside that limit while scanning) stays the same at 4,000 or
 * 40,000 events/s. A busy hour becomes a few files, each sorted by key and time.
 */
export const COMPACTED_FILE_ROWS = 2_000_000;

/**
 * Compaction's DuckDB, opened for one pass and closed after it: DuckDB keeps the memory a merge took until
 * the instance closes. A merge (at most COMPACTED_FILE_ROWS rows) spills its sort to `temp_directory` past the
 * limit; measured on 2M rows of telemetry, it peaks ~130 MB above the process's baseline at 64 MB (~190 MB at
 * 128 MB), most of it outside the limit. 64 MB is the floor: at 32 or 48 MB a merge of 1M rows runs out of
 * memory. One thread also keeps a compacted file's row groups in sort order (see CompactionDeps.duck).
 * `bun bench/compaction-memory.ts` measures the peak.
 */
export const compactionDuckSettings = (tempDir: string) => ({ threads: "1", memory_limit: "64MB", temp_directory: tempDir });

export interface CompactionDeps {
  sql: Sql;
  store: ObjectStore;
  files: LocalFiles;
  /** One thread: with more, DuckDB's partitioned COPY writes the sorted row groups in any order. */
  duck: Duck;
  workDir: string;
  logger: Logger;
  /** An hour is closed this long after it ends. */
  closeAfterMs: number;
  /** Groups merged per run (default 50). */
  maxGroups?: number;
  /** Rows of one compacted file (default COMPACTED_FILE_ROWS). */
  fileRows?: number;
  /** LAKE_RETENTION_S, for the checkpoints its commits write. */
  retentionMs?: number;
}

/** What merging one group needs (no database: the caller records the run). */
export type GroupDeps = Pick<CompactionDeps, "store" | "files" | "duck" | "workDir" | "logger" | "retentionMs">;

/** Live files of one closed hour of one event table, at most a compacted file's rows: merged into one file by one commit. */
export interface CompactionGroup {
  table: string;
  partition: HourPartition;
  files: Add[];
}

export type CompactionOutcome =
  | { status: "committed"; version: number; rows: number; outputs: string[] }
  /** Another commit removed an input first; `outputs` were deleted again. */
  | { status: "conflict"; rows: number; outputs: string[] };

const DUCK_TYPE_OF: Record<DeltaType, string> = { string: "VARCHAR", long: "BIGINT", integer: "INTEGER", double: "DOUBLE", boolean: "BOOLEAN", timestamp: "TIMESTAMPTZ", date: "DATE" };
const ident = (name: string) => `"${name.replaceAll('"', '""')}"`;
const numRecordsSchema = z.object({ numRecords: z.number().int().nonnegative() });

/** Rows in a file by its `add.stats`, or undefined when the writer recorded none. */
function numRecordsOf(add: Add): number | undefined {
  if (!add.stats) return undefined;
  try {
    return numRecordsSchema.safeParse(JSON.parse(add.stats)).data?.numRecords;
  } catch {
    return undefined;
  }
}

/**
 * Groups to merge, oldest hour first, at most `max`: the small files of each closed hour (under half of
 * `fileRows`) packed in write order into groups of at most `fileRows` rows; a group of one file is left as it
 * is. A compacted file is small only when its group was (an hour's last), so it is merged again only with files
 * added to its hour later. A file without row counts in its stats (another writer's) counts as small and empty.
 */
export function compactableGroups(table: string, snapshot: Snapshot, closedBefore: number, max: number, fileRows = COMPACTED_FILE_ROWS): CompactionGroup[] {
  const byHour = new Map<string, { partition: HourPartition; files: { add: Add; rows: number }[] }>();
  for (const add of snapshot.files.values()) {
    const partition = hourPartitionFrom(add.partitionValues);
    if (!partition || hourStartOf(partition) + HOUR_MS > closedBefore) continue;
    const rows = numRecordsOf(add) ?? 0;
    if (rows * 2 >= fileRows) continue;
    const id = `${partition.date}/${String(partition.hour).padStart(2, "0")}`;
    const hour = byHour.get(id) ?? { partition, files: [] };
    hour.files.push({ add, rows });
    byHour.set(id, hour);
  }
  const groups: CompactionGroup[] = [];
  for (const [, hour] of [...byHour.entries()].sort(([a], [b]) => (a < b ? -1 : 1))) {
    let group: CompactionGroup = { table, partition: hour.partition, files: [] };
    let groupRows = 0;
    for (const { add, rows } of hour.files.sort((a, b) => (a.add.path < b.add.path ? -1 : 1))) {
      if (group.files.length > 0 && groupRows + rows > fileRows) {
        if (group.files.length > 1) groups.push(group);
        group = { table, partition: hour.partition, files: [] };
        groupRows = 0;
      }
      group.files.push(add);
      groupRows += rows;
    }
    if (group.files.length > 1) groups.push(group);
    if (groups.length >= max) break;
  }
  return groups.slice(0, max);
}

/**
 * The table's current columns (files written before a column was added lack it: null there) followed by
 * the partition's date and hour as constants, rows sorted by key and event time. Nothing is deduplicated:
 * each event is in one live file, and compaction must not change data.
 */
async function mergeSelect(duck: Duck, metadata: Metadata, paths: string[], partition: HourPartition): Promise<string> {
  const source = `read_parquet(${sqlStringList(paths)}, union_by_name = true)`;
  const present = new Set((await duck.query(`describe select * from ${source}`)).rows.map(([name]) => String(name)));
  const columns = parseSchemaString(metadata.schemaString)
    .filter((c) => !metadata.partitionColumns.includes(c.name))
    .map((c) => (present.has(c.name) ? ident(c.name) : `null::${DUCK_TYPE_OF[c.type]} as ${ident(c.name)}`));
  return `select ${columns.join(", ")}, DATE ${sqlString(partition.date)} as "date", ${partition.hour}::INTEGER as "hour" from ${source} order by "key", "event_time"`;
}

/**
 * Merges one group read from `snapshot` into one file and commits it as OPTIMIZE: the inputs removed and
 * the output added with dataChange false, planned against `snapshot.version`. Appends committed meanwhile
 * (into the same hour too) do not conflict; a commit that removed an input first does, and then the
 * output, which was never live, is deleted.
 */
export async function compactGroup(deps: GroupDeps, snapshot: Snapshot, group: CompactionGroup): Promise<CompactionOutcome> {
  const { store, logger } = deps;
  const { table, partition } = group;
  const outDir = join(deps.workDir, `compact-${crypto.randomUUID()}`);
  try {
    const paths = await deps.files.paths(group.files.map((f) => fileKeyOf(table, f.path)));
    const written = await copyToDataFiles(deps.duck, await mergeSelect(deps.duck, snapshot.metadata, paths, partition), outDir, { partitioned: true, rowGroupRows: ROW_GROUP_ROWS });
    const rows = written.reduce((sum, f) => sum + f.numRecords, 0);
    const counts = group.files.map(numRecordsOf);
    const expected = counts.every((n) => n !== undefined) ? counts.reduce<number>((sum, n) => sum + (n ?? 0), 0) : rows;
    if (rows !== expected || written.some((f) => f.partition?.date !== partition.date || f.partition.hour !== partition.hour)) {
      throw new LakeError(`compaction of ${table} ${partition.date} hour ${partition.hour} wrote ${rows} rows in ${written.length} files for ${expected} rows in ${group.files.length}; nothing committed`);
    }
    const adds = await uploadDataFiles(store, table, written, "compacted", false);
    const outputs = adds.map((a) => fileKeyOf(table, a.path));
    const deletionTimestamp = Date.now();
    try {
      const removes = group.files.map((f) => removeOf(f, false, deletionTimestamp));
      const version = await commitDataFiles(store, table, adds, removes, { readVersion: snapshot.version, isBlindAppend: false, operation: "OPTIMIZE", tableLog: tableLogsOf(store).log(table), retentionMs: deps.retentionMs });
      return { status: "committed", version, rows, outputs };
    } catch (error) {
      if (!(error instanceof DeltaConflictError)) throw error;
      logger.info("compaction skipped: another commit removed the group's files first", { table, date: partition.date, hour: partition.hour, reason: error.message });
      return { status: "conflict", rows, outputs };
    }
  } finally {
    await rm(outDir, { recursive: true, force: true });
  }
}

export interface CompactionResult {
  /** Groups merged and committed. */
  groups: number;
  /** Input files those commits removed. */
  merged: number;
  rows: number;
  /** Groups another compactor committed first. */
  conflicts: number;
}

/**
 * One OPTIMIZE pass over every event table: closed hours with several live files in the latest snapshot
 * are merged, one commit per hour. Several workers may run it at once: each group's commit removes its
 * inputs, so of two compactors of the same hour exactly one commits. Removed files stay until VACUUM.
 */
export async function compactOnce(deps: CompactionDeps): Promise<CompactionResult> {
  await mkdir(deps.workDir, { recursive: true });
  const result: CompactionResult = { groups: 0, merged: 0, rows: 0, conflicts: 0 };
  let budget = deps.maxGroups ?? GROUPS_PER_RUN;
  for (const type of eventTypes.keys()) {
    if (budget <= 0) break;
    const table = eventTableOf(type);
    const snapshot = await tableLogsOf(deps.store).snapshot(table);
    if (!snapshot) continue;
    const groups = compactableGroups(table, snapshot, Date.now() - deps.closeAfterMs, budget, deps.fileRows);
    budget -= groups.length;
    for (const group of groups) {
      const startedAt = new Date();
      try {
        const outcome = await compactGroup(deps, snapshot, group);
        if (outcome.status === "conflict") {
          result.conflicts++;
          continue;
        }
        result.groups++;
        result.merged += group.files.length;
        result.rows += outcome.rows;
        await recordRun(deps.sql, { job: COMPACTION_JOB, startedAt, finishedAt: new Date(), status: "succeeded", records: outcome.rows });
      } catch (error) {
        await recordRun(deps.sql, { job: COMPACTION_JOB, startedAt, finishedAt: new Date(), status: "failed", records: 0, error: error instanceof Error ? error.message : String(error) }).catch(() => undefined);
        throw error;
      }
    }
  }
  return result;
}
