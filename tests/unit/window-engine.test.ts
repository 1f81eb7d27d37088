import { describe, expect, test } from "bun:test";
import type { Envelope } from "../../lib/events/index.ts";
import { type AnyView, views } from "../../lib/windows/views.ts";
import { PartitionWindows } from "../../workers/windows/engine.ts";

const MIN = 60_000;
const T = Date.parse("2026-11-21T10:00:00Z");
const all = [...views.values()];
const view = (name: string): AnyView => {
  const found = views.get(name);
  if (!found) throw new Error(name);
  return found;
};
let seq = 0;
const event = (type: string, time: number, payload: Record<string, unknown>): Envelope => ({ type, key: "k", event_id: `e${seq++}`, event_time: time, ingest_time: time, payload });
const reading = (sensor: string, time: number, temperature: number, humidity = 50) => event("sensor.reading", time, { sensor_id: sensor, temperature, humidity });
const activity = (user: string, time: number, action = "page_view", page = "/") => event("user.activity", time, { user_id: user, session_id: "s", action, page });
const telemetry = (time: number, speed: number, gear: number, rpm: number, color_name: string | null) =>
  event("vehicle.telemetry", time, { car_id: 1, speed, gear, rpm, expected_gear: Math.round(speed / 30), color_name });

/** The metrics of a view's rows, as the API would show them (one partition: no merge needed). */
type MetricsRow = { key: string; start: number; end: number; final: boolean } & Record<string, string | number | boolean | null>;

function metricsOf(engine: PartitionWindows, name: string): MetricsRow[] {
  const v = view(name);
  return engine
    .changes()
    .upserts.filter((r) => r.view === name)
    .map((r): MetricsRow => ({ ...v.metrics(r.acc, r), key: r.key, start: r.start, end: r.end, final: r.final }))
    .sort((a, b) => a.start - b.start || a.key.localeCompare(b.key));
}

describe("tumbling: sensor_stats_1m", () => {
  test("count, averages, min and max per sensor per minute", () => {
    const engine = new PartitionWindows(0, all);
    engine.apply(reading("s1", T + 1_000, 20, 40), Number.NEGATIVE_INFINITY);
    engine.apply(reading("s1", T + 59_999, 24, 60), Number.NEGATIVE_INFINITY);
    engine.apply(reading("s1", T + 60_000, 30), Number.NEGATIVE_INFINITY);
    engine.apply(reading("s2", T + 5_000, -3.5), Number.NEGATIVE_INFINITY);
    expect(metricsOf(engine, "sensor_stats_1m")).toEqual([
      { key: "s1", start: T, end: T + MIN, final: false, count: 2, avg_temperature: 22, min_temperature: 20, max_temperature: 24, avg_humidity: 50 },
      { key: "s2", start: T, end: T + MIN, final: false, count: 1, avg_temperature: -3.5, min_temperature: -3.5, max_temperature: -3.5, avg_humidity: 50 },
      { key: "s1", start: T + MIN, end: T + 2 * MIN, final: false, count: 1, avg_temperature: 30, min_temperature: 30, max_temperature: 30, avg_humidity: 50 },
    ]);
  });

  test("a window becomes final when the watermark passes its end; later events for it are late and not applied", () => {
    const engine = new PartitionWindows(0, all);
    engine.apply(reading("s1", T + 1_000, 20), Number.NEGATIVE_INFINITY);
    engine.finalize(T + MIN);
    const { upserts, committed } = engine.changes();
    expect(upserts.map((r) => r.final)).toEqual([true]);
    committed();
    expect(engine.size()).toBe(0);
    expect(engine.apply(reading("s1", T + 2_000, 99), T + MIN)).toEqual(["sensor_stats_1m"]);
    expect(engine.changes().upserts).toEqual([]);
  });
});

describe("hopping: vehicle_alerts_15m and active_users_5m", () => {
  test("an alerting event counts in the 15 windows that contain it, by colour, with maxima", () => {
    const engine = new PartitionWindows(0, all);
    engine.apply(telemetry(T + 30_000, 150, 5, 6500, "Black"), Number.NEGATIVE_INFINITY);
    engine.apply(telemetry(T + 40_000, 125, 4, 3000, "Silver"), Number.NEGATIVE_INFINITY);
    engine.apply(telemetry(T + 50_000, 60, 2, 2000, "White"), Number.NEGATIVE_INFINITY); // no rule matches
    const rows = metricsOf(engine, "vehicle_alerts_15m");
    expect(rows).toHaveLength(15);
    expect(rows[0]).toMatchObject({ key: "all", start: T - 14 * MIN, end: T + MIN, total_alerts: 2, black_cars: 1, silver_cars: 1, white_cars: 0, max_speed: 150, max_gear: 5, max_rpm: 6500 });
  });

  test("active users are distinct per window", () => {
    const engine = new PartitionWindows(0, all);
    for (const [user, offset] of [["u1", 0], ["u1", 10_000], ["u2", 20_000], ["u3", 4 * MIN + 30_000]] as const) engine.apply(activity(user, T + offset), Number.NEGATIVE_INFINITY);
    const rows = metricsOf(engine, "active_users_5m");
    expect(rows.find((r) => r.start === T)).toMatchObject({ active_users: 3 });
    expect(rows.find((r) => r.start === T + 4 * MIN)).toMatchObject({ active_users: 1 });
    expect(rows.find((r) => r.start === T - 4 * MIN)).toMatchObject({ active_users: 2 });
  });
});

