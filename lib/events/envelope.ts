import { z } from "zod";

/** What the gateway appends to `events.raw`: the validated event, normalised. */
export const EnvelopeSchema = z.object({
  type: z.string(),
  /** The device key: the value of the type's key field, as a string; also the bus record key. */
  key: z.string(),
  event_id: z.string(),
  /** Milliseconds since the epoch, UTC. */
  event_time: z.number().int(),
  ingest_time: z.number().int(),
  /** The type's own fields, validated. */
  payload: z.record(z.string(), z.unknown()),
});
export type Envelope = z.infer<typeof EnvelopeSchema>;

const encoder = new TextEncoder();
const decoder = new TextDecoder();

export const encodeEnvelope = (envelope: Envelope): Uint8Array => encoder.encode(JSON.stringify(envelope));
export const decodeEnvelope = (bytes: Uint8Array): Envelope => EnvelopeSchema.parse(JSON.parse(decoder.decode(bytes)));

/**
 * The envelope of a record the gateway wrote (events.raw, events.enriched), checked for its shape only:
 * the gateway validated the event before appending it, so the stream workers trust the payload and skip
 * the zod parse (a third of a worker's time per record). Undefined when the bytes are not an envelope.
 */
export function decodeTrustedEnvelope(bytes: Uint8Array): Envelope | undefined {
  let parsed: unknown;
  try {
    parsed = JSON.parse(decoder.decode(bytes));
  } catch {
    return undefined;
  }
  if (typeof parsed !== "object" || parsed === null) return undefined;
  const e = parsed as Record<string, unknown>;
  if (typeof e.type !== "string" || typeof e.key !== "string" || typeof e.event_id !== "string") return undefined;
  if (!Number.isInteger(e.event_time) || !Number.isInteger(e.ingest_time)) return undefined;
  if (typeof e.payload !== "object" || e.payload === null || Array.isArray(e.payload)) return undefined;
  return parsed as Envelope;
}
