import type { Sql } from "../../lib/db/index.ts";
import type { Logger } from "../../lib/log.ts";
import { join } from "node:path";
import { MAX_RUN_ENTRIES, probed, Run } from "./dedupe-runs.ts";

/**
 * The chain's dedupe step: is a record of events.raw a repeat (a client retry) of an earlier event_id?
 * Decided from the partition's log alone, so every operator, on every replay, after crashes and
 * rebalances to another process, gets the same answer for the same record, with no database round
 * trip per id.
 *
 * The rule. Within one partition of events.raw (a retry carries the same key, so the same partition),
 * the record at offset o with id X and ingest time t (the envelope's `ingest_time`, assigned by the
 * gateway, so a fact of the log) is a repeat iff an earlier record of the partition (offset o' < o) had
 * id X and a time t' in the horizon. Times are quantised into generations of `G = ceil(horizonMs / 8)`
 * ms, `gen(t) = floor(t / G)`, and "in the horizon" is `gen(t') >= gen(t) - 8`. That is a function of
 * the log only, and it covers the horizon: every earlier copy with `t - t' <= horizonMs` (or t' > t: a
 * gateway's clock behind another's) makes a repeat; a copy `t - t' >= 9 G` (1.125 × horizon) never
 * does; in between it depends on where the generation boundaries fall.
 *
 * State, per owned partition: for each (id, generation) the FIRST offset at which the id occurs with
 * that generation. A record (o, X, g) is a repeat iff some (X, k) with k >= g - 8 has first offset < o;
 * then (X, g) is remembered (first offset lowered to o if o is earlier). Reading a range again (after a
 * seek back) therefore gives the same answers, and so does state loaded from rows another process wrote
 * further ahead: rows are facts about the log, merging keeps the minimum first offset.
 *
 * Bounds. Generations older than the partition's newest generation read minus 9 (the horizon's 8 plus
 * one of slack) are dropped, so memory holds about 1.25–1.4 horizons of ids. A record is answered
 * exactly when its generation is at most one behind the newest one read, which covers re-reads after
 * the runners' seeks back (seconds) and gateway clock skew below a generation; a record older than
 * that (a gateway clock far behind, or an operator replaying from further back than the horizon) is
 * checked against the generations still kept only, and not remembered.
 *
 * Memory. Ids are hashed to 64 bits (two seeded `Bun.hash.xxHash32` of the id's UTF-8 bytes, ~50 ns for
 * both; wyhash and xxHash64 return a bigint, slower to split) and held in one open-addressing table per
 * partition (linear probing from floor(low hash × capacity / 2^32)): a 16-byte slot per (id,
 * generation): hash hi, hash lo, generation, first offset relative to a base. The table is kept 50–70 %
 * full; entries of dropped generations are swept out a few slots per record (backward-shift deletion, no
 * tombstones). Measured by hand (Bun 1.4.5, the shared 2-core test box, windows of 0.1M and 1M ids): 24–28
 * bytes per id held (a Map<number, number> with 52-bit keys: ~55), plus 32 bytes per new id until the
 * next persist; 230–320 ns of CPU per isRepeat all included (hashes ~50, probe ~50–80, sweep ~100,
 * bookkeeping for persist); loading 1M ids from rows ~0.2 s. Collisions: a new id passes for a repeat
 * when its 64-bit hash equals one of the W ids of its window, p ≈ W / 2^64 per record; with W = 10^8
 * (28k records/s on one partition for an hour) one false repeat per ~2·10^11 records. xxHash32 is not
 * collision-resistant: a client crafting ids could make one pass for another id it knows in advance (same
 * partition, within the horizon).
 *
 * Persistence. `persist()` writes, per partition, a row per contiguous range of offsets read since the
 * last call (normally one): table dedupe_segments (topic, partition, from_offset, to_offset, max_time,
 * ids). `ids` holds the (id, generation) entries first remembered or lowered while reading that range:
 * any id of the range is then in this row or an earlier one. It is one or more blocks (a row written
 * twice keeps both writers' blocks, concatenated), each little-endian:
 *   u8 version (1), u8 flags (bit 0: offsets as f64, bit 1: times as f64), u16 0, u32 n,
 *   f64 base offset, f64 base time (ms), then the columns of n entries, the 8-byte ones first:
 *   offset - base (u32, or f64), time - base (u32, or f64), hash hi (i32), hash lo (i32);
 *   padded to 8 bytes
 * so 16 bytes an id (times, not generations: a changed horizon still reads old rows). On assignment
 * the rows of a partition whose max_time is within the horizon (plus the slack generation) of its newest
 * row are loaded; coverage is the end of the contiguous run of rows from the first one. Rows further
 * back (of the partitions owned) are purged in batches of 500, at most once a minute (sooner while a
 * purge finds more to delete).
 */

export interface DedupeOptions {
  sql: Sql;
  topic: string;
  horizonMs: number;
  logger: Logger;
  /** Undefined: every id of the horizon stays in memory. */
  spill?: SpillOptions;
}

