import { createRoute, type OpenAPIHono } from "@hono/zod-openapi";
import { alertRuleNames } from "../../../lib/alert-rules.ts";
import { type AlertPosition, listAlerts } from "../../../lib/store/alerts.ts";
import type { Keyring } from "../../auth/keyring.ts";
import type { AppEnv } from "../../env.ts";
import { requireScope } from "../../middleware/auth.ts";
import { problemResponse } from "../../problem.ts";
import { decodeCursor, encodeCursor, invalidParams, isCursorInstant, type ParamError, parseLimit, parseRange, parseTextParam } from "../../query-params.ts";
import { AlertListQuery, AlertListSchema } from "./schema.ts";

const route = createRoute({
  method: "get",
  path: "/v1/alerts",
  tags: ["alerts"],
  summary: "List alerts",
  description: "Alerts whose event_time is in [from, to), oldest first, optionally for one device key or rule.",
  security: [{ bearer: [] }],
  request: { query: AlertListQuery },
  responses: {
    200: { description: "A page of alerts", content: { "application/json": { schema: AlertListSchema } } },
    400: problemResponse("A parameter is invalid; `errors` names it"),
    401: problemResponse("Missing or unknown API key"),
    403: problemResponse("The key lacks the `query` scope"),
  },
});

const isPosition = (value: unknown): value is AlertPosition =>
  typeof value === "object" && value !== null && isCursorInstant((value as AlertPosition).t) && Number.isSafeInteger((value as AlertPosition).s);

export function registerListAlerts(app: OpenAPIHono<AppEnv>, keyring: Keyring) {
  app.openAPIRegistry.registerPath(route);
  app.get("/v1/alerts", requireScope(keyring, "query"), async (c) => {
    const query = c.req.query();
    const errors: ParamError[] = [];
    const { from, to } = parseRange(query, errors);
    const limit = parseLimit(query.limit, errors);
    const after = decodeCursor(query.cursor, isPosition, errors);
    const key = parseTextParam("key", query.key, errors);
    if (query.rule !== undefined && !alertRuleNames.includes(query.rule)) errors.push({ path: "rule", message: `one of ${alertRuleNames.join(", ")}` });
    if (errors.length > 0) return invalidParams(c, errors);
    const { items, next } = await listAlerts(c.get("services").db.sql, { from, to, key, rule: query.rule, after, limit });
    return c.json(AlertListSchema.parse({ items, next_cursor: next ? encodeCursor(next) : null }), 200);
  });
}
