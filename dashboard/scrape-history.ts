/**
 * A bounded history of values sampled from /metrics every few seconds (the gateway keeps no history of
 * its own): the last `fineMs` at full resolution, older samples folded into `bucketMs` buckets (their mean
 * or their max), nothing older than `keepMs`. With 2 s scrapes, 10 min fine and 1 min buckets over 24 h
 * that is at most ~300 + 1,440 points per series.
 */
export type Reducer = "mean" | "max";

interface Point {
  t: number;
  values: (number | null)[];
}
interface Bucket {
  t: number;
  acc: (number | null)[];
  n: number[];
}

export interface HistoryOptions {
  reduce: Reducer;
  fineMs: number;
  bucketMs: number;
  keepMs: number;
}

export class ScrapeHistory {
  private fine: Point[] = [];
  private coarse: Bucket[] = [];
  constructor(private readonly options: HistoryOptions) {}

  /** One sample: `values[i]` is series i's value at time `t` (ms), null when it had none. */
  add(t: number, values: (number | null)[]) {
    const last = this.fine[this.fine.length - 1];
    if (last && t <= last.t) return;
    this.fine.push({ t, values });
    const { fineMs, bucketMs, keepMs } = this.options;
    while (this.fine.length > 0 && (this.fine[0]?.t ?? t) < t - fineMs) {
      const old = this.fine.shift();
      if (old) this.fold(old, Math.floor(old.t / bucketMs) * bucketMs);
    }
    while (this.coarse.length > 0 && (this.coarse[0]?.t ?? t) < t - keepMs) this.coarse.shift();
  }

  /** Points at or after `from` (ms), oldest first, as columns: times in ms and `width` series. */
  since(from: number, width: number): { t: number[]; series: (number | null)[][] } {
    const t: number[] = [];
    const series: (number | null)[][] = Array.from({ length: width }, () => []);
    const push = (time: number, value: (i: number) => number | null) => {
      if (time < from) return;
      t.push(time);
      series.forEach((column, i) => column.push(value(i)));
    };
    for (const b of this.coarse) push(b.t, (i) => this.value(b, i));
    for (const p of this.fine) push(p.t, (i) => p.values[i] ?? null);
    return { t, series };
  }

  /** Points held (fine and coarse), for the memory bound. */
  get size() {
    return this.fine.length + this.coarse.length;
  }

  private fold(point: Point, bucketStart: number) {
    const last = this.coarse[this.coarse.length - 1];
    const bucket = last && last.t === bucketStart ? last : { t: bucketStart, acc: [], n: [] };
    if (bucket !== last) this.coarse.push(bucket);
    point.values.forEach((value, i) => {
      if (value === null) return;
      const acc = bucket.acc[i] ?? null;
      bucket.acc[i] = acc === null ? value : this.options.reduce === "max" ? Math.max(acc, value) : acc + value;
      bucket.n[i] = (bucket.n[i] ?? 0) + 1;
    });
  }

  private value(bucket: Bucket, i: number): number | null {
    const acc = bucket.acc[i] ?? null;
    if (acc === null) return null;
    return this.options.reduce === "max" ? acc : acc / (bucket.n[i] ?? 1);
  }
}
