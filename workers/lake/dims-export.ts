import { mkdir, rm } from "node:fs/promises";
import { join } from "node:path";
import type { Sql } from "../../lib/db/index.ts";
import { type DimensionName, dimensionNames, dimensions } from "../../lib/dims.ts";
import { DeltaConflictError } from "../../lib/errors.ts";
import { columnsOf } from "../../lib/lake/columns.ts";
import { commitDataFiles, copyToDataFiles, uploadDataFiles } from "../../lib/lake/data-files.ts";
import { type Action, removeOf } from "../../lib/lake/delta/actions.ts";
import { ensureTable } from "../../lib/lake/delta/commit.ts";
import { tableLogsOf } from "../../lib/lake/delta/log.ts";
import { type Duck, sqlString } from "../../lib/lake/duckdb.ts";
import { dimTableDefinition, dimTableOf } from "../../lib/lake/tables.ts";
import type { ObjectStore } from "../../lib/lake/types.ts";
import type { Logger } from "../../lib/log.ts";
import { dimensionVersions, readDimension } from "../../lib/store/dims.ts";

export interface DimsExportDeps {
  sql: Sql;
  store: ObjectStore;
  duck: Duck;
  workDir: string;
  logger?: Logger;
  /** LAKE_RETENTION_S, for the checkpoints its commits write. */
  retentionMs?: number;
}

/** The `txn` appId whose version is the Postgres dim version a dim table holds. */
export const dimAppIdOf = (name: DimensionName) => `devpipe.dims.${name}`;

/** The version of `name` the lake holds (0 when it has none yet). */
async function lakeVersionOf(store: ObjectStore, name: DimensionName): Promise<number> {
  const snapshot = await tableLogsOf(store).snapshot(dimTableOf(name));
  return snapshot?.txns.get(dimAppIdOf(name)) ?? 0;
}

/** The select a dim's rows are written with: typed columns from NDJSON, or none for an empty dim. */
function dimSelect(name: DimensionName, ndjson: string, empty: boolean): string {
  const columns = columnsOf(dimensions[name].schema.shape);
  if (empty) return `select ${columns.map((c) => `null::${c.duckType} as "${c.name}"`).join(", ")} where false`;
  const spec = `{${columns.map((c) => `"${c.name}": '${c.duckType}'`).join(", ")}}`;
  return `select * from read_json(${sqlString(ndjson)}, format = 'newline_delimited', columns = ${spec})`;
}

/**
 * Writes the dim's current rows as one overwrite commit: every live file removed, one new file added,
 * and the `txn` that records the Postgres version. Returns false when another worker committed first
 * (the next tick looks again).
 */
async function exportDim(deps: DimsExportDeps, name: DimensionName): Promise<boolean> {
  const table = dimTableOf(name);
  await ensureTable(deps.store, table, dimTableDefinition(name));
  const tableLog = tableLogsOf(deps.store).log(table);
  const snapshot = await tableLog.refresh();
  const appId = dimAppIdOf(name);
  const { version, items } = await readDimension(deps.sql, name);
  if (!version || (snapshot.txns.get(appId) ?? 0) >= version.version) return false;
  const dir = join(deps.workDir, `dim-${name}-${crypto.randomUUID()}`);
  try {
    await mkdir(dir, { recursive: true });
    const ndjson = join(dir, "rows.ndjson");
    await Bun.write(ndjson, items.map((row) => JSON.stringify(row)).join("\n"));
    const written = await copyToDataFiles(deps.duck, dimSelect(name, ndjson, items.length === 0), join(dir, "out"), { partitioned: false });
    const adds = await uploadDataFiles(deps.store, table, written, "dim", true);
    const now = Date.now();
    const actions: Action[] = [...[...snapshot.files.values()].map((f) => removeOf(f, true, now)), { txn: { appId, version: version.version, lastUpdated: now } }];
    try {
      await commitDataFiles(deps.store, table, adds, actions, { readVersion: snapshot.version, isBlindAppend: false, operation: "WRITE", tableLog, retentionMs: deps.retentionMs });
      return true;
    } catch (error) {
      if (!(error instanceof DeltaConflictError)) throw error;
      deps.logger?.info("dim export skipped: another worker committed first", { dim: name, version: version.version, reason: error.message });
      return false;
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/**
 * Exports each dim whose Postgres version is newer than the one its Delta table `dims/<name>/` holds (the
 * `txn` version of appId `devpipe.dims.<name>`), so a reader of the table sees exactly one version and
 * older ones by time travel. Several workers may run this at once: of two exports of a dim one commits.
 */
export async function exportChangedDims(deps: DimsExportDeps): Promise<DimensionName[]> {
  const versions = await dimensionVersions(deps.sql);
  const exported: DimensionName[] = [];
  for (const name of dimensionNames) {
    const version = versions.get(name);
    if (version === undefined || (await lakeVersionOf(deps.store, name)) >= version) continue;
    if (await exportDim(deps, name)) exported.push(name);
  }
  return exported;
}
