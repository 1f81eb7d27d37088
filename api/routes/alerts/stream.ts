import { createRoute, type OpenAPIHono, z } from "@hono/zod-openapi";
import { sseRejected } from "../../../lib/metrics.ts";
import type { Keyring } from "../../auth/keyring.ts";
import type { AppEnv } from "../../env.ts";
import { requireScope } from "../../middleware/auth.ts";
import { problem, problemResponse } from "../../problem.ts";
import { openAlertFeed } from "../../streams/alert-feed.ts";
import type { AlertHub } from "../../streams/alert-hub.ts";
import type { SseStream } from "../../streams/sse-stream.ts";
import type { StreamSlots } from "../../streams/stream-slots.ts";
import { parseStreamParams, StreamEventSchema, StreamHeaders, StreamQuery } from "./stream-params.ts";

/** Seconds a client whose stream the server ended may take to read its last frames before the connection is cut. */
const FINAL_READ_TIMEOUT_S = 10;
/** What a client refused for having too many streams open should wait before trying again. */
const RETRY_AFTER_S = 5;


const route = createRoute({
  method: "get",
  path: "/v1/alerts/stream",
  tags: ["alerts"],
  summary: "Live alerts (Server-Sent Events)",
  description: [
    "Each alert as `event: alert`, `id: <cursor>`, `data: <alert JSON>`, in commit order, optionally for one device key or rule.",
    "Reconnecting with `Last-Event-ID` (or `?since=<cursor>`) replays what was missed from Postgres, then continues live with no gap or repeat. `since` may also be a time (ISO-8601 or epoch ms): alerts with event_time from then on are replayed first.",
    "A comment heartbeat comes at least every 15 s. At most SSE_MAX_BUFFER_BYTES may wait for a client, replayed alerts included; a client that falls that far behind gets a last `event: error` with `data: {\"reason\":\"slow_client\",\"resume\":\"<cursor>\",\"detail\":\"…\"}` (its `id:` is the same cursor) and is disconnected: reconnect with Last-Event-ID set to `resume`.",
    "On shutdown the stream ends with `event: shutdown` carrying the same fields. An API key may hold at most SSE_MAX_STREAMS_PER_KEY streams at once (429 beyond).",
  ].join(" "),
  security: [{ bearer: [] }],
  request: { query: StreamQuery, headers: StreamHeaders },
  responses: {
    200: {
      description: 'An event stream of `alert` events, `: heartbeat` comments, and a final `shutdown` or `error` event, e.g. `id: eyJxIjo0Mn0\nevent: alert\ndata: {"alert_id":"…","rules":["speeding"]}\n\n`',
      content: { "text/event-stream": { schema: StreamEventSchema } },
    },
    400: problemResponse("A parameter is invalid (`key`, `rule`, `since`, `Last-Event-ID`); `errors` names each"),
    401: problemResponse("Missing or unknown API key"),
    403: problemResponse("The key lacks the `query` scope"),
    429: {
      ...problemResponse("This API key already holds SSE_MAX_STREAMS_PER_KEY streams; retry after one ends"),
      headers: z.object({ "retry-after": z.string().openapi({ description: "Seconds to wait", example: String(RETRY_AFTER_S) }) }),
    },
    503: problemResponse("The gateway is shutting down or cannot read alerts; retry later"),
  },
});

export function registerAlertStream(app: OpenAPIHono<AppEnv>, deps: { keyring: Keyring; hub: () => AlertHub; slots: StreamSlots }) {
  app.openAPIRegistry.registerPath(route);
  app.get("/v1/alerts/stream", requireScope(deps.keyring, "query"), async (c) => {
    const parsed = parseStreamParams(c.req.url, c.req.header("last-event-id"));
    if (parsed.errors) return problem(c, 400, parsed.errors.map((e) => `${e.path}: ${e.message}`).join("; "), { errors: parsed.errors });
    const { config, db } = c.get("services");
    const log = c.get("log");

    const apiKey = c.get("apiKey");
    const release = deps.slots.acquire(apiKey, config.sse.maxStreamsPerKey);
    if (!release) {
      sseRejected.inc({ reason: "per_key_limit" });
      const detail = `This API key already holds ${config.sse.maxStreamsPerKey} alert streams (SSE_MAX_STREAMS_PER_KEY); close one or retry later.`;
      return problem(c, 429, detail, {}, { "retry-after": String(RETRY_AFTER_S) });
    }

    let stream: SseStream;
    try {
      stream = await openAlertFeed({ hub: deps.hub(), sql: db.sql, log, heartbeatMs: config.sse.heartbeatMs, maxBufferBytes: config.sse.maxBufferBytes }, parsed.request);
    } catch (error) {
      release();
      log.warn("alert stream refused: the hub cannot subscribe it", { error });
      return problem(c, 503, "Alert streams are unavailable right now (shutting down, or the database does not answer); retry later.", {}, { "retry-after": String(RETRY_AFTER_S) });
    }
    // A stream is quiet between alerts: Bun's idle timeout must not cut it (heartbeats keep proxies happy).
    c.env?.timeout?.(c.req.raw, 0);
    void stream.ended.then((why) => {
      release();
      // Ended by us: a client that does not read its last frames is cut once the connection idles.
      if (why === "server") c.env?.timeout?.(c.req.raw, Math.min(config.httpIdleTimeoutS, FINAL_READ_TIMEOUT_S));
    });
    // The client went away: free the subscription now rather than at the next failed write.
    const signal = c.req.raw.signal;
    if (signal.aborted) stream.abandon();
    else signal.addEventListener("abort", () => stream.abandon(), { once: true });

    return new Response(stream.body, {
      headers: { "content-type": "text/event-stream; charset=utf-8", "cache-control": "no-cache", connection: "keep-alive", "x-accel-buffering": "no" },
    });
  });
}