export interface Dedupe {
  /**
   * Loads the persisted ids of these partitions (now owned). Returns per partition the offset up to which
   * the persisted ids cover the log contiguously ("coverage"): the chain re-reads from min(operators' positions, coverage),
   * so every id before the operators' positions is known. A partition with no rows is absent from the map.
   */
  assigned(partitions: number[]): Promise<Map<number, number>>;
  /** True when the record repeats an earlier one (see the rule). Also remembers the id. Called in offset order per partition, possibly re-reading offsets already seen (after a seek back): must then give the same answers. */
  isRepeat(partition: number, offset: number, eventId: string, time: number): boolean;
  /**
   * Notes a record read that this state does not judge (no envelope, or a type another state judges), so the
   * ranges read stay contiguous: a gap would end the persisted coverage there, and every assignment would
   * re-read the partition from it.
   */
  pass(partition: number, offset: number, time: number): void;
  /** Writes the ids remembered since the last persist (one row per partition per call, covering [from, to) of contiguous offsets read), and purges rows past the horizon from time to time (small batches). Never throws for a database error: logs it and keeps the ids for the next call. */
  persist(): Promise<void>;
  /** Forgets partitions no longer owned (after a final persist the caller does before). */
  revoked(partitions: number[]): void;
  /** Forgets every partition and deletes their frozen files (the chain stopped). */
  close(): void;
  /** Entries held (in memory and frozen on disk), for metrics and tests. */
  size(): number;
  /** Bytes of the tables and of the ranges not yet persisted (metrics). */
  bytes(): number;
}

/**
 * Spilling: the table holds at most `hotLimit` ids; past that its entries are frozen into runs in
 * `directory` (workers/chain/dedupe-runs.ts), so memory stays flat whatever the horizon holds.
 */
export interface SpillOptions {
  directory: string;
  hotLimit: number;
}

let statesMade = 0;

/** The horizon, in generations. */
export const HORIZON_GENERATIONS = 8;
/** Generations kept behind the newest one read: the horizon's, plus one of slack for re-reads and skew. */
const KEPT_BEHIND = HORIZON_GENERATIONS + 1;
const SEED_HI = 0x9e3779b9;
const SEED_LO = 0x85ebca6b;
const MIN_CAPACITY = 64;
/** The table grows when its entries fill this share of its slots… */
const MAX_LOAD = 0.7;
/** …into one they fill to this share; so does the rebuild that drops a generation. */
const TARGET_LOAD = 0.5;
/** Slots examined for dropped entries per record while a sweep is on. */
const SWEEP_BUDGET = 16;
/** Slot layout (Int32Array, stride 4); generation 0 marks an empty slot. */
const STRIDE = 4;
const EMPTY = 0;
const OFFSET_SPAN = 2 ** 32;
const HALF_OFFSET_SPAN = 2 ** 31;
/** Generations are stored relative to a base 2^30 below the first one seen, so they stay within 1..2^31-1. */
const GENERATION_ORIGIN = 2 ** 30;
const MAX_RELATIVE_GENERATION = 2 ** 31 - 1;
const PURGE_EVERY_MS = 60_000;
const PURGE_BATCH = 500;
/** Rows written per insert statement at most (a long outage can leave many). */
const ROWS_PER_INSERT = 64;
/**
 * Rows read per query when a partition's state loads (about 1 MB at 4,000 events/s): an hour of ids is
 * hundreds of MB, and in embedded mode one query that long would hold PGlite's only connection for
 * seconds, past /readyz's database check.
 */
const ROWS_PER_LOAD_QUERY = 64;

const BLOCK_VERSION = 1;
const BLOCK_HEADER = 24;
const WIDE_OFFSETS = 1;
const WIDE_TIMES = 2;

/** Generation length for a horizon. */
export const generationMs = (horizonMs: number) => Math.max(1, Math.ceil(horizonMs / HORIZON_GENERATIONS));

/** A persisted row, as read or written. */
export interface SegmentRow {
  partition: number;
  from_offset: number;
  to_offset: number;
  /** Newest ingest time read in the range, ms. */
  max_time: number;
  ids: Uint8Array;
}

/**
 * Where the rows (of one partition) cover the log contiguously: from the first row's start (by
 * from_offset), extended while the next row starts at or before the end so far. Undefined without rows.
 */
export function coverageOf(rows: readonly { from_offset: number; to_offset: number }[]): number | undefined {
  const sorted = [...rows].sort((a, b) => a.from_offset - b.from_offset || a.to_offset - b.to_offset);
  const [first, ...rest] = sorted;
  if (!first) return undefined;
  let end = first.to_offset;
  for (const row of rest) {
    if (row.from_offset > end) break;
    end = Math.max(end, row.to_offset);
  }
  return end;
}

const NO_ENTRIES = new Float64Array(0);

/** Offsets [from, to) read contiguously since the last persist, and the entries remembered meanwhile. */
class Segment {
  to: number;
  maxTime = Number.NEGATIVE_INFINITY;
  n = 0;
  /** Stride 4: hash hi, hash lo, offset, time. */
  entries = NO_ENTRIES;

  constructor(
    readonly from: number,
    /** Entries to make room for at the first one (what the previous range held). */
    private readonly sizeHint = 0,
  ) {
    this.to = from;
  }

  add(hi: number, lo: number, offset: number, time: number) {
    const at = this.n * 4;
    if (at === this.entries.length) this.grow();
    const entries = this.entries;
    entries[at] = hi;
    entries[at + 1] = lo;
    entries[at + 2] = offset;
    entries[at + 3] = time;
    this.n++;
  }

  private grow() {
    const entries = new Float64Array(Math.max(256, this.sizeHint * 4, this.entries.length * 2));
    entries.set(this.entries);
    this.entries = entries;
  }

