import { type FileHandle, mkdir, open, readdir, readFile, rename, rm, stat } from "node:fs/promises";
import { join } from "node:path";
import type { Logger } from "../../log.ts";
import { decodeFrame, encodeFrame, FRAME_HEADER_BYTES, frameLengthAt, type StoredRecord } from "./record-codec.ts";
import { INDEX_INTERVAL_BYTES, OffsetIndex } from "./segment-index.ts";
import { writeAtomically } from "./write-atomically.ts";

const SCAN_CHUNK_BYTES = 8 * 1024 * 1024;
const READ_CHUNK_BYTES = 256 * 1024;
/** Loaded indexes of closed segments kept per partition (readers move forward: one or two are in use). */
const INDEX_CACHE_SEGMENTS = 2;
/** Where recent reads ended (offset → segment and byte), so a sequential reader never rescans. */
const READ_CURSORS = 32;
const SEGMENT_FILE = /^(\d{20})\.log$/;

export const DEFAULT_SEGMENT_BYTES = 64 * 1024 * 1024;
export const DEFAULT_SEGMENT_MS = 3_600_000;

/** A segment file's name: its base offset, zero-padded to 20 digits (as Kafka names them). */
export const segmentName = (base: number) => String(base).padStart(20, "0");

/** What is known of one segment without reading its records. */
export interface SegmentInfo {
  /** Offset of its first record. */
  readonly base: number;
  /** Offset after its last record (the next segment's base). */
  next: number;
  /** Durable bytes of log. */
  bytes: number;
  /** Largest record timestamp in it (ms), null while empty. */
  maxTimestamp: number | null;
  /** Wall-clock time of the last append into it (ms): what time-based retention goes by. */
  lastAppendMs: number;
  /** Wall-clock time of the first append into it (ms): what `segmentMs` rolling goes by. */
  createdMs: number;
}

/** `<base>.meta`, written when a segment is rolled (closed): it is never appended to again. */
interface SegmentMeta {
  base: number;
  next: number;
  bytes: number;
  max_timestamp: number | null;
  last_append_ms: number;
  created_ms: number;
}

export interface PartitionLogOptions {
  /** Roll the active segment when a flush would take it past this many bytes. */
  segmentBytes?: number;
  /** Roll the active segment when its first record is this old. */
  segmentMs?: number;
  /** The wall clock (tests move it). */
  clock?: () => number;
  /** A partition file of the single-file layout (`<p>.log`), adopted as segment 0 when the directory has no segment. */
  legacyFile?: string;
}

interface ScanResult {
  records: number;
  validBytes: number;
  maxTimestamp: number | null;
  index: OffsetIndex;
}

/** Walks the frames of a segment file from the start, checking each one's CRC, building its sparse index. */
async function scanSegment(file: FileHandle, fileSize: number): Promise<ScanResult> {
  const index = new OffsetIndex();
  let records = 0;
  let maxTimestamp: number | null = null;
  let lastIndexed = 0;
  let carry = new Uint8Array(0);
  let carryStart = 0;
  for (let position = 0; position < fileSize; ) {
    const chunk = new Uint8Array(Math.min(SCAN_CHUNK_BYTES, fileSize - position));
    const { bytesRead } = await file.read(chunk, 0, chunk.length, position);
    if (bytesRead === 0) break;
    position += bytesRead;
    const bytes = new Uint8Array(carry.length + bytesRead);
    bytes.set(carry);
    bytes.set(chunk.subarray(0, bytesRead), carry.length);
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    let at = 0;
    for (let length = frameLengthAt(bytes, at); length !== null; length = frameLengthAt(bytes, at)) {
      const start = carryStart + at;
      if (records > 0 && start - lastIndexed >= INDEX_INTERVAL_BYTES) {
        index.push(records, start);
        lastIndexed = start;
      }
      const timestamp = view.getFloat64(at + FRAME_HEADER_BYTES, true);
      if (maxTimestamp === null || timestamp > maxTimestamp) maxTimestamp = timestamp;
      records++;
      at += length;
    }
    // Keep only the unfinished frame: a chunk boundary may cut one in two.
    carry = bytes.slice(at);
    carryStart += at;
  }
  return { records, validBytes: carryStart, maxTimestamp, index };
}


