import { join } from "node:path";
import type { Sql } from "postgres";
import { type DimensionName, dimensionNames, dimensions } from "../dims.ts";
import { LakeError, QueryError, QueryRejectedError, QueryTimeoutError } from "../errors.ts";
import { eventTypes } from "../events/index.ts";
import { queryOutcomes, queryRunning } from "../metrics.ts";
import { type LakeFile, lakeDims, liveFiles } from "../store/lake-files.ts";
import { columnsOf, envelopeColumns, type LakeColumn, payloadColumns, viewNameOf } from "./columns.ts";
import { sqlString, sqlStringList } from "./duckdb.ts";
import type { LocalFiles } from "./local-files.ts";
import { createQueryPool, ProcessEndedError, type QueryLease } from "./query-pool.ts";
import type { JobReply } from "./query-protocol.ts";
import { createQuerySlots } from "./query-slots.ts";
import type { ResultBody } from "./result-body.ts";
import { sqlTextProblem } from "./sql-guard.ts";

export interface ReaderOptions {
  sql: Sql;
  files: LocalFiles;
  /** The query processes' DuckDB spill directories go under this one, private to the reader. */
  tempDir: string;
  /** Deadline of one query from the moment it has a slot: parsing, planning, running and building the body. */
  timeoutMs: number;
  maxRows: number;
  /** Bytes of the JSON body a result may take before it is cut (`truncated: true`). */
  maxBytes?: number;
  /** Queries running at once; also the number of query processes. */
  maxConcurrent?: number;
  /** Queries that may wait for a slot, and for how long, before a 429. */
  maxQueued?: number;
  queueTimeoutMs?: number;
}

/** Who asks: one client (API key) may not hold every query slot. */
export interface AskedBy {
  client?: string;
}

/** A query process gets this long to stop a cancelled query before it is killed. */
const GRACE_MS = 1_000;
/** An idle query process exits after this long. */
const IDLE_MS = 30_000;
/** A query process that holds more than this after a query is replaced. */
const MAX_PROCESS_RSS = 512 * 1024 * 1024;

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

const isKind = <K extends JobReply["kind"]>(reply: JobReply, kind: K): reply is Extract<JobReply, { kind: K }> => reply.kind === kind;