  /** The entries as one block of the persisted format. */
  encode(): Uint8Array {
    const n = this.n;
    const entries = this.entries;
    let minTime = 0;
    let maxTime = 0;
    let maxOffset = this.from;
    for (let i = 0; i < n; i++) {
      const t = entries[i * 4 + 3] as number;
      if (i === 0 || t < minTime) minTime = t;
      if (i === 0 || t > maxTime) maxTime = t;
      maxOffset = Math.max(maxOffset, entries[i * 4 + 2] as number);
    }
    const layout = blockLayout(n, (maxOffset - this.from >= OFFSET_SPAN ? WIDE_OFFSETS : 0) | (maxTime - minTime >= OFFSET_SPAN ? WIDE_TIMES : 0));
    const buffer = new ArrayBuffer(layout.length);
    const header = new DataView(buffer, 0, BLOCK_HEADER);
    header.setUint8(0, BLOCK_VERSION);
    header.setUint8(1, layout.flags);
    header.setUint32(4, n, true);
    header.setFloat64(8, this.from, true);
    header.setFloat64(16, minTime, true);
    const his = new Int32Array(buffer, layout.his, n);
    const los = new Int32Array(buffer, layout.los, n);
    const offsets = layout.flags & WIDE_OFFSETS ? new Float64Array(buffer, layout.offsets, n) : new Uint32Array(buffer, layout.offsets, n);
    const times = layout.flags & WIDE_TIMES ? new Float64Array(buffer, layout.times, n) : new Uint32Array(buffer, layout.times, n);
    for (let i = 0; i < n; i++) {
      his[i] = entries[i * 4] as number;
      los[i] = entries[i * 4 + 1] as number;
      offsets[i] = (entries[i * 4 + 2] as number) - this.from;
      times[i] = (entries[i * 4 + 3] as number) - minTime;
    }
    return new Uint8Array(buffer);
  }
}

// The persisted ids are written and read through typed arrays, which use the platform's byte order; every
// platform Bun runs on is little-endian, as the format is.
if (new Uint8Array(new Uint16Array([1]).buffer)[0] !== 1) throw new Error("dedupe ids format needs a little-endian platform");

/**
 * Where each column of a block of n entries starts: the header, the 8-byte columns (offsets or times
 * when wide), then the 4-byte ones; the block is padded to 8 bytes so blocks concatenate aligned.
 */
function blockLayout(n: number, flags: number) {
  const offsetWidth = flags & WIDE_OFFSETS ? 8 : 4;
  const timeWidth = flags & WIDE_TIMES ? 8 : 4;
  let at = BLOCK_HEADER;
  const columns: { offsets: number; times: number; his: number; los: number } = { offsets: 0, times: 0, his: 0, los: 0 };
  for (const [column, width] of [
    ["offsets", offsetWidth],
    ["times", timeWidth],
    ["his", 4],
    ["los", 4],
  ] as const) {
    if (width !== 8) continue;
    columns[column] = at;
    at += 8 * n;
  }
  for (const [column, width] of [
    ["offsets", offsetWidth],
    ["times", timeWidth],
    ["his", 4],
    ["los", 4],
  ] as const) {
    if (width !== 4) continue;
    columns[column] = at;
    at += 4 * n;
  }
  return { flags, ...columns, length: Math.ceil(at / 8) * 8 };
}

/**
 * The entries of a row's `ids` (one or more blocks). Throws on bytes of an unknown format, before
 * handing out any entry: a row is read whole or not at all.
 */
export function decodeIds(ids: Uint8Array, each: (hi: number, lo: number, offset: number, time: number) => void): void {
  // Typed-array views need aligned bytes; the driver's buffer may start anywhere.
  const bytes = ids.byteOffset % 8 === 0 ? ids : new Uint8Array(ids);
  for (const { at, n, baseOffset, baseTime, layout } of blocksOf(bytes)) {
    const start = bytes.byteOffset + at;
    const his = new Int32Array(bytes.buffer, start + layout.his, n);
    const los = new Int32Array(bytes.buffer, start + layout.los, n);
    const offsets = layout.flags & WIDE_OFFSETS ? new Float64Array(bytes.buffer, start + layout.offsets, n) : new Uint32Array(bytes.buffer, start + layout.offsets, n);
    const times = layout.flags & WIDE_TIMES ? new Float64Array(bytes.buffer, start + layout.times, n) : new Uint32Array(bytes.buffer, start + layout.times, n);
    for (let i = 0; i < n; i++) each(his[i] as number, los[i] as number, baseOffset + (offsets[i] as number), baseTime + (times[i] as number));
  }
}

/** The number of ids in `ids` (block headers only); throws for what decodeIds would refuse. */
export function countIds(ids: Uint8Array): number {
  return blocksOf(ids).reduce((sum, block) => sum + block.n, 0);
}

/** The blocks of an ids column, checked for version and length. */
function blocksOf(bytes: Uint8Array) {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const blocks: { at: number; n: number; baseOffset: number; baseTime: number; layout: ReturnType<typeof blockLayout> }[] = [];
  for (let at = 0; at < bytes.byteLength; ) {
    if (bytes.byteLength - at < BLOCK_HEADER) throw new Error(`dedupe ids: truncated block header at byte ${at}`);
    const version = view.getUint8(at);
    if (version !== BLOCK_VERSION) throw new Error(`dedupe ids: unknown block version ${version}`);
    const n = view.getUint32(at + 4, true);
    const layout = blockLayout(n, view.getUint8(at + 1) & (WIDE_OFFSETS | WIDE_TIMES));
    if (bytes.byteLength - at < layout.length) throw new Error(`dedupe ids: truncated block of ${n} entries at byte ${at}`);
    blocks.push({ at, n, baseOffset: view.getFloat64(at + 8, true), baseTime: view.getFloat64(at + 16, true), layout });
    at += layout.length;
  }
  return blocks;
}

