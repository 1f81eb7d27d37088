import { createRoute, type OpenAPIHono, z } from "@hono/zod-openapi";
import type { Context } from "hono";
import type { Batcher } from "../../../lib/bus/batcher.ts";
import { AppError } from "../../../lib/errors.ts";
import { eventTypes } from "../../../lib/events/index.ts";
import type { Keyring } from "../../auth/keyring.ts";
import type { AppEnv } from "../../env.ts";
import { ingest } from "../../ingest/ingest.ts";
import { acceptedContentTypes, bodyFormat, parseRecords } from "../../ingest/parse-records.ts";
import { contentCoding, readBodyWithLimit, readEncodedBodyWithLimit, supportedContentCodings } from "../../ingest/read-body.ts";
import { requireScope } from "../../middleware/auth.ts";
import { problem, problemResponse } from "../../problem.ts";
import { EventSchemas, IngestResultSchema, typedEventSchemas } from "./schema.ts";

const RETRY_AFTER_S = 2;

/** NDJSON bodies: one event object per line, its example `example` (with `type` on the untyped path, without it on `/v1/events/{type}`). */
const ndjsonBody = (example: Record<string, unknown>) => ({
  schema: z.string().openapi({ description: "One event object per line; a line that is not valid JSON is one rejected record.", example: `${JSON.stringify(example)}\n` }),
});
const exampleOf = (type: string): Record<string, unknown> => eventTypes.get(type)?.example ?? {};

const responses = {
  202: { description: "At least one record accepted; each accepted record is durable in the bus", content: { "application/json": { schema: IngestResultSchema } } },
  422: { description: "No record accepted (or none sent); `errors` says why, per record and field", content: { "application/json": { schema: IngestResultSchema } } },
  400: problemResponse("Malformed JSON, invalid UTF-8, a body that is not an object or array, or compressed data that does not decode (corrupt or truncated)"),
  401: problemResponse("Missing or unknown API key"),
  403: problemResponse("The key lacks the `ingest` scope"),
  413: problemResponse("Body over the size limit (`MAX_BODY_BYTES`, applied to the compressed body and to the decompressed bytes as they stream), or more records than allowed per request"),
  415: problemResponse(
    `Content type other than ${acceptedContentTypes.join(", ")}; or a \`Content-Encoding\` other than ${supportedContentCodings.join(", ")} or identity (e.g. br, deflate, or a list of several codings): the detail names the encoding sent and the supported ones`,
  ),
  503: {
    ...problemResponse("The bus cannot take writes now; nothing was accepted. Retry after `Retry-After` seconds."),
    headers: z.object({ "retry-after": z.string().openapi({ description: "Seconds to wait before retrying", example: String(RETRY_AFTER_S) }) }),
  },
};

/** The optional `Content-Encoding` request header: a compressed body, decompressed as it streams. */
const encodingHeaders = z.object({
  "content-encoding": z
    .enum([...supportedContentCodings, "identity"])
    .optional()
    .openapi({
      description: `The body's compression: ${supportedContentCodings.join(" or ")} (\`x-gzip\` is taken as gzip), or \`identity\`/absent for none. The size limit applies to the decompressed bytes as well as to the compressed body. Any other coding, or a list of several, is a 415.`,
      example: "gzip",
    }),
});
const COMPRESSION_NOTE = `The body may be compressed: \`Content-Encoding: gzip\` or \`zstd\` (one coding); the size limit applies to the decompressed bytes, counted as they stream.`;

/** One event or a non-empty array of them (an empty body is refused: it holds no records). */
const oneOrMany = (one: z.ZodType) => z.union([one, z.array(one).min(1)]);

const ingestAny = createRoute({
  method: "post",
  path: "/v1/events",
  tags: ["ingest"],
  summary: "Ingest events of any type",
  description: `Body: one event object, a non-empty JSON array of them, or NDJSON (\`Content-Type: application/x-ndjson\`). Each record carries its \`type\`. ${COMPRESSION_NOTE}`,
  security: [{ bearer: [] }],
  request: { headers: encodingHeaders, body: { required: true, content: { "application/json": { schema: oneOrMany(z.union(EventSchemas)) }, "application/x-ndjson": ndjsonBody({ type: "sensor.reading", ...exampleOf("sensor.reading") }) } } },
  responses,
});

