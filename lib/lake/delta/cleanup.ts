import { LakeError } from "../../errors.ts";
import type { ObjectStore } from "../types.ts";
import { readCheckpoint, readCommit, readLastCheckpoint } from "./log.ts";
import { checkpointKey, logPrefix, parseLogKey } from "./paths.ts";

/** Any versioned log file (commit, checkpoint of any kind, crc, log compaction), by the version its name starts with. */
const VERSIONED = /\/_delta_log\/(\d{20})\.[^/]+$/;

async function committedAt(store: ObjectStore, table: string, version: number): Promise<number | undefined> {
  const actions = await readCommit(store, table, version);
  for (const action of actions ?? []) if ("commitInfo" in action) return action.commitInfo.timestamp;
  return undefined;
}

/**
 * The newest of `checkpoints` (ascending versions) whose commit is older than `cutoff`. Commit times grow
 * with versions (up to writers' clock skew), so a binary search finds it in a few reads; the answer's own
 * time is always checked, so skew can only make the choice older, never too new.
 */
async function newestExpiredCheckpoint(store: ObjectStore, table: string, checkpoints: readonly number[], cutoff: number): Promise<number | undefined> {
  let lo = 0;
  let hi = checkpoints.length - 1;
  let found: number | undefined;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    const version = checkpoints[mid] ?? 0;
    const at = await committedAt(store, table, version);
    if (at !== undefined && at < cutoff) {
      found = version;
      lo = mid + 1;
    } else hi = mid - 1;
  }
  return found;
}

export interface LogCleanupResult {
  /** The checkpoint the log now starts from, when anything was deleted. */
  startsAt: number | undefined;
  deleted: number;
}

/**
 * Deletes the log entries below the newest checkpoint whose commit is older than the retention: that
 * checkpoint and everything after it stay, so the latest state (and time travel within the retention)
 * can always be read. Only a checkpoint `_last_checkpoint` already points at (or past) qualifies: a
 * reader whose cached snapshot is behind the deleted commits learns from that hint to reload. Deletes
 * are idempotent, so several workers may clean the same log at once.
 */
export async function cleanupLog(store: ObjectStore, table: string, options: { retentionMs: number; now?: number }): Promise<LogCleanupResult> {
  const cutoff = (options.now ?? Date.now()) - options.retentionMs;
  const [objects, hint] = await Promise.all([store.list(logPrefix(table)), readLastCheckpoint(store, table)]);
  if (hint === undefined) return { startsAt: undefined, deleted: 0 };
  const checkpoints = objects
    .map((o) => parseLogKey(o.key))
    .filter((entry) => entry?.kind === "checkpoint" && entry.version <= hint)
    .map((entry) => entry?.version ?? 0)
    .sort((a, b) => a - b);
  const startsAt = await newestExpiredCheckpoint(store, table, checkpoints, cutoff);
  if (startsAt === undefined) return { startsAt: undefined, deleted: 0 };
  const doomed = objects.map((o) => o.key).filter((key) => Number(VERSIONED.exec(key)?.[1] ?? Number.POSITIVE_INFINITY) < startsAt);
  if (doomed.length === 0) return { startsAt, deleted: 0 };
  // The checkpoint becomes the only way to the state before it: it must be whole and readable first.
  const state = await readCheckpoint(store, checkpointKey(table, startsAt));
  if (!state.some((a) => "protocol" in a) || !state.some((a) => "metaData" in a)) throw new LakeError(`Delta table ${table}: checkpoint ${startsAt} has no protocol or metaData; its log is left as it is`);
  await store.delete(doomed);
  return { startsAt, deleted: doomed.length };
}
