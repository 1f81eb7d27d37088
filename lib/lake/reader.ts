import { join } from "node:path";
import { z } from "zod";
import { type DimensionName, dimensionNames, dimensions } from "../dims.ts";
import { LakeError, QueryError, QueryRejectedError, QueryTimeoutError } from "../errors.ts";
import { eventTypes } from "../events/index.ts";
import { queryOutcomes, queryRunning } from "../metrics.ts";
import { columnsOf, envelopeColumns, type LakeColumn, payloadColumns, viewNameOf } from "./columns.ts";
import type { Add } from "./delta/actions.ts";
import { tableLogsOf } from "./delta/log.ts";
import { sqlString, sqlStringList } from "./duckdb.ts";
import type { LocalFiles } from "./local-files.ts";
import { createQueryPool, ProcessEndedError, type QueryLease } from "./query-pool.ts";
import type { JobReply } from "./query-protocol.ts";
import { createQuerySlots } from "./query-slots.ts";
import type { ResultBody } from "./result-body.ts";
import { sqlTextProblem } from "./sql-guard.ts";
import { dimTableOf, eventTableOf, fileKeyOf, HOUR_MS, hourPartitionFrom, hourStartOf } from "./tables.ts";
import type { ObjectStore } from "./types.ts";

export interface ReaderOptions {
  /** The lake: each view reads the live files of its Delta table's latest snapshot. */
  store: ObjectStore;
  /** Local paths of the lake's objects (S3 objects are downloaded to a cache). */
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
  fromMs?: number;
  toMs?: number;
  limit: number;
}

/** What a read needs: files that cannot hold such rows are not read. */
type FilePruning = Pick<EventFilter, "key" | "fromMs" | "toMs">;

const emptyView = (columns: readonly LakeColumn[]) => `select ${columns.map((c) => `null::${c.duckType === "JSON" ? "VARCHAR" : c.duckType} as "${c.name}"`).join(", ")} where false`;

/**
 * The columns of `paths`' rows. A file written before a schema evolution lacks the newer columns: the
 * union by name with the typed empty row set gives them as NULL even when none of the files has them.
 */
const filesView = (columns: readonly LakeColumn[], paths: string[]) =>
  `select ${columns.map((c) => `"${c.name}"`).join(", ")} from (${emptyView(columns)} union all by name select * from read_parquet(${sqlStringList(paths)}, union_by_name = true))`;

/** The min/max of `add.stats` this reader prunes by; other writers may leave any of it out. */
const rangeStatsSchema = z.object({ minValues: z.record(z.string(), z.unknown()).optional(), maxValues: z.record(z.string(), z.unknown()).optional() });
type RangeStats = z.infer<typeof rangeStatsSchema>;

/** Parsed stats per `add` (snapshots keep their `add` objects from one refresh to the next). */
const parsedStats = new WeakMap<Add, RangeStats | null>();

function statsOf(add: Add): RangeStats | null {
  let parsed = parsedStats.get(add);
  if (parsed === undefined) {
    try {
      parsed = add.stats === undefined ? null : (rangeStatsSchema.safeParse(JSON.parse(add.stats)).data ?? null);
    } catch {
      parsed = null;
    }
    parsedStats.set(add, parsed);
  }
  return parsed;
}

/** A column's [min, max] when the stats hold both as strings. */
function rangeOf(add: Add, column: string): [string, string] | undefined {
  const stats = statsOf(add);
  const min = stats?.minValues?.[column];
  const max = stats?.maxValues?.[column];
  return typeof min === "string" && typeof max === "string" ? [min, max] : undefined;
}

/** Code-point order, which is the UTF-8 byte order Parquet statistics use (UTF-16 `<` is not). */
function compareCodePoints(a: string, b: string): number {
  const left = a[Symbol.iterator]();
  const right = b[Symbol.iterator]();
  for (;;) {
    const x = left.next();
    const y = right.next();
    if (x.done || y.done) return x.done && y.done ? 0 : x.done ? -1 : 1;
    const difference = (x.value.codePointAt(0) ?? 0) - (y.value.codePointAt(0) ?? 0);
    if (difference !== 0) return difference;
  }
}

