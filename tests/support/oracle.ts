import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DuckDBInstance } from "@duckdb/node-api";
import type { FlatEvent } from "./pipeline-data.ts";

/**
 * The views of ARCHITECTURE.md computed by DuckDB SQL over a set of unique events: the reference the
 * windows job must equal. Windows are epoch-aligned by integer arithmetic on epoch milliseconds.
 */
export type ReferenceRow = { key: string; window_start: number } & Record<string, number | string | null>;

const SQL: Record<string, string> = {
  sensor_stats_1m: `
    select sensor_id as key, (t // 60000) * 60000 as window_start, count(*) as count, round(avg(temperature), 3) as avg_temperature,
           min(temperature) as min_temperature, max(temperature) as max_temperature, round(avg(humidity), 3) as avg_humidity
    from e where type = 'sensor.reading' group by all`,
  page_views_1m: `
    select page as key, (t // 60000) * 60000 as window_start, count(*) as views
    from e where type = 'user.activity' and action = 'page_view' group by all`,
  active_users_5m: `
    select 'all' as key, (t // 60000) * 60000 - k * 60000 as window_start, count(distinct user_id) as active_users
    from e, range(0, 5) r(k) where type = 'user.activity' group by all`,
  fines_by_user_1d: `
    select user_id as key, (t // 86400000) * 86400000 as window_start, round(sum(coalesce(fine_amount, 0)), 2) as total_fine, count(*) as events
    from e where type = 'vehicle.location' group by all`,
  vehicle_alerts_15m: `
    with alerted as (
      select * from e where type = 'vehicle.telemetry' and (speed > 120 or rpm > 6000 or round(speed / 30) <> gear))
    select 'all' as key, (t // 60000) * 60000 - k * 60000 as window_start, count(*) as total_alerts,
           count(*) filter (where lower(color_name) = 'black') as black_cars, count(*) filter (where lower(color_name) = 'white') as white_cars,
           count(*) filter (where lower(color_name) = 'silver') as silver_cars, max(speed) as max_speed, max(gear) as max_gear, max(rpm) as max_rpm
    from alerted, range(0, 15) r(k) group by all`,
  user_sessions: `
    with ordered as (
      select user_id, t, action, lag(t) over w as prev_t, lag(action) over w as prev_action
      from e where type = 'user.activity' window w as (partition by user_id order by t)),
    numbered as (
      select *, sum(case when prev_t is null or t - prev_t > 1800000 or prev_action = 'session_end' then 1 else 0 end)
                  over (partition by user_id order by t rows unbounded preceding) as session
      from ordered)
    select user_id as key, min(t) as window_start, count(*) as events, (max(t) - min(t)) / 1000.0 as duration_s
    from numbered group by user_id, session`,
};

const COLUMNS = {
  event_id: "VARCHAR", type: "VARCHAR", t: "BIGINT", sensor_id: "VARCHAR", temperature: "DOUBLE", humidity: "DOUBLE", user_id: "VARCHAR",
  action: "VARCHAR", page: "VARCHAR", fine_amount: "DOUBLE", car_id: "BIGINT", speed: "DOUBLE", rpm: "DOUBLE", gear: "BIGINT", color_name: "VARCHAR",
};

export async function referenceViews(events: FlatEvent[], colourOfCar: (carId: number) => string | null): Promise<Map<string, ReferenceRow[]>> {
  const dir = mkdtempSync(join(tmpdir(), "devpipe-oracle-"));
  const path = join(dir, "events.ndjson");
  writeFileSync(path, events.map((e) => JSON.stringify({ ...e, t: e.event_time, color_name: typeof e.car_id === "number" ? colourOfCar(e.car_id) : null })).join("\n"));
  const instance = await DuckDBInstance.create(":memory:");
  const connection = await instance.connect();
  try {
    await connection.run(`create table e as select * from read_json('${path}', format = 'newline_delimited', columns = ${JSON.stringify(COLUMNS).replaceAll('"', "'")})`);
    const result = new Map<string, ReferenceRow[]>();
    for (const [view, sql] of Object.entries(SQL)) {
      const reader = await connection.runAndReadAll(`${sql} order by window_start, key`);
      result.set(view, reader.getRowObjectsJS().map((row) => Object.fromEntries(Object.entries(row).map(([k, v]) => [k, typeof v === "bigint" ? Number(v) : v])) as ReferenceRow));
    }
    return result;
  } finally {
    connection.closeSync();
    instance.closeSync();
    rmSync(dir, { recursive: true, force: true });
  }
}
