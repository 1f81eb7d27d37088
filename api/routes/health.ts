import { createRoute, type OpenAPIHono, z } from "@hono/zod-openapi";
import { readiness } from "../../lib/services.ts";
import type { AppEnv } from "../env.ts";

const CheckSchema = z
  .discriminatedUnion("status", [z.object({ status: z.literal("ok") }), z.object({ status: z.literal("failing"), error: z.string() })])
  .openapi("Check");

const ReadinessSchema = z
  .object({
    ready: z.boolean(),
    checks: z.object({
      bus: CheckSchema,
      db: CheckSchema,
      lake: CheckSchema,
      jobs: CheckSchema.describe("Failing when a job's checkpoints have failed, or its input has waited with no progress, for longer than READY_STALL_MS; the error names the job"),
    }),
  })
  .openapi("Readiness", { example: { ready: true, checks: { bus: { status: "ok" }, db: { status: "ok" }, lake: { status: "ok" }, jobs: { status: "ok" } } } });

const healthz = createRoute({
  method: "get",
  path: "/healthz",
  tags: ["operations"],
  summary: "Liveness: the process is up",
  responses: { 200: { description: "Up", content: { "application/json": { schema: z.object({ status: z.literal("ok") }) } } } },
});

const readyz = createRoute({
  method: "get",
  path: "/readyz",
  tags: ["operations"],
  summary: "Readiness: bus, database and lake all answer, and no job is stalled",
  responses: {
    200: { description: "Ready", content: { "application/json": { schema: ReadinessSchema } } },
    503: { description: "A dependency is failing or a job is stalled", content: { "application/json": { schema: ReadinessSchema } } },
  },
});

export function registerHealth(app: OpenAPIHono<AppEnv>) {
  app.openapi(healthz, (c) => c.json({ status: "ok" as const }, 200));
  app.openapi(readyz, async (c) => {
    const result = await readiness(c.get("services"));
    return result.ready ? c.json(result, 200) : c.json(result, 503);
  });
}
