import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { payloadColumns, viewNameOf } from "../../lib/lake/columns.ts";
import { Duck } from "../../lib/lake/duckdb.ts";
import { allowedFunctions, checkParsedStatement } from "../../lib/lake/sql-allow-list.ts";
import { MAX_SQL_BYTES, sqlTextProblem } from "../../lib/lake/sql-guard.ts";
import { registry } from "../../lib/metrics.ts";
import { dimTableOf, eventTableOf, fileKeyOf, hourPartitionFrom, hourPartitionOf, hourStartOf, newDataFilePath, partitionValuesOf, writtenAt } from "../../lib/lake/tables.ts";

test("lake tables: one per type and dim; data files named by partition and write time", () => {
  expect(eventTableOf("vehicle.telemetry")).toBe("events/vehicle_telemetry");
  expect(dimTableOf("car_colors")).toBe("dims/car_colors");
  const partition = hourPartitionOf(Date.parse("2026-11-21T07:42:10.500Z"));
  expect(partition).toEqual({ date: "2026-11-21", hour: 7 });
  expect(hourStartOf(partition)).toBe(Date.parse("2026-11-21T07:00:00Z"));
  expect(partitionValuesOf(partition)).toEqual({ date: "2026-11-21", hour: "7" });
  expect(hourPartitionFrom({ date: "2026-11-21", hour: "7" })).toEqual(partition);
  for (const bad of [{ date: "2026-11-21", hour: null }, { date: "21/11/2026", hour: "7" }, { hour: "7" }] as Record<string, string | null>[]) expect(hourPartitionFrom(bad)).toBeUndefined();
  const now = Date.parse("2026-11-21T08:00:00Z");
  const path = newDataFilePath(partition, "part", now);
  expect(path).toMatch(new RegExp(`^date=2026-11-21/hour=7/part-${now}-[0-9a-f-]{36}\\.zstd\\.parquet$`));
  expect(writtenAt(path)).toBe(now);
  expect(writtenAt(newDataFilePath(undefined, "dim", now))).toBe(now);
  // Files other writers made (Spark, delta-rs) cannot be dated by name: VACUUM leaves them to their tombstones.
  expect(writtenAt("date=2026-11-21/hour=7/part-00000-1f2e-c000.snappy.parquet")).toBeUndefined();
  expect(fileKeyOf("events/gps_fix", "date=2026-11-21/hour=7/a%20b.parquet")).toBe("events/gps_fix/date=2026-11-21/hour=7/a b.parquet");
});

test("lake columns follow the event schemas, with the enrichment for telemetry", () => {
  expect(viewNameOf("vehicle.telemetry")).toBe("vehicle_telemetry");
  expect(payloadColumns("sensor.reading")).toEqual([
    { name: "sensor_id", duckType: "VARCHAR" },
    { name: "temperature", duckType: "DOUBLE" },
    { name: "humidity", duckType: "DOUBLE" },
  ]);
  const telemetry = new Map(payloadColumns("vehicle.telemetry").map((c) => [c.name, c.duckType]));
  expect(telemetry.get("car_id")).toBe("BIGINT");
  expect(telemetry.get("color_name")).toBe("VARCHAR");
  expect(telemetry.get("expected_gear")).toBe("BIGINT");
});

test("the SQL text guard refuses only empty and oversized text (bytes, not characters)", () => {
  for (const ok of ["select 1", "pragma version", "x".repeat(MAX_SQL_BYTES)]) expect(sqlTextProblem(ok)).toBeNull();
  expect(sqlTextProblem("  \n")).toContain("empty");
  expect(sqlTextProblem("x".repeat(MAX_SQL_BYTES + 1))).toContain(`${MAX_SQL_BYTES} bytes`);
  expect(sqlTextProblem("é".repeat(MAX_SQL_BYTES / 2 + 1))).toContain("bytes");
  expect(sqlTextProblem(`select 1 ${"/*".repeat(50_000)}`)).toContain("bytes");
});

