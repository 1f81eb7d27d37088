import { closeSync, mkdirSync, openSync, readdirSync, readSync, rmSync, unlinkSync, writeSync } from "node:fs";
import { join } from "node:path";

/**
 * Frozen dedupe entries on disk, so that the dedupe state's memory stays flat over its horizon
 * (workers/chain/dedupe.ts keeps only its newest entries in its table and freezes the rest into runs).
 *
 * A run is an immutable file of entries (hash hi, hash lo, generation, first offset - base: four int32,
 * 16 bytes) sorted by the unsigned hash hi, read back a 4 KiB page (256 entries) at a time with a
 * positioned read. In memory a run keeps only what finds the page: the hash hi of each page's first
 * entry (4 bytes a page), and a blocked Bloom filter (10 bits an entry, 8 bits set within one 64-byte
 * block, so a test costs one cache line) that answers "not here" for ~99 % of the ids it does not hold,
 * so that most records never read the disk. About 1.3 bytes of memory an entry, against ~26 in the table.
 *
 * The files are a cache of what the persisted rows (dedupe_segments) hold: they live in a directory of
 * the process, removed when it exits, and are rebuilt from the rows on assignment.
 */

const INTS_PER_ENTRY = 4;
const ENTRY_BYTES = INTS_PER_ENTRY * 4;
const PAGE_ENTRIES = 256;
const PAGE_BYTES = PAGE_ENTRIES * ENTRY_BYTES;
/** Entries are sorted by hash hi × 2^21 + index, exact in a double: a run holds at most 2^21 entries. */
export const MAX_RUN_ENTRIES = 2 ** 21;
const BLOOM_BITS_PER_ENTRY = 10;
const BLOOM_BLOCK_WORDS = 16;
const BLOOM_BITS_SET = 8;

/** What `Run.probe` found; one shared object, as the dedupe step is synchronous and single-threaded. */
export const probed = { earliest: Number.POSITIVE_INFINITY, own: Number.POSITIVE_INFINITY };

const page = new Uint8Array(PAGE_BYTES);
const pageInts = new Int32Array(page.buffer);

/**
 * The block of the filter an id tests, and the bits it sets there: from both hash halves. The block
 * rises with the hash hi, so a run (sorted by it) builds its filter front to back.
 */
function bloomBlock(hi: number, blocks: number): number {
  return Math.floor(((hi >>> 0) * blocks) / 2 ** 32) * BLOOM_BLOCK_WORDS;
}
function bloomStep(lo: number, hi: number): number {
  // Odd, so the 8 positions (mod 512) differ.
  return ((hi >>> 9) ^ Math.imul(lo, 0x9e3779b1)) | 1;
}

export class Run {
  private constructor(
    private readonly path: string,
    private fd: number,
    readonly entries: number,
    readonly offsetBase: number,
    readonly minGeneration: number,
    readonly maxGeneration: number,
    private readonly fences: Uint32Array,
    private readonly bloom: Uint32Array,
  ) {}

  /**
   * Writes n entries as a run at `path`: `entries` holds them as the file does (hash hi, hash lo,
   * generation, offset - `offsetBase` as unsigned 32 bits), in any order. They are read, not kept.
   */
  static write(path: string, n: number, entries: Int32Array, offsetBase: number): Run {
    if (n <= 0 || n > MAX_RUN_ENTRIES) throw new RangeError(`a run holds 1 to ${MAX_RUN_ENTRIES} entries, not ${n}`);
    const keys = new Float64Array(n);
    let minGeneration = Number.POSITIVE_INFINITY;
    let maxGeneration = Number.NEGATIVE_INFINITY;
    let minDelta = Number.POSITIVE_INFINITY;
    for (let i = 0; i < n; i++) {
      keys[i] = ((entries[i * INTS_PER_ENTRY] as number) >>> 0) * MAX_RUN_ENTRIES + i;
      const g = entries[i * INTS_PER_ENTRY + 2] as number;
      if (g < minGeneration) minGeneration = g;
      if (g > maxGeneration) maxGeneration = g;
      minDelta = Math.min(minDelta, (entries[i * INTS_PER_ENTRY + 3] as number) >>> 0);
    }
    keys.sort();
    const ints = new Int32Array(n * INTS_PER_ENTRY);
    const pages = Math.ceil(n / PAGE_ENTRIES);
    const fences = new Uint32Array(pages);
    const blocks = Math.max(1, Math.ceil((n * BLOOM_BITS_PER_ENTRY) / (BLOOM_BLOCK_WORDS * 32)));
    const bloom = new Uint32Array(blocks * BLOOM_BLOCK_WORDS);
    for (let k = 0; k < n; k++) {
      const key = keys[k] as number;
      // key = hash hi × 2^21 + index, both recovered exactly (no floating-point remainder).
      const from = (key - Math.floor(key / MAX_RUN_ENTRIES) * MAX_RUN_ENTRIES) * INTS_PER_ENTRY;
      const hi = entries[from] as number;
      const lo = entries[from + 1] as number;
      const at = k * INTS_PER_ENTRY;
      ints[at] = hi;
      ints[at + 1] = lo;
      ints[at + 2] = entries[from + 2] as number;
      ints[at + 3] = (entries[from + 3] as number) - minDelta;
      if (k % PAGE_ENTRIES === 0) fences[k / PAGE_ENTRIES] = hi >>> 0;
      const block = bloomBlock(hi, blocks);
      const step = bloomStep(lo, hi);
      for (let b = 0, bit = lo; b < BLOOM_BITS_SET; b++, bit += step) {
        const position = bit & 511;
        bloom[block + (position >>> 5)] = (bloom[block + (position >>> 5)] as number) | (1 << (position & 31));
      }
    }
    const fd = openSync(path, "w+");
    try {
      const bytes = new Uint8Array(ints.buffer);
      for (let written = 0; written < bytes.byteLength; ) written += writeSync(fd, bytes, written, bytes.byteLength - written, written);
    } catch (error) {
      closeSync(fd);
      unlinkSync(path);
      throw error;
    }
    return new Run(path, fd, n, offsetBase + minDelta, minGeneration, maxGeneration, fences, bloom);
  }

