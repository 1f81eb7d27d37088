import { type DuckDBConnection, DuckDBInstance, DuckDBTypeId, type DuckDBValue, JsonDuckDBValueConverter } from "@duckdb/node-api";
import { registry } from "../metrics.ts";

/** A JSON-ready result: column names and DuckDB types, rows as arrays in column order. */
export interface QueryResult {
  columns: { name: string; type: string }[];
  rows: unknown[][];
}

/** A result read a chunk (up to 2,048 rows) at a time; `next` gives null at the end. */
export interface RowStream {
  columns: { name: string; type: string }[];
  next(): Promise<unknown[][] | null>;
}

const INTEGERS = new Set([DuckDBTypeId.TINYINT, DuckDBTypeId.SMALLINT, DuckDBTypeId.INTEGER, DuckDBTypeId.BIGINT, DuckDBTypeId.UTINYINT, DuckDBTypeId.USMALLINT, DuckDBTypeId.UINTEGER, DuckDBTypeId.UBIGINT, DuckDBTypeId.HUGEINT, DuckDBTypeId.UHUGEINT]);
const TIMESTAMPS = new Set([DuckDBTypeId.TIMESTAMP, DuckDBTypeId.TIMESTAMP_TZ, DuckDBTypeId.TIMESTAMP_MS, DuckDBTypeId.TIMESTAMP_S, DuckDBTypeId.TIMESTAMP_NS]);

/** Integers as numbers while exact (strings beyond 2^53), timestamps as ISO-8601 UTC, the rest as DuckDB's JSON form. */
function jsonValue(value: unknown, typeId: DuckDBTypeId): unknown {
  if (value === null || typeof value !== "string") return value;
  if (INTEGERS.has(typeId)) {
    const n = Number(value);
    return Number.isSafeInteger(n) ? n : value;
  }
  if (TIMESTAMPS.has(typeId)) {
    // The session runs in UTC: "2026-11-21 10:00:04.25+00" or, without a zone, the same wall time.
    const parsed = Date.parse(`${value.replace(" ", "T").replace(/\+00$/, "")}Z`);
    return Number.isNaN(parsed) ? value : new Date(parsed).toISOString();
  }
  return value;
}

/**
 * Databases opened with a name, each with a second connection so that a scrape never waits behind a long
 * statement. `reading` is the scrape's query in flight: closing the database waits for it.
 */
const measured = new Map<DuckDBInstance, { name: string; connection: DuckDBConnection; reading?: Promise<unknown> }>();
const duckMemory = registry.gauge("devpipe_duckdb_memory_bytes", "Memory held by DuckDB's buffer manager (duckdb_memory()), by database (sink, dims, compaction); allocations outside it are not counted");
registry.collect(async () => {
  const bytes = new Map<string, number>();
  for (const entry of [...measured.values()]) {
    const reading = entry.connection.runAndReadAll("select coalesce(sum(memory_usage_bytes), 0)::DOUBLE from duckdb_memory()");
    entry.reading = reading;
    const reader = await reading.catch(() => undefined);
    entry.reading = undefined;
    bytes.set(entry.name, (bytes.get(entry.name) ?? 0) + Number(reader?.getRows()[0]?.[0] ?? 0));
  }
  duckMemory.replace([...bytes].map(([name, value]) => ({ labels: { database: name }, value })));
});

/**
 * One in-memory DuckDB database and connection. The lake's only door to DuckDB: writers copy
 * to Parquet through it, readers open one per query (see query-process.ts) so that each can be locked down.
 */
export class Duck {
  private constructor(
    private readonly instance: DuckDBInstance,
    private readonly connection: DuckDBConnection,
  ) {}

  /** `name` puts the database's memory on /metrics (`devpipe_duckdb_memory_bytes{database}`) until it is closed. */
  static async open(settings: Record<string, string> = {}, name?: string): Promise<Duck> {
    // Without the ICU extension (not downloadable here) DuckDB keeps TIMESTAMPTZ in UTC.
    const instance = await DuckDBInstance.create(":memory:", settings);
    if (name) measured.set(instance, { name, connection: await instance.connect() });
    return new Duck(instance, await instance.connect());
  }

  async run(sql: string, values?: DuckDBValue[]): Promise<void> {
    await this.connection.run(sql, values);
  }

  /** Runs one statement and reads at most `maxRows` rows; `truncated` says whether more were there. */
  async query(sql: string, values?: DuckDBValue[], maxRows = Number.MAX_SAFE_INTEGER): Promise<QueryResult & { truncated: boolean }> {
    const reader = await this.connection.streamAndReadUntil(sql, maxRows === Number.MAX_SAFE_INTEGER ? maxRows : maxRows + 1, values);
    const names = reader.columnNames();
    const types = reader.columnTypes();
    const all = reader.getRowsJson();
    const rows = all.slice(0, maxRows).map((row) => row.map((value, i) => jsonValue(value, types[i]?.typeId ?? DuckDBTypeId.VARCHAR)));
    return { columns: names.map((name, i) => ({ name, type: types[i]?.toString() ?? "UNKNOWN" })), rows, truncated: all.length > maxRows };
  }

  /** Rows as objects keyed by column name. */
  async objects(sql: string, values?: DuckDBValue[]): Promise<Record<string, unknown>[]> {
    const { columns, rows } = await this.query(sql, values);
    return rows.map((row) => Object.fromEntries(columns.map((c, i) => [c.name, row[i]])));
  }

  /** Runs one statement and hands its rows over chunk by chunk, converted as `query` converts them. */
  async stream(sql: string, values?: DuckDBValue[]): Promise<RowStream> {
    const result = await this.connection.stream(sql, values);
    const types = result.columnTypes();
    const typeIds = types.map((t) => t.typeId);
    return {
      columns: result.columnNames().map((name, i) => ({ name, type: types[i]?.toString() ?? "UNKNOWN" })),
      async next() {
        const chunk = await result.fetchChunk();
        if (!chunk || chunk.rowCount === 0) return null;
        return chunk.convertRows(JsonDuckDBValueConverter).map((row) => row.map((value, i) => jsonValue(value, typeIds[i] ?? DuckDBTypeId.VARCHAR)));
      },
    };
  }

  /** Stops the statement running on this connection; it fails with an "Interrupted" error. */
  interrupt(): void {
    this.connection.interrupt();
  }

  /** Closes the database: at once, or as soon as a scrape's query on it ends. */
  close(): void {
    const entry = measured.get(this.instance);
    measured.delete(this.instance);
    const closeAll = () => {
      entry?.connection.closeSync();
      this.connection.closeSync();
      this.instance.closeSync();
    };
    if (entry?.reading) void entry.reading.then(closeAll, closeAll);
    else closeAll();
  }
}

/** A SQL string literal. */
export const sqlString = (value: string) => `'${value.replaceAll("'", "''")}'`;
/** A SQL list of string literals. */
export const sqlStringList = (values: string[]) => `[${values.map(sqlString).join(", ")}]`;