/** The ids of one partition: an open-addressing table keyed by (hash, generation), and the ranges read since the last persist. */
class PartitionState {
  /** Stride 4: hash hi, hash lo, relative generation (EMPTY: free slot), first offset - offsetBase (unsigned). */
  slots: Int32Array;
  capacity: number;
  /** capacity / 2^32: an id's home slot is floor(unsigned low hash × scale), for any capacity. */
  scale: number;
  /**
   * The fewest slots the table has. Spilling, the table is made at once big enough for `hotLimit` ids
   * within the load limit, and never grows or shrinks: its memory is reached within the first thousands
   * of ids instead of doubling over the tens of minutes a slow horizon class takes to fill it, so a
   * process's RSS is flat from the start (and the last doubling's 2^k slots are never allocated).
   */
  private readonly minCapacity: number;
  /** Entries in the table: those of the kept generations, and dropped ones the sweep has not removed yet. */
  entries = 0;
  /** Where the sweep of dropped entries goes on, and how many slots are left in its lap. */
  cursor = 0;
  sweepLeft = 0;
  offsetBase = Number.NaN;
  generationBase = Number.NaN;
  /** Newest relative generation read (0: none yet); entries below minKept are dropped. */
  newest = 0;
  minKept = 1;
  /** Ranges read since the last persist, in the order reading started them; the last is the current one. */
  segments: Segment[] = [];
  /** Entries the last range taken held: the next one makes room for as many at once. */
  lastSegmentEntries = 0;
  /** Newest max_time persisted or loaded, ms: the purge keeps the rows within the horizon of it. */
  persistedMaxTime = Number.NEGATIVE_INFINITY;
  /** Entries frozen out of the table onto disk (spilling only), oldest first. */
  runs: Run[] = [];
  private runsWritten = 0;

  constructor(
    private readonly logger: Logger,
    readonly spill: { directory: string; hotLimit: number; name: string } | undefined,
  ) {
    this.minCapacity = spill ? Math.max(MIN_CAPACITY, Math.floor(spill.hotLimit / MAX_LOAD) + 1) : MIN_CAPACITY;
    this.capacity = this.minCapacity;
    this.slots = new Int32Array(this.capacity * STRIDE);
    this.scale = this.capacity / 2 ** 32;
  }

  relativeGeneration(generation: number): number {
    if (Number.isNaN(this.generationBase)) this.generationBase = generation - GENERATION_ORIGIN;
    const relative = generation - this.generationBase;
    return relative < 1 ? 1 : relative > MAX_RELATIVE_GENERATION ? MAX_RELATIVE_GENERATION : relative;
  }

  /** Offset relative to the table's base, rebasing the table when it falls outside 32 bits. */
  relativeOffset(offset: number): number {
    if (Number.isNaN(this.offsetBase)) this.offsetBase = offset - HALF_OFFSET_SPAN;
    const delta = offset - this.offsetBase;
    if (delta >= 0 && delta < OFFSET_SPAN) return delta;
    this.rebuild(0, offset - HALF_OFFSET_SPAN);
    return offset - this.offsetBase;
  }

  /** Notes the record at `offset` in the current range read (a new range when reading jumped). */
  track(offset: number, time: number): Segment {
    let current = this.segments[this.segments.length - 1];
    if (current !== undefined && offset === current.to) current.to++;
    else if (current === undefined || offset < current.from || offset > current.to) {
      if (current !== undefined && current.to === current.from && current.n === 0) this.segments.pop();
      current = new Segment(offset);
      current.to = offset + 1;
      this.segments.push(current);
    }
    if (time > current.maxTime) current.maxTime = time;
    return current;
  }

  /** Moves the newest generation to `relative` if it is newer; generations that leaves behind are dropped (swept from the table). */
  advance(relative: number) {
    if (relative <= this.newest) return;
    this.newest = relative;
    const minKept = Math.max(1, relative - KEPT_BEHIND);
    if (minKept <= this.minKept) return;
    this.minKept = minKept;
    if (this.entries > 0) this.sweepLeft = this.capacity;
    if (this.runs.some((run) => run.maxGeneration < minKept)) {
      for (const run of this.runs) if (run.maxGeneration < minKept) run.delete();
      this.runs = this.runs.filter((run) => run.maxGeneration >= minKept);
    }
  }

  /**
   * Removes dropped entries: examines up to `budget` slots from where the last call stopped, deleting
   * dropped entries by backward shift (no tombstones: probe sequences stay as short as the kept entries
   * make them). A lap of the table starts when a generation is dropped, a few slots a record: at the loads
   * kept it ends within about a generation's records.
   */
  sweep(budget: number) {
    const slots = this.slots;
    const capacity = this.capacity;
    // One unsigned comparison finds a dropped entry: generation in [1, minKept); EMPTY (0) wraps to the top.
    const droppedBelow = this.minKept - 1;
    let i = this.cursor;
    let left = this.sweepLeft;
    let deleted = 0;
    while (budget-- > 0 && left > 0) {
      if (((slots[(i << 2) + 2] as number) - 1) >>> 0 < droppedBelow) {
        // Another entry may shift into slot i: look at it again.
        this.deleteAt(i);
        deleted++;
        continue;
      }
      left--;
      if (++i === capacity) i = 0;
    }
    this.entries -= deleted;
    this.sweepLeft = left;
    this.cursor = i;
  }

