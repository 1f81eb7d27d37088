import { afterAll, describe, expect, test } from "bun:test";
import { existsSync, mkdirSync, readdirSync, statSync } from "node:fs";
import { basename, join } from "node:path";
import { createRandom } from "../../generators/random.ts";
import { createSpillDirectory, probed, Run } from "../../workers/chain/dedupe-runs.ts";
import { tempDir } from "../support/tmp.ts";

/**
 * A run is the dedupe state's frozen entries on disk: every entry written is found again with its
 * generation and first offset, whatever its hash (equal hashes across pages, the extremes of int32),
 * and the filter in front of it never says "not here" for an entry it holds.
 */

const directory = tempDir("devpipe-dedupe-runs-");
afterAll(() => directory.remove());
let runs = 0;
const path = () => join(directory.path, `test-${runs++}.run`);

interface Entry {
  hi: number;
  lo: number;
  generation: number;
  offset: number;
}

/** Writes entries (absolute offsets) as a run, relative to an offset base below them all. */
const write = (entries: readonly Entry[], base = Math.min(...entries.map((e) => e.offset)) - 5) =>
  Run.write(
    path(),
    entries.length,
    Int32Array.from(entries.flatMap((e) => [e.hi, e.lo, e.generation, (e.offset - base) | 0])),
    base,
  );

/** What the run says of an id: its first offset from generation `from` on, and in `generation`. */
const lookUp = (run: Run, hi: number, lo: number, from: number, generation: number) => {
  run.probe(hi, lo, from, generation);
  return { earliest: probed.earliest, own: probed.own };
};

const int32 = (next: () => number) => Math.floor(next() * 2 ** 32) | 0;

describe("dedupe runs", () => {
  test("every entry of a random run is found with its generation and offset; the filter never misses one", () => {
    const { next } = createRandom(1);
    const entries: Entry[] = Array.from({ length: 20_000 }, (_, i) => ({ hi: int32(next), lo: int32(next), generation: 5 + (i % 3), offset: 10_000_000_000 + i * 3 }));
    const run = write(entries);
    expect(run.entries).toBe(20_000);
    expect(run.offsetBase).toBe(10_000_000_000);
    expect([run.minGeneration, run.maxGeneration]).toEqual([5, 7]);
    expect(statSync(join(directory.path, `test-${runs - 1}.run`)).size).toBe(20_000 * 16);
    for (const e of entries) {
      expect(run.mayHold(e.hi, e.lo)).toBe(true);
      expect(lookUp(run, e.hi, e.lo, e.generation, e.generation)).toEqual({ earliest: e.offset, own: e.offset });
      // Outside the generations asked for: not counted.
      expect(lookUp(run, e.hi, e.lo, e.generation + 1, e.generation + 1)).toEqual({ earliest: Number.POSITIVE_INFINITY, own: Number.POSITIVE_INFINITY });
    }
    // Ids it does not hold: the filter lets few through (10 bits an entry), and none is found.
    let through = 0;
    for (let i = 0; i < 20_000; i++) {
      const hi = int32(next);
      const lo = int32(next);
      if (run.mayHold(hi, lo)) through++;
      expect(lookUp(run, hi, lo, 0, 5).earliest).toBe(Number.POSITIVE_INFINITY);
    }
    expect(through / 20_000).toBeLessThan(0.03);
    // Memory: the filter and the page index, ~1.3 bytes an entry.
    expect(run.bytes() / run.entries).toBeLessThan(1.6);
    run.delete();
  });

  test("one hash on many pages, the int32 extremes, and the same id in several generations", () => {
    const entries: Entry[] = [];
    // 700 entries share hash hi 0x80000000 (-2^31), ~3 pages of 256; their lows differ.
    for (let i = 0; i < 700; i++) entries.push({ hi: -(2 ** 31), lo: i, generation: 1, offset: 1_000 + i });
    for (let i = 0; i < 300; i++) entries.push({ hi: 2 ** 31 - 1, lo: -i, generation: 2, offset: 5_000 + i });
    for (let i = 0; i < 300; i++) entries.push({ hi: -1, lo: 7, generation: 10 + i, offset: 9_000 - i });
    // Offsets up to 2^32 - 1 past the base (995): the top bit of the stored difference is set.
    for (let i = 0; i < 300; i++) entries.push({ hi: i, lo: i, generation: 3, offset: 2 ** 32 + 994 - 300 + i });
    const run = write(entries);
    for (let i = 0; i < 700; i += 7) expect(lookUp(run, -(2 ** 31), i, 0, 1)).toEqual({ earliest: 1_000 + i, own: 1_000 + i });
    for (let i = 0; i < 300; i += 3) expect(lookUp(run, 2 ** 31 - 1, -i, 0, 2)).toEqual({ earliest: 5_000 + i, own: 5_000 + i });
    for (let i = 0; i < 300; i += 11) expect(lookUp(run, i, i, 3, 3)).toEqual({ earliest: 2 ** 32 + 994 - 300 + i, own: 2 ** 32 + 994 - 300 + i });
    // hi -1, lo 7 in generations 10..309, offsets falling: the earliest from a generation on is its last.
    expect(lookUp(run, -1, 7, 10, 50)).toEqual({ earliest: 9_000 - 299, own: 9_000 - 40 });
    expect(lookUp(run, -1, 7, 300, 400)).toEqual({ earliest: 9_000 - 299, own: Number.POSITIVE_INFINITY });
    expect(lookUp(run, -1, 8, 0, 10).earliest).toBe(Number.POSITIVE_INFINITY);
    expect(lookUp(run, -(2 ** 31), 700, 0, 1).earliest).toBe(Number.POSITIVE_INFINITY);
    run.delete();
  });

  test("a run is 1 to 2^21 entries; delete removes its file", () => {
    expect(() => write([], 0)).toThrow(RangeError);
    const before = readdirSync(directory.path).length;
    const run = write([{ hi: 1, lo: 2, generation: 3, offset: 4 }]);
    expect(readdirSync(directory.path).length).toBe(before + 1);
    run.delete();
    run.delete();
    expect(readdirSync(directory.path).length).toBe(before);
  });
});

describe("spill directories", () => {
  test("one per call, removed on demand; those of processes no longer alive are removed when the next is made", async () => {
    const base = join(directory.path, "spill");
    mkdirSync(base);
    // A process that has exited, and this one (alive): only the first one's directory goes.
    const exited = Bun.spawn(["true"]);
    await exited.exited;
    mkdirSync(join(base, `devpipe-dedupe-${exited.pid}-deadbeef`));
    mkdirSync(join(base, `devpipe-dedupe-${process.pid}-cafebabe`));
    mkdirSync(join(base, "something-else"));
    const first = createSpillDirectory(base);
    const second = createSpillDirectory(base);
    expect(first.path).not.toBe(second.path);
    expect(readdirSync(base).sort()).toEqual([`devpipe-dedupe-${process.pid}-cafebabe`, basename(first.path), basename(second.path), "something-else"].sort());
    first.remove();
    expect(existsSync(first.path)).toBe(false);
    expect(existsSync(second.path)).toBe(true);
    second.remove();
  });
});
