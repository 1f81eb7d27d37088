import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import type { Sql } from "postgres";
import { type DimensionName, dimensionNames, dimensions } from "../dims.ts";
import { QueryError } from "../errors.ts";
import { eventTypes } from "../events/index.ts";
import { type LakeFile, lakeDims, liveFiles } from "../store/lake-files.ts";
import { columnsOf, envelopeColumns, type LakeColumn, payloadColumns, viewNameOf } from "./columns.ts";
import { Duck, type QueryResult, sqlString, sqlStringList } from "./duckdb.ts";
import type { LocalFiles } from "./local-files.ts";
import { sqlTextProblem } from "./sql-guard.ts";

export interface ReaderOptions {
  sql: Sql;
  files: LocalFiles;
  /** DuckDB's spill directory, private to the reader. */
  tempDir: string;
  timeoutMs: number;
  maxRows: number;
}

export interface EventFilter {
  type: string;
  key?: string;
  /** Input partition holding `key`: only its files are read. */
  partition?: number;
  fromMs?: number;
  toMs?: number;
  limit: number;
}

const emptyView = (columns: readonly LakeColumn[]) => `select ${columns.map((c) => `null::${c.duckType === "JSON" ? "VARCHAR" : c.duckType} as "${c.name}"`).join(", ")} where false`;

/**
 * The rows of one type's live files, each event once. Compaction leaves one deduplicated file per
 * (hour, input partition); a repeat of an event always lands in the same hour and partition (same
 * event time, same key), so only groups that still have several files need deduplicating.
 */
async function typeView(type: string, files: LakeFile[], local: LocalFiles): Promise<string> {
  const columns = [...envelopeColumns, ...payloadColumns(type)];
  const projection = columns.map((c) => `"${c.name}"`).join(", ");
  if (files.length === 0) return `select ${sqlString(type)} as type, * from (${emptyView(columns)})`;
  const perGroup = new Map<string, LakeFile[]>();
  for (const file of files) {
    const id = `${file.hour}|${file.partition}`;
    const group = perGroup.get(id);
    if (group) group.push(file);
    else perGroup.set(id, [file]);
  }
  const single = [...perGroup.values()].filter((g) => g.length === 1).flat();
  const several = [...perGroup.values()].filter((g) => g.length > 1).flat();
  const read = async (group: LakeFile[]) => `read_parquet(${sqlStringList(await local.paths(group.map((f) => f.key)))}, union_by_name = true)`;
  const parts: string[] = [];
  if (single.length > 0) parts.push(`select ${projection} from ${await read(single)}`);
  if (several.length > 0) parts.push(`select ${projection} from ${await read(several)} qualify row_number() over (partition by event_id order by ingest_time, event_time) = 1`);
  return `select ${sqlString(type)} as type, * from (${parts.join(" union all ")})`;
}

async function dimView(name: DimensionName, key: string | undefined, local: LocalFiles): Promise<string> {
  const columns = columnsOf(dimensions[name].schema.shape);
  if (!key) return emptyView(columns);
  const [path] = await local.paths([key]);
  return `select ${columns.map((c) => `"${c.name}"`).join(", ")} from read_parquet(${sqlString(path ?? "")})`;
}

