import { createRoute, type OpenAPIHono, z } from "@hono/zod-openapi";
import { QueryError } from "../../../lib/errors.ts";
import type { LakeReader } from "../../../lib/lake/reader.ts";
import { MAX_SQL_LENGTH } from "../../../lib/lake/sql-guard.ts";
import type { Keyring } from "../../auth/keyring.ts";
import type { AppEnv } from "../../env.ts";
import { requireScope } from "../../middleware/auth.ts";
import { problem, problemResponse } from "../../problem.ts";

const QueryRequestSchema = z
  .object({ sql: z.string().min(1).max(MAX_SQL_LENGTH).openapi({ example: "select color_name, count(*) as alerts from vehicle_telemetry where speed > 120 group by all order by alerts desc" }) })
  .strict()
  .openapi("LakeQuery");

const QueryResultSchema = z
  .object({
    columns: z.array(z.object({ name: z.string(), type: z.string().openapi({ example: "BIGINT" }) })),
    rows: z.array(z.array(z.unknown())),
    truncated: z.boolean().openapi({ description: "True when the result had more rows than QUERY_MAX_ROWS and was cut there" }),
  })
  .openapi("LakeQueryResult");

const route = createRoute({
  method: "post",
  path: "/v1/query",
  tags: ["lake"],
  summary: "Read-only SQL over the lake",
  description:
    "One SELECT (or WITH … SELECT) statement, run by DuckDB over a view per event type (`vehicle_telemetry`, `vehicle_location`, `gps_fix`, `traffic_camera`, `weather_observation`, `emergency_incident`, `sensor_reading`, `user_activity`; each with `type`, `event_id`, `key`, `event_time`, `ingest_time` and the type's fields) and the dims (`car_models`, `car_colors`, `cars`). Each event appears once. The database the statement runs in holds only those views, with file, network, extension and settings access switched off and locked; the statement must parse as a single SELECT. Rows are capped at QUERY_MAX_ROWS and time at QUERY_TIMEOUT_MS; any refusal or DuckDB error is a 400 with DuckDB's message.",
  security: [{ bearer: [] }],
  request: { body: { required: true, content: { "application/json": { schema: QueryRequestSchema } } } },
  responses: {
    200: { description: "The result", content: { "application/json": { schema: QueryResultSchema } } },
    400: problemResponse("Not a single read-only statement, a DuckDB error, or over the time limit"),
    401: problemResponse("Missing or unknown API key"),
    403: problemResponse("The key lacks the `query` scope"),
  },
});

export function registerLakeQuery(app: OpenAPIHono<AppEnv>, deps: { keyring: Keyring; reader: () => LakeReader }) {
  app.openAPIRegistry.registerPath(route);
  app.post("/v1/query", requireScope(deps.keyring, "query"), async (c) => {
    let body: unknown;
    try {
      body = await c.req.json();
    } catch {
      return problem(c, 400, "The body is not valid JSON; send {\"sql\": \"select …\"}");
    }
    const parsed = QueryRequestSchema.safeParse(body);
    if (!parsed.success) {
      const errors = parsed.error.issues.map((i) => ({ path: i.path.join(".") || "body", message: i.message }));
      return problem(c, 400, errors.map((e) => `${e.path}: ${e.message}`).join("; "), { errors });
    }
    try {
      return c.json(await deps.reader().query(parsed.data.sql), 200);
    } catch (error) {
      if (error instanceof QueryError) return problem(c, 400, error.message, { errors: [{ path: "sql", message: error.message }] });
      throw error;
    }
  });
}
