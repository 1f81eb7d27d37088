import { matchingRules } from "../alert-rules.ts";
import type { Envelope } from "../events/index.ts";
import { SessionWindows, TimeWindows, type WindowSpec } from "./spec.ts";

/**
 * The aggregate views of the contract, one declaration each: which events feed it, its window, its
 * key, and its aggregate as a small accumulator. Accumulators are plain JSON so a window's state can be
 * stored with its row and reloaded by whichever worker owns the partition next; `merge` combines the
 * partial accumulators that different input partitions hold for the same window and key.
 */
export interface View<Acc> {
  name: string;
  /** Event types the view reads (its `accepts` narrows further). */
  sources: readonly string[];
  window: WindowSpec;
  accepts(event: Envelope): boolean;
  keyOf(event: Envelope): string;
  init(): Acc;
  add(acc: Acc, event: Envelope): Acc;
  merge(a: Acc, b: Acc): Acc;
  metrics(acc: Acc, window: { start: number; end: number }): Record<string, number | string | null>;
}

const MIN = 60_000;
export const DEFAULT_LATENESS_MS = 2 * MIN;
/** The job that computes the views; its progress rows tell readers how far the windows are final. */
export const WINDOWS_JOB = "windows";

const num = (value: unknown) => (typeof value === "number" && Number.isFinite(value) ? value : 0);
const max = (a: number | null, b: number | null) => (a === null ? b : b === null ? a : Math.max(a, b));
const min = (a: number | null, b: number | null) => (a === null ? b : b === null ? a : Math.min(a, b));

type AlertAcc = { total_alerts: number; black_cars: number; white_cars: number; silver_cars: number; max_speed: number | null; max_gear: number | null; max_rpm: number | null };
type CountAcc = { n: number };
/** Distinct ids per partition: a user's events all hash to one partition, so partials never overlap. */
type DistinctAcc = { ids: string[] };
type SessionAcc = { first: number; last: number; events: number; closed: boolean };
type FineAcc = { total_fine: number; events: number };
type SensorAcc = { count: number; sum_t: number; min_t: number | null; max_t: number | null; sum_h: number };

const colour = (event: Envelope) => (typeof event.payload.color_name === "string" ? event.payload.color_name.toLowerCase() : "");

export const vehicleAlerts15m: View<AlertAcc> = {
  name: "vehicle_alerts_15m",
  sources: ["vehicle.telemetry"],
  window: TimeWindows.ofSizeAndGrace(15 * MIN, DEFAULT_LATENESS_MS).advanceBy(MIN),
  accepts: (e) => e.type === "vehicle.telemetry" && matchingRules(e.type, e.payload).length > 0,
  keyOf: () => "all",
  init: () => ({ total_alerts: 0, black_cars: 0, white_cars: 0, silver_cars: 0, max_speed: null, max_gear: null, max_rpm: null }),
  add: (acc, e) => ({
    total_alerts: acc.total_alerts + 1,
    black_cars: acc.black_cars + (colour(e) === "black" ? 1 : 0),
    white_cars: acc.white_cars + (colour(e) === "white" ? 1 : 0),
    silver_cars: acc.silver_cars + (colour(e) === "silver" ? 1 : 0),
    max_speed: max(acc.max_speed, num(e.payload.speed)),
    max_gear: max(acc.max_gear, num(e.payload.gear)),
    max_rpm: max(acc.max_rpm, num(e.payload.rpm)),
  }),
  merge: (a, b) => ({
    total_alerts: a.total_alerts + b.total_alerts,
    black_cars: a.black_cars + b.black_cars,
    white_cars: a.white_cars + b.white_cars,
    silver_cars: a.silver_cars + b.silver_cars,
    max_speed: max(a.max_speed, b.max_speed),
    max_gear: max(a.max_gear, b.max_gear),
    max_rpm: max(a.max_rpm, b.max_rpm),
  }),
  metrics: (acc) => ({ ...acc }),
};

export const pageViews1m: View<CountAcc> = {
  name: "page_views_1m",
  sources: ["user.activity"],
  window: TimeWindows.ofSizeAndGrace(MIN, DEFAULT_LATENESS_MS),
  accepts: (e) => e.type === "user.activity" && e.payload.action === "page_view",
  keyOf: (e) => String(e.payload.page),
  init: () => ({ n: 0 }),
  add: (acc) => ({ n: acc.n + 1 }),
  merge: (a, b) => ({ n: a.n + b.n }),
  metrics: (acc) => ({ views: acc.n }),
};