async function syncDir(dir: string) {
  const handle = await open(dir, "r");
  try {
    await handle.sync();
  } catch {
    // Some file systems refuse fsync on a directory; the rename/create is then as durable as they make it.
  } finally {
    await handle.close();
  }
}

const isMissing = (error: unknown) => (error as { code?: string } | null)?.code === "ENOENT";

/**
 * One partition: a directory of segment files named by base offset (`00000000000000000000.log`, …),
 * Kafka style. Only the last (active) segment is appended to; it is rolled when a flush would take it
 * past `segmentBytes` or when it is `segmentMs` old. A closed segment has a sparse `.index` and a small
 * `.meta` (next offset, bytes, timestamps), so opening scans and CRC-checks only the active segment.
 * Offsets are global and monotonic; deleting the oldest segment (retention) advances `start()`.
 *
 * Appends are staged, then written and fsync'd together by `flush()` (group commit); readers only
 * ever see records that are on disk. Memory: a few numbers per segment, the active segment's sparse
 * index (one entry per 4 KiB), a small cache of closed segments' indexes and of read cursors.
 */
export class PartitionLog {
  private readonly segments: SegmentInfo[] = [];
  private activeIndex = new OffsetIndex();
  private lastIndexed = 0;
  private staged: Uint8Array[] = [];
  private stagedMaxTimestamp: number | null = null;
  private totalBytes = 0;
  private readonly indexCache = new Map<number, OffsetIndex>();
  private readonly cursors = new Map<number, { base: number; position: number }>();
  private readonly segmentBytes: number;
  private readonly segmentMs: number;
  private readonly clock: () => number;

  private constructor(
    private activeFile: FileHandle,
    readonly dir: string,
    private readonly logger: Logger,
    options: PartitionLogOptions,
  ) {
    this.segmentBytes = options.segmentBytes ?? DEFAULT_SEGMENT_BYTES;
    this.segmentMs = options.segmentMs ?? DEFAULT_SEGMENT_MS;
    this.clock = options.clock ?? Date.now;
  }

  private path(base: number, extension: "log" | "index" | "meta") {
    return join(this.dir, `${segmentName(base)}.${extension}`);
  }

  private get active(): SegmentInfo {
    return this.segments[this.segments.length - 1] as SegmentInfo;
  }

  /**
   * Opens (creating) the partition directory: adopts a single-file log of the old layout, trusts the
   * closed segments' metadata (rebuilding what is missing or does not match), scans the active segment
   * and cuts off a frame torn by a crash.
   */
  static async open(dir: string, logger: Logger, options: PartitionLogOptions = {}): Promise<PartitionLog> {
    await mkdir(dir, { recursive: true });
    let names = await readdir(dir);
    const legacy = options.legacyFile ? await stat(options.legacyFile).catch(() => undefined) : undefined;
    if (legacy?.isFile() && names.some((n) => SEGMENT_FILE.test(n))) {
      logger.warn("a single-file partition log lies beside a segmented one; it is ignored", { legacy: options.legacyFile, dir });
    } else if (legacy?.isFile() && options.legacyFile) {
      await rename(options.legacyFile, join(dir, `${segmentName(0)}.log`));
      await syncDir(dir);
      logger.info("adopted a single-file partition log as its first segment", { from: options.legacyFile, dir, bytes: legacy.size });
      names = await readdir(dir);
    }
    const bases = names
      .map((n) => SEGMENT_FILE.exec(n)?.[1])
      .filter((b): b is string => b !== undefined)
      .map(Number)
      .sort((a, b) => a - b);
    const known = new Set(bases.map(segmentName));
    // Leftovers of an interrupted write (temporary files) or deletion (an index or meta without its log).
    for (const name of names) {
      const stem = name.split(".")[0] ?? "";
      if (name.endsWith(".tmp") || ((name.endsWith(".index") || name.endsWith(".meta")) && !known.has(stem))) await rm(join(dir, name), { force: true });
    }
    if (bases.length === 0) bases.push(0);

    const activeBase = bases[bases.length - 1] as number;
    const activeFile = await open(join(dir, `${segmentName(activeBase)}.log`), "a+");
    const log = new PartitionLog(activeFile, dir, logger, options);
    try {
      for (let i = 0; i < bases.length - 1; i++) {
        const base = bases[i] as number;
        const segment = await log.openClosed(base, bases[i + 1] as number, names.includes(`${segmentName(base)}.index`));
        log.segments.push(segment);
        log.totalBytes += segment.bytes;
      }
      await log.openActive(activeBase);
    } catch (error) {
      await activeFile.close();
      throw error;
    }
    return log;
  }

