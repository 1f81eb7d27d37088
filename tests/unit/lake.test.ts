import { expect, test } from "bun:test";
import { payloadColumns, viewNameOf } from "../../lib/lake/columns.ts";
import { compactedFileKey, dimFileKey, flushFileKey, hourOf } from "../../lib/lake/layout.ts";
import { sqlTextProblem } from "../../lib/lake/sql-guard.ts";

test("lake keys: hive partitions by type, UTC date and hour; names carry partition and offsets", () => {
  const t = Date.parse("2026-11-21T07:42:10.500Z");
  expect(hourOf(t)).toBe(Date.parse("2026-11-21T07:00:00Z"));
  expect(flushFileKey("sensor.reading", hourOf(t), "events.enriched", 3, 100, 199)).toBe("events/type=sensor.reading/date=2026-11-21/hour=07/events.enriched.p3.100-199.parquet");
  expect(compactedFileKey("gps.fix", hourOf(t), 0, 5, 900)).toBe("events/type=gps.fix/date=2026-11-21/hour=07/compacted.p0.5-900.parquet");
  expect(dimFileKey("cars", 4)).toBe("dims/cars/v4.parquet");
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

test("the SQL text guard takes queries and refuses other statements and catalog functions", () => {
  for (const ok of ["select 1", "  (select 1)", "with x as (select 1) select * from x", "-- note\nselect 'pragma x; drop table' as s", "from cars", "SELECT count(*) FROM sensor_reading"]) expect(sqlTextProblem(ok)).toBeNull();
  expect(sqlTextProblem("")).toContain("empty");
  expect(sqlTextProblem("pragma version")).toContain("PRAGMA");
  expect(sqlTextProblem("/* hi */ copy x to 'y'")).toContain("COPY");
  expect(sqlTextProblem("select * from duckdb_settings()")).toContain("duckdb_settings");
  expect(sqlTextProblem('select * from "duckdb_tables"()')).toContain("duckdb_tables");
  expect(sqlTextProblem("select current_setting('threads')")).toContain("current_setting");
  expect(sqlTextProblem("select 'duckdb_settings()' as text")).toBeNull();
});
