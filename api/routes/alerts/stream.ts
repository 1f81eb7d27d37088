import { createRoute, type OpenAPIHono, z } from "@hono/zod-openapi";
import { alertRuleNames } from "../../../lib/alert-rules.ts";
import { alertsAfter } from "../../../lib/store/alerts.ts";
import type { Keyring } from "../../auth/keyring.ts";
import type { AppEnv } from "../../env.ts";
import { requireScope } from "../../middleware/auth.ts";
import { problem, problemResponse } from "../../problem.ts";
import { decodeCursor, type ParamError, parseTimeParam } from "../../query-params.ts";
import { type AlertBatch, type AlertHub, concatFrames, type StreamedAlert, streamed } from "../../streams/alert-hub.ts";
import { SseStream } from "../../streams/sse-stream.ts";

const REPLAY_PAGE = 500;

const route = createRoute({
  method: "get",
  path: "/v1/alerts/stream",
  tags: ["alerts"],
  summary: "Live alerts (Server-Sent Events)",
  description: [
    "Each alert as `event: alert`, `id: <cursor>`, `data: <alert JSON>`, in commit order, optionally for one device key or rule.",
    "Reconnecting with `Last-Event-ID` (or `?since=<cursor>`) replays what was missed from Postgres, then continues live with no gap or repeat. `since` may also be a time (ISO-8601 or epoch ms): alerts with event_time from then on are replayed first.",
    "A comment heartbeat comes at least every 15 s. A client that does not read falls behind by at most SSE_MAX_BUFFER_BYTES and is then disconnected (reconnect with Last-Event-ID). On shutdown the stream ends with `event: shutdown`.",
  ].join(" "),
  security: [{ bearer: [] }],
  request: {
    query: z.object({
      key: z.string().optional().openapi({ description: "Device key", example: "42" }),
      rule: z.enum(alertRuleNames as [string, ...string[]]).optional(),
      since: z.string().optional().openapi({ description: "A cursor from an earlier `id:`, or a time" }),
    }),
    headers: z.object({ "last-event-id": z.string().optional() }),
  },
  responses: {
    200: { description: "An event stream", content: { "text/event-stream": { schema: z.string().openapi({ example: 'id: eyJxIjo0Mn0\nevent: alert\ndata: {"alert_id":"…","rules":["speeding"]}\n\n' }) } } },
    400: problemResponse("A parameter is invalid; `errors` names it"),
    401: problemResponse("Missing or unknown API key"),
    403: problemResponse("The key lacks the `query` scope"),
  },
});

type StreamCursor = { q: number };
const isCursor = (value: unknown): value is StreamCursor => typeof value === "object" && value !== null && Number.isSafeInteger((value as StreamCursor).q) && (value as StreamCursor).q >= 0;

/** Where a reconnecting client resumes: after a cursor we issued, or from a time. */
function parseResume(lastEventId: string | undefined, since: string | undefined, errors: ParamError[]): { afterSeq?: number; fromTime?: number } {
  if (lastEventId) {
    const cursor = decodeCursor(lastEventId, isCursor, []);
    if (cursor) return { afterSeq: cursor.q };
    errors.push({ path: "Last-Event-ID", message: "not an id this stream sent" });
    return {};
  }
  if (!since) return {};
  const cursor = decodeCursor(since, isCursor, []);
  if (cursor) return { afterSeq: cursor.q };
  const time = parseTimeParam("since", since, []);
  if (time !== undefined) return { afterSeq: 0, fromTime: time };
  errors.push({ path: "since", message: "a cursor from this stream's `id:` lines, or a time (ISO-8601 or epoch ms)" });
  return {};
}

export function registerAlertStream(app: OpenAPIHono<AppEnv>, deps: { keyring: Keyring; hub: () => AlertHub }) {
  app.openAPIRegistry.registerPath(route);
  app.get("/v1/alerts/stream", requireScope(deps.keyring, "query"), async (c) => {
    const query = c.req.query();
    const errors: ParamError[] = [];
    if (query.rule !== undefined && !alertRuleNames.includes(query.rule)) errors.push({ path: "rule", message: `one of ${alertRuleNames.join(", ")}` });
    const resume = parseResume(c.req.header("last-event-id"), query.since, errors);
    if (errors.length > 0) return problem(c, 400, errors.map((e) => `${e.path}: ${e.message}`).join("; "), { errors });
    const { config, db } = c.get("services");
    const log = c.get("log");
    const filter = { key: query.key || undefined, rule: query.rule || undefined };

    // A stream is quiet between alerts: Bun's idle timeout must not cut it (heartbeats keep proxies happy).
    c.env?.timeout?.(c.req.raw, 0);

    let lastSent = resume.afterSeq ?? -1;
    let held: AlertBatch[] | undefined = [];
    let heartbeat: Timer | undefined;
    let unsubscribe = () => {};
    const stream = new SseStream(config.sse.maxBufferBytes, (why) => {
      clearInterval(heartbeat);
      unsubscribe();
      if (why === "overflow") log.warn("alert stream dropped: the client reads too slowly", { buffer_bytes: config.sse.maxBufferBytes });
    });
    const send = (batch: AlertBatch) => {
      const last = batch.alerts[batch.alerts.length - 1];
      if (!last || last.seq <= lastSent) return;
      // The shared buffer as is, unless part of it was already sent (only at the replay/live seam).
      const first = batch.alerts[0];
      if (first && first.seq > lastSent) stream.frame(batch.frames);
      else stream.frame(concatFrames(batch.alerts.filter((a) => a.seq > lastSent)));
      lastSent = last.seq;
    };
    const sendAll = (alerts: StreamedAlert[]) => send({ alerts, frames: concatFrames(alerts) });

    const subscription = await deps.hub().subscribe({
      ...filter,
      // Until the replay has caught up, live alerts wait here; then they go out, skipping what the replay sent.
      deliver: (batch) => (held ? held.push(batch) : send(batch)),
      end: () => {
        stream.event("shutdown", undefined, JSON.stringify({ reason: "the gateway is shutting down; reconnect with Last-Event-ID" }));
        stream.close();
      },
    });
    unsubscribe = subscription.unsubscribe;
    // The client went away: free the subscription now rather than at the next failed write.
    c.req.raw.signal.addEventListener("abort", () => stream.abandon(), { once: true });
    stream.comment("connected");
    heartbeat = setInterval(() => stream.comment("heartbeat"), config.sse.heartbeatMs);

    void (async () => {
      try {
        if (resume.afterSeq !== undefined) {
          let after = resume.afterSeq;
          while (!stream.isClosed) {
            const page = streamed((await alertsAfter(db.sql, { afterSeq: after, ...filter, since: resume.fromTime, limit: REPLAY_PAGE })).filter((a) => a.seq <= subscription.from));
            if (page.length > 0) sendAll(page);
            const last = page[page.length - 1];
            if (!last || page.length < REPLAY_PAGE) break;
            after = last.seq;
            await stream.drained();
          }
        }
        const waiting = held ?? [];
        held = undefined;
        for (const batch of waiting) send(batch);
      } catch (error) {
        log.error("alert stream replay failed", { error });
        stream.close();
      }
    })();

    return new Response(stream.body, {
      headers: { "content-type": "text/event-stream; charset=utf-8", "cache-control": "no-cache", connection: "keep-alive", "x-accel-buffering": "no" },
    });
  });
}