  /** A closed segment from its `.meta`; scanned (and its index and meta rewritten) only when they are missing or wrong. */
  private async openClosed(base: number, followingBase: number, hasIndex: boolean): Promise<SegmentInfo> {
    const info = await stat(this.path(base, "log"));
    const meta = await readFile(this.path(base, "meta"), "utf8")
      .then((text) => JSON.parse(text) as SegmentMeta)
      .catch(() => undefined);
    const valid =
      meta !== undefined &&
      meta.base === base &&
      meta.bytes === info.size &&
      Number.isSafeInteger(meta.next) &&
      meta.next >= base &&
      meta.next <= followingBase &&
      (meta.next > base) === (meta.bytes > 0) &&
      typeof meta.last_append_ms === "number";
    if (valid && hasIndex) {
      return { base, next: meta.next, bytes: meta.bytes, maxTimestamp: meta.max_timestamp, lastAppendMs: meta.last_append_ms, createdMs: meta.created_ms ?? meta.last_append_ms };
    }
    this.logger.warn("rebuilding a closed segment's index and metadata", { dir: this.dir, segment: segmentName(base), reason: valid ? "index missing" : "metadata missing or not matching the log" });
    const file = await open(this.path(base, "log"), "r+");
    try {
      const scan = await scanSegment(file, info.size);
      if (scan.validBytes < info.size) {
        this.logger.warn("closed segment had a torn tail; truncated", { dir: this.dir, segment: segmentName(base), kept_bytes: scan.validBytes, dropped_bytes: info.size - scan.validBytes });
        await file.truncate(scan.validBytes);
        await file.datasync();
      }
      const segment: SegmentInfo = {
        base,
        next: Math.min(base + scan.records, followingBase),
        bytes: scan.validBytes,
        maxTimestamp: scan.maxTimestamp,
        lastAppendMs: valid ? (meta as SegmentMeta).last_append_ms : info.mtimeMs,
        createdMs: valid ? (meta as SegmentMeta).created_ms : info.mtimeMs,
      };
      await this.writeClosedFiles(segment, scan.index);
      this.cacheIndex(base, scan.index);
      return segment;
    } finally {
      await file.close();
    }
  }

  /** Scans the active segment: the only one whose tail a crash can have torn. */
  private async openActive(base: number) {
    const { size, mtimeMs, birthtimeMs } = await this.activeFile.stat();
    const scan = await scanSegment(this.activeFile, size);
    if (scan.validBytes < size) {
      this.logger.warn("partition log had a torn tail; truncated", { path: this.path(base, "log"), kept_bytes: scan.validBytes, dropped_bytes: size - scan.validBytes });
      await this.activeFile.truncate(scan.validBytes);
    }
    const lastAppendMs = scan.records > 0 ? mtimeMs : this.clock();
    this.segments.push({
      base,
      next: base + scan.records,
      bytes: scan.validBytes,
      maxTimestamp: scan.maxTimestamp,
      lastAppendMs,
      createdMs: birthtimeMs > 0 ? Math.min(birthtimeMs, lastAppendMs) : lastAppendMs,
    });
    this.totalBytes += scan.validBytes;
    this.activeIndex = scan.index;
    this.lastIndexed = scan.index.length > 0 ? scan.index.floor(Number.MAX_SAFE_INTEGER).position : 0;
  }