// One documented path per type, so that the body schema matches the path; one route serves them all.
const ingestTyped = [...typedEventSchemas].map(([type, schema]) =>
  createRoute({
    method: "post",
    path: `/v1/events/${type}`,
    tags: ["ingest"],
    summary: `Ingest ${type} events`,
    description: `The same as \`POST /v1/events\`, for ${type} only: records need no \`type\` field. ${COMPRESSION_NOTE}`,
    security: [{ bearer: [] }],
    request: { headers: encodingHeaders, body: { required: true, content: { "application/json": { schema: oneOrMany(schema) }, "application/x-ndjson": ndjsonBody(exampleOf(type)) } } },
    responses,
  }),
);

export interface IngestRouteDeps {
  keyring: Keyring;
  batcher: Batcher;
}

export function registerIngest(app: OpenAPIHono<AppEnv>, deps: IngestRouteDeps) {
  // The body is parsed by hand (size limit, NDJSON, per-record errors), so the routes are documented
  // through the registry and served by plain handlers rather than the zod validator.
  app.openAPIRegistry.registerPath(ingestAny);
  for (const route of ingestTyped) app.openAPIRegistry.registerPath(route);

  const handle = (pathType: string | undefined) =>
    async function ingestHandler(c: Context<AppEnv>) {
      const { config } = c.get("services");
      if (pathType !== undefined && !eventTypes.has(pathType)) {
        return problem(c, 404, `Unknown event type "${pathType}"; known: ${[...eventTypes.keys()].join(", ")}.`);
      }
      const format = bodyFormat(c.req.header("content-type"));
      if (!format) return problem(c, 415, `Send ${acceptedContentTypes.join(" or ")}; got ${c.req.header("content-type") ?? "no content type"}.`);
      const encoding = contentCoding(c.req.header("content-encoding"));
      if (!encoding.ok) return problem(c, 415, encoding.detail);
      let body: { ok: true; bytes: Uint8Array } | { ok: false; status: 400 | 413; detail: string };
      if (encoding.coding === undefined) {
        const plain = await readBodyWithLimit(c.req.raw, config.ingest.maxBodyBytes);
        body = plain.ok ? plain : { ok: false, status: 413, detail: `The body is larger than ${config.ingest.maxBodyBytes} bytes.` };
      } else {
        const decoded = await readEncodedBodyWithLimit(c.req.raw, config.ingest.maxBodyBytes, encoding.coding);
        body = decoded.ok ? decoded : { ok: false, status: decoded.reason === "too_large" ? 413 : 400, detail: decoded.detail };
      }
      if (!body.ok) return problem(c, body.status, body.detail);
      const parsed = parseRecords(body.bytes, format, config.ingest.maxRecordsPerRequest);
      if (!parsed.ok) return problem(c, parsed.status, parsed.detail);
      try {
        const result = await ingest(parsed.records, pathType, { types: eventTypes, batcher: deps.batcher, policy: config.ingest.eventTime });
        return c.json(result satisfies z.infer<typeof IngestResultSchema>, result.accepted > 0 ? 202 : 422);
      } catch (error) {
        if (error instanceof AppError && error.code.startsWith("bus_")) {
          c.get("log").warn("bus cannot take writes; answered 503", { error: error.message });
          return problem(c, 503, "The event bus cannot take writes right now; nothing from this request was accepted.", {}, { "retry-after": String(RETRY_AFTER_S) });
        }
        throw error;
      }
    };

  app.post("/v1/events", requireScope(deps.keyring, "ingest"), handle(undefined));
  app.post("/v1/events/:type", requireScope(deps.keyring, "ingest"), (c) => handle(c.req.param("type"))(c));
}
