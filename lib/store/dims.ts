import type { Sql } from "postgres";
import { type DimensionName, dimensions } from "../dims.ts";

export interface DimensionVersion {
  name: DimensionName;
  version: number;
  rows: number;
  updated_at: Date;
}

/** Replaces a dimension's rows in one transaction and bumps its version; readers see old or new, whole. */
export async function replaceDimension(sql: Sql, name: DimensionName, rows: Record<string, unknown>[]): Promise<DimensionVersion> {
  const { columns } = dimensions[name];
  return sql.begin(async (tx) => {
    // Serialises concurrent replacements of the same dimension.
    await tx`select pg_advisory_xact_lock(hashtext(${`dims:${name}`}))`;
    await tx`delete from ${tx(name)}`;
    for (let i = 0; i < rows.length; i += 1_000) {
      await tx`insert into ${tx(name)} ${tx(rows.slice(i, i + 1_000), ...columns)}`;
    }
    const [row] = await tx<DimensionVersion[]>`
      insert into dims_versions (name, version, rows, updated_at) values (${name}, 1, ${rows.length}, now())
      on conflict (name) do update set version = dims_versions.version + 1, rows = excluded.rows, updated_at = excluded.updated_at
      returning name, version, rows, updated_at`;
    if (!row) throw new Error(`dims_versions row for ${name} missing after upsert`);
    return row;
  });
}

export async function readDimension(sql: Sql, name: DimensionName): Promise<{ version: DimensionVersion | undefined; items: Record<string, unknown>[] }> {
  const { columns, key } = dimensions[name];
  return sql.begin(async (tx) => {
    const [version] = await tx<DimensionVersion[]>`select name, version, rows, updated_at from dims_versions where name = ${name}`;
    const items = await tx`select ${tx(columns)} from ${tx(name)} order by ${tx(key)}`;
    return { version, items: [...items] };
  });
}

export async function dimensionVersions(sql: Sql): Promise<Map<DimensionName, number>> {
  const rows = await sql<{ name: DimensionName; version: number }[]>`select name, version from dims_versions`;
  return new Map(rows.map((r) => [r.name, r.version]));
}
