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

/** The envelope, or undefined when the bytes are not one (a foreign producer, a bug): callers skip and count it. */
export function tryDecodeEnvelope(bytes: Uint8Array): Envelope | undefined {
  try {
    return decodeEnvelope(bytes);
  } catch {
    return undefined;
  }
}
