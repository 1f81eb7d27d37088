import { cleanupLog } from "../../lib/lake/delta/cleanup.ts";
import { tableLogsOf } from "../../lib/lake/delta/log.ts";
import { logPrefix } from "../../lib/lake/delta/paths.ts";
import type { LocalFiles } from "../../lib/lake/local-files.ts";
import { fileKeyOf, writtenAt } from "../../lib/lake/tables.ts";
import type { ObjectInfo, ObjectStore } from "../../lib/lake/types.ts";
import type { Logger } from "../../lib/log.ts";

export interface VacuumDeps {
  store: ObjectStore;
  files: LocalFiles;
  logger: Logger;
  /** Removed files and uncommitted uploads are kept this long (LAKE_RETENTION_S). */
  retentionMs: number;
}

export interface VacuumResult {
  tables: number;
  /** Files a commit removed more than the retention ago. */
  removed: number;
  /** Files no commit lists, written more than the retention ago. */
  orphans: number;
  /** Log entries (commits, checkpoints) older than the newest expired checkpoint. */
  logEntries: number;
  /** Tables that failed (logged); the others were vacuumed. */
  failed: number;
}

/** Where the lake's Delta tables live: `<kind>/<name>/`. */
const TABLE_KINDS = ["events/", "dims/"];

/** Objects by the table (`kind/name`) they are under. */
function byTable(objects: readonly ObjectInfo[]): Map<string, string[]> {
  const tables = new Map<string, string[]>();
  for (const { key } of objects) {
    const parts = key.split("/");
    if (parts.length < 3) continue;
    const table = `${parts[0]}/${parts[1]}`;
    const keys = tables.get(table) ?? [];
    keys.push(key);
    tables.set(table, keys);
  }
  return tables;
}

/**
 * The data files of one table to delete: those a commit removed before `cutoff`, and those no commit
 * lists that this project wrote before `cutoff` (by their names). Objects are listed before the snapshot
 * is read, so a file committed in between counts as live. A name `writtenAt` cannot date is never
 * deleted as an orphan: it may be another writer's file or a layout this code does not know.
 */
async function expiredFiles(store: ObjectStore, table: string, keys: readonly string[], cutoff: number): Promise<{ removed: string[]; orphans: string[] } | undefined> {
  const snapshot = await tableLogsOf(store).snapshot(table);
  if (!snapshot) return undefined;
  const live = new Set([...snapshot.files.keys()].map((path) => fileKeyOf(table, path)));
  const tombstones = new Map([...snapshot.tombstones.values()].map((remove) => [fileKeyOf(table, remove.path), remove.deletionTimestamp]));
  const removed: string[] = [];
  const orphans: string[] = [];
  const log = logPrefix(table);
  for (const key of keys) {
    if (key.startsWith(log) || live.has(key)) continue;
    if (tombstones.has(key)) {
      const deletedAt = tombstones.get(key);
      if (deletedAt !== undefined && deletedAt < cutoff) removed.push(key);
      continue;
    }
    const at = writtenAt(key);
    if (at !== undefined && at < cutoff) orphans.push(key);
  }
  return { removed, orphans };
}

/**
 * VACUUM of every Delta table under `events/` and `dims/`: deletes files removed longer ago than the
 * retention (a reader of a snapshot that old still finds its files until then), orphans older than the
 * retention (uploads whose commit never happened), and log entries below the newest checkpoint older
 * than the retention. Every step is an idempotent delete of what has expired, so workers may run it at once.
 */
export async function vacuumOnce(deps: VacuumDeps): Promise<VacuumResult> {
  const { store, logger, retentionMs } = deps;
  const result: VacuumResult = { tables: 0, removed: 0, orphans: 0, logEntries: 0, failed: 0 };
  for (const kind of TABLE_KINDS) {
    for (const [table, keys] of byTable(await store.list(kind))) {
      if (!keys.some((key) => key.startsWith(logPrefix(table)))) continue;
      try {
        const cutoff = Date.now() - retentionMs;
        const expired = await expiredFiles(store, table, keys, cutoff);
        if (!expired) continue;
        const doomed = [...expired.removed, ...expired.orphans];
        if (doomed.length > 0) {
          await store.delete(doomed);
          await deps.files.evict(doomed);
        }
        const cleaned = await cleanupLog(store, table, { retentionMs });
        result.tables++;
        result.removed += expired.removed.length;
        result.orphans += expired.orphans.length;
        result.logEntries += cleaned.deleted;
      } catch (error) {
        result.failed++;
        logger.warn("vacuum of a table failed; the next run tries again", { table, error });
      }
    }
  }
  return result;
}
