/**
 * The client's request and response types, inferred from the gateway's own zod schemas: one source of
 * truth, checked by tsc, with nothing generated that could drift.
 *
 * Why not Hono RPC (`hc<AppType>`): the routes are documented through `openAPIRegistry.registerPath`
 * and served by plain handlers registered inside functions (ingest parses its body by hand), so the
 * app's type carries no routes for `hc` to read. Why not openapi-typescript + openapi-fetch: it types
 * the client from a second generated file (next to openapi/openapi.json), which is one more artifact
 * to regenerate and keep in sync. Here the imports are type-only: at run time the client depends on no
 * gateway code (the simulators still talk to the gateway over HTTP only, like a device), and a schema
 * change that breaks a caller breaks the typecheck.
 */
import type { z } from "zod";
import type { AggregateItemSchema } from "../../api/routes/aggregates/list.ts";
import type { AlertItemSchema, AlertListQuery } from "../../api/routes/alerts/schema.ts";
import type { EventSchemas, IngestErrorSchema, IngestResultSchema } from "../../api/routes/events/schema.ts";
import type { QueryRequestSchema, QueryResultSchema } from "../../api/routes/lake/query.ts";
import type { Problem } from "../../api/problem.ts";

export type { Problem };

/**
 * One event as POST /v1/events takes it. The registry types each event type's own fields generically,
 * so the schema gives `type`, `event_id` and `event_time`; the other fields are checked by the gateway
 * (a 422 or a partial 202 names the field at fault).
 */
export type IngestEvent = z.input<(typeof EventSchemas)[number]> & { [field: string]: unknown };
export type IngestResult = z.infer<typeof IngestResultSchema>;
export type IngestError = z.infer<typeof IngestErrorSchema>;

export type Aggregate = z.infer<typeof AggregateItemSchema>;
export type AggregateView = Aggregate["view"];
export type Alert = z.infer<typeof AlertItemSchema>;
export type AlertRule = Alert["rules"][number];
export type AlertListParams = z.input<typeof AlertListQuery>;

export type QueryRequest = z.input<typeof QueryRequestSchema>;
export type QueryResult = z.infer<typeof QueryResultSchema>;

/** Time parameters (`from`, `to`, `since`): a Date, epoch milliseconds, or ISO-8601 with a zone. */
export type Instant = Date | number | string;
