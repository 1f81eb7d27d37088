import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { createApp } from "../../api/app.ts";
import { tableLogsOf } from "../../lib/lake/delta/log.ts";
import { Duck } from "../../lib/lake/duckdb.ts";
import { lakeCacheDir, localFiles } from "../../lib/lake/local-files.ts";
import { dimTableOf, eventTableOf } from "../../lib/lake/tables.ts";
import { closeServices, type Services } from "../../lib/services.ts";
import { jobs } from "../../workers/jobs.ts";
import { compactOnce } from "../../workers/lake/compaction.ts";
import { vacuumOnce } from "../../workers/lake/vacuum.ts";
import { lakeIdCounts } from "../support/lake.ts";
import { services as realServices, uniqueName } from "../support/services.ts";
import { serviceSetups } from "../support/setups.ts";
import { tempDir } from "../support/tmp.ts";
import { waitFor } from "../support/wait.ts";

/** The lake sink, compaction and the lake queries on a local directory (embedded) and on MinIO (Kafka + Postgres). */
const apiKeys = [{ key: "all-key", scopes: ["ingest" as const, "query" as const, "admin" as const] }];
const sinkEnv = { LAKE_FLUSH_INTERVAL_MS: "200", LAKE_COMPACT_INTERVAL_MS: "3600000" };
const s3 = () => realServices().s3;
const setups = {
  "local dir": serviceSetups(sinkEnv).embedded,
  s3: (dir: string) =>
    serviceSetups({ ...sinkEnv, LAKE_URL: `s3://${s3().bucket}/${uniqueName("lake")}`, S3_ENDPOINT: s3().endpoint, AWS_ACCESS_KEY_ID: s3().accessKeyId, AWS_SECRET_ACCESS_KEY: s3().secretAccessKey }).kafka(dir),
};

const HOUR = 3_600_000;

