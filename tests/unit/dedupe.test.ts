import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createLogger } from "../../lib/log.ts";
import { coverageOf, DedupeState, decodeIds, generationMs, HORIZON_GENERATIONS, type SegmentRow } from "../../workers/chain/dedupe.ts";

/**
 * The chain's dedupe decides "is this record a repeat" from the partition's log alone: the same answer
 * for the same record on every read, after a restore from persisted rows on another process, whatever
 * order the rows were written or loaded in. These tests check it against a direct statement of the rule.
 */

const quiet = createLogger({ test: "dedupe" }, () => undefined);
const HORIZON = 8_000;
const GEN = generationMs(HORIZON);
const T0 = 1_780_000_000_000;

interface Rec {
  offset: number;
  id: string;
  time: number;
}

/** The rule, stated directly: a repeat iff an earlier record of the partition had the id in a generation at most 8 before. */
function oracle(log: readonly Rec[], horizonMs = HORIZON): boolean[] {
  const gen = (t: number) => Math.floor(t / generationMs(horizonMs));
  const newestEarlier = new Map<string, number>();
  return log.map((r) => {
    const earlier = newestEarlier.get(r.id);
    newestEarlier.set(r.id, Math.max(earlier ?? Number.NEGATIVE_INFINITY, gen(r.time)));
    return earlier !== undefined && earlier >= gen(r.time) - HORIZON_GENERATIONS;
  });
}

/** A deterministic pseudo-random source (mulberry32). */
function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

/**
 * A partition's log: ingest times rising ~`stepMs` a record with jitter (gateways' clocks a little apart,
 * never a generation behind), a share of records retrying an id from up to ~1.5 horizons back.
 */
function makeLog(seed: number, n: number, options: { stepMs?: number; retryShare?: number } = {}): Rec[] {
  const next = random(seed);
  const stepMs = options.stepMs ?? 20;
  const retryShare = options.retryShare ?? 0.25;
  const log: Rec[] = [];
  let clock = T0;
  for (let offset = 0; offset < n; offset++) {
    clock += Math.floor(next() * 2 * stepMs);
    const time = clock - Math.floor(next() * 300);
    let id = `e-${seed}-${offset}`;
    if (log.length > 0 && next() < retryShare) {
      const back = Math.floor(next() * Math.min(log.length, Math.ceil((1.5 * HORIZON) / stepMs)));
      id = (log[log.length - 1 - back] as Rec).id;
    }
    log.push({ offset, id, time });
  }
  return log;
}

const answers = (state: DedupeState, records: readonly Rec[], partition = 0) => records.map((r) => state.isRepeat(partition, r.offset, r.id, r.time));

/** The first offset from which re-reading stays exact: records at most one generation behind the newest read. */
function seekBackLimit(log: readonly Rec[], upTo: number): number {
  const newest = Math.max(...log.slice(0, upTo).map((r) => r.time));
  const limit = (Math.floor(newest / GEN) - 1) * GEN;
  let from = upTo;
  while (from > 0 && (log[from - 1] as Rec).time >= limit) from--;
  return from;
}

function shuffle<T>(items: readonly T[], next: () => number): T[] {
  const out = [...items];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(next() * (i + 1));
    [out[i], out[j]] = [out[j] as T, out[i] as T];
  }
  return out;
}

const spillDirectory = mkdtempSync(join(tmpdir(), "devpipe-dedupe-test-"));
afterAll(() => rmSync(spillDirectory, { recursive: true, force: true }));

