import { mkdir, rm, stat } from "node:fs/promises";
import { join } from "node:path";
import type { Sql } from "../../lib/db/index.ts";
import { envelopeColumns, payloadColumns } from "../../lib/lake/columns.ts";
import { type Duck, sqlString, sqlStringList } from "../../lib/lake/duckdb.ts";
import { compactedFileKey } from "../../lib/lake/layout.ts";
import type { LocalFiles } from "../../lib/lake/local-files.ts";
import type { ObjectStore } from "../../lib/lake/types.ts";
import type { Logger } from "../../lib/log.ts";
import { CompactionConflictError, compactableGroups, forgetFiles, isLive, type LakeFile, replaceFiles, retiredFiles } from "../../lib/store/lake-files.ts";
import { recordRun } from "../../lib/store/runs.ts";

export const COMPACTION_JOB = "compaction";
/**
 * Rows per Parquet row group of a compacted file. Rows are sorted by key, so small groups let a
 * one-device query skip most of a file by the groups' min/max statistics.
 */
const ROW_GROUP_ROWS = 16_384;
/** Groups merged per run, so one run stays short. */
const GROUPS_PER_RUN = 50;

export interface CompactionDeps {
  sql: Sql;
  store: ObjectStore;
  files: LocalFiles;
  duck: Duck;
  workDir: string;
  logger: Logger;
  /** An hour is closed this long after it ends. */
  closeAfterMs: number;
  /** Retired files stay readable this long: longer than any query that listed them can run. */
  retireGraceMs: number;
}

/** Merges one closed hour of one input partition into a single file, each event once, sorted by key and time. */
async function compactGroup(deps: CompactionDeps, group: LakeFile[]): Promise<number> {
  const [first] = group;
  if (!first) return 0;
  const startedAt = new Date();
  const fromOffset = Math.min(...group.map((f) => f.fromOffset));
  const toOffset = Math.max(...group.map((f) => f.toOffset));
  const key = compactedFileKey(first.type, first.hour, first.partition, fromOffset, toOffset);
  const output = join(deps.workDir, `compact-${crypto.randomUUID()}.parquet`);
  const columns = [...envelopeColumns, ...payloadColumns(first.type)].map((c) => `"${c.name}"`).join(", ");
  try {
    const paths = await deps.files.paths(group.map((f) => f.key));
    const copied = await deps.duck.query(`
      copy (select ${columns} from read_parquet(${sqlStringList(paths)}, union_by_name = true)
            qualify row_number() over (partition by event_id order by ingest_time, event_time) = 1
            order by key, event_time)
      to ${sqlString(output)} (format parquet, compression zstd, row_group_size ${ROW_GROUP_ROWS})`);
    // COPY answers with the number of rows it wrote.
    const rows = Number(copied.rows[0]?.[0] ?? 0);
    await deps.store.putFile(key, output);
    const merged: LakeFile = { key, type: first.type, hour: first.hour, partition: first.partition, fromOffset, toOffset, rows, bytes: (await stat(output)).size, compacted: true };
    try {
      await deps.sql.begin(async (tx) => {
        await replaceFiles(tx, merged, group.map((f) => f.key).filter((k) => k !== key));
        await recordRun(tx, { job: COMPACTION_JOB, startedAt, finishedAt: new Date(), status: "succeeded", records: rows });
      });
    } catch (error) {
      if (!(error instanceof CompactionConflictError)) throw error;
      // The winner merged the same group under the same key (same bytes) or a different one: only an output
      // nobody listed is ours to remove.
      if (!(await isLive(deps.sql, key))) await deps.store.delete([key]);
      deps.logger.info("compaction skipped: another compactor changed the group", { key, reason: error.message });
      return 0;
    }
    return group.length;
  } catch (error) {
    await recordRun(deps.sql, { job: COMPACTION_JOB, startedAt, finishedAt: new Date(), status: "failed", records: 0, error: error instanceof Error ? error.message : String(error) }).catch(() => undefined);
    throw error;
  } finally {
    await rm(output, { force: true });
  }
}

/**
 * One compaction pass: merges closed hours that have several files, then deletes files retired longer
 * ago than the grace period. Queries list files in the manifest at their start and the files they
 * listed stay in storage for the grace period, so a query never sees a row twice or misses one.
 */
export async function compactOnce(deps: CompactionDeps): Promise<{ merged: number; deleted: number }> {
  // Several workers may compact at once: the same group gives the same key and the same bytes, and
  // replaceFiles lets only one of them retire the group's files.
  await mkdir(deps.workDir, { recursive: true });
  let merged = 0;
  for (const group of await compactableGroups(deps.sql, Date.now() - deps.closeAfterMs, GROUPS_PER_RUN)) merged += await compactGroup(deps, group);
  const retired = await retiredFiles(deps.sql, deps.retireGraceMs);
  if (retired.length > 0) {
    await deps.store.delete(retired);
    await deps.files.evict(retired);
    await forgetFiles(deps.sql, retired);
  }
  return { merged, deleted: retired.length };
}
