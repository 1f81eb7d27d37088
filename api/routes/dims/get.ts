import { createRoute, type OpenAPIHono } from "@hono/zod-openapi";
import { dimensionNames, dimensions, isDimensionName } from "../../../lib/dims.ts";
import { readDimension } from "../../../lib/store/dims.ts";
import type { Keyring } from "../../auth/keyring.ts";
import type { AppEnv } from "../../env.ts";
import { requireScope } from "../../middleware/auth.ts";
import { problem, problemResponse } from "../../problem.ts";
import { DimensionSchema, documentedDimensionSchema } from "./schema.ts";

// One documented path per dimension (each with its own row schema); one route serves them all.
const routes = dimensionNames.map((name) =>
  createRoute({
    method: "get",
    path: `/v1/dims/${name}`,
    tags: ["reference data"],
    summary: `Read ${name}`,
    security: [{ bearer: [] }],
    responses: {
      200: { description: "The rows, ordered by key; version 0 when never loaded", content: { "application/json": { schema: documentedDimensionSchema(name) } } },
      401: problemResponse("Missing or unknown API key"),
      403: problemResponse("The key lacks the `query` scope"),
    },
  }),
);

export function registerGetDimension(app: OpenAPIHono<AppEnv>, keyring: Keyring) {
  for (const route of routes) app.openAPIRegistry.registerPath(route);
  app.get("/v1/dims/:name", requireScope(keyring, "query"), async (c) => {
    const name = c.req.param("name");
    if (!isDimensionName(name)) return problem(c, 404, `Unknown dimension "${name}"; known: ${Object.keys(dimensions).join(", ")}.`);
    const { version, items } = await readDimension(c.get("services").db.sql, name);
    return c.json(
      DimensionSchema.parse({ name, version: version?.version ?? 0, rows: items.length, updated_at: (version?.updated_at ?? new Date(0)).toISOString(), items }),
      200,
    );
  });
}