// Every rule holds the same with the table spilling to disk past a few ids (runs of 64 entries).
for (const [mode, spill] of [
  ["in memory", undefined],
  ["spilling to disk", { directory: spillDirectory, hotLimit: 64 }],
] as const) {
  const newState = (horizonMs: number) => new DedupeState(horizonMs, quiet, spill);

  describe(`dedupe: the rule (${mode})`, () => {
    test("answers follow the rule on a long log with retries near and past the horizon", () => {
      for (const seed of [1, 2, 3]) {
        const log = makeLog(seed, 20_000);
        const expected = oracle(log);
        const state = newState(HORIZON);
        expect(answers(state, log)).toEqual(expected);
        // The log has both kinds of retry: some are repeats, some came back after the horizon.
        const seen = new Set<string>();
        const retried = log.filter((r) => seen.has(r.id) || !seen.add(r.id)).length;
        const repeats = expected.filter(Boolean).length;
        expect(repeats).toBeGreaterThan(1_000);
        expect(retried - repeats).toBeGreaterThan(100);
      }
    });

    test.each([20, 1])("re-reading after a seek back gives the same answers, however often (a record every ~%d ms)", (stepMs) => {
      const log = makeLog(7, 20_000, { stepMs });
      const expected = oracle(log);
      const state = newState(HORIZON);
      const next = random(70);
      let read = 0;
      while (read < log.length) {
        const upTo = Math.min(log.length, read + 1 + Math.floor(next() * 800));
        expect(answers(state, log.slice(read, upTo))).toEqual(expected.slice(read, upTo));
        // Seek back somewhere the runners could go back to, and read again from there.
        const limit = seekBackLimit(log, upTo);
        const from = limit + Math.floor(next() * (upTo - limit));
        expect(answers(state, log.slice(from, upTo))).toEqual(expected.slice(from, upTo));
        read = upTo;
      }
    });

    test("horizon edge: within the horizon is always a repeat, 9 generations or more never", () => {
      const cases: [earlier: number, later: number, repeat: boolean][] = [
        [1_000, 9_000, true], // exactly the horizon
        [1_999, 9_999, true], // exactly the horizon, ending a generation
        [1_999, 10_000, false], // one ms past it, in the next generation
        [1_000, 9_999, true], // past the horizon, within the quantisation (< 9 generations)
        [0, 9_000, false], // 9 generations
        [5_000, 4_000, true], // the earlier record has the later time (another gateway's clock)
        [5_000, 5_000, true],
      ];
      for (const [earlier, later, repeat] of cases) {
        const state = newState(HORIZON);
        expect(state.isRepeat(0, 10, "id", T0 + earlier)).toBe(false);
        expect(state.isRepeat(0, 11, "id", T0 + later)).toBe(repeat);
      }
      // T0 is a multiple of the generation: the cases above sit on its boundaries. Random pairs anywhere:
      const next = random(11);
      for (let i = 0; i < 2_000; i++) {
        const state = newState(HORIZON);
        const earlier = T0 + Math.floor(next() * 100_000);
        const diff = Math.floor(next() * 2 * HORIZON);
        state.isRepeat(0, 1, "x", earlier);
        const repeat = state.isRepeat(0, 2, "x", earlier + diff);
        if (diff <= HORIZON) expect(repeat).toBe(true);
        if (diff >= 9 * GEN) expect(repeat).toBe(false);
      }
    });

    test("an earlier copy with a later time (a gateway's clock behind another's) makes a repeat, wherever it is held", () => {
      const state = newState(HORIZON);
      // Copies in generations 5 and 6, then more ids (spilling: frozen with them), then a copy stamped in generation 3.
      expect(state.isRepeat(0, 0, "a", T0 + 5 * GEN)).toBe(false);
      expect(state.isRepeat(0, 1, "b", T0 + 6 * GEN)).toBe(false);
      for (let i = 0; i < 200; i++) state.isRepeat(0, 2 + i, `filler-${i}`, T0 + 6 * GEN);
      expect(state.isRepeat(0, 202, "a", T0 + 3 * GEN)).toBe(true);
      expect(state.isRepeat(0, 203, "b", T0 + 3 * GEN + 1)).toBe(true);
      expect(state.isRepeat(0, 204, "c", T0 + 3 * GEN)).toBe(false);
    });

    test("only an earlier offset makes a repeat: the first occurrence read again is not one", () => {
      const state = newState(HORIZON);
      expect(state.isRepeat(0, 5, "a", T0)).toBe(false);
      expect(state.isRepeat(0, 6, "a", T0 + 1)).toBe(true);
      expect(state.isRepeat(0, 5, "a", T0)).toBe(false);
      expect(state.isRepeat(0, 6, "a", T0 + 1)).toBe(true);
      // Partitions are independent logs.
      expect(state.isRepeat(1, 6, "a", T0 + 1)).toBe(false);
    });

    test("a horizon that is no multiple of 8 rounds the generation up: still at least the horizon", () => {
      const state = newState(1_001);
      expect(generationMs(1_001)).toBe(126);
      expect(state.isRepeat(0, 0, "x", T0 + 5)).toBe(false);
      expect(state.isRepeat(0, 1, "x", T0 + 5 + 1_001)).toBe(true);
      expect(() => newState(0)).toThrow(RangeError);
    });
  });

  describe(`dedupe: memory (${mode})`, () => {
    test("generations past the horizon are dropped; their ids no longer count", () => {
      const state = newState(HORIZON);
      for (let i = 0; i < 1_000; i++) state.isRepeat(0, i, `old-${i}`, T0 + (i % GEN));
      expect(state.size()).toBe(1_000);
      // 10 generations later: generation 0 is more than 9 behind the newest, swept a few slots a record.
      let offset = 1_000;
      const later = T0 + 10 * GEN;
      for (let i = 0; i < 500; i++) expect(state.isRepeat(0, offset++, `new-${i}`, later)).toBe(false);
      expect(state.size()).toBe(500);
      expect(state.isRepeat(0, offset++, "old-3", later)).toBe(false);
      expect(state.isRepeat(0, offset++, "new-3", later)).toBe(true);
    });

    test("a generation one behind the newest is still exact (the slack for seeks back and clock skew)", () => {
      const state = newState(HORIZON);
      state.isRepeat(0, 0, "a", T0);
      state.isRepeat(0, 1, "b", T0 + 8 * GEN);
      state.isRepeat(0, 2, "c", T0 + 9 * GEN); // newest generation: 9; generation 0 is kept
      expect(state.isRepeat(0, 3, "a", T0 + 8 * GEN)).toBe(true); // one behind the newest, 8 after the first
      expect(state.isRepeat(0, 1, "b", T0 + 8 * GEN)).toBe(false); // re-read
    });

    test("a record older than the kept generations is checked against the kept ones only, however far the sweep got", () => {
      const lagging = (sweptFirst: boolean) => {
        const state = newState(HORIZON);
        let offset = 0;
        for (let i = 0; i < 10; i++) state.isRepeat(0, offset++, `a-${i}`, T0 + i);
        state.isRepeat(0, offset++, "x", T0 + 10 * GEN); // generation 0 is dropped
        if (sweptFirst) for (let i = 0; i < 500; i++) state.isRepeat(0, offset++, `y-${i}`, T0 + 10 * GEN);
        const size = state.size();
        // A gateway's clock 10 generations behind: the copies are in its horizon, but generation 0 is gone.
        const answers = Array.from({ length: 10 }, (_, i) => state.isRepeat(0, offset++, `a-${i}`, T0 + 500));
        // Not remembered either (the calls may sweep meanwhile).
        expect(state.size()).toBeLessThanOrEqual(size);
        return answers.some(Boolean);
      };
      expect(lagging(false)).toBe(false);
      expect(lagging(true)).toBe(false);
    });

    test("memory stays bounded by the horizon over a long log", () => {
      const state = newState(HORIZON);
      const log = makeLog(5, 100_000, { stepMs: 2, retryShare: 0.05 });
      let peak = 0;
      for (const r of log) {
        state.isRepeat(0, r.offset, r.id, r.time);
        peak = Math.max(peak, state.size());
      }
      const span = (log[log.length - 1] as Rec).time - (log[0] as Rec).time;
      const perGeneration = log.length / (span / GEN);
      // 9 generations kept, the newest one filling, and a dropped one being swept.
      expect(peak).toBeLessThan(12 * perGeneration);
      expect(state.size()).toBeGreaterThan(8 * perGeneration * 0.9);
    });

    test("revoked partitions are forgotten", () => {
      const state = newState(HORIZON);
      state.isRepeat(0, 0, "a", T0);
      state.isRepeat(1, 0, "b", T0);
      state.revoked([0]);
      expect(state.size()).toBe(1);
      expect(state.isRepeat(0, 1, "a", T0)).toBe(false);
    });
  });

  describe(`dedupe: persisted rows (${mode})`, () => {
    /** Reads `log[from, to)` into `state`, taking rows at random points; returns the answers and the rows. */
    function readAndPersist(state: DedupeState, log: readonly Rec[], from: number, to: number, next: () => number) {
      const rows: SegmentRow[] = [];
      const got: boolean[] = [];
      for (let i = from; i < to; i++) {
        const r = log[i] as Rec;
        got.push(state.isRepeat(0, r.offset, r.id, r.time));
        if (next() < 0.01) rows.push(...state.take().rows);
      }
      rows.push(...state.take().rows);
      return { got, rows };
    }

    test("restored on another process from the rows, in any order, the answers are the same", () => {
      const log = makeLog(21, 12_000);
      const expected = oracle(log);
      const next = random(210);
      const first = newState(HORIZON);
      const a = readAndPersist(first, log, 0, 9_000, next);
      expect(a.got).toEqual(expected.slice(0, 9_000));
      // Rows are contiguous (one per take) and cover what was read.
      expect(coverageOf(a.rows)).toBe(9_000);

      for (let attempt = 0; attempt < 5; attempt++) {
        const second = newState(HORIZON);
        const rows = shuffle(a.rows, next);
        // Loaded in any order; loading rows twice changes nothing.
        second.load(0, rows.slice(0, Math.floor(rows.length / 2)));
        const coverage = second.load(0, rows);
        expect(coverage).toBe(9_000);
        // The operators may resume before the coverage (they committed less): re-read from there and go on.
        const from = seekBackLimit(log, 9_000) + Math.floor(next() * 50);
        const b = readAndPersist(second, log, from, 12_000, next);
        expect(b.got).toEqual(expected.slice(from, 12_000));

        // A third process loads both writers' rows (overlapping: the second re-read a range the first wrote).
        const third = newState(HORIZON);
        expect(third.load(0, shuffle([...a.rows, ...b.rows], next))).toBe(12_000);
        const again = seekBackLimit(log, 12_000);
        expect(answers(third, log.slice(again, 12_000))).toEqual(expected.slice(again, 12_000));
      }
    });

    test("rows written further ahead by a stale owner do not change the answers of one reading behind them", () => {
      const log = makeLog(31, 6_000);
      const expected = oracle(log);
      const next = random(310);
      // The stale owner read everything; the new one was assigned with only the rows up to 4000 loaded,
      // then the stale owner's late rows for [4000, 6000) arrive too (a restart loads them all).
      const stale = newState(HORIZON);
      const staleRows = readAndPersist(stale, log, 0, 6_000, next).rows;
      const owner = newState(HORIZON);
      owner.load(0, staleRows);
      const from = seekBackLimit(log, 4_000);
      expect(answers(owner, log.slice(from, 6_000))).toEqual(expected.slice(from, 6_000));
    });

    test("reading before where the rows start lowers an id's first offset, and the rows written then carry it", () => {
      const log: Rec[] = Array.from({ length: 200 }, (_, offset) => ({ offset, id: [60, 150, 180].includes(offset) ? "X" : `e-${offset}`, time: T0 + offset }));
      const expected = oracle(log);
      // A process that read only [100, 200) (its operators started there) wrote what it saw: X first at 150.
      const late = newState(HORIZON);
      answers(late, log.slice(100));
      const lateRows = late.take().rows;
      // Another one loads those rows and reads from 50: X at 60 is the first, 150 and 180 repeat it.
      const early = newState(HORIZON);
      early.load(0, lateRows);
      expect(answers(early, log.slice(50))).toEqual(expected.slice(50));
      // A third one, from both processes' rows, answers the same.
      const third = newState(HORIZON);
      third.load(0, [...lateRows, ...early.take().rows]);
      expect(answers(third, log.slice(100))).toEqual(expected.slice(100));
    });

    test("rows carry only what changed, and restored state has the same entries", () => {
      // All within the horizon: nothing dropped, so both states hold every entry.
      const log = makeLog(41, 3_000, { stepMs: 1, retryShare: 0.5 });
      const state = newState(HORIZON);
      answers(state, log);
      const { rows } = state.take();
      expect(rows).toHaveLength(1);
      const restored = newState(HORIZON);
      restored.load(0, rows);
      expect(restored.size()).toBe(state.size());
      // Nothing read since: nothing to write.
      expect(state.take().rows).toEqual([]);
      // A re-read of what was written changes nothing but still covers its range.
      const reread = answers(state, log.slice(2_990));
      expect(reread).toEqual(oracle(log).slice(2_990));
      const more = state.take().rows;
      expect(more.map((r) => [r.from_offset, r.to_offset])).toEqual([[2_990, 3_000]]);
      let entries = 0;
      decodeIds(more[0]?.ids ?? new Uint8Array(), () => entries++);
      expect(entries).toBe(0);
    });

    test("rows a failed write gives back go out with the next take, merged into one row per contiguous range", () => {
      const log = makeLog(51, 1_000, { stepMs: 1 });
      const state = newState(HORIZON);
      answers(state, log.slice(0, 400));
      const failed = state.take();
      answers(state, log.slice(400, 700));
      failed.giveBack();
      answers(state, log.slice(700));
      const { rows } = state.take();
      expect(rows.map((r) => [r.partition, r.from_offset, r.to_offset])).toEqual([[0, 0, 1_000]]);
      expect(rows[0]?.max_time).toBe(Math.max(...log.map((r) => r.time)));
      const restored = newState(HORIZON);
      expect(restored.load(0, rows)).toBe(1_000);
      expect(restored.size()).toBe(state.size());
      // Given back after the partition was revoked: dropped, it is the new owner's to read again.
      answers(state, [{ offset: 1_000, id: "z", time: log[999]?.time ?? T0 }]);
      const late = state.take();
      state.revoked([0]);
      late.giveBack();
      expect(state.take().rows).toEqual([]);
    });

    test("a jump in the offsets read starts a new row", () => {
      const state = newState(HORIZON);
      state.isRepeat(0, 10, "a", T0);
      state.isRepeat(0, 11, "b", T0);
      state.isRepeat(0, 20, "c", T0); // a seek forward
      state.isRepeat(0, 21, "d", T0);
      state.isRepeat(0, 5, "e", T0); // a seek back before both
      state.isRepeat(0, 6, "f", T0);
      state.isRepeat(0, 4, "g", T0); // back by one before the range being read
      state.isRepeat(1, 0, "a", T0);
      const rows = state.take().rows.map((r) => [r.partition, r.from_offset, r.to_offset]);
      expect(rows).toEqual([
        [0, 10, 12],
        [0, 20, 22],
        [0, 5, 7],
        [0, 4, 5],
        [1, 0, 1],
      ]);
    });

    test("records passed over (no envelope, another class's type) keep the range contiguous and are no ids", () => {
      const state = newState(HORIZON);
      expect(state.isRepeat(0, 0, "a", T0)).toBe(false);
      state.pass(0, 1, T0);
      state.pass(0, 2, T0 + 1);
      expect(state.isRepeat(0, 3, "a", T0 + 2)).toBe(true);
      const rows = state.take().rows;
      expect(rows.map((r) => [r.partition, r.from_offset, r.to_offset])).toEqual([[0, 0, 4]]);
      expect(coverageOf(rows)).toBe(4);
      expect(state.size()).toBe(1);
    });

    test("the ids format: round trip, wide offsets and times, concatenated blocks, unaligned bytes", () => {
      const state = newState(HORIZON);
      state.isRepeat(0, 0, "a", T0);
      state.isRepeat(0, 1, "b", T0 + 2 ** 33); // times 2^33 ms apart: stored as f64
      const rows = [...state.take().rows];
      expect(rows).toHaveLength(1);
      const decoded: [number, number][] = [];
      decodeIds(rows[0]?.ids ?? new Uint8Array(), (_hi, _lo, offset, time) => decoded.push([offset, time]));
      expect(decoded).toEqual([
        [0, T0],
        [1, T0 + 2 ** 33],
      ]);

      const ids = rows[0]?.ids ?? new Uint8Array();
      const twice = new Uint8Array(ids.byteLength * 2);
      twice.set(ids);
      twice.set(ids, ids.byteLength);
      // As the driver may hand it: a view at an odd position of a larger buffer.
      const unaligned = new Uint8Array(twice.byteLength + 3);
      unaligned.set(twice, 3);
      const view = unaligned.subarray(3);
      let count = 0;
      decodeIds(view, () => count++);
      expect(count).toBe(4);

      expect(() => decodeIds(new Uint8Array([9, 0, 0, 0]), () => undefined)).toThrow();
      expect(() => decodeIds(ids.subarray(0, ids.byteLength - 8), () => undefined)).toThrow();
    });

    test("offsets beyond 32 bits of the first one read keep working", () => {
      const state = newState(HORIZON);
      const base = 2 ** 40;
      expect(state.isRepeat(0, base, "a", T0)).toBe(false);
      expect(state.isRepeat(0, base + 1, "a", T0)).toBe(true);
      // 3·2^31 offsets later (past the table's 32-bit window): the table rebases.
      const far = base + 3 * 2 ** 31;
      expect(state.isRepeat(0, far, "b", T0 + 1)).toBe(false);
      expect(state.isRepeat(0, far + 1, "b", T0 + 1)).toBe(true);
      const { rows } = state.take();
      expect(rows.map((r) => [r.from_offset, r.to_offset])).toEqual([
        [base, base + 2],
        [far, far + 2],
      ]);
      const restored = newState(HORIZON);
      restored.load(0, rows);
      expect(restored.isRepeat(0, far + 1, "b", T0 + 1)).toBe(true);
      expect(restored.isRepeat(0, far, "b", T0 + 1)).toBe(false);
    });

    test("an unreadable row is left out, of the coverage too", () => {
      const state = newState(HORIZON);
      answers(state, makeLog(61, 100));
      const [good] = state.take().rows;
      if (!good) throw new Error("no row");
      const bad: SegmentRow = { partition: 0, from_offset: 100, to_offset: 200, max_time: good.max_time, ids: new Uint8Array([7, 7, 7]) };
      const after: SegmentRow = { ...good, from_offset: 200, to_offset: 300, ids: new Uint8Array(0) };
      expect(newState(HORIZON).load(0, [good, bad, after])).toBe(100);
    });
  });
}

