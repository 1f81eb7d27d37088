import { z } from "@hono/zod-openapi";
import { alertRuleNames } from "../../../lib/alert-rules.ts";
import { MAX_TEXT } from "../../../lib/events/define.ts";
import { storableText } from "../../../lib/events/storable.ts";
import { INSTANT_RANGE, MAX_INSTANT_MS, MIN_INSTANT_MS } from "../../../lib/time.ts";
import { decodeCursor, encodeCursor, type ParamError, parseTimeParam, rawQueryPairs } from "../../query-params.ts";
import type { FeedRequest } from "../../streams/alert-feed.ts";

/** The parameters of GET /v1/alerts/stream, their documentation and their checks (all before the stream starts). */

const CURSOR_TEXT = /^[A-Za-z0-9_-]{1,64}$/;

const StreamKey = storableText(z.string().max(MAX_TEXT, `at most ${MAX_TEXT} characters`)).openapi({ description: "Only alerts of this device key", example: "42" });
const StreamRule = z.enum(alertRuleNames as [string, ...string[]], { error: `one of ${alertRuleNames.join(", ")}` }).openapi({ description: "Only alerts that matched this rule" });
const StreamCursorText = z.string().regex(CURSOR_TEXT).openapi({ description: "The `id:` of an alert (or final event) this stream sent", example: "eyJxIjo0Mn0" });
const StreamCursor = z.object({ q: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER) }).strict();

export const StreamQuery = z.object({
  key: StreamKey.optional(),
  rule: StreamRule.optional(),
  since: z
    .union([
      StreamCursorText,
      z.string().openapi({ format: "date-time", description: "A time, ISO-8601 with a zone", example: "2026-11-21T10:00:00Z" }),
      z.number().int().min(MIN_INSTANT_MS).max(MAX_INSTANT_MS).openapi({ description: "A time in epoch milliseconds", example: 1795255200000 }),
    ])
    .optional()
    .openapi({ description: `Replay first: after a cursor (like Last-Event-ID), or every alert with event_time from a time on (a time also narrows a replay resumed by Last-Event-ID); times from ${INSTANT_RANGE}` }),
});

export const StreamHeaders = z.object({
  "Last-Event-ID": z
    .string()
    .regex(/^(?:[A-Za-z0-9_-]{1,64})?$/)
    .optional()
    .openapi({ description: "Resume after this alert (what EventSource sends when it reconnects); takes precedence over a cursor in `since`. Empty: the same as absent.", example: "eyJxIjo0Mn0" }),
});

const StreamId = z.string().regex(CURSOR_TEXT).openapi({ description: "The cursor to resume after this event (Last-Event-ID)" });
const jsonText = (description: string) => z.string().openapi({ description });

/**
 * One server-sent event, as SSE clients parse the stream (comments such as `: heartbeat` are not events):
 * an alert, or the stream's final frame.
 */
export const StreamEventSchema = z
  .discriminatedUnion("event", [
    z.object({ event: z.literal("alert"), id: StreamId, data: jsonText("One alert as JSON (the `Alert` schema)") }).strict(),
    z
      .object({
        event: z.enum(["shutdown", "error"]),
        id: StreamId,
        data: jsonText('The final frame as JSON: `{"reason": "shutdown" | "slow_client" | "unavailable", "resume": "<cursor>", "detail": "…"}`; reconnect with Last-Event-ID set to `resume`'),
      })
      .strict(),
  ])
  .openapi("AlertStreamEvent", { description: "One event of the alert stream", example: { event: "alert", id: "eyJxIjo0Mn0", data: '{"alert_id":"…","rules":["speeding"]}' } });

const KNOWN = ["key", "rule", "since"] as const;
type Known = (typeof KNOWN)[number];
const isKnown = (name: string): name is Known => (KNOWN as readonly string[]).includes(name);

/**
 * The stream's own parameters from the raw query string, so that a percent-encoding that is not UTF-8
 * (how a lone surrogate arrives) is an error rather than left as is; empty means absent.
 */
function readQuery(search: string, errors: ParamError[]): Partial<Record<Known, string>> {
  const values: Partial<Record<Known, string>> = {};
  const seen = new Set<Known>();
  for (const { name, value } of rawQueryPairs(search)) {
    if (!isKnown(name)) continue;
    if (seen.has(name)) {
      errors.push({ path: name, message: "given more than once" });
      continue;
    }
    seen.add(name);
    if (value === undefined) errors.push({ path: name, message: "not valid percent-encoded UTF-8; text must be valid Unicode" });
    else if (value !== "") values[name] = value;
  }
  return values;
}

/** The sequence number in a cursor this stream issued: exactly as sent, so a mangled one is not mistaken for another. */
function cursorSeq(value: string): number | undefined {
  if (!CURSOR_TEXT.test(value)) return undefined;
  const cursor = decodeCursor(value, (position): position is z.infer<typeof StreamCursor> => StreamCursor.safeParse(position).success, []);
  return cursor && encodeCursor(cursor) === value ? cursor.q : undefined;
}

function sinceParam(value: string, errors: ParamError[]): { afterSeq?: number; sinceMs?: number } {
  const seq = cursorSeq(value);
  if (seq !== undefined) return { afterSeq: seq };
  const timeErrors: ParamError[] = [];
  const ms = parseTimeParam("since", value, timeErrors);
  if (ms === undefined) {
    errors.push({ path: "since", message: `a cursor from this stream's \`id:\` lines, or a time (${timeErrors[0]?.message ?? "ISO-8601 or epoch ms"})` });
    return {};
  }
  return { sinceMs: ms };
}

/** The stream request from the URL and Last-Event-ID header, or every parameter error at once. */
export function parseStreamParams(url: string, lastEventId: string | undefined): { request: FeedRequest; errors?: undefined } | { errors: ParamError[] } {
  const errors: ParamError[] = [];
  const query = readQuery(new URL(url).search, errors);
  const checked = StreamQuery.pick({ key: true, rule: true }).safeParse({ key: query.key, rule: query.rule });
  if (!checked.success) for (const issue of checked.error.issues) errors.push({ path: issue.path.join("."), message: issue.message });
  const since = query.since === undefined ? {} : sinceParam(query.since, errors);
  let afterSeq = since.afterSeq;
  if (lastEventId) {
    afterSeq = cursorSeq(lastEventId);
    if (afterSeq === undefined) errors.push({ path: "Last-Event-ID", message: "not an id this stream sent" });
  }
  if (errors.length > 0 || !checked.success) return { errors };
  const { key, rule } = checked.data;
  // A replay from a time starts at the beginning of the table, narrowed by event time.
  return { request: { key, rule, sinceMs: since.sinceMs, afterSeq: afterSeq ?? (since.sinceMs !== undefined ? 0 : undefined) } };
}