/** Reads the lake with DuckDB: the events endpoint's lookups and POST /v1/query's guarded SQL. */
export function createLakeReader(options: ReaderOptions) {
  /**
   * A database holding only the views the statement may read, then locked: no file outside the lake's
   * files, no network, no extensions, no further settings.
   */
  const openSession = async (views: Map<string, string>) => {
    await mkdir(options.tempDir, { recursive: true });
    const duck = await Duck.open({ threads: "2", memory_limit: "1GB", temp_directory: options.tempDir, autoinstall_known_extensions: "false", autoload_known_extensions: "false" });
    try {
      for (const [name, select] of views) await duck.run(`create view "${name}" as ${select}`);
      await duck.run(`set allowed_directories = ${sqlStringList([`${options.files.root}/`])}`);
      await duck.run("set enable_external_access = false");
      await duck.run("set lock_configuration = true");
      return duck;
    } catch (error) {
      duck.close();
      throw error;
    }
  };

  /** Runs `statement` with the time limit: DuckDB is interrupted when it runs out. */
  const withinTimeLimit = async <T>(duck: Duck, run: () => Promise<T>): Promise<T> => {
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      duck.interrupt();
    }, options.timeoutMs);
    try {
      return await run();
    } catch (error) {
      if (timedOut) throw new QueryError(`the query ran past its time limit of ${options.timeoutMs} ms`, { cause: error });
      throw new QueryError(error instanceof Error ? error.message : String(error), { cause: error });
    } finally {
      clearTimeout(timer);
    }
  };

  const views = async (types: string[], withDims: boolean, filter: Parameters<typeof liveFiles>[1] = {}) => {
    const files = types.length > 0 ? await liveFiles(options.sql, { ...filter, types }) : [];
    const result = new Map<string, string>();
    for (const type of types) result.set(viewNameOf(type), await typeView(type, files.filter((f) => f.type === type), options.files));
    if (withDims) {
      const dims = new Map((await lakeDims(options.sql)).map((d) => [d.name, d.key]));
      for (const name of dimensionNames) result.set(name, await dimView(name, dims.get(name), options.files));
    }
    return result;
  };

  return {
    /** Names of the views POST /v1/query can read. */
    viewNames: () => [...[...eventTypes.keys()].map(viewNameOf), ...dimensionNames],

    /** One read-only statement over the type views and the dims; at most maxRows rows. */
    async query(statement: string): Promise<QueryResult & { truncated: boolean }> {
      const problem = sqlTextProblem(statement);
      if (problem) throw new QueryError(problem);
      // Only the views the statement names are set up (and, on S3, only their files fetched).
      const named = [...eventTypes.keys()].filter((type) => new RegExp(`\\b${viewNameOf(type)}\\b`, "i").test(statement));
      const duck = await openSession(await views(named, true));
      try {
        return await withinTimeLimit(duck, async () => {
          const kinds = await duck.statementTypes(statement);
          if (kinds.length !== 1) throw new QueryError(`exactly one statement is allowed; this request has ${kinds.length}`);
          if (kinds[0] !== "SELECT") throw new QueryError(`only a SELECT statement is allowed, not ${kinds[0]}`);
          return duck.query(statement, undefined, options.maxRows);
        });
      } finally {
        duck.close();
      }
    },

    /** Events of one type, oldest first, reading only the hours (and partition) the filter allows. */
    async events(filter: EventFilter): Promise<Record<string, unknown>[]> {
      const view = viewNameOf(filter.type);
      const duck = await openSession(await views([filter.type], false, { fromMs: filter.fromMs, toMs: filter.toMs, partitions: filter.partition === undefined ? undefined : [filter.partition] }));
      try {
        const where: string[] = [];
        const values: (string | number)[] = [];
        if (filter.key !== undefined) {
          where.push("key = ?");
          values.push(filter.key);
        }
        if (filter.fromMs !== undefined) {
          where.push("event_time >= make_timestamptz(?::bigint * 1000)");
          values.push(filter.fromMs);
        }
        if (filter.toMs !== undefined) {
          where.push("event_time < make_timestamptz(?::bigint * 1000)");
          values.push(filter.toMs);
        }
        // DuckDB renders the page as one JSON array, far cheaper than converting row by row. ISO-8601
        // times of fixed width sort as the instants do.
        const iso = (column: string) => `strftime(${column}, '%Y-%m-%dT%H:%M:%S.%gZ') as ${column}`;
        const page = `select * replace (${iso("event_time")}, ${iso("ingest_time")}) from "${view}" ${where.length > 0 ? `where ${where.join(" and ")}` : ""} order by event_time, event_id limit ${filter.limit}`;
        const sql = `select cast(to_json(list(page order by page.event_time, page.event_id)) as varchar) as items from (${page}) page`;
        const [row] = (await withinTimeLimit(duck, () => duck.query(sql, values))).rows;
        // list() of no rows is NULL.
        return row?.[0] ? (JSON.parse(String(row[0])) as Record<string, unknown>[]) : [];
      } finally {
        duck.close();
      }
    },
  };
}

export type LakeReader = ReturnType<typeof createLakeReader>;

export const readerTempDir = (dataDir: string) => join(dataDir, "duckdb-tmp");
