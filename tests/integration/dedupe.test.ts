import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { readdirSync } from "node:fs";
import { connectPostgres, type Db, startPglite } from "../../lib/db/index.ts";
import { migrate } from "../../lib/db/migrate.ts";
import { createLogger } from "../../lib/log.ts";
import { createDedupe, type Dedupe, generationMs, HORIZON_GENERATIONS } from "../../workers/chain/dedupe.ts";
import { createRepeats } from "../../workers/chain/repeats.ts";
import { freshDatabase } from "../support/pg.ts";
import { tempDir } from "../support/tmp.ts";

/**
 * The chain's dedupe state in the database (table dedupe_segments): what one instance persists another
 * loads on assignment, with the coverage the chain re-reads from and the same answers; a database error
 * loses nothing; the purge deletes only rows past the horizon. On real Postgres and on the embedded
 * PGlite, both through the postgres driver.
 */

const quiet = createLogger({ test: "dedupe" }, () => undefined);
const HORIZON = 8_000;
const GEN = generationMs(HORIZON);
const T0 = 1_780_000_000_000;

interface Rec {
  partition: number;
  offset: number;
  id: string;
  time: number;
}

/** The rule: a repeat iff an earlier record of the partition had the id in a generation at most 8 before. */
function oracle(log: readonly Rec[]): boolean[] {
  const gen = (t: number) => Math.floor(t / GEN);
  const newestEarlier = new Map<string, number>();
  return log.map((r) => {
    const key = `${r.partition}/${r.id}`;
    const earlier = newestEarlier.get(key);
    newestEarlier.set(key, Math.max(earlier ?? Number.NEGATIVE_INFINITY, gen(r.time)));
    return earlier !== undefined && earlier >= gen(r.time) - HORIZON_GENERATIONS;
  });
}

/** Records of `partition` at offsets [0, n): ~5 ms apart, every 7th retrying an id from up to ~2.5 horizons back. */
function makeLog(partition: number, n: number): Rec[] {
  const log: Rec[] = [];
  for (let offset = 0; offset < n; offset++) {
    const back = (offset * 7919) % 4_000;
    const id = offset % 7 === 6 && offset > back ? (log[offset - 1 - back] as Rec).id : `p${partition}-${offset}`;
    log.push({ partition, offset, id, time: T0 + offset * 5 - (offset % 3) * 40 });
  }
  return log;
}

const answers = (dedupe: Dedupe, records: readonly Rec[]) => records.map((r) => dedupe.isRepeat(r.partition, r.offset, r.id, r.time));

/** A block of the ids format holding no id: rows the tests insert by hand. */
const emptyIds = () => {
  const bytes = new Uint8Array(24);
  bytes[0] = 1;
  return bytes;
};

interface Implementation {
  name: string;
  open(): Promise<Db>;
  cleanup(): Promise<void>;
}

const implementations: Implementation[] = [
  (() => {
    let database: Awaited<ReturnType<typeof freshDatabase>> | undefined;
    return {
      name: "postgres",
      async open() {
        database = await freshDatabase();
        return connectPostgres(database.url, quiet);
      },
      cleanup: async () => database?.drop(),
    };
  })(),
  (() => {
    const dir = tempDir("devpipe-dedupe-");
    return { name: "pglite", open: () => startPglite(dir.path, quiet), cleanup: async () => dir.remove() };
  })(),
];

