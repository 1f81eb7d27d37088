import { open, type FileHandle } from "node:fs/promises";
import type { Logger } from "../../log.ts";
import { decodeFrame, encodeFrame, frameLengthAt, type StoredRecord } from "./record-codec.ts";

const SCAN_CHUNK_BYTES = 8 * 1024 * 1024;

/**
 * One partition: an append-only file of framed records and, in memory, where each record starts.
 * Appends are staged, then written and fsync'd together by `flush()` (group commit); readers only
 * ever see records that are on disk.
 */
export class PartitionLog {
  /** Byte position of each durable record; the index is the record's offset. */
  private readonly starts: number[] = [];
  private size = 0;
  private staged: Uint8Array[] = [];

  private constructor(
    private readonly file: FileHandle,
    readonly path: string,
  ) {}

  /** Opens (creating) the file, indexes its frames, and cuts off a frame torn by a crash. */
  static async open(path: string, logger: Logger): Promise<PartitionLog> {
    const file = await open(path, "a+");
    const log = new PartitionLog(file, path);
    const { size: fileSize } = await file.stat();
    let carry = new Uint8Array(0);
    let carryStart = 0;
    for (let position = 0; position < fileSize; ) {
      const chunk = new Uint8Array(Math.min(SCAN_CHUNK_BYTES, fileSize - position));
      const { bytesRead } = await file.read(chunk, 0, chunk.length, position);
      position += bytesRead;
      const bytes = new Uint8Array(carry.length + bytesRead);
      bytes.set(carry);
      bytes.set(chunk.subarray(0, bytesRead), carry.length);
      let at = 0;
      for (let length = frameLengthAt(bytes, at); length !== null; length = frameLengthAt(bytes, at)) {
        log.starts.push(carryStart + at);
        at += length;
      }
      carry = bytes.subarray(at);
      carryStart += at;
      if (bytesRead === 0) break;
    }
    log.size = carryStart;
    if (log.size < fileSize) {
      logger.warn("partition log had a torn tail; truncated", { path, kept_bytes: log.size, dropped_bytes: fileSize - log.size });
      await file.truncate(log.size);
    }
    return log;
  }

  /** The offset the next durable record will get. */
  end(): number {
    return this.starts.length;
  }

  hasStaged(): boolean {
    return this.staged.length > 0;
  }

  /** Stages records for the next flush; returns their index within it. */
  stage(record: StoredRecord): number {
    this.staged.push(encodeFrame(record));
    return this.staged.length - 1;
  }

  /**
   * Writes and fsyncs everything staged; returns the offset of the first staged record. On failure
   * the file is cut back so that none of the staged records is durable, and the error is thrown.
   */
  async flush(): Promise<number> {
    const frames = this.staged;
    this.staged = [];
    const firstOffset = this.starts.length;
    if (frames.length === 0) return firstOffset;
    const total = frames.reduce((sum, f) => sum + f.length, 0);
    const buffer = new Uint8Array(total);
    const starts: number[] = [];
    let at = 0;
    for (const frame of frames) {
      starts.push(this.size + at);
      buffer.set(frame, at);
      at += frame.length;
    }
    try {
      let written = 0;
      while (written < total) {
        const { bytesWritten } = await this.file.write(buffer, written, total - written);
        written += bytesWritten;
      }
      await this.file.datasync();
    } catch (error) {
      await this.file.truncate(this.size).catch(() => undefined);
      throw error;
    }
    this.size += total;
    for (const start of starts) this.starts.push(start);
    return firstOffset;
  }

  /** Durable records from `from`, at most `maxRecords` and about `maxBytes`. */
  async read(from: number, maxRecords: number, maxBytes = 4 * 1024 * 1024): Promise<{ offset: number; record: StoredRecord }[]> {
    const end = this.starts.length;
    if (from >= end) return [];
    const startByte = this.starts[from] ?? 0;
    let last = Math.min(end, from + maxRecords);
    // At least one record, however large; then stop where the byte budget runs out.
    while (last > from + 1 && (this.starts[last - 1] ?? 0) - startByte > maxBytes) last = from + Math.max(1, Math.floor((last - from) / 2));
    const endByte = last < end ? (this.starts[last] ?? this.size) : this.size;
    const bytes = new Uint8Array(endByte - startByte);
    const { bytesRead } = await this.file.read(bytes, 0, bytes.length, startByte);
    if (bytesRead !== bytes.length) throw new Error(`short read in ${this.path}: ${bytesRead} of ${bytes.length} bytes`);
    const out: { offset: number; record: StoredRecord }[] = [];
    for (let offset = from; offset < last; offset++) out.push({ offset, record: decodeFrame(bytes, (this.starts[offset] ?? 0) - startByte) });
    return out;
  }

  async close(): Promise<void> {
    await this.file.close();
  }
}
