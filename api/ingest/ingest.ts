import { ingestEvents } from "../../lib/metrics.ts";
import type { Batcher } from "../../lib/bus/batcher.ts";
import type { Config } from "../../lib/config.ts";
import { encodeEnvelope, type EventType, validateRecord } from "../../lib/events/index.ts";
import type { ParsedRecord } from "./parse-records.ts";

export interface IngestError {
  index: number;
  path: string;
  message: string;
}

export interface IngestResult {
  accepted: number;
  rejected: number;
  event_ids: string[];
  errors: IngestError[];
}

export interface IngestDeps {
  types: ReadonlyMap<string, EventType>;
  batcher: Batcher;
  policy: Config["ingest"]["eventTime"];
  now?: () => number;
}

/**
 * Validates each record and appends the valid ones to the bus in one go. Resolves once every accepted
 * record is durable; rejects (BusUnavailableError) when the bus did not confirm them, in which case
 * none of them counts as accepted.
 */
export async function ingest(records: ParsedRecord[], pathType: string | undefined, deps: IngestDeps): Promise<IngestResult> {
  // Nothing to accept is a client mistake (an empty array, an NDJSON body of blank lines), not a success.
  if (records.length === 0) return { accepted: 0, rejected: 0, event_ids: [], errors: [{ index: 0, path: "", message: "the body holds no records: send an event object, a non-empty array of them, or NDJSON lines" }] };
  const now = deps.now?.() ?? Date.now();
  const errors: IngestError[] = [];
  const accepted: { key: string; value: Uint8Array; eventId: string; eventTime: number; type: string }[] = [];
  let rejected = 0;
  const typeOf = (value: unknown) => pathType ?? (typeof value === "object" && value !== null && typeof (value as { type?: unknown }).type === "string" && deps.types.has((value as { type: string }).type) ? (value as { type: string }).type : "unknown");
  records.forEach((record, index) => {
    if (!record.ok) {
      ingestEvents.inc({ type: pathType ?? "unknown", status: "rejected" });
      rejected++;
      errors.push({ index, path: "", message: record.message });
      return;
    }
    const result = validateRecord(record.value, { types: deps.types, pathType, now, policy: deps.policy, newEventId: Bun.randomUUIDv7 });
    if (!result.ok) {
      ingestEvents.inc({ type: typeOf(record.value), status: "rejected" });
      rejected++;
      for (const error of result.errors) errors.push({ index, ...error });
      return;
    }
    const { envelope } = result;
    accepted.push({ key: envelope.key, value: encodeEnvelope(envelope), eventId: envelope.event_id, eventTime: envelope.event_time, type: envelope.type });
  });
  if (accepted.length > 0) {
    const count = (status: string) => {
      const byType = new Map<string, number>();
      for (const a of accepted) byType.set(a.type, (byType.get(a.type) ?? 0) + 1);
      for (const [type, n] of byType) ingestEvents.inc({ type, status }, n);
    };
    try {
      await deps.batcher.send(accepted.map((a) => ({ key: a.key, value: a.value, timestamp: a.eventTime })));
    } catch (error) {
      count("unavailable");
      throw error;
    }
    count("accepted");
  }
  return { accepted: accepted.length, rejected, event_ids: accepted.map((a) => a.eventId), errors };
}
