import { describe, expect, test } from "bun:test";
import type { Envelope } from "../../lib/events/index.ts";
import { TimeWindows } from "../../lib/windows/spec.ts";
import { type AnyView, type View, views } from "../../lib/windows/views.ts";
import { PartitionWindows, type WindowRow } from "../../workers/windows/engine.ts";

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

describe("sessions close deterministically under the watermark", () => {
  const GAP = 30 * MIN;
  const sessionsOnly = () => new PartitionWindows(0, [view("user_sessions")]);
  type Stored = { start: number; end: number; events: number; final: boolean };
  /** What the aggregates table would hold: every change written in order, as a checkpoint does. */
  const flush = (engine: PartitionWindows, table: Map<string, Stored & { key: string; row: WindowRow }>) => {
    const { upserts, deletes, committed } = engine.changes();
    for (const d of deletes) table.delete(`${d.key}@${d.start}`);
    for (const r of upserts) table.set(`${r.key}@${r.start}`, { key: r.key, start: r.start, end: r.end, events: (r.acc as { events: number }).events, final: r.final, row: r });
    committed();
  };
  const rows = (table: Map<string, Stored & { key: string; row: WindowRow }>, key = "u1") =>
    [...table.values()].filter((r) => r.key === key).map(({ start, end, events, final }) => ({ start, end, events, final })).sort((a, b) => a.start - b.start);

  test("a session the watermark has passed is closed before the next event of its key, not at the next checkpoint", () => {
    const engine = sessionsOnly();
    const table = new Map<string, Stored & { key: string; row: WindowRow }>();
    expect(engine.apply(activity("u1", T), Number.NEGATIVE_INFINITY)).toEqual([]);
    // The watermark passes T + 30 min (other keys, other partitions) with no checkpoint in between.
    expect(engine.apply(activity("u1", T + 45 * MIN), T + 32 * MIN)).toEqual([]);
    flush(engine, table);
    expect(rows(table)).toEqual([
      { start: T, end: T, events: 1, final: true },
      { start: T + 45 * MIN, end: T + 45 * MIN, events: 1, final: false },
    ]);
  });

  test("an event reaching a session the watermark has closed is late, with or without a checkpoint in between, and after a restart", () => {
    // Two sessions of u1, 50 minutes apart; the watermark passes the first one's gap; then an event between them
    // arrives that would bridge them. Whether a checkpoint (finalize, commit) ran in between must not matter.
    const bridge = activity("u1", T + 25 * MIN);
    const run = (checkpointBefore: boolean, restart: boolean) => {
      let engine = sessionsOnly();
      const table = new Map<string, Stored & { key: string; row: WindowRow }>();
      engine.apply(activity("u1", T), Number.NEGATIVE_INFINITY);
      engine.apply(activity("u1", T + 50 * MIN), Number.NEGATIVE_INFINITY);
      if (checkpointBefore) {
        engine.finalize(T + 31 * MIN);
        flush(engine, table);
      }
      if (restart) {
        flush(engine, table);
        engine = sessionsOnly();
        engine.load([...table.values()].map((r) => r.row));
      }
      const late = engine.apply(bridge, T + 31 * MIN);
      engine.finalize(T + 31 * MIN);
      flush(engine, table);
      return { late, rows: rows(table) };
    };
    const expected = {
      late: ["user_sessions"],
      rows: [
        { start: T, end: T, events: 1, final: true },
        { start: T + 50 * MIN, end: T + 50 * MIN, events: 1, final: false },
      ],
    };
    expect(run(false, false)).toEqual(expected);
    expect(run(true, false)).toEqual(expected);
    expect(run(true, true)).toEqual(expected);
  });

  test("an event that would extend a closed session is late, even when it would not be late by itself", () => {
    const engine = sessionsOnly();
    engine.apply(activity("u1", T), Number.NEGATIVE_INFINITY);
    engine.finalize(T + GAP);
    engine.changes().committed();
    expect(engine.size()).toBe(0);
    // Alone, an event at T + 29 min would open a session closing at T + 59 min, past the watermark: it is within the
    // gap of the final session, though, and would change it.
    expect(engine.apply(activity("u1", T + 29 * MIN), T + 40 * MIN)).toEqual(["user_sessions"]);
    expect(engine.apply(activity("u1", T + 31 * MIN), T + 40 * MIN)).toEqual([]);
    // Once the session an event would start alone has closed, it is late even if it reaches an open session: it
    // could reach a final one the engine has forgotten (here T's, past T + 30 min + a gap), and no final row may change.
    expect(engine.apply(activity("u1", T + 20 * MIN), T + 60 * MIN)).toEqual(["user_sessions"]);
    expect(engine.apply(activity("u1", T + 35 * MIN), T + 60 * MIN)).toEqual([]);
    const { upserts } = engine.changes();
    expect(upserts.map((r) => [r.start - T, r.end - T, (r.acc as { events: number }).events])).toEqual([[31 * MIN, 35 * MIN, 2]]);
  });

  /** A small deterministic generator of numbers in [0, 1). */
  const seeded = (seed: number) => {
    let state = seed;
    return () => {
      state = (state * 1_103_515_245 + 12_345) % 2_147_483_648;
      return state / 2_147_483_648;
    };
  };
  /**
   * The events in arrival order (each up to 45 min late), each with the watermark before it (2 min behind the
   * newest event time seen) and whether a checkpoint follows it (with probability `checkpointShare`).
   */
  const arrivals = (events: Envelope[], random: () => number, checkpointShare: number) => {
    const arrival = events.map((e) => ({ e, at: e.event_time + random() * 45 * MIN })).sort((a, b) => a.at - b.at).map((a) => a.e);
    let max = Number.NEGATIVE_INFINITY;
    const sequence = arrival.map((e) => {
      const watermark = max - 2 * MIN;
      max = Math.max(max, e.event_time);
      return { e, watermark, checkpoint: random() < checkpointShare };
    });
    return { sequence, finalWatermark: max - 2 * MIN };
  };

  test("the stored sessions are a function of the (event, watermark) sequence only, and equal the sessions of the events not late", () => {
    // Three users, sessions split by gaps, arrival out of order by up to 45 min.
    const random = seeded(12_345);
    for (let round = 0; round < 200; round++) {
      const events: Envelope[] = [];
      for (const user of ["u1", "u2", "u3"]) {
        let t = T + Math.floor(random() * 10 * MIN);
        for (let i = 0; i < 12; i++) {
          events.push(activity(user, t));
          t += MIN + Math.floor(random() * 50 * MIN) + 1;
        }
      }
      const { sequence, finalWatermark } = arrivals(events, random, 0.3);
      const runWith = (checkpoints: boolean) => {
        const engine = sessionsOnly();
        const table = new Map<string, Stored & { key: string; row: WindowRow }>();
        const accepted: Envelope[] = [];
        for (const { e, watermark, checkpoint } of sequence) {
          if (engine.apply(e, watermark).length === 0) accepted.push(e);
          if (checkpoints && checkpoint) {
            engine.finalize(watermark);
            flush(engine, table);
          }
        }
        engine.finalize(finalWatermark);
        flush(engine, table);
        return { accepted: accepted.map((e) => e.event_id), u1: rows(table, "u1"), u2: rows(table, "u2"), u3: rows(table, "u3"), all: accepted };
      };
      const without = runWith(false);
      const withCheckpoints = runWith(true);
      expect({ ...withCheckpoints, all: [] }).toEqual({ ...without, all: [] });
      // The reference: sessions of the accepted events, split where the silence exceeds the gap (as the DuckDB oracle).
      for (const user of ["u1", "u2", "u3"] as const) {
        const times = without.all.filter((e) => e.payload.user_id === user).map((e) => e.event_time).sort((a, b) => a - b);
        const reference: { start: number; end: number; events: number }[] = [];
        for (const t of times) {
          const last = reference[reference.length - 1];
          if (last && t - last.end <= GAP) {
            last.end = t;
            last.events++;
          } else reference.push({ start: t, end: t, events: 1 });
        }
        expect(without[user].map(({ start, end, events }) => ({ start, end, events }))).toEqual(reference);
      }
    }
  });

  test("with session_end closing sessions often (hundreds of final sessions a key), lateness and the stored sessions do not depend on checkpoints or a restart", () => {
    // Final sessions are kept sorted by reach and forgotten only at checkpoints; a restart loads them in any order.
    const random = seeded(4_242);
    for (let round = 0; round < 40; round++) {
      const events: Envelope[] = [];
      for (const user of ["u1", "u2"]) {
        let t = T + Math.floor(random() * 10 * MIN);
        for (let i = 0; i < 300; i++) {
          const r = random();
          events.push(activity(user, t, r < 0.3 ? "session_end" : "page_view"));
          t += Math.floor(random() * (r < 0.6 ? 2 : 40) * MIN) + 1;
        }
      }
      const { sequence, finalWatermark } = arrivals(events, random, 0.2);
      const restartAt = Math.floor(sequence.length / 2);
      const runWith = (mode: "none" | "checkpoints" | "restart") => {
        let engine = sessionsOnly();
        const table = new Map<string, Stored & { key: string; row: WindowRow }>();
        const late: string[] = [];
        sequence.forEach(({ e, watermark, checkpoint }, i) => {
          if (engine.apply(e, watermark).length > 0) late.push(e.event_id);
          if (mode !== "none" && checkpoint) {
            engine.finalize(watermark);
            flush(engine, table);
          }
          if (mode === "restart" && i === restartAt) {
            engine.finalize(watermark);
            flush(engine, table);
            engine = sessionsOnly();
            // Rows come back from the table in no particular order.
            engine.load([...table.values()].map((r) => ({ ...r.row })).sort(() => random() - 0.5));
          }
        });
        engine.finalize(finalWatermark);
        flush(engine, table);
        return { late, u1: rows(table, "u1"), u2: rows(table, "u2") };
      };
      const none = runWith("none");
      expect(runWith("checkpoints")).toEqual(none);
      expect(runWith("restart")).toEqual(none);
      expect(none.u1.length).toBeGreaterThan(50);
      expect(none.late.length).toBeGreaterThan(0);
    }
  });
});

