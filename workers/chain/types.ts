import type { Batch, DeliveredRecord } from "../../lib/bus/types.ts";
import { encodeEnvelope, type Envelope } from "../../lib/events/index.ts";
import { SOURCE_HEADER } from "../../lib/windows/source.ts";

/**
 * A record of events.raw as the chain hands it to an operator: decoded, checked for repeats and enriched
 * once per worker. `value` and `headers` are the raw record's; an operator that writes the enriched event
 * out takes its bytes from `enrichedValue` and its position header from `sourceHeaders`.
 */
export interface ChainRecord extends DeliveredRecord {
  /** The record as the bus delivered it: what a runner keeps until its checkpoint, without the decoded event. */
  raw: DeliveredRecord;
  /** The enriched event; absent when the operator must skip the record (a repeat, or bytes that are no envelope). */
  event?: Envelope;
  /**
   * The bytes are not an event envelope. Set for one operator of the chain only (the first), whose runner
   * sends the record to events.dead; the others see the record without `event` and skip it.
   */
  undecodable?: true;
  /** Enrichment changed the event (telemetry): its bytes differ from `value`. */
  enriched?: true;
  /** The enriched event's bytes once an operator asked for them (shared by the chain's operators). */
  encoded?: Uint8Array;
}

export interface ChainBatch extends Batch {
  records: ChainRecord[];
}

/** The enriched event's bytes: the raw bytes when enrichment changed nothing, else encoded on first use. */
export function enrichedValue(record: ChainRecord): Uint8Array {
  if (!record.enriched || !record.event) return record.value;
  record.encoded ??= encodeEnvelope(record.event);
  return record.encoded;
}

/** The record's headers plus `devpipe-source` (its own events.raw position), for what is written out of it. */
export const sourceHeaders = (record: ChainRecord): Record<string, string> => ({ ...record.headers, [SOURCE_HEADER]: `${record.partition}:${record.offset}` });