  private async writeClosedFiles(segment: SegmentInfo, index: OffsetIndex) {
    await writeAtomically(this.path(segment.base, "index"), index.encode());
    const meta: SegmentMeta = {
      base: segment.base,
      next: segment.next,
      bytes: segment.bytes,
      max_timestamp: segment.maxTimestamp,
      last_append_ms: segment.lastAppendMs,
      created_ms: segment.createdMs,
    };
    await writeAtomically(this.path(segment.base, "meta"), JSON.stringify(meta));
  }

  private cacheIndex(base: number, index: OffsetIndex) {
    this.indexCache.delete(base);
    this.indexCache.set(base, index);
    while (this.indexCache.size > INDEX_CACHE_SEGMENTS) this.indexCache.delete(this.indexCache.keys().next().value as number);
  }

  /** The sparse index of a segment: the live one of the active segment, else from its `.index` (rebuilt if unreadable). */
  private async indexOf(segment: SegmentInfo): Promise<OffsetIndex> {
    if (segment === this.active) return this.activeIndex;
    const cached = this.indexCache.get(segment.base);
    if (cached) {
      this.cacheIndex(segment.base, cached);
      return cached;
    }
    const data = await readFile(this.path(segment.base, "index")).catch((error: unknown) => {
      if (isMissing(error)) return undefined;
      throw error;
    });
    let index = data ? OffsetIndex.decode(new Uint8Array(data), segment.next - segment.base, segment.bytes) : null;
    if (!index) {
      this.logger.warn("segment index missing or corrupt; rebuilding it", { dir: this.dir, segment: segmentName(segment.base) });
      const file = await open(this.path(segment.base, "log"), "r");
      try {
        index = (await scanSegment(file, segment.bytes)).index;
      } finally {
        await file.close();
      }
      await writeAtomically(this.path(segment.base, "index"), index.encode());
    }
    this.cacheIndex(segment.base, index);
    return index;
  }

  /** The offset of the oldest record still kept (the log start offset). */
  start(): number {
    return (this.segments[0] as SegmentInfo).base;
  }

  /** The offset the next durable record will get. */
  end(): number {
    return this.active.next;
  }

  /** Durable bytes of log over all segments. */
  bytes(): number {
    return this.totalBytes;
  }

  segmentCount(): number {
    return this.segments.length;
  }

  /** The segments no longer appended to, oldest first: what retention may delete (from the front). */
  closedSegments(): readonly SegmentInfo[] {
    return this.segments.slice(0, -1);
  }

  /** Bytes this partition holds in memory for its indexes (the active one and the cache). */
  indexMemoryBytes(): number {
    let total = this.activeIndex.memoryBytes();
    for (const index of this.indexCache.values()) total += index.memoryBytes();
    return total;
  }

  hasStaged(): boolean {
    return this.staged.length > 0;
  }

  /** Stages records for the next flush; returns their index within it. */
  stage(record: StoredRecord): number {
    this.staged.push(encodeFrame(record));
    if (this.stagedMaxTimestamp === null || record.timestamp > this.stagedMaxTimestamp) this.stagedMaxTimestamp = record.timestamp;
    return this.staged.length - 1;
  }

  /** Bytes staged for the next flush. */
  stagedBytes(): number {
    return this.staged.reduce((sum, f) => sum + f.length, 0);
  }

  /**
   * Closes the active segment (its index and meta go to disk) and starts a new one at the next offset.
   * Readers open their own handles, so closing the old writer does not disturb a read in flight.
   */
  private async roll() {
    const old = this.active;
    await this.writeClosedFiles(old, this.activeIndex);
    const next = await open(this.path(old.next, "log"), "a+");
    try {
      await syncDir(this.dir);
    } catch (error) {
      await next.close();
      throw error;
    }
    const previous = this.activeFile;
    this.activeFile = next;
    this.cacheIndex(old.base, this.activeIndex);
    const now = this.clock();
    this.segments.push({ base: old.next, next: old.next, bytes: 0, maxTimestamp: null, lastAppendMs: now, createdMs: now });
    this.activeIndex = new OffsetIndex();
    this.lastIndexed = 0;
    await previous.close();
    this.logger.debug("rolled a segment", { dir: this.dir, closed: segmentName(old.base), records: old.next - old.base, bytes: old.bytes });
  }

