import { createRoute, type OpenAPIHono, z } from "@hono/zod-openapi";
import type { Context } from "hono";
import { QueryError, QueryRejectedError, QueryTimeoutError } from "../../../lib/errors.ts";
import type { LakeReader } from "../../../lib/lake/reader.ts";
import { MAX_SQL_BYTES } from "../../../lib/lake/sql-guard.ts";
import type { Keyring } from "../../auth/keyring.ts";
import type { AppEnv } from "../../env.ts";
import { readBodyWithLimit } from "../../ingest/read-body.ts";
import { requireScope } from "../../middleware/auth.ts";
import { problem, problemResponse } from "../../problem.ts";
import { invalidParams } from "../../query-params.ts";

/** The body is read up to this many bytes: the SQL cap plus room for JSON escapes. */
const MAX_QUERY_BODY_BYTES = 2 * MAX_SQL_BYTES;

export const QueryRequestSchema = z
  .object({
    sql: z
      .string()
      .min(1)
      .refine((sql) => Buffer.byteLength(sql, "utf8") <= MAX_SQL_BYTES, `at most ${MAX_SQL_BYTES} bytes of SQL`)
      .openapi({ description: `At most ${MAX_SQL_BYTES} bytes (UTF-8)`, example: "select color_name, count(*) as alerts from vehicle_telemetry where speed > 120 group by all order by alerts desc" }),
  })
  .strict()
  .openapi("LakeQuery");

export const QueryResultSchema = z
  .object({
    columns: z.array(z.object({ name: z.string(), type: z.string().openapi({ example: "BIGINT" }) })),
    rows: z.array(z.array(z.unknown())),
    truncated: z.boolean().openapi({ description: "True when the result was cut at QUERY_MAX_ROWS rows or QUERY_MAX_BYTES bytes of JSON" }),
  })
  .openapi("LakeQueryResult");

const retryAfterHeader = { "Retry-After": { description: "Seconds to wait before trying again", schema: { type: "integer" as const } } };

/** The 429 of the lake endpoints' query slots, shared with GET /v1/events. */
export const lakeQueryResponses = {
  429: { ...problemResponse("Every lake query slot is busy and the queue is full (or the wait for a slot ran out); retry after `Retry-After` seconds"), headers: retryAfterHeader },
};

const route = createRoute({
  method: "post",
  path: "/v1/query",
  tags: ["lake"],
  summary: "Read-only SQL over the lake",
  description: [
    `One SELECT (or WITH … SELECT) statement of at most ${MAX_SQL_BYTES} bytes, run by DuckDB over a view per event type (\`vehicle_telemetry\`, \`vehicle_location\`, \`gps_fix\`, \`traffic_camera\`, \`weather_observation\`, \`emergency_incident\`, \`sensor_reading\`, \`user_activity\`; each with \`type\`, \`event_id\`, \`key\`, \`event_time\`, \`ingest_time\` and the type's fields) and the dims (\`car_models\`, \`car_colors\`, \`cars\`). Each event appears once.`,
    "The statement is checked on DuckDB's parse tree: it may read those views and CTEs it defines, and call an allow-list of scalar, aggregate and window functions (math, text, date/time, conditionals, casts, lists, JSON, aggregates, window functions); table functions, schema-qualified names, catalog, settings and file functions are refused with a 400 naming them. The database it runs in has file, network, extension and settings access switched off and locked.",
    "Rows are capped at QUERY_MAX_ROWS and the JSON at QUERY_MAX_BYTES (`truncated: true`). A query has QUERY_TIMEOUT_MS from the moment it gets a slot, for parsing, planning, running and building the result; past it the answer is a 400. QUERY_MAX_CONCURRENT queries run at once per gateway (one API key holds at most all but one of the slots), QUERY_MAX_QUEUED wait up to QUERY_QUEUE_TIMEOUT_MS, the rest get a 429.",
  ].join("\n\n"),
  security: [{ bearer: [] }],
  request: { body: { required: true, content: { "application/json": { schema: QueryRequestSchema } } } },
  responses: {
    200: { description: "The result", content: { "application/json": { schema: QueryResultSchema } } },
    400: problemResponse("Not a single SELECT over the views and allowed functions (the detail names what was refused), SQL over the size limit, a DuckDB error, or over the time limit"),
    401: problemResponse("Missing or unknown API key"),
    403: problemResponse("The key lacks the `query` scope"),
    413: problemResponse(`Body over ${MAX_QUERY_BODY_BYTES} bytes`),
    ...lakeQueryResponses,
  },
});

/** The problem for a lake query's typed failure, or undefined for anything else (a server error). */
export function lakeQueryProblem(c: Context<AppEnv>, error: unknown, path?: string) {
  if (error instanceof QueryRejectedError) return problem(c, 429, error.message, {}, { "retry-after": String(error.retryAfterS) });
  if (error instanceof QueryError || error instanceof QueryTimeoutError) return problem(c, 400, error.message, path ? { errors: [{ path, message: error.message }] } : {});
  return undefined;
}

export function registerLakeQuery(app: OpenAPIHono<AppEnv>, deps: { keyring: Keyring; reader: () => LakeReader }) {
  app.openAPIRegistry.registerPath(route);
  app.post("/v1/query", requireScope(deps.keyring, "query"), async (c) => {
    const read = await readBodyWithLimit(c.req.raw, MAX_QUERY_BODY_BYTES);
    if (!read.ok) return problem(c, 413, `The body is larger than ${MAX_QUERY_BODY_BYTES} bytes; the SQL may be at most ${MAX_SQL_BYTES} bytes.`);
    let body: unknown;
    try {
      body = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(read.bytes));
    } catch {
      return problem(c, 400, 'The body is not valid JSON; send {"sql": "select …"}');
    }
    const parsed = QueryRequestSchema.safeParse(body);
    if (!parsed.success) {
      const errors = parsed.error.issues.map((i) => ({ path: i.path.join(".") || "body", message: i.message }));
      return invalidParams(c, errors);
    }
    try {
      // The body was built where the query ran; it is passed on as bytes.
      const result = await deps.reader().query(parsed.data.sql, { client: c.get("apiKey") });
      return c.body(result.body, 200, { "content-type": "application/json" });
    } catch (error) {
      const answer = lakeQueryProblem(c, error, "sql");
      if (answer) return answer;
      throw error;
    }
  });
}