describe("the allow-list walker over hand-picked parse trees", () => {
  const views = new Set(["sensor_reading", "cars"]);
  const empty = { type: "EMPTY", alias: "", sample: null, query_location: 0 };
  const table = (name: string, schema = "") => ({ type: "BASE_TABLE", alias: "", sample: null, query_location: 0, schema_name: schema, table_name: name, catalog_name: "", at_clause: null });
  const fn = (name: string, children: unknown[] = [], schema = "") => ({ class: "FUNCTION", type: "FUNCTION", alias: "", function_name: name, schema, catalog: "", children, filter: null, distinct: false });
  const column = (name: string) => ({ class: "COLUMN_REF", type: "COLUMN_REF", alias: "", column_names: [name] });
  const select = (from: unknown, list: unknown[] = [column("x")], ctes: { key: string; value: unknown }[] = []) => ({ type: "SELECT_NODE", modifiers: [], cte_map: { map: ctes }, select_list: list, from_table: from, where_clause: null });
  const cte = (key: string, node: unknown) => ({ key, value: { aliases: [], query: { node }, materialized: "CTE_MATERIALIZE_DEFAULT" } });
  const check = (node: unknown) => checkParsedStatement({ error: false, statements: [{ node }] }, views);
  const refused = (node: unknown) => {
    const verdict = check(node);
    if (verdict.ok) throw new Error(`accepted ${JSON.stringify(node)}`);
    return verdict.reason;
  };

  test("views, CTEs and allowed functions pass; the views read are reported", () => {
    expect(check(select(table("sensor_reading"), [fn("count_star"), fn("date_trunc", [column("event_time")])]))).toEqual({ ok: true, tables: ["sensor_reading"] });
    expect(check(select(table("recent"), [column("x")], [cte("recent", select(table("cars")))]))).toEqual({ ok: true, tables: ["cars"] });
    expect(check(select(empty, [fn("list_value", [], "main")]))).toEqual({ ok: true, tables: [] });
  });

  test("tables other than the views, schema-qualified names and table functions are refused by name", () => {
    expect(refused(select(table("pg_settings", "pg_catalog")))).toContain("pg_catalog.pg_settings");
    expect(refused(select(table("sqlite_master")))).toContain("sqlite_master");
    expect(refused(select(table("cars", "main")))).toContain("main.cars");
    expect(refused(select({ type: "TABLE_FUNCTION", alias: "", sample: null, function: fn("range") }))).toContain("range()");
    expect(refused(select(empty, [fn("getenv", [column("x")])]))).toContain("getenv()");
    expect(refused(select(empty, [fn("current_setting", [], "pg_catalog")]))).toContain("pg_catalog.current_setting()");
  });

  test("references deep inside nodes the walker does not know are still found, and unknown kinds are refused", () => {
    const future = { type: "FUTURE_CLAUSE", payload: { nested: [{ anything: fn("duckdb_settings") }] } };
    expect(refused(select(table("cars"), [column("x"), future]))).toContain("duckdb_settings()");
    expect(refused(select(table("cars"), [{ wrapper: { deeper: table("duckdb_tables") } }]))).toContain("duckdb_tables");
    expect(refused(select({ type: "SHOW_REF", alias: "", sample: null, table_name: "cars" }))).toContain("show ref");
    expect(refused(select({ type: "NEW_KIND_OF_REF", alias: "", sample: null }))).toContain("new kind of ref");
    expect(refused(select(empty, [{ class: "NEW_EXPRESSION", type: "X", alias: "" }]))).toContain("new_expression");
    expect(refused({ type: "PRAGMA_NODE", modifiers: [] })).toContain("pragma node");
  });

  test("a CTE is in scope only where DuckDB would read it instead of a catalog table", () => {
    // A CTE body that names itself (not recursive) or a later CTE reads the catalog.
    expect(refused(select(table("sqlite_master"), [column("x")], [cte("sqlite_master", select(table("sqlite_master")))]))).toContain("sqlite_master");
    expect(refused(select(table("a"), [column("x")], [cte("a", select(table("b"))), cte("b", select(table("cars")))]))).toContain("table b");
    // A CTE defined in a subquery is not visible outside it.
    const inner = { type: "SUBQUERY", alias: "s", sample: null, subquery: { node: select(table("q"), [column("x")], [cte("q", select(table("cars")))]) } };
    expect(check(select(inner)).ok).toBe(true);
    expect(refused(select({ type: "JOIN", alias: "", sample: null, left: inner, right: table("q") }))).toContain("table q");
    // A recursive CTE sees itself in its recursive term only.
    const recursive = (anchor: unknown, step: unknown) => ({ type: "RECURSIVE_CTE_NODE", modifiers: [], cte_map: { map: [] }, cte_name: "r", union_all: true, left: anchor, right: step });
    expect(check(select(table("r"), [column("n")], [cte("r", recursive(select(empty), select(table("r"))))])).ok).toBe(true);
    expect(refused(select(table("r"), [column("n")], [cte("r", recursive(select(table("r")), select(table("r"))))]))).toContain("table r");
  });

  test("parser errors, other statements and several statements are refused", () => {
    expect(checkParsedStatement({ error: true, error_type: "not implemented", error_message: "Only SELECT statements can be serialized to json!" }, views)).toMatchObject({ ok: false, reason: expect.stringContaining("SELECT") });
    expect(checkParsedStatement({ error: false, statements: [{ node: select(empty) }, { node: select(empty) }] }, views)).toMatchObject({ ok: false, reason: expect.stringContaining("has 2") });
    expect(checkParsedStatement("nonsense", views).ok).toBe(false);
  });
});

