import { z } from "zod";

/** An alert as stored, streamed and listed (ARCHITECTURE.md, Alerts). */
export const AlertSchema = z.object({
  alert_id: z.string(),
  event_id: z.string(),
  type: z.string(),
  key: z.string(),
  /** ISO-8601, UTC. */
  event_time: z.string(),
  rules: z.array(z.string()),
  event: z.record(z.string(), z.unknown()),
});
export type Alert = z.infer<typeof AlertSchema>;

/**
 * The alert id is a UUID derived from the event id (SHA-256, version/variant bits set), so reprocessing
 * an event after a crash yields the same alert, which storage then ignores.
 */
export function alertIdFor(eventId: string): string {
  const bytes = new Bun.CryptoHasher("sha256").update(`alert:${eventId}`).digest().subarray(0, 16);
  bytes[6] = ((bytes[6] ?? 0) & 0x0f) | 0x80;
  bytes[8] = ((bytes[8] ?? 0) & 0x3f) | 0x80;
  const hex = Buffer.from(bytes).toString("hex");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}
