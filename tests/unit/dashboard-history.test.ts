import { expect, test } from "bun:test";
import { BucketSeries, type Page } from "../../dashboard/bucket-series.ts";
import { ScrapeHistory } from "../../dashboard/scrape-history.ts";
import { rangeById, RANGES, xWindow } from "../../dashboard/time-range.ts";

const MINUTE = 60_000;
const DAY = 24 * 60 * MINUTE;

test("the time range is the stored one or 5 min, and the x window is exactly [now - range, now] in seconds", () => {
  expect(rangeById(null).id).toBe("5m");
  expect(rangeById("nonsense").id).toBe("5m");
  expect(rangeById("24h").ms).toBe(DAY);
  const now = 1_800_000_000_000;
  for (const range of RANGES) expect(xWindow(range, now)).toEqual([(now - range.ms) / 1000, now / 1000]);
});

test("the scrape history keeps fine points for the recent span and folds older ones into buckets (mean or max), bounded over 24 h", () => {
  const history = new ScrapeHistory({ reduce: "mean", fineMs: 10 * MINUTE, bucketMs: MINUTE, keepMs: DAY });
  const start = 1_800_000_000_000;
  for (let t = start; t <= start + 2 * DAY; t += 2_000) history.add(t, [1, (t / 2_000) % 2]);
  // 10 min at 2 s, plus one bucket per minute over the day before.
  expect(history.size).toBeLessThanOrEqual(301 + 24 * 60 + 1);
  const now = start + 2 * DAY;
  const all = history.since(now - DAY, 2);
  expect(all.t.length).toBeGreaterThan(1_400);
  expect(all.t).toEqual([...all.t].sort((a, b) => a - b));
  expect(all.series[0]?.every((v) => v === 1)).toBe(true);
  // The coarse points average the alternating 0/1 series.
  expect(all.series[1]?.[0]).toBeCloseTo(0.5, 1);
  const recent = history.since(now - 5 * MINUTE, 2);
  expect(recent.t.length).toBe(151);

  const worst = new ScrapeHistory({ reduce: "max", fineMs: MINUTE, bucketMs: MINUTE, keepMs: DAY });
  worst.add(0, [5]);
  worst.add(1_000, [50]);
  worst.add(2_000, [7, 3]);
  worst.add(10 * MINUTE, [1]);
  const points = worst.since(0, 2);
  expect(points.t).toEqual([0, 10 * MINUTE]);
  expect(points.series).toEqual([
    [50, 1],
    [3, null],
  ]);
});

interface Item {
  t: number;
}
/** A paged list over `items` like the API's: [from, to), oldest first, `limit` per page. */
function fakeApi(items: Item[], limit: number) {
  const calls: { from: number; to: number | undefined }[] = [];
  const load = async (from: number, to: number | undefined, cursor: string | undefined): Promise<Page<Item>> => {
    calls.push({ from, to });
    const matching = items.filter((i) => i.t >= from && (to === undefined || i.t < to)).sort((a, b) => a.t - b.t);
    const offset = cursor ? Number(cursor) : 0;
    const page = matching.slice(offset, offset + limit);
    return { items: page, next_cursor: offset + limit < matching.length ? String(offset + limit) : null };
  };
  return { load, calls };
}

test("bucket series: one backfill of the range, then only the recent span is re-read; empty minutes are 0", async () => {
  const now = 1_800_000_000_000 - (1_800_000_000_000 % MINUTE) + 30_000;
  const items: Item[] = [];
  for (let m = 1; m <= 60; m += 1) if (m % 2 === 0) for (let k = 0; k < 3; k++) items.push({ t: now - m * MINUTE + k });
  const api = fakeApi(items, 7);
  const series = new BucketSeries<Item>({ bucketMs: MINUTE, keepMs: DAY, recentMs: 3 * MINUTE, point: (i) => ({ t: i.t, value: 1 }), load: api.load });
  await series.refresh(now - 60 * MINUTE, now);
  const first = series.columns(now - 60 * MINUTE, now);
  expect(first.values.reduce((a, b) => a + b, 0)).toBe(items.length);
  expect(first.values.filter((v) => v === 0).length).toBeGreaterThan(25);
  expect(first.t.length).toBe(61);

  // A new item in the current minute and the next refresh reads only the recent span.
  items.push({ t: now + 1_000 });
  api.calls.length = 0;
  await series.refresh(now + 2_000 - 60 * MINUTE, now + 2_000);
  expect(api.calls.every((c) => c.from >= now - 4 * MINUTE && c.to === undefined)).toBe(true);
  const second = series.columns(now + 2_000 - 60 * MINUTE, now + 2_000);
  expect(second.values.reduce((a, b) => a + b, 0)).toBe(items.length);

  // A live item counts at once and is not counted twice after the next read.
  items.push({ t: now + 3_000 });
  series.add({ t: now + 3_000 });
  expect(series.columns(now + 4_000 - 60 * MINUTE, now + 4_000).values.reduce((a, b) => a + b, 0)).toBe(items.length);
  await series.refresh(now + 4_000 - 60 * MINUTE, now + 4_000);
  expect(series.columns(now + 4_000 - 60 * MINUTE, now + 4_000).values.reduce((a, b) => a + b, 0)).toBe(items.length);

  // A longer range reads what it lacks.
  await series.refresh(now - DAY, now + 5_000);
  expect(series.columns(now - DAY, now + 5_000).values.reduce((a, b) => a + b, 0)).toBe(items.length);
});
