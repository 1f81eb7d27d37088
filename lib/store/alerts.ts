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

/** An alert with its commit-ordered sequence number (the stream's cursor). */
export interface SequencedAlert {
  seq: number;
  alert: Alert;
}

/** What `alertsAfter` reads: commit order from a position, optionally bounded and narrowed. */
export interface AlertsAfterQuery {
  afterSeq: number;
  /** Stop at this sequence number (inclusive). */
  throughSeq?: number;
  key?: string;
  rule?: string;
  /**
   * Only alerts with event_time ≥ `ms` among those up to `throughSeq`; later ones pass whatever their
   * event time (a stream replaying from a time applies the time only to what existed when it started).
   */
  since?: { ms: number; throughSeq: number };
  limit: number;
}

/** Alerts committed after `afterSeq`, in commit order, optionally bounded and narrowed by key, rule and event time. */
export async function alertsAfter(sql: Sql, query: AlertsAfterQuery): Promise<SequencedAlert[]> {
  const rows = await sql<AlertRow[]>`
    select seq, alert_id::text, event_id, type, key, event_time, rules, event from alerts
    where seq > ${query.afterSeq}
      ${query.throughSeq !== undefined ? sql`and seq <= ${query.throughSeq}` : sql``}
      ${query.key !== undefined ? sql`and key = ${query.key}` : sql``}
      ${query.rule !== undefined ? sql`and rules @> array[${query.rule}]::text[]` : sql``}
      ${query.since !== undefined ? sql`and (event_time >= ${new Date(query.since.ms)} or seq > ${query.since.throughSeq})` : sql``}
    order by seq
    limit ${query.limit}`;
  return rows.map(({ seq, event_time, ...rest }) => ({ seq: Number(seq), alert: { ...rest, event_time: event_time.toISOString() } }));
}

/** The newest alert's sequence number (0 when there is none). */
export async function latestAlertSeq(sql: Sql): Promise<number> {
  const [row] = await sql<{ seq: string | null }[]>`select max(seq) as seq from alerts`;
  return Number(row?.seq ?? 0);
}