  /** Empties slot `i`, moving back the entries after it whose probe sequence passes through it. */
  private deleteAt(i: number) {
    const slots = this.slots;
    const capacity = this.capacity;
    const scale = this.scale;
    let hole = i;
    let j = i;
    for (;;) {
      if (++j === capacity) j = 0;
      const at = j << 2;
      if (slots[at + 2] === EMPTY) break;
      const home = (((slots[at + 1] as number) >>> 0) * scale) | 0;
      // The entry stays when its home lies cyclically in (hole, j]: moving it before its home would hide it.
      if (hole <= j ? hole < home && home <= j : hole < home || home <= j) continue;
      const to = hole << 2;
      slots[to] = slots[at] as number;
      slots[to + 1] = slots[at + 1] as number;
      slots[to + 2] = slots[at + 2] as number;
      slots[to + 3] = slots[at + 3] as number;
      hole = j;
    }
    slots[(hole << 2) + 2] = EMPTY;
  }

  /**
   * Whether (hash, generation, offset) repeats an entry of the table (see the rule), and remembers it:
   * the entry (hash, generation) is added, or its first offset lowered; `segment` (when given) records the change.
   */
  remember(hi: number, lo: number, generation: number, offset: number, time: number, segment: Segment | undefined): boolean {
    const delta = this.relativeOffset(offset);
    const slots = this.slots;
    const capacity = this.capacity;
    // Dropped entries not swept yet never count: answers do not depend on how far the sweep got.
    const horizonStart = Math.max(generation - HORIZON_GENERATIONS, this.minKept);
    let repeat = false;
    let own = -1;
    let i = ((lo >>> 0) * this.scale) | 0;
    let at = i << 2;
    for (;;) {
      const g = slots[at + 2] as number;
      if (g === EMPTY) break;
      if (slots[at + 1] === lo && slots[at] === hi) {
        if (g >= horizonStart && (slots[at + 3] as number) >>> 0 < delta) repeat = true;
        if (g === generation) own = at;
      }
      if (++i === capacity) i = 0;
      at = i << 2;
    }
    // The frozen entries count as the table's do; an entry there at this offset or before is remembered already.
    let frozenOwn = Number.POSITIVE_INFINITY;
    for (const run of this.runs) {
      // A run of newer generations only still counts: an earlier copy with a later time is a repeat too.
      if (run.maxGeneration < horizonStart || !run.mayHold(hi, lo)) continue;
      run.probe(hi, lo, horizonStart, generation);
      if (probed.earliest < offset) repeat = true;
      if (probed.own < frozenOwn) frozenOwn = probed.own;
    }
    if (generation < this.minKept) return repeat;
    if (own >= 0) {
      if (delta < (slots[own + 3] as number) >>> 0) {
        slots[own + 3] = delta | 0;
        segment?.add(hi, lo, offset, time);
      }
      return repeat;
    }
    if (frozenOwn <= offset) return repeat;
    slots[at] = hi;
    slots[at + 1] = lo;
    slots[at + 2] = generation;
    slots[at + 3] = delta | 0;
    segment?.add(hi, lo, offset, time);
    if (++this.entries > capacity * MAX_LOAD) this.rebuild(0, this.offsetBase);
    if (this.spill && this.entries >= this.spill.hotLimit) this.freeze(this.spill);
    return repeat;
  }

  /** Grows the table at once so that `more` entries fit within the load limit (within the hot limit when spilling). */
  reserve(more: number) {
    const wanted = this.spill ? Math.min(this.entries + more, this.spill.hotLimit) : this.entries + more;
    if (wanted > this.capacity * MAX_LOAD) this.rebuild(Math.ceil(wanted / TARGET_LOAD), this.offsetBase);
  }

  /**
   * Moves the table's kept entries into a new run on disk and empties the table, keeping its size: the
   * table holds at most `hotLimit` entries, the runs the rest of the horizon.
   */
  private freeze(spill: { directory: string; name: string }) {
    const slots = this.slots;
    const n = Math.min(this.entries, MAX_RUN_ENTRIES);
    // The run's entries are laid out as the table's slots are, offsets relative to the same base.
    const entries = new Int32Array(n * STRIDE);
    let k = 0;
    for (let at = 0; at < slots.length && k < n; at += STRIDE) {
      const g = slots[at + 2] as number;
      if (g === EMPTY || g < this.minKept) continue;
      entries.set(slots.subarray(at, at + STRIDE), k * STRIDE);
      k++;
    }
    if (k > 0) this.runs.push(Run.write(join(spill.directory, `${spill.name}-${this.runsWritten++}.run`), k, entries, this.offsetBase));
    slots.fill(0);
    this.entries = 0;
    this.cursor = 0;
    this.sweepLeft = 0;
  }

  /**
   * Freezes loaded entries (parallel columns, offsets absolute) straight into runs, without the table: an
   * id in several rows is then in several entries, which answers the same (a lookup takes the earliest).
   */
  freezeLoaded(n: number, his: Int32Array, los: Int32Array, generations: Int32Array, offsets: Float64Array) {
    const spill = this.spill;
    if (!spill) throw new Error("freezeLoaded: the state does not spill");
    for (let from = 0; from < n; ) {
      // A run's offsets lie within 2^32 of each other: a chunk ends before one that would not.
      let low = offsets[from] as number;
      let high = low;
      let to = from + 1;
      while (to < n && to - from < MAX_RUN_ENTRIES) {
        const offset = offsets[to] as number;
        if (Math.max(high, offset) - Math.min(low, offset) >= OFFSET_SPAN) break;
        low = Math.min(low, offset);
        high = Math.max(high, offset);
        to++;
      }
      const entries = new Int32Array((to - from) * STRIDE);
      for (let i = from, at = 0; i < to; i++, at += STRIDE) {
        entries[at] = his[i] as number;
        entries[at + 1] = los[i] as number;
        entries[at + 2] = generations[i] as number;
        entries[at + 3] = ((offsets[i] as number) - low) | 0;
      }
      this.runs.push(Run.write(join(spill.directory, `${spill.name}-${this.runsWritten++}.run`), to - from, entries, low));
      from = to;
    }
  }

