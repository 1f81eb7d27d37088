import { DeltaConflictError, LakeError } from "../../errors.ts";
import { log } from "../../log.ts";
import { deltaCommits } from "../../metrics.ts";
import type { ObjectStore } from "../types.ts";
import { type Action, encodeCommit, type Metadata } from "./actions.ts";
import { CHECKPOINT_INTERVAL, writeCheckpoint } from "./checkpoint.ts";
import { readCommit, TableLog } from "./log.ts";
import { commitKey } from "./paths.ts";
import { type DeltaColumn, parseSchemaString, schemaString } from "./schema.ts";
import { READER_VERSION, WRITER_VERSION } from "./snapshot.ts";

export interface CommitOptions {
  /** The version the actions were planned against (the snapshot the writer read). */
  readVersion: number;
  /** Only `add` (dataChange) plus `txn`/`commitInfo`: such a commit never conflicts with other appends. */
  isBlindAppend: boolean;
  /** Files the writer read without removing them: a concurrent remove of one is a conflict. */
  reads?: { files?: readonly string[] };
  /** `commitInfo.operation`, e.g. WRITE, OPTIMIZE. */
  operation?: string;
  /** How many versions to try before giving up (each lost race costs one). */
  maxAttempts?: number;
  /** Checkpoint after versions that are multiples of this; 0 for never. */
  checkpointInterval?: number;
  /** Tombstones older than this are left out of checkpoints (LAKE_RETENTION_S; default 24 h). */
  retentionMs?: number;
  /** The writer's log, refreshed for the checkpoint instead of reading the table afresh. */
  tableLog?: TableLog;
}

/** What a commit does, as far as conflicts go. */
interface Intent {
  isBlindAppend: boolean;
  changesMetadata: boolean;
  removes: Set<string>;
  reads: Set<string>;
  txns: Map<string, number>;
}

function intentOf(actions: readonly Action[], options: CommitOptions): Intent {
  const intent: Intent = { isBlindAppend: options.isBlindAppend, changesMetadata: false, removes: new Set(), reads: new Set(options.reads?.files ?? []), txns: new Map() };
  for (const action of actions) {
    if ("remove" in action) intent.removes.add(action.remove.path);
    else if ("txn" in action) intent.txns.set(action.txn.appId, action.txn.version);
    else if ("metaData" in action || "protocol" in action) intent.changesMetadata = true;
    if (options.isBlindAppend && !("txn" in action || "commitInfo" in action || ("add" in action && action.add.dataChange))) {
      throw new LakeError(`a commit marked as a blind append holds a ${Object.keys(action)[0]} action`);
    }
  }
  return intent;
}

/** Why a winning commit makes this one invalid, or null when both can stand in either order. */
function conflictReason(intent: Intent, winner: readonly Action[]): string | null {
  for (const action of winner) {
    if ("metaData" in action || "protocol" in action) return "it changed the table's metadata or protocol";
    if ("txn" in action) {
      // One owner writes an appId at a time: another commit of it means this writer was fenced (a rebalance).
      const mine = intent.txns.get(action.txn.appId);
      if (mine !== undefined) return `it committed txn ${action.txn.appId} version ${action.txn.version} (this commit's: ${mine})`;
    }
    if ("remove" in action && (intent.removes.has(action.remove.path) || intent.reads.has(action.remove.path))) return `it removed ${action.remove.path}, which this commit ${intent.removes.has(action.remove.path) ? "removes" : "read"}`;
  }
  if (intent.changesMetadata) return "this commit changes metadata or protocol and must not be reordered";
  // Neither a blind append nor a pure rewrite: the actions were computed from the read snapshot's data.
  if (!intent.isBlindAppend && intent.removes.size === 0 && winner.some((a) => ("add" in a && a.add.dataChange) || ("remove" in a && a.remove.dataChange))) {
    return "it changed data this commit may have read";
  }
  return null;
}

/**
 * Writes the actions as the next version with put-if-absent. When another writer took that version, its
 * actions are checked against these (Delta's optimistic concurrency) and the commit moves to the next
 * free version, or fails with DeltaConflictError. Returns the committed version.
 */
export async function commit(store: ObjectStore, table: string, actions: readonly Action[], options: CommitOptions): Promise<number> {
  const intent = intentOf(actions, options);
  const maxAttempts = options.maxAttempts ?? 20;
  const commitInfo = { timestamp: Date.now(), operation: options.operation ?? "WRITE", readVersion: options.readVersion, isBlindAppend: options.isBlindAppend };
  const body = encodeCommit(actions.some((a) => "commitInfo" in a) ? actions : [{ commitInfo }, ...actions]);

  const operation = commitInfo.operation;
  let version = options.readVersion + 1;
  for (let attempt = 1; attempt <= maxAttempts; attempt++) {
    if (await store.putIfAbsent(commitKey(table, version), body)) {
      deltaCommits.inc({ operation, outcome: "committed" });
      await checkpointIfDue(store, table, version, options);
      return version;
    }
    // Check every commit that landed since, then try the first free version.
    for (;;) {
      const winner = await readCommit(store, table, version);
      if (!winner) break;
      const reason = conflictReason(intent, winner);
      if (reason) {
        deltaCommits.inc({ operation, outcome: "conflict" });
        throw new DeltaConflictError(table, version, reason);
      }
      version++;
    }
    deltaCommits.inc({ operation, outcome: "retried" });
  }
  throw new LakeError(`Delta commit to ${table} gave up after ${maxAttempts} attempts (read version ${options.readVersion}, last tried ${version})`, { retriable: true });
}