  /**
   * Writes and fsyncs everything staged; returns the offset of the first staged record. On failure
   * the file is cut back so that none of the staged records is durable, and the error is thrown.
   */
  async flush(): Promise<number> {
    const frames = this.staged;
    const maxTimestamp = this.stagedMaxTimestamp;
    this.staged = [];
    this.stagedMaxTimestamp = null;
    const firstOffset = this.active.next;
    if (frames.length === 0) return firstOffset;
    const total = frames.reduce((sum, f) => sum + f.length, 0);
    const now = this.clock();
    const current = this.active;
    if (current.next > current.base && (current.bytes + total > this.segmentBytes || now - current.createdMs >= this.segmentMs)) await this.roll();
    const segment = this.active;
    const buffer = new Uint8Array(total);
    const starts: number[] = [];
    let at = 0;
    for (const frame of frames) {
      starts.push(segment.bytes + at);
      buffer.set(frame, at);
      at += frame.length;
    }
    try {
      let written = 0;
      while (written < total) {
        const { bytesWritten } = await this.activeFile.write(buffer, written, total - written);
        written += bytesWritten;
      }
      await this.activeFile.datasync();
    } catch (error) {
      await this.activeFile.truncate(segment.bytes).catch(() => undefined);
      throw error;
    }
    let relative = segment.next - segment.base;
    for (const start of starts) {
      if (relative > 0 && start - this.lastIndexed >= INDEX_INTERVAL_BYTES) {
        this.activeIndex.push(relative, start);
        this.lastIndexed = start;
      }
      relative++;
    }
    if (segment.next === segment.base) segment.createdMs = now;
    segment.next += frames.length;
    segment.bytes += total;
    segment.lastAppendMs = now;
    if (maxTimestamp !== null && (segment.maxTimestamp === null || maxTimestamp > segment.maxTimestamp)) segment.maxTimestamp = maxTimestamp;
    this.totalBytes += total;
    return firstOffset;
  }