  /** Deletes the runs' files (the partition is no longer owned). */
  close() {
    for (const run of this.runs) run.delete();
    this.runs = [];
  }

  /**
   * Re-inserts the kept entries into a table sized for them (at least `capacity` slots) with offsets
   * relative to `offsetBase`: the table grows, sheds dropped entries, or rebases its offsets.
   */
  rebuild(capacity: number, offsetBase: number) {
    const old = this.slots;
    const oldBase = this.offsetBase;
    let kept = 0;
    for (let at = 0; at < old.length; at += STRIDE) {
      const g = old[at + 2] as number;
      if (g !== EMPTY && g >= this.minKept) kept++;
    }
    capacity = Math.max(capacity, this.minCapacity, Math.ceil(kept / TARGET_LOAD));
    const slots = new Int32Array(capacity * STRIDE);
    const scale = capacity / 2 ** 32;
    let entries = 0;
    let dropped = 0;
    for (let at = 0; at < old.length; at += STRIDE) {
      const g = old[at + 2] as number;
      if (g === EMPTY || g < this.minKept) continue;
      const delta = ((old[at + 3] as number) >>> 0) + oldBase - offsetBase;
      if (delta < 0 || delta >= OFFSET_SPAN) {
        dropped++;
        continue;
      }
      const lo = old[at + 1] as number;
      let i = ((lo >>> 0) * scale) | 0;
      while (slots[(i << 2) + 2] !== EMPTY) if (++i === capacity) i = 0;
      const to = i << 2;
      slots[to] = old[at] as number;
      slots[to + 1] = lo;
      slots[to + 2] = g;
      slots[to + 3] = delta | 0;
      entries++;
    }
    // Only when a partition's ids span more than 2^31 offsets, which memory could not hold anyway.
    if (dropped > 0) this.logger.warn("dedupe dropped ids more than 2^31 offsets behind the newest", { dropped });
    this.slots = slots;
    this.capacity = capacity;
    this.scale = scale;
    this.entries = entries;
    this.cursor = 0;
    this.sweepLeft = 0;
    this.offsetBase = offsetBase;
  }

  /** Takes the ranges read since the last persist, leaving an empty current range where reading goes on. */
  take(): Segment[] {
    const taken = this.segments.filter((s) => s.to > s.from);
    const last = this.segments[this.segments.length - 1];
    if (last) this.lastSegmentEntries = last.n;
    this.segments = last ? [new Segment(last.to, this.lastSegmentEntries)] : [];
    return taken;
  }

  /** Puts back ranges a failed persist took, before the ones read since. */
  giveBack(segments: Segment[]) {
    this.segments = [...segments, ...this.segments];
  }
}

/** The rows (one per contiguous range) that persist the ranges `segments` of a partition. */
function rowsOf(partition: number, segments: Segment[]): SegmentRow[] {
  const merged: { from: number; to: number; maxTime: number; blocks: Uint8Array[] }[] = [];
  for (const segment of segments) {
    const last = merged[merged.length - 1];
    // A range that brought no new id still says its offsets were read (coverage): a row without ids.
    const block = segment.n > 0 ? segment.encode() : new Uint8Array(0);
    // A range that starts within (or right after) the previous one extends it: one row for both.
    if (last && segment.from >= last.from && segment.from <= last.to) {
      last.to = Math.max(last.to, segment.to);
      last.maxTime = Math.max(last.maxTime, segment.maxTime);
      last.blocks.push(block);
    } else merged.push({ from: segment.from, to: segment.to, maxTime: segment.maxTime, blocks: [block] });
  }
  // Two ranges with the same bounds (re-read) become one row: an insert must not touch a key twice.
  const byKey = new Map<string, (typeof merged)[number]>();
  for (const m of merged) {
    const key = `${m.from}:${m.to}`;
    const same = byKey.get(key);
    if (same) {
      same.maxTime = Math.max(same.maxTime, m.maxTime);
      same.blocks.push(...m.blocks);
    } else byKey.set(key, m);
  }
  return [...byKey.values()].map((m) => ({ partition, from_offset: m.from, to_offset: m.to, max_time: m.maxTime, ids: concat(m.blocks) }));
}

function concat(all: Uint8Array[]): Uint8Array {
  const blocks = all.filter((b) => b.byteLength > 0);
  if (blocks.length <= 1) return blocks[0] ?? new Uint8Array(0);
  const out = new Uint8Array(blocks.reduce((sum, b) => sum + b.byteLength, 0));
  let at = 0;
  for (const b of blocks) {
    out.set(b, at);
    at += b.byteLength;
  }
  return out;
}

/**
 * The dedupe state of the partitions a worker owns, without the database: what `createDedupe` keeps in
 * memory and how it turns into rows and back. Exposed for the tests.
 */
export class DedupeState {
  readonly generationMs: number;
  private readonly partitions = new Map<number, PartitionState>();
  private readonly name = `dedupe${++statesMade}`;

