import { mkdir, rm } from "node:fs/promises";
import { join } from "node:path";
import type { Sql } from "../../lib/db/index.ts";
import { dimensions, dimensionNames } from "../../lib/dims.ts";
import { columnsOf } from "../../lib/lake/columns.ts";
import { type Duck, sqlString } from "../../lib/lake/duckdb.ts";
import { dimFileKey } from "../../lib/lake/layout.ts";
import type { ObjectStore } from "../../lib/lake/types.ts";
import { lakeDims, setLakeDim } from "../../lib/store/lake-files.ts";
import { dimensionVersions, readDimension } from "../../lib/store/dims.ts";

/**
 * Writes each dimension to the lake as Parquet when its version moves past the one the lake holds
 * (`dims/<name>/v<version>.parquet`, listed in lake_dims), so SQL over the lake can join them.
 */
export async function exportChangedDims(deps: { sql: Sql; store: ObjectStore; duck: Duck; workDir: string }): Promise<string[]> {
  const versions = await dimensionVersions(deps.sql);
  const inLake = new Map((await lakeDims(deps.sql)).map((d) => [d.name, d.version]));
  const exported: string[] = [];
  for (const name of dimensionNames) {
    const version = versions.get(name);
    if (version === undefined || (inLake.get(name) ?? 0) >= version) continue;
    const { version: read, items } = await readDimension(deps.sql, name);
    if (!read) continue;
    await mkdir(deps.workDir, { recursive: true });
    const input = join(deps.workDir, `dim-${name}.ndjson`);
    const output = join(deps.workDir, `dim-${name}.parquet`);
    try {
      await Bun.write(input, items.map((row) => JSON.stringify(row)).join("\n"));
      const columns = columnsOf(dimensions[name].schema.shape);
      const spec = `{${columns.map((c) => `"${c.name}": '${c.duckType}'`).join(", ")}}`;
      const source = items.length > 0 ? `read_json(${sqlString(input)}, format = 'newline_delimited', columns = ${spec})` : `(select ${columns.map((c) => `null::${c.duckType} as "${c.name}"`).join(", ")} where false)`;
      await deps.duck.run(`copy (select * from ${source}) to ${sqlString(output)} (format parquet, compression zstd)`);
      const key = dimFileKey(name, read.version);
      await deps.store.putFile(key, output);
      await setLakeDim(deps.sql, { name, version: read.version, key, rows: items.length });
      exported.push(name);
    } finally {
      await rm(input, { force: true });
      await rm(output, { force: true });
    }
  }
  return exported;
}