describe("dedupe: the spilling table's memory", () => {
  test("is allocated once, for the hot limit, from the first id: it neither grows nor shrinks while runs are frozen", () => {
    const hotLimit = 1_000;
    const state = new DedupeState(HORIZON, quiet, { directory: spillDirectory, hotLimit });
    const tableBytes = (Math.floor(hotLimit / 0.7) + 1) * 16;
    const log = makeLog(9, 20_000, { stepMs: 2, retryShare: 0.05 });
    const answers = log.map((r, i) => {
      const repeat = state.isRepeat(0, r.offset, r.id, r.time);
      // The table, and the few KiB of the range read so far.
      if (i === 0) expect(state.bytes() - tableBytes).toBeWithin(0, 4_096);
      return repeat;
    });
    expect(answers).toEqual(oracle(log));
    // Many runs were frozen out of the one table.
    expect(state.size()).toBeGreaterThan(hotLimit * 5);
    state.close();
  });
});

describe("dedupe: coverage", () => {
  const rows = (...ranges: [number, number][]) => ranges.map(([from_offset, to_offset]) => ({ from_offset, to_offset }));
  test("the contiguous run of rows from the first one", () => {
    expect(coverageOf([])).toBeUndefined();
    expect(coverageOf(rows([0, 10]))).toBe(10);
    expect(coverageOf(rows([0, 10], [10, 20]))).toBe(20);
    expect(coverageOf(rows([10, 20], [0, 10]))).toBe(20); // any order
    expect(coverageOf(rows([0, 10], [11, 20]))).toBe(10); // a gap ends it
    expect(coverageOf(rows([0, 10], [5, 8], [8, 30]))).toBe(30); // overlaps, one inside another
    expect(coverageOf(rows([0, 10], [0, 25], [3, 12]))).toBe(25); // same start, longer
    expect(coverageOf(rows([100, 150], [120, 130], [150, 160], [170, 180]))).toBe(160); // not from 0; a later gap
  });
});