  constructor(
    horizonMs: number,
    private readonly logger: Logger,
    private readonly spill?: SpillOptions,
  ) {
    if (!(horizonMs > 0)) throw new RangeError(`dedupe horizon must be positive, got ${horizonMs}`);
    if (spill && !(Number.isInteger(spill.hotLimit) && spill.hotLimit >= 1 && spill.hotLimit <= MAX_RUN_ENTRIES)) throw new RangeError(`dedupe hot limit must be 1 to ${MAX_RUN_ENTRIES} ids, got ${spill.hotLimit}`);
    this.generationMs = generationMs(horizonMs);
  }

  private state(partition: number): PartitionState {
    let state = this.partitions.get(partition);
    if (!state) {
      state = new PartitionState(this.logger, this.spill && { ...this.spill, name: `${this.name}-p${partition}` });
      this.partitions.set(partition, state);
    }
    return state;
  }

  isRepeat(partition: number, offset: number, eventId: string, time: number): boolean {
    const state = this.state(partition);
    const segment = state.track(offset, time);
    const generation = state.relativeGeneration(Math.floor(time / this.generationMs));
    state.advance(generation);
    if (state.sweepLeft > 0) state.sweep(SWEEP_BUDGET);
    return state.remember(Bun.hash.xxHash32(eventId, SEED_HI) | 0, Bun.hash.xxHash32(eventId, SEED_LO) | 0, generation, offset, time, segment);
  }

  pass(partition: number, offset: number, time: number): void {
    const state = this.state(partition);
    state.track(offset, time);
    state.advance(state.relativeGeneration(Math.floor(time / this.generationMs)));
    if (state.sweepLeft > 0) state.sweep(SWEEP_BUDGET);
  }

  /** Earliest max_time of the rows worth loading or keeping, given the newest one of the partition. */
  keepFrom(newestTime: number): number {
    return (Math.floor(newestTime / this.generationMs) - KEPT_BEHIND) * this.generationMs;
  }

  /**
   * Merges the rows of a partition into its state; returns its coverage (undefined without rows).
   * A row whose ids cannot be read is left out, of the coverage too: its range is read again.
   */
  load(partition: number, rows: readonly SegmentRow[]): number | undefined {
    const state = this.state(partition);
    // Sized once for every id to come rather than doubled on the way (each doubling re-inserts them all).
    let incoming = 0;
    for (const row of rows) {
      try {
        incoming += countIds(row.ids);
      } catch {
        // decodeIds below says why
      }
    }
    // Spilling, the ids go to runs at once (the table would only freeze them on the way).
    const loaded = state.spill && { n: 0, his: new Int32Array(incoming), los: new Int32Array(incoming), generations: new Int32Array(incoming), offsets: new Float64Array(incoming) };
    if (!loaded) state.reserve(incoming);
    const readable: SegmentRow[] = [];
    for (const row of rows) {
      try {
        if (loaded) {
          const before = loaded.n;
          try {
            decodeIds(row.ids, (hi, lo, offset, time) => {
              const at = loaded.n++;
              loaded.his[at] = hi;
              loaded.los[at] = lo;
              loaded.generations[at] = state.relativeGeneration(Math.floor(time / this.generationMs));
              loaded.offsets[at] = offset;
            });
          } catch (error) {
            loaded.n = before;
            throw error;
          }
        } else
          decodeIds(row.ids, (hi, lo, offset, time) => {
            state.remember(hi, lo, state.relativeGeneration(Math.floor(time / this.generationMs)), offset, time, undefined);
          });
      } catch (error) {
        this.logger.warn("dedupe row unreadable; its range is read again", { partition, from: row.from_offset, to: row.to_offset, error });
        continue;
      }
      readable.push(row);
      state.persistedMaxTime = Math.max(state.persistedMaxTime, row.max_time);
    }
    if (loaded) state.freezeLoaded(loaded.n, loaded.his, loaded.los, loaded.generations, loaded.offsets);
    return coverageOf(readable);
  }

  /** The rows to write for what was read since the last take, and a function that puts them back (the write failed). */
  take(): { rows: SegmentRow[]; giveBack: () => void } {
    const taken: { partition: number; state: PartitionState; segments: Segment[] }[] = [];
    for (const [partition, state] of this.partitions) {
      const segments = state.take();
      if (segments.length > 0) taken.push({ partition, state, segments });
    }
    return {
      rows: taken.flatMap((t) => rowsOf(t.partition, t.segments)),
      giveBack: () => {
        // A partition revoked meanwhile is its new owner's to read again.
        for (const t of taken) if (this.partitions.get(t.partition) === t.state) t.state.giveBack(t.segments);
      },
    };
  }

  /** Notes rows as written (the purge keeps what is within the horizon of the newest). */
  written(rows: readonly SegmentRow[]) {
    for (const row of rows) {
      const state = this.partitions.get(row.partition);
      if (state) state.persistedMaxTime = Math.max(state.persistedMaxTime, row.max_time);
    }
  }

  /** Per owned partition with persisted rows, the max_time below which its rows are past the horizon. */
  purgeThresholds(): { partition: number; before: number }[] {
    return [...this.partitions].flatMap(([partition, s]) => (Number.isFinite(s.persistedMaxTime) ? [{ partition, before: this.keepFrom(s.persistedMaxTime) }] : []));
  }

  revoked(partitions: readonly number[]) {
    for (const p of partitions) {
      this.partitions.get(p)?.close();
      this.partitions.delete(p);
    }
  }

  close() {
    this.revoked([...this.partitions.keys()]);
  }

  /** Entries held, in the table and frozen on disk. */
  size(): number {
    let size = 0;
    for (const state of this.partitions.values()) size += state.entries + state.runs.reduce((sum, run) => sum + run.entries, 0);
    return size;
  }