/** A checkpoint failure leaves the commit valid: readers replay the JSON and the next interval tries again. */
async function checkpointIfDue(store: ObjectStore, table: string, version: number, options: CommitOptions): Promise<void> {
  const interval = options.checkpointInterval ?? CHECKPOINT_INTERVAL;
  if (interval <= 0 || version % interval !== 0) return;
  try {
    const snapshot = await (options.tableLog ?? new TableLog(store, table)).refresh();
    // A later commit may already be there; the checkpoint is then for that version, which is as good.
    await writeCheckpoint(store, table, snapshot, { retentionMs: options.retentionMs });
  } catch (error) {
    log.warn("delta checkpoint failed", { table, version, error });
  }
}

export interface TableDefinition {
  columns: readonly DeltaColumn[];
  partitionColumns: readonly string[];
  configuration?: Record<string, string>;
  name?: string;
}

/** Why `wanted` cannot replace `existing` by adding nullable columns, or null when it can (or is the same). */
function evolutionProblem(existing: Metadata, wanted: Metadata): string | null {
  if (existing.partitionColumns.join("\u0000") !== wanted.partitionColumns.join("\u0000")) return `partition columns are ${existing.partitionColumns.join(", ") || "none"}, not ${wanted.partitionColumns.join(", ") || "none"}`;
  const now = new Map(parseSchemaString(existing.schemaString).map((c) => [c.name, c]));
  const next = new Map(parseSchemaString(wanted.schemaString).map((c) => [c.name, c]));
  for (const [name, column] of now) {
    const kept = next.get(name);
    if (!kept) return `column ${name} would be dropped`;
    if (kept.type !== column.type) return `column ${name} is ${column.type}, not ${kept.type}`;
  }
  for (const [name, column] of next) if (!now.has(name) && !column.nullable) return `new column ${name} must be nullable`;
  return null;
}

const sameColumns = (a: Metadata, b: Metadata) => JSON.stringify(JSON.parse(a.schemaString)) === JSON.stringify(JSON.parse(b.schemaString));

/**
 * Makes the table hold `definition`: creates it as version 0 (protocol + metaData) when absent; when it
 * exists with fewer columns, adds the new (nullable) columns in a metadata commit (schema evolution);
 * when it exists as defined, does nothing, so every writer may call this at start-up. Any other
 * difference (a dropped or retyped column, other partitioning) is a LakeError.
 */
export async function ensureTable(store: ObjectStore, table: string, definition: TableDefinition): Promise<{ created: boolean; evolved: boolean }> {
  const names = new Set(definition.columns.map((c) => c.name));
  const unknown = definition.partitionColumns.filter((p) => !names.has(p));
  if (unknown.length > 0) throw new LakeError(`partition columns ${unknown.join(", ")} are not columns of ${table}`);
  const wanted: Metadata = {
    id: crypto.randomUUID(),
    ...(definition.name ? { name: definition.name } : {}),
    format: { provider: "parquet", options: {} },
    schemaString: schemaString(definition.columns),
    partitionColumns: [...definition.partitionColumns],
    configuration: definition.configuration ?? {},
    createdTime: Date.now(),
  };
  // A table whose first commits were cleaned up has no 0.json: creating one there would fork its history.
  // Reading the log (listed from its checkpoint on) rather than listing it whole keeps start-up short.
  const log = new TableLog(store, table);
  if ((await log.read()) === null) {
    const actions: Action[] = [
      { commitInfo: { timestamp: Date.now(), operation: "CREATE TABLE", isBlindAppend: true } },
      { protocol: { minReaderVersion: READER_VERSION, minWriterVersion: WRITER_VERSION } },
      { metaData: wanted },
    ];
    if (await store.putIfAbsent(commitKey(table, 0), encodeCommit(actions))) return { created: true, evolved: false };
  }
  for (let attempt = 1; ; attempt++) {
    const snapshot = await log.refresh();
    if (sameColumns(snapshot.metadata, wanted) && snapshot.metadata.partitionColumns.join("\u0000") === wanted.partitionColumns.join("\u0000")) return { created: false, evolved: false };
    const problem = evolutionProblem(snapshot.metadata, wanted);
    if (problem) throw new LakeError(`Delta table ${table} exists with another schema: ${problem}`);
    // The table keeps its id: it is the same table with more columns.
    const metaData: Metadata = { ...snapshot.metadata, schemaString: wanted.schemaString };
    try {
      await commit(store, table, [{ metaData }], { readVersion: snapshot.version, isBlindAppend: false, operation: "ADD COLUMNS" });
      return { created: false, evolved: true };
    } catch (error) {
      // Another writer committed meanwhile (perhaps the same evolution): look again.
      if (!(error instanceof DeltaConflictError) || attempt >= 5) throw error;
    }
  }
}
