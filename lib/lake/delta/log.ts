import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { z } from "zod";
import { LakeError } from "../../errors.ts";
import { Duck, sqlString } from "../duckdb.ts";
import type { ObjectStore } from "../types.ts";
import { type Action, decodeAction, decodeCommit } from "./actions.ts";
import { commitKey, lastCheckpointKey, type LogEntry, logPrefix, parseLogKey } from "./paths.ts";
import { type Snapshot, SnapshotBuilder } from "./snapshot.ts";

const lastCheckpointSchema = z.object({ version: z.number().int().nonnegative(), size: z.number().int().nonnegative() });

/** How many commit files are fetched at once: enough to hide S3 latency, few enough to stay polite. */
const PARALLEL_GETS = 16;

export async function readCommit(store: ObjectStore, table: string, version: number): Promise<Action[] | null> {
  const key = commitKey(table, version);
  const bytes = await store.get(key);
  return bytes ? decodeCommit(bytes, key) : null;
}

/**
 * The commits [from, to], in order. A missing one means the log has a hole, unless `upToFirstMissing`
 * (tailing past the known end): then the commits before the first missing one.
 */
async function readCommits(store: ObjectStore, table: string, from: number, to: number, upToFirstMissing = false): Promise<Action[][]> {
  const commits: Action[][] = [];
  for (let start = from; start <= to; start += PARALLEL_GETS) {
    const versions = Array.from({ length: Math.min(PARALLEL_GETS, to - start + 1) }, (_, i) => start + i);
    const batch = await Promise.all(versions.map((v) => readCommit(store, table, v)));
    for (const [i, actions] of batch.entries()) {
      if (!actions) {
        if (upToFirstMissing) return commits;
        throw new LakeError(`Delta table ${table}: commit ${versions[i]} is missing from the log`);
      }
      commits.push(actions);
    }
  }
  return commits;
}

/** A checkpoint's actions, read with DuckDB from a local copy (the store may be remote). */
export async function readCheckpoint(store: ObjectStore, key: string): Promise<Action[]> {
  let local = store.localPath(key);
  let scratch: string | undefined;
  const duck = await Duck.open();
  try {
    if (!local) {
      const bytes = await store.get(key);
      if (!bytes) throw new LakeError(`checkpoint ${key} is missing`);
      scratch = await mkdtemp(join(tmpdir(), "delta-checkpoint-"));
      local = join(scratch, "checkpoint.parquet");
      await writeFile(local, bytes);
    }
    // Columns this reader does not know (checkpointMetadata, sidecar, cdc…) are simply not selected.
    const present = new Set((await duck.query(`select name from parquet_schema(${sqlString(local)})`)).rows.map(([name]) => String(name)));
    const columns = ["protocol", "metaData", "txn", "add", "remove"].filter((c) => present.has(c));
    const { rows } = await duck.query(`select ${columns.map((c) => `to_json("${c}")::VARCHAR`).join(", ")} from read_parquet(${sqlString(local)})`);
    const actions: Action[] = [];
    for (const row of rows) {
      row.forEach((json, i) => {
        if (typeof json !== "string") return;
        const action = decodeAction({ [columns[i] ?? ""]: JSON.parse(json) }, key);
        if (action) actions.push(action);
      });
    }
    return actions;
  } finally {
    duck.close();
    if (scratch) await rm(scratch, { recursive: true, force: true });
  }
}

/** The version `_last_checkpoint` names, or undefined when it is missing or unreadable. */
export async function readLastCheckpoint(store: ObjectStore, table: string): Promise<number | undefined> {
  const bytes = await store.get(lastCheckpointKey(table));
  if (!bytes) return undefined;
  // It is only a hint: a torn or foreign one must not stop the table from opening.
  try {
    const parsed = lastCheckpointSchema.safeParse(JSON.parse(new TextDecoder().decode(bytes)));
    return parsed.success ? parsed.data.version : undefined;
  } catch {
    return undefined;
  }
}

interface LogListing {
  latest: number;
  newestCheckpoint: LogEntry | undefined;
}

function summarise(objects: readonly { key: string }[]): { latest: number; checkpoints: Map<number, LogEntry>; newestListed: LogEntry | undefined } {
  let latest = -1;
  let newestListed: LogEntry | undefined;
  const checkpoints = new Map<number, LogEntry>();
  for (const { key } of objects) {
    const entry = parseLogKey(key);
    if (!entry) continue;
    latest = Math.max(latest, entry.version);
    if (entry.kind === "checkpoint") {
      checkpoints.set(entry.version, entry);
      if (!newestListed || entry.version > newestListed.version) newestListed = entry;
    }
  }
  return { latest, checkpoints, newestListed };
}