describe("the allow-list over DuckDB's own parse trees", () => {
  let duck: Duck;
  const views = new Set(["vehicle_telemetry", "sensor_reading", "cars", "car_colors", "car_models"]);
  const check = async (sql: string) => {
    const { rows } = await duck.query("select json_serialize_sql(?::varchar)", [sql]);
    return checkParsedStatement(JSON.parse(String(rows[0]?.[0])), views);
  };
  beforeAll(async () => {
    duck = await Duck.open();
  });
  afterAll(() => duck.close());

  test("every allowed function exists in DuckDB as a scalar, aggregate, window or macro", async () => {
    const rows = await duck.objects("select function_name, list(distinct function_type) as types from duckdb_functions() group by 1");
    const kinds = new Map(rows.map((r) => [String(r.function_name), r.types as string[]]));
    // unnest is only listed as a table function, but in a select list it is DuckDB's row-expanding expression.
    const missing = [...allowedFunctions].filter((name) => name !== "unnest" && !(kinds.get(name) ?? []).some((t) => ["scalar", "aggregate", "macro"].includes(t)));
    expect(missing).toEqual([]);
    for (const denied of ["range", "generate_series", "read_csv", "read_parquet", "glob", "query", "query_table", "getenv", "current_setting", "getvariable", "pg_sleep", "duckdb_settings", "json_execute_serialized_sql", "list_aggregate"]) expect(allowedFunctions.has(denied)).toBe(false);
  });

  test("analytics pass; catalog, settings, files and table functions are refused by name", async () => {
    for (const sql of [
      "select c.color_name, count(*) from vehicle_telemetry t join cars using (car_id) join car_colors c on c.color_id = cars.color_id group by all",
      "with hot as (select * from sensor_reading where temperature > 30) select date_trunc('hour', event_time) as h, count(distinct sensor_id), avg(temperature)::int from hot group by 1",
      "select key, row_number() over (partition by key order by event_time), lag(speed) over w from vehicle_telemetry window w as (order by event_time) qualify rank() over (order by speed desc) <= 3",
      "select case when speed > 120 then 'fast' else 'ok' end, cast(rpm as double), list_transform([1, 2], x -> x + 1), quantile_cont(speed, 0.9) over () from vehicle_telemetry",
      "select 1 union all select 2 except select 3",
      "with recursive r(n) as (select 1 union all select n + 1 from r where n < 3) select * from r",
      "select * from sensor_reading where sensor_id in (select key from sensor_reading) and exists (select 1 from cars)",
    ]) expect({ sql, verdict: await check(sql) }).toMatchObject({ sql, verdict: { ok: true } });
    const refusals: [string, string][] = [
      ["select name, setting from pg_catalog.pg_settings", "pg_catalog.pg_settings"],
      ["select * from duckdb_databases()", "duckdb_databases()"],
      ["select /* ' */ value from duckdb_settings() where name='allowed_directories' /* ' */", "duckdb_settings()"],
      ["select * from sqlite_master", "sqlite_master"],
      ["select * from main.sqlite_master", "main.sqlite_master"],
      ["select * from information_schema.tables", "information_schema.tables"],
      ["select count(*) from range(20000000000) a", "range()"],
      ["select list(range) from range(25000000)", "range()"],
      ["select * from read_csv('/etc/passwd')", "read_csv()"],
      ["select * from glob('/*')", "glob()"],
      ["select * from read_parquet('/data/lake/x.parquet')", "read_parquet()"],
      ["select * from 'x.parquet'", "x.parquet"],
      ["select * from query_table('cars')", "query_table()"],
      ["select getenv('HOME')", "getenv()"],
      ["select current_setting('allowed_directories')", "current_setting()"],
      ["select * from cars where car_id in (select car_id from (select * from pg_settings))", "pg_settings"],
      ["with sqlite_master as (select * from sqlite_master) select * from sqlite_master", "sqlite_master"],
      ["select range(10)", "range()"],
      ["summarize cars", "show ref"],
      ["select 1; select 2", "has 2"],
      ["copy cars to 'x.csv'", "SELECT"],
    ];
    for (const [sql, named] of refusals) {
      const verdict = await check(sql);
      expect({ sql, ok: verdict.ok, named: !verdict.ok && verdict.reason.includes(named) }).toEqual({ sql, ok: false, named: true });
    }
  });
});

test("a named DuckDB reports its buffer memory on /metrics until it is closed", async () => {
  const series = async (name: string) => (await registry.render()).split("\n").find((line) => line.startsWith(`devpipe_duckdb_memory_bytes{database="${name}"}`));
  const duck = await Duck.open({ threads: "1", memory_limit: "256MB" }, "unit-test");
  try {
    // A table of 2M integers lives in DuckDB's buffer manager: ~16 MB at least.
    await duck.run("create table t as select range as n from range(2000000)");
    const line = await series("unit-test");
    expect(line).toBeDefined();
    expect(Number(line?.slice(line.lastIndexOf(" ") + 1))).toBeGreaterThan(8_000_000);
  } finally {
    duck.close();
  }
  expect(await series("unit-test")).toBeUndefined();

  // Closed while a scrape reads it: the close waits for the read, and the next scrape no longer shows it.
  const closing = await Duck.open({ threads: "1" }, "unit-test-closing");
  const scrape = registry.render();
  closing.close();
  expect(await scrape).toContain("# TYPE devpipe_duckdb_memory_bytes gauge");
  expect(await series("unit-test-closing")).toBeUndefined();
});
