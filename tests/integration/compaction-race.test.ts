import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { closeServices, type Services } from "../../lib/services.ts";
import { addFiles, CompactionConflictError, isLive, type LakeFile, liveFiles, replaceFiles } from "../../lib/store/lake-files.ts";
import { serviceSetups } from "../support/setups.ts";
import { tempDir } from "../support/tmp.ts";

/**
 * Two compactors racing on one hour: the loser's transaction must change nothing. Before the fix it
 * committed the retirement of whatever files were still live, which lost their rows (53 events in a
 * scale-out run), while its merged file was never listed.
 */
const setups = serviceSetups({});
const hour = Date.UTC(2026, 10, 21, 10);
const file = (key: string, fromOffset: number, toOffset: number, compacted = false): LakeFile => ({ key, type: "sensor.reading", hour, partition: 0, fromOffset, toOffset, rows: toOffset - fromOffset + 1, bytes: 100, compacted });

for (const [name, setup] of Object.entries(setups)) {
  describe(`compaction race on ${name}`, () => {
    const dir = tempDir("devpipe-compaction-race-");
    let services: Services;
    let drop: () => Promise<void>;
    beforeAll(async () => {
      ({ services, drop } = await setup(dir.path));
    });
    afterAll(async () => {
      await closeServices(services);
      await drop();
      dir.remove();
    });

    test("the loser of two compactions of overlapping groups retires nothing and lists nothing", async () => {
      const { sql } = services.db;
      const [a, b, c] = [file("f/a", 0, 9), file("f/b", 10, 19), file("f/c", 20, 29)];
      await sql.begin((tx) => addFiles(tx, [a, b, c]));
      // The winner saw only a and b (c arrived later) and merged them.
      await sql.begin((tx) => replaceFiles(tx, file("f/ab", 0, 19, true), [a.key, b.key]));
      // The loser saw a, b and c.
      const loser = sql.begin((tx) => replaceFiles(tx, file("f/abc", 0, 29, true), [a.key, b.key, c.key]));
      await expect(loser).rejects.toBeInstanceOf(CompactionConflictError);
      expect((await liveFiles(sql)).map((f) => f.key).sort()).toEqual(["f/ab", "f/c"]);
      expect(await isLive(sql, "f/abc")).toBe(false);
      expect(await isLive(sql, "f/c")).toBe(true);
    });
  });
}