describe("watermarks per event type", () => {
  const marks = (byType: Record<string, number>) => (type: string) => byType[type] ?? Number.NEGATIVE_INFINITY;

  test("an event is judged by the watermark of its own type: a sensor backlog does not make current activity late, nor the reverse", () => {
    const engine = new PartitionWindows(0, all);
    const watermarks = marks({ "sensor.reading": T - 60 * MIN, "user.activity": T });
    expect(engine.apply(reading("s1", T - 50 * MIN, 20), watermarks)).toEqual([]);
    expect(engine.apply(activity("u1", T + 10_000), watermarks)).toEqual([]);
    expect(engine.apply(activity("u2", T - 5 * MIN), watermarks)).toEqual(["page_views_1m", "active_users_5m"]);
    expect(engine.apply(reading("s1", T - 70 * MIN, 20), watermarks)).toEqual(["sensor_stats_1m"]);
  });

  test("windows close by the watermark of the types their view reads", () => {
    const engine = new PartitionWindows(0, all);
    engine.apply(reading("s1", T + 1_000, 20), Number.NEGATIVE_INFINITY);
    engine.apply(activity("u1", T + 1_000), Number.NEGATIVE_INFINITY);
    engine.finalize(marks({ "sensor.reading": T + MIN, "user.activity": T }));
    const upserts = engine.changes().upserts;
    expect(upserts.filter((r) => r.view === "sensor_stats_1m").map((r) => r.final)).toEqual([true]);
    expect(upserts.filter((r) => r.view === "page_views_1m").map((r) => r.final)).toEqual([false]);
  });

  test("a view reading several types closes its windows at the slowest of them", () => {
    const both: View<{ n: number }> = {
      name: "both",
      sources: ["sensor.reading", "user.activity"],
      window: TimeWindows.ofSizeAndGrace(MIN, 0),
      accepts: (e) => e.type === "sensor.reading" || e.type === "user.activity",
      keyOf: () => "all",
      init: () => ({ n: 0 }),
      add: (acc) => ({ n: acc.n + 1 }),
      merge: (a, b) => ({ n: a.n + b.n }),
      metrics: (acc) => ({ n: acc.n }),
    };
    const engine = new PartitionWindows(0, [both as unknown as AnyView]);
    const watermarks = marks({ "sensor.reading": T + 5 * MIN, "user.activity": T });
    // Behind the sensor watermark but in a window the view has not closed: applied.
    expect(engine.apply(reading("s1", T + 30_000, 20), watermarks)).toEqual([]);
    engine.finalize(watermarks);
    expect(engine.changes().upserts.map((r) => [r.start, r.final])).toEqual([[T, false]]);
    engine.finalize(marks({ "sensor.reading": T + 5 * MIN, "user.activity": T + MIN }));
    expect(engine.changes().upserts.map((r) => [r.start, r.final])).toEqual([[T, true]]);
    expect(() => new PartitionWindows(0, [{ ...both, sources: [] } as unknown as AnyView])).toThrow(RangeError);
  });
});