  /** The segment holding `offset`: the last one whose base is not above it. */
  private segmentIndexOf(offset: number): number {
    let lo = 0;
    let hi = this.segments.length - 1;
    let found = 0;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if ((this.segments[mid] as SegmentInfo).base <= offset) {
        found = mid;
        lo = mid + 1;
      } else hi = mid - 1;
    }
    return found;
  }

  private remember(offset: number, base: number, position: number) {
    this.cursors.delete(offset);
    this.cursors.set(offset, { base, position });
    while (this.cursors.size > READ_CURSORS) this.cursors.delete(this.cursors.keys().next().value as number);
  }

  /**
   * Durable records from `from`, at most `maxRecords` and about `maxBytes` (at least one record,
   * however large), continuing into the next segments while the budgets allow. A `from` below the
   * log start offset (its segment was deleted) reads from the log start: the records carry their offsets.
   */
  async read(from: number, maxRecords: number, maxBytes = 4 * 1024 * 1024): Promise<{ offset: number; record: StoredRecord }[]> {
    const out: { offset: number; record: StoredRecord }[] = [];
    const budget = { bytes: 0, full: false };
    let offset = Math.max(from, this.start());
    while (!budget.full && out.length < maxRecords && offset < this.end()) {
      const segment = this.segments[this.segmentIndexOf(offset)] as SegmentInfo;
      if (offset >= segment.next) {
        // An empty segment, or a gap between segments: go on at the next one.
        const following = this.segments[this.segments.indexOf(segment) + 1];
        if (!following) break;
        offset = following.base;
        continue;
      }
      try {
        offset = await this.readSegment(segment, offset, out, maxRecords, maxBytes, budget);
      } catch (error) {
        // Retention deleted the segment under the read: go on from the new log start.
        if (isMissing(error) && !this.segments.includes(segment)) {
          offset = Math.max(offset, this.start());
          continue;
        }
        throw error;
      }
    }
    return out;
  }

  /** Reads frames of one segment from `from` into `out`; returns the offset after the last one read. */
  private async readSegment(segment: SegmentInfo, from: number, out: { offset: number; record: StoredRecord }[], maxRecords: number, maxBytes: number, budget: { bytes: number; full: boolean }): Promise<number> {
    const limit = segment.bytes;
    const lastOffset = segment.next;
    const cursor = this.cursors.get(from);
    let offset: number;
    let at: number;
    if (cursor && cursor.base === segment.base && cursor.position <= limit) {
      offset = from;
      at = cursor.position;
    } else if (from === segment.base) {
      offset = from;
      at = 0;
    } else {
      const floor = (await this.indexOf(segment)).floor(from - segment.base);
      offset = segment.base + floor.relative;
      at = floor.position;
    }
    const file = await open(this.path(segment.base, "log"), "r");
    try {
      let buffer = new Uint8Array(0);
      let bufferStart = at;
      const ensure = async (position: number, need: number) => {
        if (position >= bufferStart && position + need <= bufferStart + buffer.length) return;
        const size = Math.min(limit - position, Math.max(need, READ_CHUNK_BYTES));
        if (size < need) throw new Error(`segment ${this.path(segment.base, "log")} ends inside a frame at byte ${position}`);
        buffer = new Uint8Array(size);
        let done = 0;
        while (done < size) {
          const { bytesRead } = await file.read(buffer, done, size - done, position + done);
          if (bytesRead === 0) throw new Error(`short read in ${this.path(segment.base, "log")}: ${done} of ${size} bytes at ${position}`);
          done += bytesRead;
        }
        bufferStart = position;
      };
      while (at < limit && offset < lastOffset && out.length < maxRecords) {
        await ensure(at, FRAME_HEADER_BYTES);
        const length = FRAME_HEADER_BYTES + new DataView(buffer.buffer, buffer.byteOffset + (at - bufferStart), 4).getUint32(0, true);
        if (length < FRAME_HEADER_BYTES + 20 || at + length > limit) throw new Error(`corrupt frame header at byte ${at} of ${this.path(segment.base, "log")} (offset ${offset})`);
        if (offset >= from) {
          if (out.length > 0 && budget.bytes + length > maxBytes) {
            budget.full = true;
            break;
          }
          await ensure(at, length);
          if (frameLengthAt(buffer, at - bufferStart) !== length) throw new Error(`corrupt frame at byte ${at} of ${this.path(segment.base, "log")} (offset ${offset})`);
          out.push({ offset, record: decodeFrame(buffer, at - bufferStart) });
          budget.bytes += length;
        }
        at += length;
        offset++;
      }
      if (at >= limit && offset < lastOffset) throw new Error(`${this.path(segment.base, "log")} ends at offset ${offset}, before its last record ${lastOffset - 1}: its index or log is corrupt`);
    } finally {
      await file.close();
    }
    this.remember(offset, segment.base, at);
    return offset;
  }

  /** Deletes the oldest segment (never the active one); the log start offset moves to the next segment's base. */
  async deleteOldestSegment(): Promise<SegmentInfo> {
    if (this.segments.length < 2) throw new Error(`${this.dir}: the active segment cannot be deleted`);
    const segment = this.segments.shift() as SegmentInfo;
    this.totalBytes -= segment.bytes;
    this.indexCache.delete(segment.base);
    for (const [offset, cursor] of this.cursors) if (cursor.base === segment.base) this.cursors.delete(offset);
    // The log first: a crash between the removals leaves an index or meta without a log, swept up on open.
    await rm(this.path(segment.base, "log"), { force: true });
    await rm(this.path(segment.base, "index"), { force: true });
    await rm(this.path(segment.base, "meta"), { force: true });
    return segment;
  }

  async close(): Promise<void> {
    await this.activeFile.close();
  }
}

/** For tests and tools: the base offsets of the segments in a partition directory. */
export async function segmentBases(dir: string): Promise<number[]> {
  return (await readdir(dir))
    .map((n) => SEGMENT_FILE.exec(n)?.[1])
    .filter((b): b is string => b !== undefined)
    .map(Number)
    .sort((a, b) => a - b);
}

