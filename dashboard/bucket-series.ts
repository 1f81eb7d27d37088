/**
 * Sums per time bucket (e.g. alerts per minute, page views per minute) over the selected range, read from a
 * paged API list. The range is read once (`backfill`, a few pages per refresh); after that each refresh
 * re-reads only a recent span (whose buckets can still change: late alerts, windows not yet final) and
 * replaces those buckets, so a 24 h range costs one big read, not one every 2 s.
 */
export interface Page<T> {
  items: T[];
  next_cursor: string | null;
}

/** Reads items whose time is in [from, to) (`to` open-ended when undefined), oldest first, one page at a time. */
export type PageLoader<T> = (from: number, to: number | undefined, cursor: string | undefined) => Promise<Page<T>>;

export interface BucketSeriesOptions<T> {
  bucketMs: number;
  /** The longest range asked for: older buckets are dropped. */
  keepMs: number;
  /** How far back each refresh re-reads. */
  recentMs: number;
  /** Where an item lands and what it adds: its time (ms; floored to its bucket) and value. */
  point(item: T): { t: number; value: number };
  load: PageLoader<T>;
  /** Sees every item read (the alert feed takes the newest from them). */
  observe?(items: T[]): void;
  /** Pages one refresh reads at most (recent span and backfill together); the backfill resumes at the next. */
  maxPages?: number;
}

/** A recent span this far behind means refreshes stopped (a sleeping tab): start over rather than page through it. */
const STALE_MS = 30 * 60_000;

export class BucketSeries<T> {
  private sums = new Map<number, number>();
  /** Buckets from here on are (being) read. */
  private coveredFrom = Number.POSITIVE_INFINITY;
  private backfill: { to: number; cursor: string | undefined } | undefined;
  private recentFrom: number | undefined;
  constructor(private readonly options: BucketSeriesOptions<T>) {}

  private floor(t: number) {
    return Math.floor(t / this.options.bucketMs) * this.options.bucketMs;
  }

  /** Reads what `[rangeStart, now]` needs: the backfill (when the range grew) and the recent span. */
  async refresh(rangeStart: number, now: number): Promise<void> {
    const start = this.floor(rangeStart);
    if (start < this.coveredFrom || this.recentFrom === undefined || this.recentFrom < now - STALE_MS) this.reset(start, now);
    let budget = this.options.maxPages ?? 20;
    budget -= await this.readRecent(now, budget);
    if (this.backfill) await this.readBackfill(budget);
    // Bounded memory: nothing older than the longest range is kept (nor counted as read).
    const keepFrom = this.floor(now - this.options.keepMs);
    if (keepFrom > this.coveredFrom && !this.backfill) {
      for (const t of this.sums.keys()) if (t < keepFrom) this.sums.delete(t);
      this.coveredFrom = keepFrom;
    }
  }

  /** Adds an item seen elsewhere (the live stream) at once; the next refresh re-reads its bucket anyway. */
  add(item: T) {
    const { t, value } = this.options.point(item);
    const bucket = this.floor(t);
    if (this.recentFrom === undefined || bucket < this.recentFrom) return;
    this.sums.set(bucket, (this.sums.get(bucket) ?? 0) + value);
  }

  /**
   * Buckets in `[from, to]` as columns (bucket starts in ms, sums). Buckets already read and empty are 0; those
   * the backfill has not reached yet are left out.
   */
  columns(from: number, to: number): { t: number[]; values: number[] } {
    const t: number[] = [];
    const values: number[] = [];
    const zeroFrom = this.backfill ? (this.recentFrom ?? to) : this.coveredFrom;
    for (let bucket = this.floor(from); bucket <= to; bucket += this.options.bucketMs) {
      const sum = this.sums.get(bucket);
      if (sum === undefined && bucket < zeroFrom) continue;
      t.push(bucket);
      values.push(sum ?? 0);
    }
    return { t, values };
  }

  private reset(start: number, now: number) {
    this.sums.clear();
    this.coveredFrom = start;
    this.recentFrom = Math.max(start, this.floor(now - this.options.recentMs));
    this.backfill = start < this.recentFrom ? { to: this.recentFrom, cursor: undefined } : undefined;
  }

  /** Re-reads [recentFrom, now) and replaces those buckets; returns the pages it took. */
  private async readRecent(now: number, budget: number): Promise<number> {
    const from = this.recentFrom ?? this.floor(now - this.options.recentMs);
    const fresh = new Map<number, number>();
    let cursor: string | undefined;
    let pages = 0;
    do {
      const page = await this.options.load(from, undefined, cursor);
      pages++;
      this.accumulate(fresh, page.items);
      cursor = page.next_cursor ?? undefined;
    } while (cursor && pages < budget);
    // Cut short, the span is re-read from the same point next time; its buckets stay as they were.
    if (cursor) return pages;
    for (const t of [...this.sums.keys()]) if (t >= from) this.sums.delete(t);
    for (const [t, sum] of fresh) this.sums.set(t, sum);
    this.recentFrom = Math.max(from, this.floor(now - this.options.recentMs));
    return pages;
  }

  private async readBackfill(budget: number) {
    for (let pages = 0; this.backfill && pages < budget; pages++) {
      const page = await this.options.load(this.coveredFrom, this.backfill.to, this.backfill.cursor);
      this.accumulate(this.sums, page.items);
      this.backfill = page.next_cursor ? { ...this.backfill, cursor: page.next_cursor } : undefined;
    }
  }

  private accumulate(into: Map<number, number>, items: T[]) {
    for (const item of items) {
      const { t, value } = this.options.point(item);
      const bucket = this.floor(t);
      into.set(bucket, (into.get(bucket) ?? 0) + value);
    }
    this.options.observe?.(items);
  }
}
