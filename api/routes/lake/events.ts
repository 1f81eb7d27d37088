import { createRoute, type OpenAPIHono, z } from "@hono/zod-openapi";
import { eventTypes } from "../../../lib/events/index.ts";
import type { LakeReader } from "../../../lib/lake/reader.ts";
import type { Keyring } from "../../auth/keyring.ts";
import type { AppEnv } from "../../env.ts";
import { requireScope } from "../../middleware/auth.ts";
import { problemResponse } from "../../problem.ts";
import { invalidParams, LimitParamSchema, type ParamError, parseLimit, parseRange, parseTextParam, textParamSchema, timeParamSchema } from "../../query-params.ts";
import { lakeQueryProblem, lakeQueryResponses } from "./query.ts";

const typeNames = [...eventTypes.keys()] as [string, ...string[]];

const LakeEventSchema = z
  .object({
    type: z.enum(typeNames),
    event_id: z.string(),
    key: z.string().openapi({ description: "The device key" }),
    event_time: z.string().openapi({ example: "2026-11-21T10:15:30.250Z" }),
    ingest_time: z.string().openapi({ example: "2026-11-21T10:15:30.412Z" }),
  })
  .catchall(z.unknown())
  .openapi("LakeEvent", { example: { type: "sensor.reading", event_id: "0193a5c2-7f3e-7b4a-9c1d-2e5f6a7b8c9d", key: "sensor-0001", event_time: "2026-11-21T10:15:30.250Z", ingest_time: "2026-11-21T10:15:30.412Z", sensor_id: "sensor-0001", temperature: 21.4, humidity: 48.2 } });

const route = createRoute({
  method: "get",
  path: "/v1/events",
  tags: ["lake"],
  summary: "Events from the Parquet lake",
  description:
    "Enriched events of one type whose event_time is in [from, to), oldest first, each once. Only the files of the hours the range covers are read, less those whose Delta statistics rule out the range or `key`. An accepted event is here within about 15 s (LAKE_FLUSH_INTERVAL_MS). The read shares the lake query slots and deadline of POST /v1/query (429 when they are full) and its byte cap (`truncated: true`).",
  security: [{ bearer: [] }],
  request: {
    query: z.object({
      type: z.enum(typeNames).openapi({ example: "sensor.reading" }),
      key: textParamSchema("Device key", "sensor-0001"),
      from: timeParamSchema("Start of [from, to) on event_time"),
      to: timeParamSchema("End of [from, to) on event_time"),
      limit: LimitParamSchema,
    }),
  },
  responses: {
    200: {
      description: "Events",
      content: {
        "application/json": {
          schema: z
            .object({
              items: z.array(LakeEventSchema),
              truncated: z.literal(true).optional().openapi({ description: "Present when the page was cut at QUERY_MAX_BYTES bytes of JSON before `limit` events" }),
            })
            .openapi("LakeEventList"),
        },
      },
    },
    400: problemResponse("A parameter is invalid (`errors` names it), or the read ran past QUERY_TIMEOUT_MS"),
    401: problemResponse("Missing or unknown API key"),
    403: problemResponse("The key lacks the `query` scope"),
    ...lakeQueryResponses,
  },
});

export function registerLakeEvents(app: OpenAPIHono<AppEnv>, deps: { keyring: Keyring; reader: () => LakeReader }) {
  app.openAPIRegistry.registerPath(route);
  app.get("/v1/events", requireScope(deps.keyring, "query"), async (c) => {
    const query = c.req.query();
    const errors: ParamError[] = [];
    if (!query.type) errors.push({ path: "type", message: `required: one of ${typeNames.join(", ")}` });
    else if (!eventTypes.has(query.type)) errors.push({ path: "type", message: `one of ${typeNames.join(", ")}` });
    const { from, to } = parseRange(query, errors);
    const limit = parseLimit(query.limit, errors);
    const key = parseTextParam("key", query.key, errors);
    if (errors.length > 0 || !query.type) return invalidParams(c, errors);
    try {
      // The body was built where the query ran; it is passed on as bytes.
      const result = await deps.reader().eventsBody({ type: query.type, key, fromMs: from, toMs: to, limit }, { client: c.get("apiKey") });
      return c.body(result.body, 200, { "content-type": "application/json" });
    } catch (error) {
      const answer = lakeQueryProblem(c, error);
      if (answer) return answer;
      throw error;
    }
  });
}
