/**
 * A typed client of the gateway's HTTP API: what a device or a service outside the repo would use.
 * Types come from the gateway's zod schemas (see types.ts for why this is not Hono RPC or generated
 * code); at run time the client is fetch and nothing else.
 *
 *   const client = createClient({ url: "http://localhost:3000", key: process.env.API_KEY ?? "" });
 *   await client.sendEvents([{ type: "sensor.reading", sensor_id: "s-1", temperature: 21.5, humidity: 40, event_time: Date.now() }], { gzip: true });
 *   for await (const window of client.aggregates("sensor_stats_1m", { key: "s-1", limit: 500 })) console.log(window);
 *   for await (const { alert } of client.followAlerts({ rule: "speeding" })) console.log(alert.key, alert.rules);
 */
import { type FollowAlertsOptions, followAlerts, type StreamedAlert } from "./alert-stream.ts";
import { createHttp, type HttpOptions } from "./http.ts";
import { pagedItems } from "./pages.ts";
import { query } from "./query.ts";
import { type SendOptions, type SendResult, sendEvents } from "./send-events.ts";
import type { Aggregate, AggregateView, Alert, AlertRule, IngestEvent, Instant, QueryResult } from "./types.ts";

export { ApiError, ConnectionError } from "./errors.ts";
export type { FetchLike, HttpOptions } from "./http.ts";
export type { AttemptReport, SendOptions, SendResult } from "./send-events.ts";
export type { FollowAlertsOptions, ReconnectInfo, StreamedAlert } from "./alert-stream.ts";
export type * from "./types.ts";

/** The parameters of a list endpoint; times are a Date, epoch ms or ISO-8601; `limit` is per page. */
export interface ListParams {
  from?: Instant;
  to?: Instant;
  key?: string;
  limit?: number;
  signal?: AbortSignal;
}

export function createClient(options: HttpOptions) {
  const http = createHttp(options);
  return {
    /** POST /v1/events, retried on 503 (see send-events.ts). */
    sendEvents: (events: IngestEvent | readonly IngestEvent[] | string, sendOptions?: SendOptions): Promise<SendResult> => sendEvents(http, events, sendOptions),
    /** Every window of `view` in [from, to), page after page (GET /v1/aggregates/{view}). */
    aggregates: (view: AggregateView, { signal, ...params }: ListParams = {}): AsyncGenerator<Aggregate, void, undefined> =>
      pagedItems<Aggregate>(http, `/v1/aggregates/${encodeURIComponent(view)}`, { ...params }, signal),
    /** Every stored alert in [from, to) on event_time, page after page (GET /v1/alerts). */
    alerts: ({ signal, ...params }: ListParams & { rule?: AlertRule } = {}): AsyncGenerator<Alert, void, undefined> => pagedItems<Alert>(http, "/v1/alerts", { ...params }, signal),
    /** Live alerts that resume across dropped connections (GET /v1/alerts/stream). */
    followAlerts: (followOptions?: FollowAlertsOptions): AsyncGenerator<StreamedAlert, void, undefined> => followAlerts(http, followOptions),
    /** Read-only SQL over the lake (POST /v1/query). */
    query: (sql: string, queryOptions?: { signal?: AbortSignal }): Promise<QueryResult> => query(http, sql, queryOptions),
  };
}

export type Client = ReturnType<typeof createClient>;
