import type { z } from "zod";
import type { EventType } from "./define.ts";
import type { Envelope } from "./envelope.ts";
import { type EventTimePolicy, parseEventTime } from "./event-time.ts";

export interface RecordError {
  /** Dotted path of the offending field; "" for the record as a whole. */
  path: string;
  message: string;
}

export type ValidationResult = { ok: true; envelope: Envelope } | { ok: false; errors: RecordError[] };

const EVENT_ID = /^[A-Za-z0-9._:-]{1,128}$/;
const COMMON_FIELDS = new Set(["type", "event_id", "event_time"]);

export interface ValidationContext {
  types: ReadonlyMap<string, EventType>;
  /** The type named by the path (`POST /v1/events/{type}`), if any. */
  pathType?: string;
  now: number;
  policy: EventTimePolicy;
  newEventId: () => string;
}

function zodErrors(error: z.ZodError): RecordError[] {
  return error.issues.flatMap((issue) => {
    if (issue.code === "unrecognized_keys") return issue.keys.map((key) => ({ path: key, message: "unknown field" }));
    const path = issue.path.map(String).join(".");
    return [{ path, message: issue.message }];
  });
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** Validates one incoming record into the envelope that goes on the bus, or says what is wrong, field by field. */
export function validateRecord(raw: unknown, context: ValidationContext): ValidationResult {
  if (!isPlainObject(raw)) return { ok: false, errors: [{ path: "", message: `expected a JSON object, got ${raw === null ? "null" : Array.isArray(raw) ? "an array" : typeof raw}` }] };
  const errors: RecordError[] = [];

  const declared = Object.hasOwn(raw, "type") ? raw.type : undefined;
  if (context.pathType !== undefined && declared !== undefined && declared !== context.pathType) {
    errors.push({ path: "type", message: `"${String(declared)}" differs from the type in the path, "${context.pathType}"` });
  }
  const typeName = context.pathType ?? declared;
  if (typeName === undefined) return { ok: false, errors: [{ path: "type", message: "required" }] };
  const eventType = typeof typeName === "string" ? context.types.get(typeName) : undefined;
  if (!eventType) return { ok: false, errors: [{ path: "type", message: `unknown event type ${JSON.stringify(typeName)}; known: ${[...context.types.keys()].join(", ")}` }] };

  // Like every optional field, event_id is either a valid value or absent: null is refused, not read as "none".
  let eventId: string | undefined;
  if (Object.hasOwn(raw, "event_id")) {
    if (typeof raw.event_id === "string" && EVENT_ID.test(raw.event_id)) eventId = raw.event_id;
    else errors.push({ path: "event_id", message: `expected 1–128 characters of [A-Za-z0-9._:-]${raw.event_id === null ? "; omit the field (not null) to have one assigned" : ""}` });
  }

  const eventTime = parseEventTime(Object.hasOwn(raw, "event_time") ? raw.event_time : undefined, context.now, context.policy);
  if (!eventTime.ok) errors.push({ path: "event_time", message: eventTime.message });

  // Own keys only: a "__proto__" key from JSON.parse is an own property and is reported as unknown
  // (defined, as assigning it would set the prototype; the others are assigned, which keeps the object fast).
  const fields: Record<string, unknown> = {};
  for (const key of Object.keys(raw)) {
    if (COMMON_FIELDS.has(key)) continue;
    if (key === "__proto__") Object.defineProperty(fields, key, { value: raw[key], enumerable: true, writable: true, configurable: true });
    else fields[key] = raw[key];
  }
  const parsed = eventType.payload.safeParse(fields);
  if (!parsed.success) errors.push(...zodErrors(parsed.error));

  if (errors.length > 0 || !parsed.success || !eventTime.ok) return { ok: false, errors };
  const payload = parsed.data as Record<string, unknown>;
  return {
    ok: true,
    envelope: {
      type: eventType.type,
      key: String(payload[eventType.keyField]),
      event_id: eventId ?? context.newEventId(),
      event_time: eventTime.ms,
      ingest_time: context.now,
      payload,
    },
  };
}