  /** Bytes of memory held: the tables, the ranges not yet persisted, and what the runs keep to find their pages. */
  bytes(): number {
    let bytes = 0;
    for (const state of this.partitions.values()) {
      bytes += state.slots.byteLength;
      for (const segment of state.segments) bytes += segment.entries.byteLength;
      for (const run of state.runs) bytes += run.bytes();
    }
    return bytes;
  }
}

/** Writes rows of a topic's dedupe state, ROWS_PER_INSERT a statement. */
export async function writeSegmentRows(sql: Sql, topic: string, rows: readonly SegmentRow[]): Promise<void> {
  for (let i = 0; i < rows.length; i += ROWS_PER_INSERT) {
    const values = rows.slice(i, i + ROWS_PER_INSERT).map((r) => ({ topic, partition: r.partition, from_offset: r.from_offset, to_offset: r.to_offset, max_time: new Date(r.max_time), ids: r.ids }));
    // A range written twice (a stale owner, a retry whose first attempt landed) keeps both writers' ids.
    await sql`
      insert into dedupe_segments ${sql(values, "topic", "partition", "from_offset", "to_offset", "max_time", "ids")}
      on conflict (topic, partition, from_offset, to_offset) do update
      set ids = dedupe_segments.ids || excluded.ids, max_time = greatest(dedupe_segments.max_time, excluded.max_time)`;
  }
}

export function createDedupe(options: DedupeOptions): Dedupe {
  const { sql, topic, logger } = options;
  const state = new DedupeState(options.horizonMs, logger, options.spill);
  let lastPurge = Number.NEGATIVE_INFINITY;
  let purgeBacklog = false;
  let failuresInARow = 0;
  let queue: Promise<void> = Promise.resolve();

  const purge = async () => {
    const thresholds = state.purgeThresholds();
    if (thresholds.length === 0) return;
    const result = await sql`
      delete from dedupe_segments where (topic, partition, from_offset, to_offset) in (
        select s.topic, s.partition, s.from_offset, s.to_offset
        from dedupe_segments s
        join unnest(${thresholds.map((t) => t.partition)}::int[], ${thresholds.map((t) => t.before)}::float8[]) as t(partition, before_ms) on s.partition = t.partition
        where s.topic = ${topic} and s.max_time < to_timestamp(t.before_ms / 1000.0)
        limit ${PURGE_BATCH})`;
    purgeBacklog = result.count >= PURGE_BATCH;
  };

  const persistOnce = async () => {
    const { rows, giveBack } = state.take();
    if (rows.length > 0) {
      try {
        await writeSegmentRows(sql, topic, rows);
        state.written(rows);
        if (failuresInARow > 0) logger.info("dedupe state persisted again", { failed_before: failuresInARow });
        failuresInARow = 0;
      } catch (error) {
        giveBack();
        if (failuresInARow++ % 100 === 0) logger.warn("persisting the dedupe state failed; its ids are kept for the next attempt", { error, failures_in_a_row: failuresInARow });
        return;
      }
    }
    const now = Date.now();
    if (!purgeBacklog && now - lastPurge < PURGE_EVERY_MS) return;
    lastPurge = now;
    try {
      await purge();
    } catch (error) {
      purgeBacklog = false;
      logger.warn("purging expired dedupe rows failed; retried in a minute", { error });
    }
  };

  return {
    async assigned(partitions) {
      const coverage = new Map<number, number>();
      if (partitions.length === 0) return coverage;
      const newest = await sql<{ partition: number; newest: Date }[]>`
        select p.partition, n.newest
        from unnest(${partitions}::int[]) as p(partition)
        cross join lateral (
          select max_time as newest from dedupe_segments
          where topic = ${topic} and partition = p.partition
          order by max_time desc limit 1) n`;
      for (const { partition, newest: newestTime } of newest) {
        const keepFrom = state.keepFrom(newestTime.getTime());
        const rows: SegmentRow[] = [];
        for (let after = { from: -1, to: -1 }; ; ) {
          const page = await sql<{ from_offset: number; to_offset: number; max_time: Date; ids: Uint8Array }[]>`
            select from_offset, to_offset, max_time, ids from dedupe_segments
            where topic = ${topic} and partition = ${partition} and (from_offset, to_offset) > (${after.from}, ${after.to})
              and max_time >= to_timestamp(${keepFrom}::float8 / 1000.0)
            order by from_offset, to_offset
            limit ${ROWS_PER_LOAD_QUERY}`;
          for (const r of page) rows.push({ partition, from_offset: r.from_offset, to_offset: r.to_offset, max_time: r.max_time.getTime(), ids: r.ids });
          const last = page.at(-1);
          if (!last || page.length < ROWS_PER_LOAD_QUERY) break;
          after = { from: last.from_offset, to: last.to_offset };
        }
        const covered = state.load(partition, rows);
        if (covered !== undefined) coverage.set(partition, covered);
      }
      logger.debug("dedupe state loaded", { partitions, coverage: [...coverage], ids: state.size() });
      return coverage;
    },
    isRepeat: (partition, offset, eventId, time) => state.isRepeat(partition, offset, eventId, time),
    pass: (partition, offset, time) => state.pass(partition, offset, time),
    persist() {
      const run = () => persistOnce().catch((error: unknown) => logger.error("dedupe persist failed unexpectedly", { error }));
      queue = queue.then(run, run);
      return queue;
    },
    revoked: (partitions) => state.revoked(partitions),
    close: () => state.close(),
    size: () => state.size(),
    bytes: () => state.bytes(),
  };
}
