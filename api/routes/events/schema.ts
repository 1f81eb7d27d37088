import { z } from "@hono/zod-openapi";
import { eventTypes } from "../../../lib/events/index.ts";
import { MAX_INSTANT_MS, MIN_INSTANT_MS } from "../../../lib/time.ts";

export const IngestErrorSchema = z
  .object({
    index: z.number().int().openapi({ description: "Position of the record (0-based) in the array or NDJSON body", example: 3 }),
    path: z.string().openapi({ description: "Field at fault; empty for the record as a whole", example: "speed" }),
    message: z.string().openapi({ example: "Too big: expected number to be <=300" }),
  })
  .openapi("IngestError");

export const IngestResultSchema = z
  .object({
    accepted: z.number().int().openapi({ example: 2 }),
    rejected: z.number().int().openapi({ example: 1 }),
    event_ids: z.array(z.string()).openapi({ description: "Ids of the accepted records, in body order", example: ["0193a5c2-7f3e-7b4a-9c1d-2e5f6a7b8c9d", "car42-000017"] }),
    errors: z.array(IngestErrorSchema),
  })
  .openapi("IngestResult");

const EventTimeSchema = z
  .union([z.string().openapi({ format: "date-time" }), z.number().int().min(MIN_INSTANT_MS).max(MAX_INSTANT_MS)])
  .openapi({ description: "ISO-8601 with a zone, or epoch milliseconds. At most 1 h ahead of the server clock and 365 days behind it (configurable).", example: "2026-11-21T10:15:30.250Z" }, { unionPreferredType: "oneOf" });

const EventIdSchema = z
  .string()
  .regex(/^[A-Za-z0-9._:-]{1,128}$/)
  .optional()
  .openapi({ description: "Client idempotency key; assigned (UUIDv7) when the field is absent (null is refused). A repeated id is stored and counted once.", example: "car42-000017" });

const schemaName = (type: string) => type.split(/[._]/).map((part) => part.charAt(0).toUpperCase() + part.slice(1)).join("");

/** One OpenAPI schema per event type: `type`, `event_id`, `event_time` and the type's own fields. */
export const EventSchemas = [...eventTypes.values()].map((t) =>
  z
    .strictObject({ type: z.literal(t.type), event_id: EventIdSchema, event_time: EventTimeSchema, ...t.fields })
    .openapi(schemaName(t.type), { description: `${t.description} Device key: \`${t.keyField}\`.`, example: { type: t.type, ...t.example } }),
);

/** The same without `type`, for `POST /v1/events/{type}`, by type. */
export const typedEventSchemas = new Map(
  [...eventTypes.values()].map((t) => [
    t.type,
    z.strictObject({ type: z.literal(t.type).optional(), event_id: EventIdSchema, event_time: EventTimeSchema, ...t.fields }).openapi(`${schemaName(t.type)}Fields`, { example: t.example }),
  ]),
);
