/**
 * On-disk framing of one record in a partition file:
 *   [u32 body length][u32 crc32(body)][body]
 *   body = [f64 timestamp][u32 key length][key][u32 headers length][headers JSON][u32 value length][value]
 * The CRC lets recovery tell a complete frame from one torn by a crash mid-write.
 */
export const FRAME_HEADER_BYTES = 8;

export interface StoredRecord {
  key: string;
  value: Uint8Array;
  headers: Record<string, string>;
  timestamp: number;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

export function encodeFrame(record: StoredRecord): Uint8Array {
  const key = encoder.encode(record.key);
  const headers = Object.keys(record.headers).length === 0 ? new Uint8Array(0) : encoder.encode(JSON.stringify(record.headers));
  const bodyLength = 8 + 4 + key.length + 4 + headers.length + 4 + record.value.length;
  const frame = new Uint8Array(FRAME_HEADER_BYTES + bodyLength);
  const view = new DataView(frame.buffer);
  let at = FRAME_HEADER_BYTES;
  view.setFloat64(at, record.timestamp, true);
  at += 8;
  for (const part of [key, headers, record.value]) {
    view.setUint32(at, part.length, true);
    frame.set(part, at + 4);
    at += 4 + part.length;
  }
  view.setUint32(0, bodyLength, true);
  view.setUint32(4, Bun.hash.crc32(frame.subarray(FRAME_HEADER_BYTES)), true);
  return frame;
}

/**
 * The length of the complete, intact frame at `at` in `bytes`, or null when the bytes there end
 * before the frame does or fail the checksum.
 */
export function frameLengthAt(bytes: Uint8Array, at: number): number | null {
  if (at + FRAME_HEADER_BYTES > bytes.length) return null;
  const view = new DataView(bytes.buffer, bytes.byteOffset + at, FRAME_HEADER_BYTES);
  const bodyLength = view.getUint32(0, true);
  const end = at + FRAME_HEADER_BYTES + bodyLength;
  if (bodyLength < 20 || end > bytes.length) return null;
  if (Bun.hash.crc32(bytes.subarray(at + FRAME_HEADER_BYTES, end)) !== view.getUint32(4, true)) return null;
  return FRAME_HEADER_BYTES + bodyLength;
}

export function decodeFrame(bytes: Uint8Array, at: number): StoredRecord {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let cursor = at + FRAME_HEADER_BYTES;
  const timestamp = view.getFloat64(cursor, true);
  cursor += 8;
  const parts: Uint8Array[] = [];
  for (let i = 0; i < 3; i++) {
    const length = view.getUint32(cursor, true);
    parts.push(bytes.subarray(cursor + 4, cursor + 4 + length));
    cursor += 4 + length;
  }
  const [key = new Uint8Array(0), headers = new Uint8Array(0), value = new Uint8Array(0)] = parts;
  return {
    timestamp,
    key: decoder.decode(key),
    headers: headers.length === 0 ? {} : (JSON.parse(decoder.decode(headers)) as Record<string, string>),
    // A copy: the caller may keep the record after the read buffer is reused.
    value: value.slice(),
  };
}
