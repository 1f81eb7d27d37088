import type { Sql } from "../db/index.ts";
import type { AnyView } from "../windows/views.ts";

export interface AggregatePosition {
  /** window_start, ms */
  w: number;
  k: string;
}

export interface AggregateQuery {
  from?: number;
  to?: number;
  key?: string;
  after?: AggregatePosition;
  limit: number;
}

export type AggregateItem = { view: string; key: string; window_start: string; window_end: string; final: boolean } & Record<string, unknown>;

type PartialRow = { key: string; window_start: Date; window_end: Date; final: boolean; state: unknown };

/**
 * Windows of a view with window_start in [from, to), ordered by (window_start, key). Each window is the
 * merge of its partial rows (one per input partition that saw events for it). A time window is final
 * once every partial is final and the slowest partition's watermark has passed its end.
 */
export async function listAggregates(sql: Sql, view: AnyView, job: string, query: AggregateQuery): Promise<{ items: AggregateItem[]; next?: AggregatePosition }> {
  const rows = await sql<PartialRow[]>`
    with page as (
      select window_start, key from aggregates
      where view = ${view.name}
        ${query.from !== undefined ? sql`and window_start >= ${new Date(query.from)}` : sql``}
        ${query.to !== undefined ? sql`and window_start < ${new Date(query.to)}` : sql``}
        ${query.key !== undefined ? sql`and key = ${query.key}` : sql``}
        ${query.after ? sql`and (window_start, key) > (${new Date(query.after.w)}, ${query.after.k})` : sql``}
      group by window_start, key
      order by window_start, key
      limit ${query.limit + 1}
    )
    select a.key, a.window_start, a.window_end, a.final, a.state from aggregates a join page using (window_start, key)
    where a.view = ${view.name}
    order by a.window_start, a.key`;
  const [progress] = await sql<{ watermark: number | null }[]>`select min(watermark) as watermark from window_progress where job = ${job}`;
  const slowest = progress?.watermark ?? Number.NEGATIVE_INFINITY;

  const windows: { key: string; start: Date; end: number; final: boolean; acc: unknown }[] = [];
  for (const row of rows) {
    const last = windows[windows.length - 1];
    if (last && last.key === row.key && last.start.getTime() === row.window_start.getTime()) {
      last.acc = view.merge(last.acc, row.state);
      last.end = Math.max(last.end, row.window_end.getTime());
      last.final = last.final && row.final;
    } else {
      windows.push({ key: row.key, start: row.window_start, end: row.window_end.getTime(), final: row.final, acc: row.state });
    }
  }
  const page = windows.slice(0, query.limit);
  const items = page.map((w) => ({
    view: view.name,
    key: w.key,
    window_start: w.start.toISOString(),
    window_end: new Date(w.end).toISOString(),
    final: w.final && (view.window.kind === "session" || slowest >= w.end),
    ...view.metrics(w.acc, { start: w.start.getTime(), end: w.end }),
  }));
  const last = page[page.length - 1];
  return { items, next: windows.length > query.limit && last ? { w: last.start.getTime(), k: last.key } : undefined };
}
