import type { Alert } from "../alerts.ts";
import type { Sql } from "../db/index.ts";

/** Where a listing stands: the (event_time, seq) of the last alert returned. */
export interface AlertPosition {
  t: number;
  s: number;
}

export interface AlertQuery {
  from?: number;
  to?: number;
  key?: string;
  rule?: string;
  after?: AlertPosition;
  limit: number;
}

type AlertRow = Omit<Alert, "event_time"> & { event_time: Date; seq: number };

/** Alerts in [from, to) by event time, oldest first, after a position; one more than `limit` tells if more remain. */
export async function listAlerts(sql: Sql, query: AlertQuery): Promise<{ items: Alert[]; next?: AlertPosition }> {
  const rows = await sql<AlertRow[]>`
    select seq, alert_id::text, event_id, type, key, event_time, rules, event from alerts
    where true
      ${query.from !== undefined ? sql`and event_time >= ${new Date(query.from)}` : sql``}
      ${query.to !== undefined ? sql`and event_time < ${new Date(query.to)}` : sql``}
      ${query.key !== undefined ? sql`and key = ${query.key}` : sql``}
      ${query.rule !== undefined ? sql`and rules @> array[${query.rule}]::text[]` : sql``}
      ${query.after ? sql`and (event_time, seq) > (${new Date(query.after.t)}, ${query.after.s})` : sql``}
    order by event_time, seq
    limit ${query.limit + 1}`;
  const page = rows.slice(0, query.limit);
  const items = page.map(({ seq: _seq, event_time, ...rest }) => ({ ...rest, event_time: event_time.toISOString() }));
  const last = page[page.length - 1];
  return { items, next: rows.length > query.limit && last ? { t: last.event_time.getTime(), s: last.seq } : undefined };
}