export const activeUsers5m: View<DistinctAcc> = {
  name: "active_users_5m",
  sources: ["user.activity"],
  window: TimeWindows.ofSizeAndGrace(5 * MIN, DEFAULT_LATENESS_MS).advanceBy(MIN),
  accepts: (e) => e.type === "user.activity",
  keyOf: () => "all",
  init: () => ({ ids: [] }),
  add: (acc, e) => {
    const user = String(e.payload.user_id);
    return acc.ids.includes(user) ? acc : { ids: [...acc.ids, user] };
  },
  merge: (a, b) => ({ ids: [...new Set([...a.ids, ...b.ids])] }),
  metrics: (acc) => ({ active_users: acc.ids.length }),
};

export const userSessions: View<SessionAcc> = {
  name: "user_sessions",
  sources: ["user.activity"],
  window: SessionWindows.ofInactivityGapAndGrace(30 * MIN, DEFAULT_LATENESS_MS),
  accepts: (e) => e.type === "user.activity",
  keyOf: (e) => String(e.payload.user_id),
  init: () => ({ first: Number.POSITIVE_INFINITY, last: Number.NEGATIVE_INFINITY, events: 0, closed: false }),
  add: (acc, e) => ({ first: Math.min(acc.first, e.event_time), last: Math.max(acc.last, e.event_time), events: acc.events + 1, closed: acc.closed || e.payload.action === "session_end" }),
  merge: (a, b) => ({ first: Math.min(a.first, b.first), last: Math.max(a.last, b.last), events: a.events + b.events, closed: a.closed || b.closed }),
  metrics: (acc) => ({ session_start: new Date(acc.first).toISOString(), session_end: new Date(acc.last).toISOString(), duration_s: (acc.last - acc.first) / 1000, events: acc.events }),
};

export const finesByUser1d: View<FineAcc> = {
  name: "fines_by_user_1d",
  sources: ["vehicle.location"],
  window: TimeWindows.ofSizeAndGrace(24 * 60 * MIN, DEFAULT_LATENESS_MS),
  accepts: (e) => e.type === "vehicle.location",
  keyOf: (e) => String(e.payload.user_id),
  init: () => ({ total_fine: 0, events: 0 }),
  add: (acc, e) => ({ total_fine: acc.total_fine + num(e.payload.fine_amount), events: acc.events + 1 }),
  merge: (a, b) => ({ total_fine: a.total_fine + b.total_fine, events: a.events + b.events }),
  metrics: (acc) => ({ total_fine: Math.round(acc.total_fine * 100) / 100, events: acc.events }),
};

export const sensorStats1m: View<SensorAcc> = {
  name: "sensor_stats_1m",
  sources: ["sensor.reading"],
  window: TimeWindows.ofSizeAndGrace(MIN, DEFAULT_LATENESS_MS),
  accepts: (e) => e.type === "sensor.reading",
  keyOf: (e) => String(e.payload.sensor_id),
  init: () => ({ count: 0, sum_t: 0, min_t: null, max_t: null, sum_h: 0 }),
  add: (acc, e) => ({ count: acc.count + 1, sum_t: acc.sum_t + num(e.payload.temperature), min_t: min(acc.min_t, num(e.payload.temperature)), max_t: max(acc.max_t, num(e.payload.temperature)), sum_h: acc.sum_h + num(e.payload.humidity) }),
  merge: (a, b) => ({ count: a.count + b.count, sum_t: a.sum_t + b.sum_t, min_t: min(a.min_t, b.min_t), max_t: max(a.max_t, b.max_t), sum_h: a.sum_h + b.sum_h }),
  metrics: (acc) => ({
    count: acc.count,
    avg_temperature: acc.count ? Math.round((acc.sum_t / acc.count) * 1000) / 1000 : null,
    min_temperature: acc.min_t,
    max_temperature: acc.max_t,
    avg_humidity: acc.count ? Math.round((acc.sum_h / acc.count) * 1000) / 1000 : null,
  }),
};

/** A view with its accumulator type hidden, as the registry holds it. */
export type AnyView = View<unknown>;

/**
 * Accumulators only ever flow between one view's own functions (init → add → merge → metrics), so
 * hiding their type is sound; this is the one place that says so to the compiler.
 */
const erase = <Acc>(view: View<Acc>): AnyView => view as unknown as AnyView;

/** Every view, by name. A view is added here and nowhere else. */
export const views: ReadonlyMap<string, AnyView> = new Map(
  [erase(vehicleAlerts15m), erase(pageViews1m), erase(activeUsers5m), erase(userSessions), erase(finesByUser1d), erase(sensorStats1m)].map((v) => [v.name, v]),
);

/**
 * How long after its event time a repeat of an event of `type` could still change an open window of
 * some view: the longest window (or session gap) among the views reading the type, plus its grace.
 * Undefined for types no view reads: their repeats matter to no aggregate.
 */
export function dedupeHorizonMs(type: string): number | undefined {
  const spans = [...views.values()].filter((v) => v.sources.includes(type)).map((v) => (v.window.kind === "time" ? v.window.sizeMs : v.window.gapMs) + v.window.graceMs);
  return spans.length > 0 ? Math.max(...spans) : undefined;
}