/**
 * What the log holds. With a `_last_checkpoint` hint only the entries from that checkpoint on are listed
 * (the log before it can be long); the hint may lag (its writer may have crashed after a later
 * checkpoint landed), so the newest listed checkpoint wins. A hint naming no listed checkpoint (cleaned
 * up, foreign) is ignored and the whole log is listed: the listing is the truth.
 */
async function listLog(store: ObjectStore, table: string): Promise<LogListing | null> {
  const hinted = await readLastCheckpoint(store, table);
  if (hinted !== undefined) {
    const tail = summarise(await store.list(logPrefix(table), { startAfter: commitKey(table, hinted).replace(/\.json$/, "") }));
    if (tail.checkpoints.has(hinted)) return { latest: tail.latest, newestCheckpoint: tail.newestListed };
  }
  const all = summarise(await store.list(logPrefix(table)));
  if (all.latest < 0) return null;
  return { latest: all.latest, newestCheckpoint: all.newestListed };
}

/**
 * One table's log, read from `<table>/_delta_log/`. Keeps the last snapshot: `refresh` replays only the
 * commits after it, and goes back to the newest checkpoint only when those commits are gone.
 */
export class TableLog {
  private current: Snapshot | undefined;

  constructor(
    readonly store: ObjectStore,
    readonly table: string,
  ) {}

  /** The snapshot last read, without looking at storage. */
  get cached(): Snapshot | undefined {
    return this.current;
  }

  /** The latest snapshot; throws LakeError when the table has no log. */
  async refresh(): Promise<Snapshot> {
    const snapshot = await this.read();
    if (!snapshot) throw new LakeError(`no Delta table at ${this.table} (no commits in ${logPrefix(this.table)})`);
    return snapshot;
  }

  /** The latest snapshot, or null when the table has no log (yet). */
  async read(): Promise<Snapshot | null> {
    const cached = this.current;
    // A cached snapshot is tailed by fetching the next commits until one is absent: no listing, which
    // grows with the log and is slow on S3. Most refreshes find nothing or one commit, so one is fetched
    // first and then batches.
    if (cached) {
      // Copied only once there is something to apply: a copy costs as much as the table has files and
      // tombstones (a day of them), and most refreshes find nothing.
      let builder: SnapshotBuilder | undefined;
      let version = cached.version;
      for (let batch = 1; ; batch = PARALLEL_GETS) {
        const next = await readCommits(this.store, this.table, version + 1, version + batch, true);
        if (next.length > 0) builder ??= new SnapshotBuilder(cached);
        for (const actions of next) builder?.apply(actions);
        version += next.length;
        if (next.length < batch) break;
      }
      if (builder && version > cached.version) {
        this.current = builder.seal(this.table, version);
        return this.current;
      }
      // Log cleanup may have removed the commits right after a long-idle cache: a checkpoint past it says so.
      const hinted = await readLastCheckpoint(this.store, this.table);
      if (hinted === undefined || hinted <= cached.version) return cached;
    }
    const listing = await listLog(this.store, this.table);
    if (!listing) return null;
    const { latest, newestCheckpoint } = listing;
    const builder = new SnapshotBuilder();
    let from = 0;
    if (newestCheckpoint) {
      builder.apply(await readCheckpoint(this.store, newestCheckpoint.key));
      from = newestCheckpoint.version + 1;
    }
    for (const actions of await readCommits(this.store, this.table, from, latest)) builder.apply(actions);
    this.current = builder.seal(this.table, latest);
    return this.current;
  }
}

/** The latest snapshot of a table, read afresh. */
export const readSnapshot = (store: ObjectStore, table: string) => new TableLog(store, table).refresh();

/**
 * The tables of one lake, each log read once and then tailed: what a process keeps to resolve snapshots
 * for every query and flush. Concurrent refreshes of a table share one read.
 */
export class TableLogs {
  private readonly logs = new Map<string, TableLog>();
  private readonly refreshing = new Map<string, Promise<Snapshot | null>>();

  constructor(readonly store: ObjectStore) {}

  /** The table's latest snapshot, or null when it has no log yet. */
  snapshot(table: string): Promise<Snapshot | null> {
    let pending = this.refreshing.get(table);
    if (!pending) {
      pending = this.log(table).read().finally(() => this.refreshing.delete(table));
      this.refreshing.set(table, pending);
    }
    return pending;
  }

  /** The log object of a table, for writers that pass it to `commit` (checkpoints reuse its snapshot). */
  log(table: string): TableLog {
    let log = this.logs.get(table);
    if (!log) {
      log = new TableLog(this.store, table);
      this.logs.set(table, log);
    }
    return log;
  }
}

const logsByStore = new WeakMap<ObjectStore, TableLogs>();

/** The process's one TableLogs for a lake: every reader and writer of the process shares its cache. */
export function tableLogsOf(store: ObjectStore): TableLogs {
  let logs = logsByStore.get(store);
  if (!logs) {
    logs = new TableLogs(store);
    logsByStore.set(store, logs);
  }
  return logs;
}
