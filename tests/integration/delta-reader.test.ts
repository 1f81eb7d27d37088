import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { join } from "node:path";
import { readDelta, type S3Settings, writeDeltaFixture } from "../support/delta-reader.ts";
import { services, uniqueName } from "../support/services.ts";
import { tempDir } from "../support/tmp.ts";

/**
 * The independent Delta reader (delta-rs through tests/support/delta-reader.ts) on a table that delta-rs
 * itself wrote (tests/support/delta-fixture.py): in a local directory and on MinIO.
 */
const dir = tempDir("devpipe-delta-");
afterAll(() => dir.remove());

const places: Record<string, () => { uri: string; s3?: S3Settings }> = {
  "local dir": () => ({ uri: join(dir.path, uniqueName("table")) }),
  s3: () => ({ uri: `s3://${services().s3.bucket}/${uniqueName("delta-reader")}/events`, s3: services().s3 }),
};

for (const [name, place] of Object.entries(places)) {
  describe(`delta reader on ${name}`, () => {
    let uri = "";
    let s3: S3Settings | undefined;

    beforeAll(async () => {
      ({ uri, s3 } = place());
      const written = await writeDeltaFixture(uri, { s3 });
      expect(written.version).toBe(1);
    });

    test("reads the latest version: rows, distinct ids, partitions, files", async () => {
      const table = await readDelta(uri, { s3, countDistinct: ["event_id"], rowsByPartition: true });
      expect(table.version).toBe(1);
      expect(table.num_rows).toBe(11);
      expect(table.distinct).toEqual({ event_id: 10 });
      expect(table.partition_columns).toEqual(["date", "hour"]);
      expect(table.files).toBe(5);
      expect(table.rows_by_partition).toEqual({ "date=2024-03-01/hour=10": 5, "date=2024-03-01/hour=11": 4, "date=2024-03-02/hour=0": 2 });
    });

    test("travels back to version 0", async () => {
      const table = await readDelta(uri, { s3, version: 0, countDistinct: ["event_id"] });
      expect(table).toMatchObject({ version: 0, num_rows: 6, distinct: { event_id: 6 }, files: 2 });
    });

    test("types: date is a date, hour an integer, event_time a UTC timestamp", async () => {
      const table = await readDelta(uri, { s3, columns: ["date", "hour"] });
      const types = Object.fromEntries(table.schema.map((f) => [f.name, [f.type, f.arrow]]));
      expect(types).toEqual({
        event_id: ["string", "string"],
        key: ["string", "string"],
        event_time: ["timestamp", "timestamp[us, tz=UTC]"],
        date: ["date", "date32[day]"],
        hour: ["integer", "int32"],
      });
      expect(table.columns).toEqual(["date", "hour"]);
      expect(table.num_rows).toBe(11);
    });

    test("errors carry the reader's message", async () => {
      await expect(readDelta(uri, { s3, columns: ["nope"] })).rejects.toThrow(/no column nope in the table/);
      await expect(readDelta(`${uri}-missing`, { s3 })).rejects.toThrow(/delta-reader: .*-missing: TableNotFoundError/);
    });
  });
}