/** Reads the lake with DuckDB: the events endpoint's lookups and POST /v1/query's guarded SQL. */
export function createLakeReader(options: ReaderOptions) {
  const maxBytes = options.maxBytes ?? 16 * 1024 * 1024;
  const maxConcurrent = options.maxConcurrent ?? 2;
  const slots = createQuerySlots(
    { maxConcurrent, maxQueued: options.maxQueued ?? 8, queueTimeoutMs: options.queueTimeoutMs ?? 2_000 },
    ({ running, queued }) => {
      queryRunning.set({ state: "running" }, running);
      queryRunning.set({ state: "queued" }, queued);
    },
  );
  const pool = createQueryPool({ size: maxConcurrent, workDir: options.tempDir, graceMs: GRACE_MS, idleMs: IDLE_MS, maxRssBytes: MAX_PROCESS_RSS });
  const lakeRoot = `${options.files.root}/`;
  const viewNames = () => [...[...eventTypes.keys()].map(viewNameOf), ...dimensionNames];

  /** DuckDB's messages without the server's paths. */
  const scrub = (message: string) =>
    message
      .replaceAll(options.files.root, "<lake>")
      .replaceAll(options.tempDir, "<tmp>")
      .replace(/(?<![\w.])\/(?:[\w.@%+=:,~-]+\/)+[\w.@%+=:,~-]*/g, "<path>");

  /**
   * Runs `work` in a slot, with a ready query process, within the deadline. Past the deadline the caller gets
   * QueryTimeoutError at once, whatever `work` is doing; the slot is freed once the process has
   * stopped the query (or has been killed for not stopping).
   */
  const inSlot = async <T>(kind: "sql" | "events", asked: AskedBy, work: (lease: QueryLease) => Promise<T>): Promise<T> => {
    let release: () => void;
    try {
      release = await slots.acquire(asked.client ?? "");
    } catch (error) {
      if (error instanceof QueryRejectedError) queryOutcomes.inc({ kind, outcome: "rejected" });
      throw error;
    }
    const lease = pool.lease();
    try {
      // Starting a process is not the query's time: the deadline runs from here.
      await lease.start();
    } catch (error) {
      queryOutcomes.inc({ kind, outcome: "error" });
      void lease.end().finally(release);
      throw error;
    }
    let timer: Timer | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new QueryTimeoutError(options.timeoutMs)), options.timeoutMs);
    });
    const working = work(lease);
    // Past the deadline nobody waits for `working`; its failure is expected then.
    working.catch(() => undefined);
    try {
      const result = await Promise.race([working, deadline]);
      queryOutcomes.inc({ kind, outcome: "ok" });
      return result;
    } catch (error) {
      queryOutcomes.inc({ kind, outcome: error instanceof QueryTimeoutError ? "timeout" : error instanceof QueryError ? "invalid" : "error" });
      throw error;
    } finally {
      clearTimeout(timer);
      lease.revoke();
      void lease.end().finally(release);
    }
  };

  /** The job's answer, or its failure as the error the routes expect. */
  const answer = async <K extends JobReply["kind"]>(reply: Promise<JobReply>, kind: K): Promise<Extract<JobReply, { kind: K }>> => {
    let settled: JobReply;
    try {
      settled = await reply;
    } catch (error) {
      if (error instanceof ProcessEndedError) throw new QueryError(error.message, { cause: error });
      throw error;
    }
    if (settled.kind === "failed") {
      if (settled.invalid) throw new QueryError(scrub(settled.message));
      throw new LakeError(`a lake query failed: ${scrub(settled.message)}`);
    }
    if (!isKind(settled, kind)) throw new LakeError(`a query process answered ${settled.kind} to a ${kind} job`);
    return settled;
  };

  const views = async (types: string[], dims: readonly DimensionName[], filter: Parameters<typeof liveFiles>[1] = {}) => {
    const files = types.length > 0 ? await liveFiles(options.sql, { ...filter, types }) : [];
    const setup: string[] = [];
    for (const type of types) setup.push(`create view "${viewNameOf(type)}" as ${await typeView(type, files.filter((f) => f.type === type), options.files)}`);
    if (dims.length > 0) {
      const stored = new Map((await lakeDims(options.sql)).map((d) => [d.name, d.key]));
      for (const name of dims) setup.push(`create view "${name}" as ${await dimView(name, stored.get(name), options.files)}`);
    }
    return setup;
  };

  const body = ({ body, rows, truncated }: ResultBody): ResultBody => ({ body, rows, truncated });

  const eventsBody = (filter: EventFilter, asked: AskedBy = {}): Promise<ResultBody> =>
    inSlot("events", asked, async (lease) => {
      const setup = await views([filter.type], [], { fromMs: filter.fromMs, toMs: filter.toMs, partitions: filter.partition === undefined ? undefined : [filter.partition] });
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
      // DuckDB renders each event as JSON, far cheaper than converting value by value. ISO-8601 times of
      // fixed width sort as the instants do.
      const iso = (column: string) => `strftime(${column}, '%Y-%m-%dT%H:%M:%S.%gZ') as ${column}`;
      const page = `select * replace (${iso("event_time")}, ${iso("ingest_time")}) from "${viewNameOf(filter.type)}" ${where.length > 0 ? `where ${where.join(" and ")}` : ""} order by event_time, event_id limit ${filter.limit}`;
      // The row's alias is quoted and not snake_case, so no event field (user.activity has `page`) can shadow it.
      const sql = `select cast(to_json("lake row") as varchar) as item from (${page}) as "lake row" order by "lake row".event_time, "lake row".event_id`;
      return body(await answer(lease.call({ kind: "run", setup, allowedDirectories: [lakeRoot], sql, params: values, format: "items", maxRows: filter.limit, maxBytes }), "result"));
    });

  return {
    /** Names of the views POST /v1/query can read. */
    viewNames,

    /**
     * One read-only statement over the type views and the dims, checked against the allow-list (see
     * sql-allow-list.ts): the response body `{columns, rows, truncated}`, cut at maxRows rows or maxBytes bytes.
     */
    async query(statement: string, asked: AskedBy = {}): Promise<ResultBody> {
      const problem = sqlTextProblem(statement);
      if (problem) {
        queryOutcomes.inc({ kind: "sql", outcome: "invalid" });
        throw new QueryError(problem);
      }
      return inSlot("sql", asked, async (lease) => {
        const checked = await answer(lease.call({ kind: "check", sql: statement, tables: viewNames() }), "checked");
        // Only the views the statement reads are set up (and, on S3, only their files fetched).
        const types = [...eventTypes.keys()].filter((type) => checked.tables.includes(viewNameOf(type)));
        const setup = await views(types, dimensionNames.filter((name) => checked.tables.includes(name)));
        return body(await answer(lease.call({ kind: "run", setup, allowedDirectories: [lakeRoot], sql: statement, params: [], format: "table", maxRows: options.maxRows, maxBytes }), "result"));
      });
    },

    /** Events of one type, oldest first, reading only the hours (and partition) the filter allows: the body `{items}`. */
    eventsBody,

    /** The same events, parsed (for callers inside the process, such as benchmarks). */
    async events(filter: EventFilter, asked: AskedBy = {}): Promise<Record<string, unknown>[]> {
      const { body } = await eventsBody(filter, asked);
      return (JSON.parse(new TextDecoder().decode(body)) as { items: Record<string, unknown>[] }).items;
    },

    /** Stops the query processes (they also stop by themselves when idle or when the gateway exits). */
    close: () => pool.close(),
  };
}

export type LakeReader = ReturnType<typeof createLakeReader>;

export const readerTempDir = (dataDir: string) => join(dataDir, "duckdb-tmp");