  /** False when the run surely does not hold the id; true when it may. */
  mayHold(hi: number, lo: number): boolean {
    const bloom = this.bloom;
    const block = bloomBlock(hi, bloom.length / BLOOM_BLOCK_WORDS);
    const step = bloomStep(lo, hi);
    for (let b = 0, bit = lo; b < BLOOM_BITS_SET; b++, bit += step) {
      const position = bit & 511;
      if (((bloom[block + (position >>> 5)] as number) & (1 << (position & 31))) === 0) return false;
    }
    return true;
  }

  /**
   * Looks the id up: `probed.earliest` becomes its first offset in generations `fromGeneration` and later,
   * `probed.own` its first offset in `generation` (+Infinity where the run has none).
   */
  probe(hi: number, lo: number, fromGeneration: number, generation: number): void {
    probed.earliest = Number.POSITIVE_INFINITY;
    probed.own = Number.POSITIVE_INFINITY;
    const target = hi >>> 0;
    const fences = this.fences;
    // The last page whose first entry is below the id: entries equal to it may begin on that page.
    let low = 0;
    let high = fences.length - 1;
    while (low < high) {
      const mid = (low + high + 1) >>> 1;
      if ((fences[mid] as number) < target) low = mid;
      else high = mid - 1;
    }
    for (let p = low; p < fences.length; p++) {
      const first = p * PAGE_ENTRIES;
      const count = Math.min(PAGE_ENTRIES, this.entries - first);
      const bytes = count * ENTRY_BYTES;
      for (let read = 0; read < bytes; ) {
        const got = readSync(this.fd, page, read, bytes - read, first * ENTRY_BYTES + read);
        if (got <= 0) throw new Error(`dedupe run ${this.path} is shorter than its ${this.entries} entries`);
        read += got;
      }
      for (let k = 0; k < count; k++) {
        const at = k * INTS_PER_ENTRY;
        const entryHi = (pageInts[at] as number) >>> 0;
        if (entryHi > target) return;
        if (entryHi !== target || pageInts[at + 1] !== lo) continue;
        const g = pageInts[at + 2] as number;
        const offset = this.offsetBase + ((pageInts[at + 3] as number) >>> 0);
        if (g >= fromGeneration && offset < probed.earliest) probed.earliest = offset;
        if (g === generation && offset < probed.own) probed.own = offset;
      }
    }
  }

  /** Memory the run keeps (its file aside). */
  bytes(): number {
    return this.fences.byteLength + this.bloom.byteLength;
  }

  /** Closes and deletes the file. */
  delete(): void {
    if (this.fd < 0) return;
    closeSync(this.fd);
    this.fd = -1;
    rmSync(this.path, { force: true });
  }
}

const DIRECTORY_PREFIX = "devpipe-dedupe-";

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
};

/** Directories made by this process and not removed yet: removed when it exits, however it does. */
const made = new Set<string>();
let removeAtExit = false;

/**
 * A directory for runs under `base`, removed by `remove()` or when the process exits; the directories of
 * processes no longer alive (a crash, a SIGKILL) are removed first.
 */
export function createSpillDirectory(base: string): { path: string; remove: () => void } {
  mkdirSync(base, { recursive: true });
  for (const name of readdirSync(base)) {
    const pid = Number(name.slice(DIRECTORY_PREFIX.length).split("-")[0]);
    if (name.startsWith(DIRECTORY_PREFIX) && Number.isInteger(pid) && pid > 0 && !alive(pid)) rmSync(join(base, name), { recursive: true, force: true });
  }
  const path = join(base, `${DIRECTORY_PREFIX}${process.pid}-${crypto.randomUUID().slice(0, 8)}`);
  mkdirSync(path);
  made.add(path);
  if (!removeAtExit) {
    removeAtExit = true;
    process.once("exit", () => {
      for (const directory of made) rmSync(directory, { recursive: true, force: true });
    });
  }
  return {
    path,
    remove() {
      made.delete(path);
      rmSync(path, { recursive: true, force: true });
    },
  };
}
