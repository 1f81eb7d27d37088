import { describe, expect, test } from "bun:test";
import { WatermarkTracker } from "../../workers/windows/watermark.ts";

/** Watermarks per (partition, event type): the rules of workers/windows/watermark.ts across types. */
const MIN = 60_000;
const SENSOR = "sensor.reading";
const USER = "user.activity";
const LOCATION = "vehicle.location";
const NEG = Number.NEGATIVE_INFINITY;

const tracker = (clock: { t: number }, idleTimeoutMs = 30_000) => new WatermarkTracker({ latenessMs: 2 * MIN, idleTimeoutMs, now: () => clock.t });

describe("watermarks per event type", () => {
  test("a burst of one type's history holds back that type only: the other type's current events are judged by their own progress", () => {
    const clock = { t: 0 };
    const w = tracker(clock);
    w.assign([0]);
    w.observe(0, SENSOR, 39 * MIN);
    w.observe(0, USER, 100 * MIN);
    // The sensor fleet of this partition goes on uploading its history, an hour behind the users.
    w.observe(0, SENSOR, 40 * MIN);
    w.observe(0, USER, 101 * MIN);
    expect(w.watermarkOf(0, USER)).toBe(99 * MIN);
    expect(w.watermarkOf(0, SENSOR)).toBe(38 * MIN);
    // Readers' value: the slowest type of the partition.
    expect(w.partitionWatermark(0)).toBe(38 * MIN);
    expect(w.watermark()).toBe(38 * MIN);
  });

  test("a type never seen in a partition holds nothing back and stands at the partition's watermark; its stream starts there", () => {
    const clock = { t: 0 };
    const w = tracker(clock);
    w.assign([0]);
    w.observe(0, USER, 10 * MIN);
    expect(w.partitionWatermark(0)).toBe(8 * MIN);
    expect(w.watermarkOf(0, SENSOR)).toBe(8 * MIN);
    // Its first events, behind the partition's watermark, are judged against it (a reader may have seen those windows final).
    w.observe(0, SENSOR, MIN);
    expect(w.watermarkOf(0, SENSOR)).toBe(8 * MIN);
    expect(w.partitionWatermark(0)).toBe(8 * MIN);
    w.observe(0, SENSOR, 30 * MIN);
    expect(w.watermarkOf(0, SENSOR)).toBe(28 * MIN);
    // Now it is part of the partition's minimum.
    w.observe(0, USER, 50 * MIN);
    expect(w.partitionWatermark(0)).toBe(28 * MIN);
  });

  test("a partition where no type has appeared holds the job back until it is idle, then follows the active streams", () => {
    const clock = { t: 0 };
    const w = tracker(clock);
    w.assign([0, 1]);
    w.observe(0, USER, 10 * MIN);
    expect(w.partitionWatermark(1)).toBe(NEG);
    expect(w.watermark()).toBe(NEG);
    clock.t = 30_000;
    w.observe(0, USER, 10 * MIN);
    expect(w.partitionWatermark(1)).toBe(8 * MIN);
    expect(w.watermarkOf(1, SENSOR)).toBe(8 * MIN);
  });

  test("an idle stream follows the slowest active stream of its own type, else the slowest active stream of any type", () => {
    const clock = { t: 0 };
    const w = tracker(clock);
    w.assign([0, 1]);
    w.observe(0, SENSOR, 10 * MIN); // a sensor backlog, active, far behind
    w.observe(1, LOCATION, 5 * MIN);
    w.observe(0, USER, 50 * MIN);
    w.observe(1, USER, 20 * MIN);
    clock.t = 20_000;
    w.observe(0, USER, 52 * MIN);
    w.observe(0, SENSOR, 11 * MIN);
    clock.t = 31_000; // user activity in partition 1 silent for 31 s: it follows partition 0's user activity, not the sensors
    expect(w.watermarkOf(1, USER)).toBe(50 * MIN);
    // A location stream idle where no location stream is active follows the slowest active stream of any type.
    clock.t = 62_000;
    w.observe(0, SENSOR, 12 * MIN);
    expect(w.watermarkOf(1, LOCATION)).toBe(10 * MIN);
    // Partition 1's value for readers is its slowest type.
    expect(w.partitionWatermark(1)).toBe(10 * MIN);
  });

  test("with every stream idle, event time moves on with the wall clock from the last record of any type", () => {
    const clock = { t: 0 };
    const w = tracker(clock, 1_000);
    w.assign([0, 1]);
    w.observe(0, SENSOR, 100 * MIN);
    w.observe(1, USER, 20 * MIN);
    clock.t = 60_000;
    expect(w.watermarkOf(1, USER)).toBe(99 * MIN);
    expect(w.watermarkOf(0, SENSOR)).toBe(99 * MIN);
    expect(w.watermark()).toBe(99 * MIN);
  });

  test("a held partition keeps every type in it from going idle", () => {
    const clock = { t: 0 };
    const w = tracker(clock, 1_000);
    w.assign([0, 1]);
    w.observe(0, USER, 30 * MIN);
    w.observe(1, USER, 5 * MIN);
    w.observe(1, SENSOR, 6 * MIN);
    w.hold(1, "unread");
    clock.t = 5_000;
    w.observe(0, USER, 30 * MIN);
    expect(w.watermarkOf(1, USER)).toBe(3 * MIN);
    expect(w.watermarkOf(1, SENSOR)).toBe(4 * MIN);
    w.release(1, "unread");
    clock.t = 5_500; // idleness counts from the release
    w.observe(0, USER, 30 * MIN);
    expect(w.watermarkOf(1, USER)).toBe(3 * MIN);
    clock.t = 6_000;
    w.observe(0, USER, 30 * MIN);
    expect(w.watermarkOf(1, USER)).toBe(28 * MIN);
    expect(w.watermarkOf(1, SENSOR)).toBe(28 * MIN);
  });

  test("time held does not count as silence, nor does it wipe the silence before: brief holds do not keep a quiet type from going idle", () => {
    const clock = { t: 0 };
    const w = tracker(clock, 10_000);
    w.assign([0, 1]);
    w.observe(0, USER, 30 * MIN);
    w.observe(1, LOCATION, 5 * MIN);
    // Partition 1 is busy with sensors; every second its input check holds it for a few milliseconds.
    for (let second = 1; second <= 12; second++) {
      clock.t = second * 1_000;
      w.hold(1, "unread");
      w.observe(1, SENSOR, 30 * MIN + second * 1_000);
      w.observe(0, USER, 30 * MIN + second * 1_000);
      clock.t += 5;
      w.release(1, "unread");
    }
    // Locations silent for 12 s, 60 ms of it held: idle (10 s), following the slowest active location stream, else any.
    expect(w.watermarkOf(1, LOCATION)).toBe(28 * MIN + 12_000);
    // A long hold (a backlog) does not count: 9 s of silence before it, 1 s after it.
    w.observe(0, LOCATION, 40 * MIN);
    clock.t = 20_000;
    w.observe(1, USER, 40 * MIN);
    clock.t = 29_000;
    w.hold(1, "unread");
    clock.t = 60_000;
    w.release(1, "unread");
    clock.t = 60_500;
    w.observe(0, USER, 40 * MIN);
    w.observe(0, LOCATION, 40 * MIN);
    expect(w.watermarkOf(1, USER)).toBe(38 * MIN);
    clock.t = 61_000;
    w.observe(0, USER, 41 * MIN);
    expect(w.watermarkOf(1, USER)).toBe(39 * MIN);
  });

  test("restored per-type watermarks are floors, never below the partition's; a type without one starts at the partition's", () => {
    const clock = { t: 0 };
    const w = tracker(clock);
    w.restore(0, 20 * MIN, { [USER]: 50 * MIN, [SENSOR]: 20 * MIN, [LOCATION]: 5 * MIN });
    w.assign([0]);
    w.observe(0, USER, 10 * MIN);
    w.observe(0, SENSOR, 10 * MIN);
    expect(w.watermarkOf(0, USER)).toBe(50 * MIN);
    expect(w.watermarkOf(0, SENSOR)).toBe(20 * MIN);
    expect(w.watermarkOf(0, LOCATION)).toBe(20 * MIN);
    expect(w.watermarkOf(0, "gps.fix")).toBe(20 * MIN);
    expect(w.partitionWatermark(0)).toBe(20 * MIN);
    // Saved before watermarks were per type: every type starts from the partition's.
    const old = tracker(clock);
    old.restore(3, 42 * MIN);
    old.assign([3]);
    old.observe(3, SENSOR, MIN);
    expect(old.watermarkOf(3, SENSOR)).toBe(42 * MIN);
    expect(old.watermarkOf(3, USER)).toBe(42 * MIN);
  });

  test("a snapshot is consistent: every type at least the partition's watermark, which is their minimum", () => {
    const clock = { t: 0 };
    const w = tracker(clock);
    w.assign([0]);
    w.observe(0, SENSOR, 30 * MIN);
    w.observe(0, USER, 40 * MIN);
    const snapshot = w.snapshot(0);
    expect(snapshot.watermark).toBe(28 * MIN);
    expect(Object.fromEntries(snapshot.types)).toEqual({ [USER]: 38 * MIN, [SENSOR]: 28 * MIN });
  });

  test("watermarks never move back", () => {
    const clock = { t: 0 };
    const w = tracker(clock, 1_000);
    w.assign([0, 1]);
    w.observe(0, USER, 100 * MIN);
    w.observe(1, USER, 10 * MIN);
    clock.t = 2_000; // both idle: wall-clock rule from partition 0
    expect(w.watermarkOf(1, USER)).toBe(98 * MIN + 2_000);
    w.observe(1, USER, 11 * MIN); // active again, far behind
    expect(w.watermarkOf(1, USER)).toBe(98 * MIN + 2_000);
    expect(w.partitionWatermark(1)).toBe(98 * MIN + 2_000);
  });
});