/**
 * Whether the file may hold `key`. A writer may store a truncated prefix as the max (Spark keeps 32
 * characters): every key above such a max and below the true one starts with it, so those are kept.
 */
function mayHoldKey(add: Add, key: string): boolean {
  const range = rangeOf(add, "key");
  if (!range) return true;
  const [min, max] = range;
  return compareCodePoints(key, min) >= 0 && (compareCodePoints(key, max) <= 0 || key.startsWith(max));
}

/** Whether the file's event times may reach into [fromMs, toMs): by its hour partition, then by its stats. */
function mayHoldTimes(add: Add, fromMs = Number.NEGATIVE_INFINITY, toMs = Number.POSITIVE_INFINITY): boolean {
  const partition = hourPartitionFrom(add.partitionValues);
  const hour = partition ? hourStartOf(partition) : Number.NaN;
  if (hour + HOUR_MS <= fromMs || hour >= toMs) return false;
  const range = rangeOf(add, "event_time");
  if (!range) return true;
  const [min, max] = [Date.parse(range[0]), Date.parse(range[1])];
  // Stats may be cut to milliseconds: the true max is below max + 1 ms. Unparsable stats (NaN) prune nothing.
  return !(max + 1 <= fromMs || min >= toMs);
}

/** A view of the query: a type's (with a leading `type` column) or a dim's. */
interface ViewSpec {
  name: string;
  table: string;
  columns: readonly LakeColumn[];
  type?: string;
  pruning: FilePruning;
}

const mayMatch = (add: Add, filter: FilePruning) => mayHoldTimes(add, filter.fromMs, filter.toMs) && (filter.key === undefined || mayHoldKey(add, filter.key));

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

  const logs = tableLogsOf(options.store);
  /** The snapshot version whose live set the download cache last heard of, per table. */
  const retainedAt = new Map<string, number>();

  /** Object keys of the live files of `table`'s latest snapshot that may match; null when the table does not exist yet. */
  const liveKeys = async (table: string, pruning: FilePruning): Promise<string[] | null> => {
    const snapshot = await logs.snapshot(table);
    if (!snapshot) return null;
    if (retainedAt.get(table) !== snapshot.version) {
      retainedAt.set(table, snapshot.version);
      await options.files.retain(`${table}/`, new Set([...snapshot.files.keys()].map((path) => fileKeyOf(table, path))));
    }
    return [...snapshot.files.values()].filter((add) => mayMatch(add, pruning)).map((add) => fileKeyOf(table, add.path));
  };

  /** The rows of the files, each once: the log lists every event in exactly one live file. */
  const rowsOf = async (columns: readonly LakeColumn[], keys: string[] | null) => (keys && keys.length > 0 ? filesView(columns, await options.files.paths(keys)) : emptyView(columns));

  const views = async (types: string[], dims: readonly DimensionName[], pruning: FilePruning = {}) => {
    const specs: ViewSpec[] = [
      ...types.map((type) => ({ name: viewNameOf(type), table: eventTableOf(type), columns: [...envelopeColumns, ...payloadColumns(type)], type, pruning })),
      ...dims.map((name) => ({ name, table: dimTableOf(name), columns: columnsOf(dimensions[name].schema.shape), pruning: {} })),
    ];
    // Each snapshot costs a GET or more on S3: all are resolved at once, the files are then fetched view by view.
    const keys = await Promise.all(specs.map((spec) => liveKeys(spec.table, spec.pruning)));
    const setup: string[] = [];
    for (const [i, spec] of specs.entries()) {
      const rows = await rowsOf(spec.columns, keys[i] ?? null);
      setup.push(`create view "${spec.name}" as ${spec.type === undefined ? rows : `select ${sqlString(spec.type)} as type, * from (${rows})`}`);
    }
    return setup;
  };

  const body = ({ body, rows, truncated }: ResultBody): ResultBody => ({ body, rows, truncated });

  const eventsBody = (filter: EventFilter, asked: AskedBy = {}): Promise<ResultBody> =>
    inSlot("events", asked, async (lease) => {
      const setup = await views([filter.type], [], filter);
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

    /** Events of one type, oldest first, reading only the files whose hour (and stats) the filter allows: the body `{items}`. */
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
