/**
 * The sparse offset index of one segment: an entry every INDEX_INTERVAL_BYTES of log, mapping a record's
 * offset relative to the segment's base to the byte position of its frame (as Kafka's `.index`).
 * On disk: pairs of little-endian float64 `[relative offset][byte position]`, 16 bytes an entry, in
 * increasing order of both. The first record of a segment (relative offset 0, position 0) is implicit.
 */
export const INDEX_INTERVAL_BYTES = 4096;
export const INDEX_ENTRY_BYTES = 16;

export class OffsetIndex {
  private rel: Float64Array;
  private pos: Float64Array;
  length = 0;

  constructor(capacity = 16) {
    this.rel = new Float64Array(capacity);
    this.pos = new Float64Array(capacity);
  }

  push(relative: number, position: number) {
    if (this.length === this.rel.length) {
      const rel = new Float64Array(this.rel.length * 2);
      const pos = new Float64Array(this.pos.length * 2);
      rel.set(this.rel);
      pos.set(this.pos);
      this.rel = rel;
      this.pos = pos;
    }
    this.rel[this.length] = relative;
    this.pos[this.length] = position;
    this.length++;
  }

  /** The last indexed record at or before relative offset `target` (the segment's first record if none). */
  floor(target: number): { relative: number; position: number } {
    let lo = 0;
    let hi = this.length - 1;
    let found = -1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if ((this.rel[mid] ?? 0) <= target) {
        found = mid;
        lo = mid + 1;
      } else hi = mid - 1;
    }
    return found < 0 ? { relative: 0, position: 0 } : { relative: this.rel[found] ?? 0, position: this.pos[found] ?? 0 };
  }

  /** Bytes held in memory (for the memory-per-partition figure). */
  memoryBytes(): number {
    return this.rel.byteLength + this.pos.byteLength;
  }

  encode(): Uint8Array {
    const bytes = new Uint8Array(this.length * INDEX_ENTRY_BYTES);
    const view = new DataView(bytes.buffer);
    for (let i = 0; i < this.length; i++) {
      view.setFloat64(i * INDEX_ENTRY_BYTES, this.rel[i] ?? 0, true);
      view.setFloat64(i * INDEX_ENTRY_BYTES + 8, this.pos[i] ?? 0, true);
    }
    return bytes;
  }

  /**
   * Reads an index file's bytes, or null when they cannot be the index of a segment of `records`
   * records and `bytes` bytes (torn, out of order, pointing past the end): the caller rebuilds it.
   */
  static decode(data: Uint8Array, records: number, bytes: number): OffsetIndex | null {
    if (data.length % INDEX_ENTRY_BYTES !== 0) return null;
    const count = data.length / INDEX_ENTRY_BYTES;
    const index = new OffsetIndex(Math.max(1, count));
    const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
    let lastRel = 0;
    let lastPos = 0;
    for (let i = 0; i < count; i++) {
      const rel = view.getFloat64(i * INDEX_ENTRY_BYTES, true);
      const pos = view.getFloat64(i * INDEX_ENTRY_BYTES + 8, true);
      if (!Number.isSafeInteger(rel) || !Number.isSafeInteger(pos) || rel <= lastRel || pos <= lastPos || rel >= records || pos >= bytes) return null;
      index.push(rel, pos);
      lastRel = rel;
      lastPos = pos;
    }
    return index;
  }
}
