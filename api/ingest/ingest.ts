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
  const now = deps.now?.() ?? Date.now();
  const errors: IngestError[] = [];
  const accepted: { key: string; value: Uint8Array; eventId: string; eventTime: number }[] = [];
  let rejected = 0;
  records.forEach((record, index) => {
    if (!record.ok) {
      rejected++;
      errors.push({ index, path: "", message: record.message });
      return;
    }
    const result = validateRecord(record.value, { types: deps.types, pathType, now, policy: deps.policy, newEventId: Bun.randomUUIDv7 });
    if (!result.ok) {
      rejected++;
      for (const error of result.errors) errors.push({ index, ...error });
      return;
    }
    const { envelope } = result;
    accepted.push({ key: envelope.key, value: encodeEnvelope(envelope), eventId: envelope.event_id, eventTime: envelope.event_time });
  });
  if (accepted.length > 0) {
    await deps.batcher.send(accepted.map((a) => ({ key: a.key, value: a.value, timestamp: a.eventTime })));
  }
  return { accepted: accepted.length, rejected, event_ids: accepted.map((a) => a.eventId), errors };
}
