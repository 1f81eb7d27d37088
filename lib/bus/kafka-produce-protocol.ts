import type { OutgoingRecord } from "./types.ts";

/**
 * Messages between the Kafka bus and its producer thread. Records cross the thread boundary packed
 * into a few transferable arrays (one buffer for all values) rather than as objects to clone.
 */
export interface PackedRecords {
  keys: string[];
  partitions: Int32Array;
  timestamps: Float64Array;
  /** End offset of each value in `values`; value i spans [ends[i-1] ?? 0, ends[i]). */
  ends: Uint32Array;
  values: ArrayBuffer;
  /** Only when some record has headers. */
  headers?: (Record<string, string> | undefined)[];
}

export type ToProducer =
  | { kind: "start"; brokers: string[]; clientId: string }
  /** `deadline` (ms since the epoch): past it the caller has given up, so the records are not sent. */
  | { kind: "produce"; id: number; topic: string; records: PackedRecords; deadline?: number }
  | { kind: "close"; id: number };

export type FromProducer =
  | { kind: "started" }
  | { kind: "produced"; id: number; baseOffsets: [partition: number, baseOffset: number][] }
  | { kind: "failed"; id: number; message: string; retriable: boolean }
  | { kind: "closed"; id: number }
  | { kind: "log"; level: "error" | "warn" | "info" | "debug"; message: string; fields: Record<string, unknown> };

export function packRecords(records: OutgoingRecord[], partitions: number[], now: number): { packed: PackedRecords; transfer: ArrayBuffer[] } {
  const total = records.reduce((sum, r) => sum + r.value.byteLength, 0);
  const values = new Uint8Array(total);
  const ends = new Uint32Array(records.length);
  const timestamps = new Float64Array(records.length);
  let at = 0;
  let anyHeaders = false;
  records.forEach((record, i) => {
    values.set(record.value, at);
    at += record.value.byteLength;
    ends[i] = at;
    timestamps[i] = record.timestamp ?? now;
    if (record.headers) anyHeaders = true;
  });
  const packed: PackedRecords = {
    keys: records.map((r) => r.key),
    partitions: Int32Array.from(partitions),
    timestamps,
    ends,
    values: values.buffer,
    ...(anyHeaders ? { headers: records.map((r) => r.headers) } : {}),
  };
  return { packed, transfer: [packed.values, packed.ends.buffer as ArrayBuffer, packed.timestamps.buffer as ArrayBuffer, packed.partitions.buffer as ArrayBuffer] };
}
