import { createRoute, type OpenAPIHono, z } from "@hono/zod-openapi";
import { type DimensionName, dimensionNames, dimensions, isDimensionName } from "../../../lib/dims.ts";
import { replaceDimension } from "../../../lib/store/dims.ts";
import type { Keyring } from "../../auth/keyring.ts";
import type { AppEnv } from "../../env.ts";
import { readBodyWithLimit } from "../../ingest/read-body.ts";
import { requireScope } from "../../middleware/auth.ts";
import { problem, problemResponse } from "../../problem.ts";
import { DimensionVersionSchema, documentedRowSchemas } from "./schema.ts";

// One documented path per dimension, so that the body schema matches the path; one route serves them all.
const routes = dimensionNames.map((name) =>
  createRoute({
    method: "put",
    path: `/v1/dims/${name}`,
    tags: ["reference data"],
    summary: `Replace ${name}`,
    description: `Replaces the whole ${name} table with the rows sent, in one transaction; an empty array empties it. Enrichment sees the change within 10 s.`,
    security: [{ bearer: [] }],
    request: { body: { required: true, content: { "application/json": { schema: z.array(documentedRowSchemas[name]) } } } },
    responses: {
      200: { description: "Replaced", content: { "application/json": { schema: DimensionVersionSchema } } },
      400: problemResponse("Malformed JSON or not an array"),
      401: problemResponse("Missing or unknown API key"),
      403: problemResponse("The key lacks the `admin` scope"),
      413: problemResponse("Body over the size limit"),
      415: problemResponse("Content type other than application/json"),
      422: problemResponse("A row breaks the schema or repeats a key; `errors` lists each, by path (`[i].field`)"),
    },
  }),
);

type RowError = { path: string; message: string };

/** Each row against the dimension's schema, and each key once. */
function validateRows(name: DimensionName, value: unknown): { rows: Record<string, unknown>[]; errors: RowError[] } {
  const { schema, key } = dimensions[name];
  if (!Array.isArray(value)) return { rows: [], errors: [{ path: "", message: "expected a JSON array of rows" }] };
  const errors: RowError[] = [];
  const rows: Record<string, unknown>[] = [];
  const firstSeen = new Map<unknown, number>();
  value.forEach((raw, index) => {
    const parsed = schema.safeParse(raw);
    if (!parsed.success) {
      for (const issue of parsed.error.issues) {
        const keys = issue.code === "unrecognized_keys" ? issue.keys : [issue.path.map(String).join(".")];
        for (const field of keys) errors.push({ path: `[${index}]${field ? `.${field}` : ""}`, message: issue.code === "unrecognized_keys" ? "unknown field" : issue.message });
      }
      return;
    }
    const row = parsed.data as Record<string, unknown>;
    const id = row[key];
    const first = firstSeen.get(id);
    if (first !== undefined) errors.push({ path: `[${index}].${key}`, message: `duplicate ${key} ${String(id)} (first at [${first}])` });
    else firstSeen.set(id, index);
    rows.push(row);
  });
  return { rows, errors };
}

export function registerPutDimension(app: OpenAPIHono<AppEnv>, keyring: Keyring) {
  for (const route of routes) app.openAPIRegistry.registerPath(route);
  app.put("/v1/dims/:name", requireScope(keyring, "admin"), async (c) => {
    const name = c.req.param("name");
    if (!isDimensionName(name)) return problem(c, 404, `Unknown dimension "${name}"; known: ${Object.keys(dimensions).join(", ")}.`);
    if ((c.req.header("content-type") ?? "").split(";")[0]?.trim().toLowerCase() !== "application/json") return problem(c, 415, "Send application/json: an array of rows.");
    const services = c.get("services");
    const body = await readBodyWithLimit(c.req.raw, services.config.ingest.maxBodyBytes);
    if (!body.ok) return problem(c, 413, `The body is larger than ${services.config.ingest.maxBodyBytes} bytes.`);
    let value: unknown;
    try {
      value = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(body.bytes));
    } catch (error) {
      return problem(c, 400, `Malformed JSON: ${error instanceof Error ? error.message : String(error)}`);
    }
    const { rows, errors } = validateRows(name, value);
    if (errors.length > 0) return problem(c, errors[0]?.path === "" ? 400 : 422, `${errors.length} problem(s) in the rows; nothing was changed.`, { errors: errors.slice(0, 1_000) });
    const version = await replaceDimension(services.db.sql, name, rows);
    c.get("log").info("dimension replaced", { dimension: name, rows: version.rows, version: version.version });
    return c.json(DimensionVersionSchema.parse({ ...version, updated_at: version.updated_at.toISOString() }), 200);
  });
}
