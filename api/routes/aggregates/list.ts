import { createRoute, type OpenAPIHono, z } from "@hono/zod-openapi";
import { type AggregatePosition, listAggregates } from "../../../lib/store/aggregates.ts";
import { views, WINDOWS_JOB } from "../../../lib/windows/views.ts";
import type { Keyring } from "../../auth/keyring.ts";
import type { AppEnv } from "../../env.ts";
import { requireScope } from "../../middleware/auth.ts";
import { problem, problemResponse } from "../../problem.ts";
import { CursorParamSchema, decodeCursor, encodeCursor, invalidParams, isCursorInstant, isCursorText, LimitParamSchema, type ParamError, parseLimit, parseRange, parseTextParam, textParamSchema, timeParamSchema } from "../../query-params.ts";

const viewNames = [...views.keys()] as [string, ...string[]];

export const AggregateItemSchema = z
  .object({
    view: z.enum(viewNames),
    key: z.string().openapi({ description: "`all`, or the view's key (page, user_id, sensor_id)", example: "sensor-0001" }),
    window_start: z.string().openapi({ example: "2026-11-21T10:15:00.000Z" }),
    window_end: z.string().openapi({ example: "2026-11-21T10:16:00.000Z" }),
    final: z.boolean().openapi({ description: "True once the watermark has passed window_end; later events for the window are late" }),
  })
  .catchall(z.union([z.number(), z.string(), z.null()]))
  .openapi("Aggregate", { example: { view: "sensor_stats_1m", key: "sensor-0001", window_start: "2026-11-21T10:15:00.000Z", window_end: "2026-11-21T10:16:00.000Z", final: true, count: 60, avg_temperature: 21.4, min_temperature: 20.9, max_temperature: 22.1, avg_humidity: 48.2 } });

const AggregateListSchema = z.object({ items: z.array(AggregateItemSchema), next_cursor: z.string().nullable() }).openapi("AggregateList");

const route = createRoute({
  method: "get",
  path: "/v1/aggregates/{view}",
  tags: ["aggregates"],
  summary: "Windows of an aggregate view",
  description: "Windows whose window_start is in [from, to), ordered by window_start then key. Metrics by view: vehicle_alerts_15m (total_alerts, black_cars, white_cars, silver_cars, max_speed, max_gear, max_rpm), page_views_1m (views), active_users_5m (active_users), user_sessions (session_start, session_end, duration_s, events), fines_by_user_1d (total_fine, events), sensor_stats_1m (count, avg_temperature, min_temperature, max_temperature, avg_humidity).",
  security: [{ bearer: [] }],
  request: {
    params: z.object({ view: z.enum(viewNames).openapi({ param: { name: "view", in: "path" }, example: "sensor_stats_1m" }) }),
    query: z.object({
      from: timeParamSchema("Start of [from, to) on window_start"),
      to: timeParamSchema("End of [from, to) on window_start"),
      key: textParamSchema("The view's key: `all`, a page, a user_id or a sensor_id", "sensor-0001"),
      limit: LimitParamSchema,
      cursor: CursorParamSchema,
    }),
  },
  responses: {
    200: { description: "A page of windows", content: { "application/json": { schema: AggregateListSchema } } },
    400: problemResponse("A parameter is invalid; `errors` names it"),
    401: problemResponse("Missing or unknown API key"),
    403: problemResponse("The key lacks the `query` scope"),
    404: problemResponse("Unknown view"),
  },
});

const isPosition = (value: unknown): value is AggregatePosition =>
  typeof value === "object" && value !== null && isCursorInstant((value as AggregatePosition).w) && isCursorText((value as AggregatePosition).k);

export function registerListAggregates(app: OpenAPIHono<AppEnv>, keyring: Keyring) {
  app.openAPIRegistry.registerPath(route);
  app.get("/v1/aggregates/:view", requireScope(keyring, "query"), async (c) => {
    const view = views.get(c.req.param("view"));
    if (!view) return problem(c, 404, `Unknown view "${c.req.param("view")}"; views: ${viewNames.join(", ")}.`);
    const query = c.req.query();
    const errors: ParamError[] = [];
    const { from, to } = parseRange(query, errors);
    const limit = parseLimit(query.limit, errors);
    const after = decodeCursor(query.cursor, isPosition, errors);
    const key = parseTextParam("key", query.key, errors);
    if (errors.length > 0) return invalidParams(c, errors);
    const { items, next } = await listAggregates(c.get("services").db.sql, view, WINDOWS_JOB, { from, to, key, after, limit });
    return c.json(AggregateListSchema.parse({ items, next_cursor: next ? encodeCursor(next) : null }), 200);
  });
}
