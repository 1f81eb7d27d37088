import { describe, expect, test } from "bun:test";
import { SessionWindows, TimeWindows, windowsFor } from "../../lib/windows/spec.ts";
import { WatermarkTracker } from "../../workers/windows/watermark.ts";

const MIN = 60_000;
/** One event type throughout: these are the per-partition rules, which hold per (partition, type). */
const TYPE = "sensor.reading";
const at = (iso: string) => Date.parse(iso);

describe("window specs", () => {
  test("are immutable and require their grace and sizes at construction", () => {
    const spec = TimeWindows.ofSizeAndGrace(MIN, 2 * MIN);
    expect(Object.isFrozen(spec)).toBe(true);
    expect(() => TimeWindows.ofSizeAndGrace(0, 0)).toThrow(RangeError);
    expect(() => TimeWindows.ofSizeAndGrace(MIN, -1)).toThrow(RangeError);
    expect(() => TimeWindows.ofSizeAndGrace(MIN, 0).advanceBy(2 * MIN)).toThrow(RangeError);
    expect(() => SessionWindows.ofInactivityGapAndGrace(30 * MIN, Number.NaN)).toThrow(RangeError);
    expect(SessionWindows.ofInactivityGapAndGrace(30 * MIN, 2 * MIN)).toEqual({ kind: "session", gapMs: 30 * MIN, graceMs: 2 * MIN });
  });

  test("tumbling windows align to the epoch: one window per timestamp, half-open", () => {
    const oneMinute = TimeWindows.ofSizeAndGrace(MIN, 2 * MIN);
    expect(windowsFor(oneMinute, at("2026-11-21T10:15:30.250Z"))).toEqual([{ start: at("2026-11-21T10:15:00Z"), end: at("2026-11-21T10:16:00Z") }]);
    expect(windowsFor(oneMinute, at("2026-11-21T10:16:00Z"))[0]?.start).toBe(at("2026-11-21T10:16:00Z"));
    const oneDay = TimeWindows.ofSizeAndGrace(24 * 60 * MIN, 2 * MIN);
    expect(windowsFor(oneDay, at("2026-11-21T23:59:59.999Z"))).toEqual([{ start: at("2026-11-21T00:00:00Z"), end: at("2026-11-22T00:00:00Z") }]);
  });

  test("hopping windows: a 15-minute window every minute puts each timestamp in 15 windows", () => {
    const spec = TimeWindows.ofSizeAndGrace(15 * MIN, 2 * MIN).advanceBy(MIN);
    const windows = windowsFor(spec, at("2026-11-21T10:15:30Z"));
    expect(windows).toHaveLength(15);
    expect(windows[0]).toEqual({ start: at("2026-11-21T10:01:00Z"), end: at("2026-11-21T10:16:00Z") });
    expect(windows[14]).toEqual({ start: at("2026-11-21T10:15:00Z"), end: at("2026-11-21T10:30:00Z") });
    expect(windowsFor(spec, at("2026-11-21T10:15:00Z"))[0]?.start).toBe(at("2026-11-21T10:01:00Z"));
  });
});

describe("watermark", () => {
  const tracker = (clock: { t: number }) => new WatermarkTracker({ latenessMs: 2 * MIN, idleTimeoutMs: 30_000, now: () => clock.t });

  test("is the minimum over partitions of max event time minus the lateness, and never moves back", () => {
    const clock = { t: 0 };
    const w = tracker(clock);
    w.assign([0, 1]);
    w.observe(0, TYPE, 10 * MIN);
    expect(w.watermark()).toBe(Number.NEGATIVE_INFINITY); // partition 1 has no data yet and is not idle
    w.observe(1, TYPE, 5 * MIN);
    expect(w.watermark()).toBe(3 * MIN);
    w.observe(1, TYPE, 4 * MIN); // out of order: no effect
    expect(w.watermark()).toBe(3 * MIN);
    w.observe(1, TYPE, 12 * MIN);
    expect(w.watermark()).toBe(8 * MIN);
  });

  test("a partition idle for the timeout stops holding the watermark back", () => {
    const clock = { t: 0 };
    const w = tracker(clock);
    w.assign([0, 1]);
    w.observe(0, TYPE, 10 * MIN);
    w.observe(1, TYPE, 1 * MIN);
    clock.t = 20_000;
    w.observe(0, TYPE, 11 * MIN);
    expect(w.watermark()).toBe(-1 * MIN);
    clock.t = 31_000; // partition 1 silent for 31 s
    expect(w.watermark()).toBe(9 * MIN);
  });

  test("with every partition idle, event time moves on with the wall clock from the last record, so the last windows close", () => {
    const clock = { t: at("2026-11-21T10:00:00Z") };
    const w = tracker(clock);
    w.assign([0, 1]);
    w.observe(0, TYPE, at("2026-11-21T09:59:59Z"));
    clock.t = at("2026-11-21T10:05:00Z");
    expect(w.watermark()).toBe(at("2026-11-21T10:02:59Z"));
  });

  test("replayed history is not made late by idleness: the watermark follows the data, not now", () => {
    const clock = { t: at("2026-11-21T10:00:00Z") };
    const w = tracker(clock);
    w.assign([0, 1]);
    clock.t += 60_000; // idle before any data: nothing moves
    expect(w.watermark()).toBe(Number.NEGATIVE_INFINITY);
    w.observe(0, TYPE, at("2026-11-20T08:00:00Z")); // a day-old backlog starts arriving
    clock.t += 40_000;
    expect(w.watermark()).toBe(at("2026-11-20T07:58:40Z"));
  });

  test("a restored watermark is a floor after a restart", () => {
    const clock = { t: 0 };
    const w = tracker(clock);
    w.restore(0, 50 * MIN);
    w.assign([0]);
    w.observe(0, TYPE, 10 * MIN);
    expect(w.watermark()).toBe(50 * MIN);
  });
});

test("a partition taken over with a backlog is not idle until it has caught up", () => {
  const clock = { t: 0 };
  const w = new WatermarkTracker({ latenessMs: 2 * MIN, idleTimeoutMs: 1_000, now: () => clock.t });
  w.assign([0, 1]);
  w.hold(1, "backlog");
  w.observe(0, TYPE, 30 * MIN);
  clock.t = 5_000; // partition 1 has delivered nothing for 5 s, but it is catching up
  expect(w.watermarkOf(1, TYPE)).toBe(Number.NEGATIVE_INFINITY);
  w.observe(1, TYPE, 10 * MIN);
  expect(w.watermarkOf(1, TYPE)).toBe(8 * MIN);
  w.release(1, "backlog");
  clock.t = 6_500;
  w.observe(0, TYPE, 30 * MIN);
  clock.t = 7_000; // partition 1 caught up and silent since: idle, it follows the active partition 0
  expect(w.watermarkOf(1, TYPE)).toBe(28 * MIN);
});