describe("sessions: user_sessions", () => {
  test("events within 30 minutes form one session; a longer silence starts another", () => {
    const engine = new PartitionWindows(0, all);
    for (const offset of [0, 10 * MIN, 35 * MIN, 80 * MIN]) engine.apply(activity("u1", T + offset), Number.NEGATIVE_INFINITY);
    expect(metricsOf(engine, "user_sessions").map((r) => [r.start - T, r.end - T, r.events, r.duration_s])).toEqual([
      [0, 35 * MIN, 3, 35 * 60],
      [80 * MIN, 80 * MIN, 1, 0],
    ]);
  });

  test("an out-of-order event that bridges two sessions merges them, and the older row is deleted", () => {
    const engine = new PartitionWindows(0, all);
    engine.apply(activity("u1", T), Number.NEGATIVE_INFINITY);
    engine.apply(activity("u1", T + 50 * MIN), Number.NEGATIVE_INFINITY);
    engine.changes().committed();
    engine.apply(activity("u1", T + 25 * MIN), Number.NEGATIVE_INFINITY);
    const { upserts, deletes } = engine.changes();
    expect(upserts.filter((r) => r.view === "user_sessions").map((r) => [r.start, r.end])).toEqual([[T, T + 50 * MIN]]);
    expect(deletes).toEqual([{ view: "user_sessions", key: "u1", start: T + 50 * MIN, partition: 0 }]);
  });

  test("session_end closes a session: the next event starts a new one, and it is final once the watermark reaches its end", () => {
    const engine = new PartitionWindows(0, all);
    engine.apply(activity("u1", T, "session_start"), Number.NEGATIVE_INFINITY);
    engine.apply(activity("u1", T + MIN, "session_end"), Number.NEGATIVE_INFINITY);
    engine.apply(activity("u1", T + 2 * MIN, "session_start"), Number.NEGATIVE_INFINITY);
    engine.finalize(T + MIN);
    const rows = metricsOf(engine, "user_sessions");
    expect(rows.map((r) => [r.start - T, r.events, r.final])).toEqual([
      [0, 2, true],
      [2 * MIN, 1, false],
    ]);
  });
});

test("page views count page_view actions only, keyed by page", () => {
  const engine = new PartitionWindows(0, all);
  engine.apply(activity("u1", T, "page_view", "/a"), Number.NEGATIVE_INFINITY);
  engine.apply(activity("u2", T + 1, "page_view", "/a"), Number.NEGATIVE_INFINITY);
  engine.apply(activity("u2", T + 2, "click", "/a"), Number.NEGATIVE_INFINITY);
  engine.apply(activity("u3", T + 3, "page_view", "/b"), Number.NEGATIVE_INFINITY);
  expect(metricsOf(engine, "page_views_1m").map((r) => [r.key, r.views])).toEqual([["/a", 2], ["/b", 1]]);
});

test("fines sum per user per UTC day", () => {
  const engine = new PartitionWindows(0, all);
  const location = (user: string, time: number, fine?: number) => event("vehicle.location", time, { vehicle_id: "v", user_id: user, latitude: 0, longitude: 0, speed: 1, make: "m", model: "m", year: 2020, ...(fine === undefined ? {} : { fine_amount: fine }) });
  engine.apply(location("u1", T, 100), Number.NEGATIVE_INFINITY);
  engine.apply(location("u1", T + 60 * MIN, 250.5), Number.NEGATIVE_INFINITY);
  engine.apply(location("u1", T + 2 * MIN), Number.NEGATIVE_INFINITY);
  expect(metricsOf(engine, "fines_by_user_1d")).toEqual([{ key: "u1", start: Date.parse("2026-11-21T00:00:00Z"), end: Date.parse("2026-11-22T00:00:00Z"), final: false, total_fine: 350.5, events: 3 }]);
});