for (const [name, setup] of Object.entries(setups)) {
  describe(`lake on ${name}`, () => {
    const dir = tempDir("devpipe-lake-");
    let services: Services;
    let drop: () => Promise<void>;
    let app: ReturnType<typeof createApp>;
    let stops: (() => Promise<void>)[] = [];
    const run = uniqueName("r");
    // Two closed hours, three hours and two hours ago.
    const hourA = Math.floor(Date.now() / HOUR) * HOUR - 3 * HOUR;
    const hourB = hourA + HOUR;
    const sensors = Array.from({ length: 120 }, (_, i) => ({
      type: "sensor.reading",
      event_id: `${run}-s${i}`,
      sensor_id: `${run}-sensor-${i % 6}`,
      temperature: 10 + (i % 20),
      humidity: 40 + (i % 10),
      event_time: new Date((i % 2 === 0 ? hourA : hourB) + i * 1_000).toISOString(),
    }));
    const fixes = Array.from({ length: 40 }, (_, i) => ({ type: "gps.fix", event_id: `${run}-g${i}`, device_id: `${run}-gps-${i % 4}`, latitude: 59.3, longitude: 18.0 + i / 100, speed: 40, direction: "North", vehicle_type: "bus", event_time: new Date(hourA + 60_000 + i * 1_000).toISOString() }));
    const telemetry = [
      { type: "vehicle.telemetry", event_id: `${run}-t1`, car_id: 7, speed: 150, rpm: 3000, gear: 5, event_time: new Date(hourB + 5_000).toISOString() },
      { type: "vehicle.telemetry", event_id: `${run}-t2`, car_id: 8, speed: 60, rpm: 2000, gear: 2, event_time: new Date(hourB + 6_000).toISOString() },
    ];

    // `page` is a field of user.activity: it must not shadow the row when a page of events is rendered.
    const activity = [{ type: "user.activity", event_id: `${run}-u1`, user_id: `${run}-user`, session_id: "s1", action: "page_view", page: "/home", event_time: new Date(hourA + 7_000).toISOString() }];

    const request = (path: string, body?: unknown, method = body === undefined ? "GET" : "POST") =>
      app.request(path, { method, ...(body === undefined ? {} : { body: JSON.stringify(body) }), headers: { "content-type": "application/json", authorization: "Bearer all-key" } });
    const query = async (sql: string) => {
      const response = await request("/v1/query", { sql });
      return { status: response.status, body: (await response.json()) as { columns: { name: string }[]; rows: unknown[][]; detail?: string } };
    };
    const count = async (sql: string) => {
      const { status, body } = await query(sql);
      if (status !== 200) throw new Error(`${status}: ${body.detail}`);
      return Number(body.rows[0]?.[0]);
    };

    beforeAll(async () => {
      ({ services, drop } = await setup(dir.path));
      app = createApp(services, { apiKeys });
      await request("/v1/dims/car_models", [{ model_id: 1, car_brand: "Volvo", car_model: "V60" }], "PUT");
      await request("/v1/dims/car_colors", [{ color_id: 1, color_name: "Black" }, { color_id: 2, color_name: "Silver" }], "PUT");
      await request("/v1/dims/cars", [{ car_id: 7, driver_id: 70, model_id: 1, color_id: 1 }, { car_id: 8, driver_id: 80, model_id: 1, color_id: 2 }], "PUT");
      stops = await Promise.all([jobs.enrich, jobs.lake].map((job) => job?.start(services, { commitIntervalMs: 100 }) ?? Promise.reject(new Error("job missing"))));
      const accepted = await request("/v1/events", [...sensors.slice(0, 60), ...fixes, ...telemetry, ...activity]);
      expect(accepted.status, await accepted.clone().text()).toBe(202);
      // The rest of the readings in a later flush, so both closed hours have two files for compaction.
      await waitFor(async () => (await count(`select count(*) from sensor_reading where event_id like '${run}-%'`)) === 60, { what: "the first readings in the lake" });
      expect((await request("/v1/events", sensors.slice(60))).status).toBe(202);
      await waitFor(async () => (await count(`select count(*) from sensor_reading where event_id like '${run}-%'`)) === sensors.length, { what: "all readings in the lake" });
      // A client retry of ten gps fixes, after the first copies are in the lake: enrich drops the repeats.
      await waitFor(async () => (await count(`select count(*) from gps_fix where event_id like '${run}-%'`)) === fixes.length, { what: "gps fixes in the lake" });
      expect((await request("/v1/events", fixes.slice(0, 10))).status).toBe(202);
      // The dims reach the lake as Delta tables within the sink's dims poll (2 s).
      await waitFor(async () => (await Promise.all(["car_models", "car_colors", "cars"].map((name) => tableLogsOf(services.lake).snapshot(dimTableOf(name as "cars"))))).every((s) => s !== null && s.files.size === 1), { what: "the dims exported to the lake" });
    });
    afterAll(async () => {
      await Promise.all(stops.map((stop) => stop()));
      await closeServices(services);
      await drop();
      dir.remove();
    });

    test("each type is a Delta table partitioned by date and hour of event time; every live file is stored", async () => {
      const snapshot = await tableLogsOf(services.lake).snapshot(eventTableOf("sensor.reading"));
      expect(snapshot?.metadata.partitionColumns).toEqual(["date", "hour"]);
      const live = [...(snapshot?.files.values() ?? [])];
      const hours = new Set(live.map((f) => `date=${f.partitionValues.date}/hour=${f.partitionValues.hour}`));
      const expected = [hourA, hourB].map((h) => `date=${new Date(h).toISOString().slice(0, 10)}/hour=${new Date(h).getUTCHours()}`);
      expect([...hours].sort()).toEqual(expected.sort());
      const stored = new Set((await services.lake.list(`${eventTableOf("sensor.reading")}/`)).map((o) => o.key));
      for (const file of live) expect(stored.has(`${eventTableOf("sensor.reading")}/${file.path}`)).toBe(true);
      const counts = await lakeIdCounts(services, dir.path);
      expect(counts.size).toBeGreaterThanOrEqual(sensors.length + fixes.length + telemetry.length + activity.length);
      expect([...counts.values()].every((n) => n === 1)).toBe(true);
    });

    test("GET /v1/events returns each event once, with enrichment and ingest_time, pruned by hour and key", async () => {
      const all = await request(`/v1/events?type=gps.fix&limit=1000&from=${hourA}&to=${hourA + HOUR}`);
      expect(all.status).toBe(200);
      const items = ((await all.json()) as { items: { event_id: string; ingest_time: string }[] }).items.filter((e) => e.event_id.startsWith(run));
      expect(items.map((e) => e.event_id).sort()).toEqual(fixes.map((f) => f.event_id).sort());
      expect(items.every((e) => !Number.isNaN(Date.parse(e.ingest_time)))).toBe(true);

      const one = await request(`/v1/events?type=sensor.reading&key=${run}-sensor-0&from=${hourA}&to=${hourB + HOUR}&limit=1000`);
      const sensorItems = ((await one.json()) as { items: { key: string; event_time: string; temperature: number }[] }).items;
      expect(sensorItems.length).toBe(sensors.filter((s) => s.sensor_id === `${run}-sensor-0`).length);
      expect(sensorItems.every((s) => s.key === `${run}-sensor-0`)).toBe(true);
      expect(sensorItems.map((s) => s.event_time)).toEqual([...sensorItems.map((s) => s.event_time)].sort());

      const cars = await request(`/v1/events?type=vehicle.telemetry&from=${hourB}&to=${hourB + HOUR}`);
      const enriched = ((await cars.json()) as { items: Record<string, unknown>[] }).items.filter((e) => String(e.event_id).startsWith(run));
      expect(enriched.find((e) => e.event_id === `${run}-t1`)).toMatchObject({ car_id: 7, driver_id: 70, color_name: "Black", expected_gear: 5 });

      const views = await waitFor(async () => {
        const page = ((await (await request(`/v1/events?type=user.activity&key=${run}-user`)).json()) as { items: unknown[] }).items;
        return page.length > 0 ? page : undefined;
      }, { what: "the page view in the lake" });
      expect(views).toEqual([expect.objectContaining({ type: "user.activity", event_id: `${run}-u1`, user_id: `${run}-user`, action: "page_view", page: "/home" })]);

      // The first hour of year 1 is in range: the hour pruning must not step before it.
      expect((await request("/v1/events?type=sensor.reading&from=0001-01-01T00:30:00Z&to=0001-01-01T00:40:00Z")).status).toBe(200);

      const bad = await request("/v1/events?type=nope&from=yesterday");
      expect(bad.status).toBe(400);
      const problem = (await bad.json()) as { errors: { path: string }[] };
      expect(problem.errors.map((e) => e.path).sort()).toEqual(["from", "type"]);
    });

    test("POST /v1/query answers over the type views joined with the dims, each event once", async () => {
      expect(await count(`select count(*) from sensor_reading where event_id like '${run}-%'`)).toBe(sensors.length);
      expect(await count(`select count(*) from gps_fix where event_id like '${run}-%'`)).toBe(fixes.length);
      const { status, body } = await query(`
        select c.color_name, count(*) as alerts
        from vehicle_telemetry t join cars using (car_id) join car_colors c on c.color_id = cars.color_id
        where t.event_id like '${run}-%' and (t.speed > 120 or t.rpm > 6000 or t.expected_gear <> t.gear)
        group by all order by 1`);
      expect(status).toBe(200);
      expect(body.columns.map((c) => c.name)).toEqual(["color_name", "alerts"]);
      expect(body.rows).toEqual([["Black", 1]]);
    });

    test("compaction merges each closed hour into one file while queries keep their answer; VACUUM removes the old files later", async () => {
      const expected = sensors.length + fixes.length;
      const files = localFiles(services.lake, lakeCacheDir(dir.path));
      const duck = await Duck.open({ threads: "1" });
      let stopQueries = false;
      const answers: number[] = [];
      const querying = (async () => {
        while (!stopQueries) answers.push((await count(`select count(*) from sensor_reading where event_id like '${run}-%'`)) + (await count(`select count(*) from gps_fix where event_id like '${run}-%'`)));
      })();
      const liveOf = async (type: string) => [...((await tableLogsOf(services.lake).snapshot(eventTableOf(type)))?.files.values() ?? [])].map((f) => ({ ...f, key: `${eventTableOf(type)}/${f.path}` }));
      const before = [...(await liveOf("gps.fix")), ...(await liveOf("sensor.reading"))];
      const result = await compactOnce({ sql: services.db.sql, store: services.lake, files, duck, workDir: join(dir.path, "compact"), logger: services.logger, closeAfterMs: 0 });
      expect(result.groups).toBeGreaterThan(0);
      await Bun.sleep(300);
      stopQueries = true;
      await querying;
      duck.close();
      expect(answers.length).toBeGreaterThan(2);
      expect(new Set(answers)).toEqual(new Set([expected]));

      for (const type of ["gps.fix", "sensor.reading"]) {
        const after = await liveOf(type);
        const hours = new Set(after.map((f) => `${f.partitionValues.date}/${f.partitionValues.hour}`));
        expect({ type, files: after.length }).toEqual({ type, files: hours.size });
      }
      expect((await liveOf("sensor.reading")).every((f) => f.path.includes("/compacted-"))).toBe(true);
      // The removed files stay for readers of older snapshots until the retention has passed.
      const stored = async () => new Set((await services.lake.list("events/")).map((o) => o.key));
      const afterKeys = new Set([...(await liveOf("gps.fix")), ...(await liveOf("sensor.reading"))].map((f) => f.key));
      const removed = before.filter((f) => !afterKeys.has(f.key));
      expect(removed.length).toBeGreaterThan(0);
      const storedBefore = await stored();
      expect(removed.every((f) => storedBefore.has(f.key))).toBe(true);
      const kept = await vacuumOnce({ store: services.lake, files, logger: services.logger, retentionMs: 3_600_000 });
      expect(kept.removed).toBe(0);
      const swept = await vacuumOnce({ store: services.lake, files, logger: services.logger, retentionMs: 0 });
      expect(swept.removed).toBe(removed.length);
      const left = await stored();
      expect(removed.some((f) => left.has(f.key))).toBe(false);
      for (const type of ["gps.fix", "sensor.reading"]) for (const file of await liveOf(type)) expect(left.has(file.key)).toBe(true);
      expect(await count(`select count(*) from sensor_reading where event_id like '${run}-%'`)).toBe(sensors.length);
      const runs = (await (await request("/v1/pipeline/runs?job=compaction&status=succeeded")).json()) as { items: { job: string; records: number }[] };
      expect(runs.items.length).toBeGreaterThan(0);
    });

    test("the runs log lists lake flushes newest first, filtered and paged", async () => {
      // The setup flushed at least twice (the events, then the dims-enriched telemetry or the page view).
      const first = await request("/v1/pipeline/runs?job=lake&limit=1");
      expect(first.status).toBe(200);
      const page = (await first.json()) as { items: { job: string; status: string; started_at: string; finished_at: string; records: number }[]; next_cursor: string | null };
      expect(page.items.length).toBe(1);
      const [newest] = page.items;
      expect(newest).toMatchObject({ job: "lake", status: "succeeded" });
      expect(Date.parse(newest?.finished_at ?? "")).toBeGreaterThanOrEqual(Date.parse(newest?.started_at ?? ""));
      expect(newest?.records).toBeGreaterThan(0);
      expect(page.next_cursor).not.toBeNull();
      const next = (await (await request(`/v1/pipeline/runs?job=lake&limit=1&cursor=${page.next_cursor}`)).json()) as { items: { job: string; started_at: string }[] };
      expect(next.items[0]?.job).toBe("lake");
      expect(Date.parse(next.items[0]?.started_at ?? "")).toBeLessThanOrEqual(Date.parse(newest?.started_at ?? ""));
      const all = (await (await request("/v1/pipeline/runs?job=lake&limit=1000")).json()) as { items: { records: number }[] };
      expect(all.items.reduce((sum, r) => sum + r.records, 0)).toBeGreaterThanOrEqual(sensors.length + fixes.length + telemetry.length);
      expect((await request("/v1/pipeline/runs?status=done")).status).toBe(400);
    });

    test("/metrics shows the lake job's consumer lag, its flushes and the runs log", async () => {
      const response = await app.request("/metrics");
      expect(response.status).toBe(200);
      expect(response.headers.get("content-type")).toContain("text/plain");
      const text = await response.text();
      const lagLines = text.split("\n").filter((l) => l.startsWith("devpipe_consumer_lag{") && l.includes('job="lake"'));
      expect(lagLines.length).toBe(services.config.busPartitions);
      for (const line of lagLines) expect(Number(line.split(" ").at(-1))).toBeGreaterThanOrEqual(0);
      expect(text).toMatch(/^devpipe_pipeline_runs\{job="lake",status="succeeded"\} [1-9]\d*$/m);
      expect(Number(/^devpipe_lake_flush_duration_seconds_count (\d+)$/m.exec(text)?.[1])).toBeGreaterThan(0);
    });

    test("the SQL guard refuses everything but one SELECT over the views, and nothing is read or written", async () => {
      const marker = join(dir.path, `${run}-written.csv`);
      const attempts = [
        "select * from read_csv('/etc/passwd')",
        "select * from read_text('/etc/hostname')",
        "select * from glob('/*')",
        "select * from read_parquet('/**/*.parquet')",
        `copy (select 1) to '${marker}'`,
        `attach '${join(dir.path, "x.duckdb")}' as x`,
        "install httpfs",
        "load httpfs",
        "set threads = 1",
        "pragma version",
        "select getenv('HOME')",
        "select current_setting('allowed_directories')",
        "select * from duckdb_settings()",
        "create table t (x int)",
        "insert into cars values (1, 2, 3, 4)",
        "drop view cars",
        "select 1; select 2",
        "select * from 'https://example.com/data.parquet'",
        "",
      ];
      for (const sql of attempts) {
        const { status, body } = await query(sql);
        expect({ sql, status }).toEqual({ sql, status: 400 });
        expect(typeof body.detail).toBe("string");
        expect(body.detail).not.toContain(dir.path);
      }
      expect(existsSync(marker)).toBe(false);
      expect(existsSync(join(dir.path, "x.duckdb"))).toBe(false);
      expect(await count("select count(*) from cars")).toBe(2);
      const malformed = await query("selec 1");
      expect(malformed.body.detail).toContain("SELECT");
      const duckError = await query("select no_such_column from cars");
      expect(duckError.status).toBe(400);
      expect(duckError.body.detail).toContain("no_such_column");
    });

    test("the allow-list refuses catalog, settings, file and table functions by name, and admits analytics", async () => {
      const leaks: [string, string][] = [
        ["select name, setting from pg_catalog.pg_settings", "pg_catalog.pg_settings"],
        ["select * from duckdb_databases()", "duckdb_databases()"],
        ["select /* ' */ value from duckdb_settings() where name='allowed_directories' /* ' */", "duckdb_settings()"],
        ["select * from sqlite_master", "sqlite_master"],
        ["select * from information_schema.tables", "information_schema.tables"],
        ["select count(*) from range(20000000000) a", "range()"],
        ["select * from read_csv('/etc/passwd')", "read_csv()"],
        ["select * from glob('/*')", "glob()"],
        [`select * from read_parquet('${dir.path}/lake/**/*.parquet')`, "read_parquet()"],
        ["select * from query_table('cars')", "query_table()"],
        ["select getenv('HOME')", "getenv()"],
        ["select current_setting('allowed_directories')", "current_setting()"],
      ];
      for (const [sql, named] of leaks) {
        const { status, body } = await query(sql);
        expect({ sql, status, named: body.detail?.includes(named) }).toEqual({ sql, status: 400, named: true });
        expect(body.detail).not.toContain(dir.path);
      }
      const analytics = [
        `select m.car_brand, c.color_name, count(*) as n, max(t.speed) as top from vehicle_telemetry t join cars using (car_id) join car_models m on m.model_id = cars.model_id join car_colors c on c.color_id = cars.color_id where t.event_id like '${run}-%' group by all order by n desc`,
        `select sensor_id, event_time, row_number() over (partition by sensor_id order by event_time) as nth, lag(temperature) over (partition by sensor_id order by event_time) as previous from sensor_reading where event_id like '${run}-%' qualify nth <= 2`,
        `with hourly as (select date_trunc('hour', event_time) as hour, count(distinct sensor_id) as sensors, avg(humidity) as humidity from sensor_reading where event_id like '${run}-%' group by 1) select hour, sensors, cast(humidity as integer) as humidity, case when sensors > 3 then 'busy' else 'quiet' end as load from hourly order by hour`,
        `select count(*) filter (where speed > 120) as fast, approx_count_distinct(car_id) as cars, string_agg(distinct cast(gear as varchar), ',') as gears from vehicle_telemetry where event_id like '${run}-%'`,
      ];
      for (const sql of analytics) {
        const { status, body } = await query(sql);
        expect({ sql, status, detail: body.detail }).toEqual({ sql, status: 200, detail: undefined });
        expect(body.rows.length).toBeGreaterThan(0);
      }
      const hourly = await query(analytics[2] ?? "");
      expect(hourly.body.rows.map((r) => r[1])).toEqual([3, 3]);
      expect((await query(analytics[0] ?? "")).body.rows).toEqual([["Volvo", "Black", 1, 150], ["Volvo", "Silver", 1, 60]]);
    });
  });
}