for (const implementation of implementations) {
  describe(`dedupe state on ${implementation.name}`, () => {
    let db: Db;
    let topicCount = 0;
    const newTopic = () => `events.raw.${implementation.name}.${topicCount++}`;
    beforeAll(async () => {
      db = await implementation.open();
      await migrate(db.sql, quiet);
    });
    afterAll(async () => {
      await db.close();
      await implementation.cleanup();
    });

    const rowsOf = async (topic: string) =>
      (
        await db.sql<{ partition: number; from_offset: number; to_offset: number }[]>`
          select partition, from_offset, to_offset from dedupe_segments where topic = ${topic} order by partition, from_offset, to_offset`
      ).map((r) => [r.partition, r.from_offset, r.to_offset]);

    test("what one instance persists another loads: coverage, and the same answers on re-reading and after", async () => {
      const topic = newTopic();
      const logs = [makeLog(0, 1_600), makeLog(1, 1_600)];
      const expected = logs.map(oracle);
      const first = createDedupe({ sql: db.sql, topic, horizonMs: HORIZON, logger: quiet });
      expect(await first.assigned([0, 1])).toEqual(new Map());
      for (const [from, to] of [
        [0, 700],
        [700, 1_200],
      ] as const) {
        logs.forEach((log, p) => expect(answers(first, log.slice(from, to))).toEqual(expected[p]?.slice(from, to) ?? []));
        await first.persist();
      }
      // One row per partition per persist.
      expect(await rowsOf(topic)).toEqual([
        [0, 0, 700],
        [0, 700, 1_200],
        [1, 0, 700],
        [1, 700, 1_200],
      ]);
      // Retries within the horizon (repeats) and past it (not).
      expect(expected[0]?.filter(Boolean).length).toBeGreaterThan(30);
      expect(expected[0]?.filter(Boolean).length).toBeLessThan(Math.floor(1_600 / 7) - 30);

      // The partitions move to another instance; its operators committed up to 1150.
      first.revoked([0, 1]);
      expect(first.size()).toBe(0);
      const second = createDedupe({ sql: db.sql, topic, horizonMs: HORIZON, logger: quiet });
      expect(await second.assigned([0, 1, 2])).toEqual(
        new Map([
          [0, 1_200],
          [1, 1_200],
        ]),
      );
      expect(second.size()).toBeGreaterThan(0);
      logs.forEach((log, p) => {
        expect(answers(second, log.slice(1_150, 1_600))).toEqual(expected[p]?.slice(1_150, 1_600) ?? []);
      });
      await second.persist();
      const third = createDedupe({ sql: db.sql, topic, horizonMs: HORIZON, logger: quiet });
      const coverage = await third.assigned([0]);
      expect(coverage.get(0)).toBe(1_600);
      expect(answers(third, logs[0]?.slice(1_500) ?? [])).toEqual(expected[0]?.slice(1_500) ?? []);
    });

    test("a partition persisted in hundreds of rows loads them all (read a page of rows at a time), with the same answers", async () => {
      const topic = newTopic();
      const log = makeLog(0, 1_600);
      const expected = oracle(log);
      const first = createDedupe({ sql: db.sql, topic, horizonMs: HORIZON, logger: quiet });
      await first.assigned([0]);
      // 300 rows of 5 records: several pages, the last one partial.
      for (let from = 0; from < 1_500; from += 5) {
        expect(answers(first, log.slice(from, from + 5))).toEqual(expected.slice(from, from + 5));
        await first.persist();
      }
      expect((await rowsOf(topic)).length).toBe(300);
      first.revoked([0]);
      const second = createDedupe({ sql: db.sql, topic, horizonMs: HORIZON, logger: quiet });
      expect(await second.assigned([0])).toEqual(new Map([[0, 1_500]]));
      // Every id within the horizon came back: retries of the last records read answer as the oracle says.
      expect(answers(second, log.slice(1_500))).toEqual(expected.slice(1_500));
      expect(expected.slice(1_500).filter(Boolean).length).toBeGreaterThan(3);
    });

    test("a state spilling to disk persists and loads the same rows and answers the same; close deletes its files", async () => {
      const topic = newTopic();
      const logs = [makeLog(0, 1_600), makeLog(1, 1_600)];
      const expected = logs.map(oracle);
      const directory = tempDir("devpipe-dedupe-spill-");
      const files = () => readdirSync(directory.path);
      try {
        const spill = { directory: directory.path, hotLimit: 50 };
        const first = createDedupe({ sql: db.sql, topic, horizonMs: HORIZON, logger: quiet, spill });
        expect(await first.assigned([0, 1])).toEqual(new Map());
        logs.forEach((log, p) => expect(answers(first, log.slice(0, 1_200))).toEqual(expected[p]?.slice(0, 1_200) ?? []));
        await first.persist();
        // Most of the ids are frozen in files, a table of at most 50 each aside.
        expect(files().length).toBeGreaterThan(20);
        expect(first.size()).toBeGreaterThan(1_000);
        first.close();
        expect(files()).toEqual([]);
        expect(first.size()).toBe(0);

        // Another instance, spilling too, loads each partition's rows straight into one file and answers the same.
        const second = createDedupe({ sql: db.sql, topic, horizonMs: HORIZON, logger: quiet, spill });
        expect(await second.assigned([0, 1])).toEqual(
          new Map([
            [0, 1_200],
            [1, 1_200],
          ]),
        );
        expect(files().length).toBe(2);
        expect(second.size()).toBeGreaterThan(2_000);
        logs.forEach((log, p) => expect(answers(second, log.slice(1_150))).toEqual(expected[p]?.slice(1_150) ?? []));
        await second.persist();
        // And what a spilling state wrote, one in memory reads.
        const third = createDedupe({ sql: db.sql, topic, horizonMs: HORIZON, logger: quiet });
        expect((await third.assigned([0])).get(0)).toBe(1_600);
        expect(answers(third, logs[0]?.slice(1_400) ?? [])).toEqual(expected[0]?.slice(1_400) ?? []);
        second.close();
        expect(files()).toEqual([]);
      } finally {
        directory.remove();
      }
    });

    test("per type: a type a day-long view reads is judged over its view's span, others over the default horizon", async () => {
      const topic = newTopic();
      const HOUR = 3_600_000;
      const repeats = createRepeats({ sql: db.sql, topic, defaultHorizonMs: HOUR, logger: quiet });
      expect(await repeats.assigned([0])).toEqual(new Map());
      // fines_by_user_1d reads vehicle.location: its repeats count for a day; sensor.reading's for an hour.
      expect(repeats.isRepeat(0, 0, "vehicle.location", "loc-1", T0)).toBe(false);
      expect(repeats.isRepeat(0, 1, "sensor.reading", "sen-1", T0)).toBe(false);
      repeats.pass(0, 2, T0); // bytes that are no envelope
      expect(repeats.isRepeat(0, 3, "vehicle.location", "loc-1", T0 + 3 * HOUR)).toBe(true);
      expect(repeats.isRepeat(0, 4, "sensor.reading", "sen-1", T0 + 3 * HOUR)).toBe(false);
      expect(repeats.isRepeat(0, 5, "sensor.reading", "sen-1", T0 + 3 * HOUR + 1)).toBe(true);
      await repeats.persist();
      // Every class persisted one contiguous range: a new owner re-reads nothing before offset 6.
      const restored = createRepeats({ sql: db.sql, topic, defaultHorizonMs: HOUR, logger: quiet });
      expect(await restored.assigned([0])).toEqual(new Map([[0, 6]]));
      expect(restored.isRepeat(0, 6, "vehicle.location", "loc-1", T0 + 4 * HOUR)).toBe(true);
      expect(restored.isRepeat(0, 7, "sensor.reading", "sen-1", T0 + 3 * HOUR + 2)).toBe(true);
    });

    test("a database error is logged, never thrown; the ids go out with the next persist", async () => {
      const topic = newTopic();
      const warnings: string[] = [];
      const logger = createLogger({ test: "dedupe" }, (line) => {
        warnings.push(line);
      });
      const log = makeLog(0, 300);
      const dedupe = createDedupe({ sql: db.sql, topic, horizonMs: HORIZON, logger });
      answers(dedupe, log.slice(0, 100));
      await db.sql`alter table dedupe_segments rename to dedupe_segments_away`;
      try {
        await dedupe.persist();
      } finally {
        await db.sql`alter table dedupe_segments_away rename to dedupe_segments`;
      }
      expect(warnings.some((line) => line.includes("persisting the dedupe state failed"))).toBe(true);
      answers(dedupe, log.slice(100, 300));
      await dedupe.persist();
      expect(await rowsOf(topic)).toEqual([[0, 0, 300]]);
      const other = createDedupe({ sql: db.sql, topic, horizonMs: HORIZON, logger: quiet });
      expect(await other.assigned([0])).toEqual(new Map([[0, 300]]));
      expect(answers(other, log.slice(250))).toEqual(oracle(log).slice(250));
    });

    test("a range written twice keeps both writers' ids", async () => {
      const topic = newTopic();
      const log: Rec[] = Array.from({ length: 100 }, (_, offset) => ({ partition: 0, offset, id: `id-${offset % 40}`, time: T0 + offset }));
      const expected = oracle(log);
      const first = createDedupe({ sql: db.sql, topic, horizonMs: HORIZON, logger: quiet });
      answers(first, log);
      await first.persist();
      // A second owner that loaded those rows re-reads the same range: nothing new, a row without ids.
      const second = createDedupe({ sql: db.sql, topic, horizonMs: HORIZON, logger: quiet });
      await second.assigned([0]);
      expect(answers(second, log)).toEqual(expected);
      await second.persist();
      expect(await rowsOf(topic)).toEqual([[0, 0, 100]]);
      const [row] = await db.sql<{ bytes: number }[]>`select length(ids) as bytes from dedupe_segments where topic = ${topic}`;
      // The first writer's block (40 ids, 16 bytes each, a 24-byte header); the second had nothing new.
      expect(row?.bytes).toBe(24 + 40 * 16);
      const third = createDedupe({ sql: db.sql, topic, horizonMs: HORIZON, logger: quiet });
      expect(await third.assigned([0])).toEqual(new Map([[0, 100]]));
      expect(answers(third, log.slice(50))).toEqual(expected.slice(50));
    });

    test("the purge deletes only rows past the horizon of the newest, of owned partitions, in small batches", async () => {
      const topic = newTopic();
      const newest = T0 + 20_500;
      // Rows with max_time before this are past the horizon (and the slack generation) of the newest one.
      const keepFrom = (Math.floor(newest / GEN) - HORIZON_GENERATIONS - 1) * GEN;
      const insert = async (topicName: string, partition: number, from: number, to: number, maxTime: number) => {
        await db.sql`insert into dedupe_segments (topic, partition, from_offset, to_offset, max_time, ids)
                     values (${topicName}, ${partition}, ${from}, ${to}, ${new Date(maxTime)}, ${emptyIds()})`;
      };
      await insert(topic, 0, 0, 10, keepFrom - 1);
      await insert(topic, 0, 10, 20, keepFrom);
      await insert(topic, 0, 20, 30, newest);
      await insert(topic, 1, 0, 10, T0); // not owned by the instance below: not its to purge
      await insert(`${topic}.other`, 0, 0, 10, T0); // another topic
      // Many more expired rows of partition 0, further back.
      await db.sql`insert into dedupe_segments (topic, partition, from_offset, to_offset, max_time, ids)
                   select ${topic}, 0, -1000 + i, -999 + i, ${new Date(T0)}, ${emptyIds()} from generate_series(1000, 2199) as i`;

      const dedupe = createDedupe({ sql: db.sql, topic, horizonMs: HORIZON, logger: quiet });
      // Loaded: the rows within the horizon; the coverage starts at the first of them.
      expect(await dedupe.assigned([0])).toEqual(new Map([[0, 30]]));
      const count = async () => (await db.sql<{ n: number }[]>`select count(*)::int as n from dedupe_segments where topic = ${topic} and partition = 0`)[0]?.n;
      expect(await count()).toBe(1_203);
      // A batch at a time; the next persist goes on while a batch came back full.
      await dedupe.persist();
      expect(await count()).toBe(703);
      await dedupe.persist();
      expect(await count()).toBe(203);
      await dedupe.persist();
      expect(await count()).toBe(2);
      expect(await rowsOf(topic)).toEqual([
        [0, 10, 20],
        [0, 20, 30],
        [1, 0, 10],
      ]);
      expect(await rowsOf(`${topic}.other`)).toEqual([[0, 0, 10]]);
      // Done for now: the next purge waits a minute.
      await insert(topic, 0, 1_000_000, 1_000_010, T0);
      await dedupe.persist();
      expect(await count()).toBe(3);
    });
  });
}
