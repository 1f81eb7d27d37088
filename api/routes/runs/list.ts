import { createRoute, type OpenAPIHono, z } from "@hono/zod-openapi";
import { listRuns, PipelineRunSchema, RunStatusSchema } from "../../../lib/store/runs.ts";
import type { Keyring } from "../../auth/keyring.ts";
import type { AppEnv } from "../../env.ts";
import { requireScope } from "../../middleware/auth.ts";
import { problemResponse } from "../../problem.ts";
import { CursorParamSchema, decodeCursor, encodeCursor, invalidParams, isCursorInstant, LimitParamSchema, type ParamError, parseLimit, parseTextParam, textParamSchema } from "../../query-params.ts";

const RunListSchema = z
  .object({ items: z.array(PipelineRunSchema.openapi("PipelineRun")), next_cursor: z.string().nullable() })
  .openapi("PipelineRunList", { example: { items: [{ run_id: 42, job: "lake", started_at: "2026-11-21T10:15:30.000Z", finished_at: "2026-11-21T10:15:30.180Z", status: "succeeded", records: 5120, error: null }], next_cursor: null } });

const route = createRoute({
  method: "get",
  path: "/v1/pipeline/runs",
  tags: ["operations"],
  summary: "Pipeline runs log",
  description: "Every lake flush (`job` = `lake`) and compaction (`compaction`), newest first.",
  security: [{ bearer: [] }],
  request: {
    query: z.object({
      job: textParamSchema("Job name, e.g. `lake` or `compaction`", "lake"),
      status: RunStatusSchema.optional(),
      limit: LimitParamSchema,
      cursor: CursorParamSchema,
    }),
  },
  responses: {
    200: { description: "A page of runs", content: { "application/json": { schema: RunListSchema } } },
    400: problemResponse("A parameter is invalid; `errors` names it"),
    401: problemResponse("Missing or unknown API key"),
    403: problemResponse("The key lacks the `query` scope"),
  },
});

type RunPosition = { s: string; r: number };
const ISO_UTC = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;
// `s` is a started_at as this endpoint wrote it (toISOString): compared as a timestamptz, so it must be one.
const isStartedAt = (value: unknown): value is string => typeof value === "string" && ISO_UTC.test(value) && isCursorInstant(Date.parse(value));
const isPosition = (value: unknown): value is RunPosition =>
  typeof value === "object" && value !== null && isStartedAt((value as RunPosition).s) && Number.isSafeInteger((value as RunPosition).r);

export function registerListRuns(app: OpenAPIHono<AppEnv>, keyring: Keyring) {
  app.openAPIRegistry.registerPath(route);
  app.get("/v1/pipeline/runs", requireScope(keyring, "query"), async (c) => {
    const query = c.req.query();
    const errors: ParamError[] = [];
    const limit = parseLimit(query.limit, errors);
    const after = decodeCursor(query.cursor, isPosition, errors);
    const status = query.status === undefined || query.status === "" ? undefined : RunStatusSchema.safeParse(query.status);
    if (status && !status.success) errors.push({ path: "status", message: `one of ${RunStatusSchema.options.join(", ")}` });
    const job = parseTextParam("job", query.job, errors);
    if (errors.length > 0) return invalidParams(c, errors);
    const items = await listRuns(c.get("services").db.sql, { job, status: status?.data, limit: limit + 1, after: after ? { startedAt: after.s, runId: after.r } : undefined });
    const page = items.slice(0, limit);
    const last = page[page.length - 1];
    return c.json(RunListSchema.parse({ items: page, next_cursor: items.length > limit && last ? encodeCursor({ s: last.started_at, r: last.run_id }) : null }), 200);
  });
}
