import { expect, test } from "bun:test";
import { join } from "node:path";
import { loadConfig } from "../../lib/config.ts";
import { Duck, sqlString } from "../../lib/lake/duckdb.ts";
import { assertLakeUsable } from "../../lib/lake/startup.ts";
import { createLogger } from "../../lib/log.ts";
import { closeServices, openServices } from "../../lib/services.ts";
import { readDelta } from "../support/delta-reader.ts";
import { tempDir } from "../support/tmp.ts";

/**
 * A lake of the layout before Delta tables is refused at start with a message naming the command, and
 * `bun run lake:migrate` converts it: each live event once, in a Delta table, the old files gone.
 */
const quiet = createLogger({ test: "lake-migrate" }, () => undefined);
const HOUR = 3_600_000;

test("an old-layout lake is refused, then converted by lake:migrate", async () => {
  const dir = tempDir("devpipe-migrate-");
  try {
    const config = loadConfig({ DATA_DIR: dir.path });
    const services = await openServices(config, quiet);
    const hour = Math.floor(Date.now() / HOUR) * HOUR - 5 * HOUR;
    const iso = new Date(hour).toISOString();
    const folder = `events/type=sensor.reading/date=${iso.slice(0, 10)}/hour=${iso.slice(11, 13)}`;
    // Two listed files that share two events (a client retry before the old readers deduplicated), and one
    // file the old manifest never listed (a flush that did not commit).
    const files = { a: `${folder}/events.enriched.p0.0-9.parquet`, b: `${folder}/events.enriched.p0.10-14.parquet`, orphan: `${folder}/events.enriched.p0.15-19.parquet` };
    const duck = await Duck.open();
    try {
      const write = async (key: string, ids: number[]) => {
        const path = services.lake.localPath(key) ?? "";
        await Bun.write(path, "");
        await duck.run(`copy (select 'm-' || i as event_id, 'sensor-' || (i % 3) as key, make_timestamptz(${hour * 1000} + i * 1000000) as event_time, make_timestamptz(${hour * 1000} + i * 1000000) as ingest_time,
          'sensor-' || (i % 3) as sensor_id, 20.5 as temperature, 40.0 as humidity from unnest(${`[${ids.join(",")}]`}) t(i)) to ${sqlString(path)} (format parquet)`);
      };
      await write(files.a, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
      await write(files.b, [8, 9, 10, 11, 12]);
      await write(files.orphan, [13, 14]);
    } finally {
      duck.close();
    }
    await services.db.sql`create table lake_files (key text primary key, removed_at timestamptz)`;
    await services.db.sql`insert into lake_files (key) values (${files.a}), (${files.b})`;
    await expect(assertLakeUsable(services.lake)).rejects.toThrow("bun run lake:migrate");
    await closeServices(services);

    // Embedded mode, as the test's own services: none of the services variables a CI run exports.
    const embeddedEnv = { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "", DATA_DIR: dir.path, LOG_LEVEL: "warn" };
    const migrate = Bun.spawn(["bun", "run", join(import.meta.dir, "../../scripts/lake-migrate.ts")], { env: embeddedEnv, stdout: "pipe", stderr: "pipe" });
    const code = await migrate.exited;
    expect({ code, stderr: await new Response(migrate.stderr).text() }).toEqual({ code: 0, stderr: "" });

    const table = await readDelta(join(dir.path, "lake", "events", "sensor_reading"), { countDistinct: ["event_id"], rowsByPartition: true });
    expect({ rows: table.num_rows, distinct: table.distinct.event_id }).toEqual({ rows: 13, distinct: 13 });
    expect(Object.keys(table.rows_by_partition ?? {})).toEqual([`date=${iso.slice(0, 10)}/hour=${new Date(hour).getUTCHours()}`]);
    const reopened = await openServices(config, quiet);
    try {
      expect(await reopened.lake.list("events/type=")).toEqual([]);
      await assertLakeUsable(reopened.lake);
      const [{ exists } = { exists: true }] = await reopened.db.sql<{ exists: boolean }[]>`select to_regclass('lake_files') is not null as exists`;
      expect(exists).toBe(false);
    } finally {
      await closeServices(reopened);
    }
  } finally {
    dir.remove();
  }
}, 120_000);
