import { mkdtemp, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Duck, sqlString } from "../duckdb.ts";
import type { ObjectStore } from "../types.ts";
import type { Action } from "./actions.ts";
import { checkpointKey, lastCheckpointKey } from "./paths.ts";
import type { Snapshot } from "./snapshot.ts";

/** Writers checkpoint after every version that is a multiple of this. */
export const CHECKPOINT_INTERVAL = 10;

const MAP = "MAP(VARCHAR, VARCHAR)";
/** The classic (V1) checkpoint's columns, one struct per action kind (PROTOCOL.md, "Checkpoint Schema"). */
const CHECKPOINT_COLUMNS: Record<string, string> = {
  txn: "STRUCT(appId VARCHAR, version BIGINT, lastUpdated BIGINT)",
  add: `STRUCT(path VARCHAR, partitionValues ${MAP}, size BIGINT, modificationTime BIGINT, dataChange BOOLEAN, stats VARCHAR, tags ${MAP})`,
  remove: `STRUCT(path VARCHAR, deletionTimestamp BIGINT, dataChange BOOLEAN, extendedFileMetadata BOOLEAN, partitionValues ${MAP}, size BIGINT)`,
  metaData: `STRUCT(id VARCHAR, name VARCHAR, description VARCHAR, format STRUCT(provider VARCHAR, options ${MAP}), schemaString VARCHAR, partitionColumns VARCHAR[], configuration ${MAP}, createdTime BIGINT)`,
  protocol: "STRUCT(minReaderVersion INTEGER, minWriterVersion INTEGER)",
};

/** How long a checkpoint keeps a tombstone by default: LAKE_RETENTION_S's default. */
export const DEFAULT_TOMBSTONE_RETENTION_MS = 24 * 3_600_000;

export interface CheckpointOptions {
  /**
   * Tombstones whose deletionTimestamp is older than this are left out, so checkpoints stop growing with
   * every compaction. VACUUM has deleted (or will delete, as an orphan) the files they name by then.
   */
  retentionMs?: number;
  now?: number;
}

/** A snapshot as the actions a checkpoint holds: reconciled, so nothing in it is a change any more. */
function checkpointActions(snapshot: Snapshot, options: CheckpointOptions): Action[] {
  const expiredBefore = (options.now ?? Date.now()) - (options.retentionMs ?? DEFAULT_TOMBSTONE_RETENTION_MS);
  // A tombstone without a timestamp cannot be dated: it is kept, as VACUUM keeps its file.
  const tombstones = [...snapshot.tombstones.values()].filter((remove) => remove.deletionTimestamp === undefined || remove.deletionTimestamp >= expiredBefore);
  return [
    { protocol: snapshot.protocol },
    { metaData: snapshot.metadata },
    ...[...snapshot.txns].map(([appId, version]) => ({ txn: { appId, version } })),
    ...[...snapshot.files.values()].map((add) => ({ add })),
    ...tombstones.map((remove) => ({ remove })),
  ];
}

/**
 * Writes `<version>.checkpoint.parquet` for the snapshot, then points `_last_checkpoint` at it. Racing
 * writers of the same version write the same live files and txns (they may differ only in which old
 * tombstones have expired), so plain overwrites are fine.
 */
export async function writeCheckpoint(store: ObjectStore, table: string, snapshot: Snapshot, options: CheckpointOptions = {}): Promise<{ version: number; size: number }> {
  const actions = checkpointActions(snapshot, options);
  const scratch = await mkdtemp(join(tmpdir(), "delta-checkpoint-"));
  const duck = await Duck.open();
  try {
    const ndjson = join(scratch, "actions.ndjson");
    const parquet = join(scratch, "checkpoint.parquet");
    await writeFile(ndjson, actions.map((a) => JSON.stringify(a)).join("\n"));
    const columns = Object.entries(CHECKPOINT_COLUMNS).map(([name, type]) => `${name}: ${sqlString(type)}`).join(", ");
    await duck.run(`COPY (SELECT ${Object.keys(CHECKPOINT_COLUMNS).map((c) => `"${c}"`).join(", ")} FROM read_json(${sqlString(ndjson)}, format = 'newline_delimited', columns = {${columns}})) TO ${sqlString(parquet)} (FORMAT parquet)`);
    await store.putFile(checkpointKey(table, snapshot.version), parquet);
    const last = { version: snapshot.version, size: actions.length, sizeInBytes: (await stat(parquet)).size, numOfAddFiles: snapshot.files.size };
    await store.put(lastCheckpointKey(table), new TextEncoder().encode(JSON.stringify(last)));
    return { version: snapshot.version, size: actions.length };
  } finally {
    duck.close();
    await rm(scratch, { recursive: true, force: true });
  }
}
