import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { join } from "node:path";
import { createApp } from "../../api/app.ts";
import type { ChainRecord } from "../../workers/chain/types.ts";
import { type Envelope, encodeEnvelope } from "../../lib/events/envelope.ts";
import { tableLogsOf } from "../../lib/lake/delta/log.ts";
import { Duck } from "../../lib/lake/duckdb.ts";
import { eventTableOf } from "../../lib/lake/tables.ts";
import { closeServices, type Services } from "../../lib/services.ts";
import { jobs } from "../../workers/jobs.ts";
import { createLakeJob } from "../../workers/lake/job.ts";
import { readDelta } from "../support/delta-reader.ts";
import { lakeIdCounts } from "../support/lake.ts";
import { services as realServices, uniqueName } from "../support/services.ts";
import { type Setup, serviceSetups } from "../support/setups.ts";
import { tempDir } from "../support/tmp.ts";
import { waitFor } from "../support/wait.ts";

/**
 * The lake sink writes one Delta table per event type: delta-rs reads exactly the accepted events, once,
 * with the declared column types; txn actions carry the input positions; a stale owner that flushes
 * after another worker has committed the same partition adds nothing.
 */
const apiKeys = [{ key: "all-key", scopes: ["ingest" as const, "query" as const, "admin" as const] }];
const sinkEnv = { LAKE_FLUSH_INTERVAL_MS: "200", LAKE_COMPACT_INTERVAL_MS: "3600000", BUS_PARTITIONS: "2" };
const s3 = () => realServices().s3;
/** Each setup opens the services in a directory, with the lake at a prefix of its own, and says where a table is. */
const setups: Record<string, { open: (dir: string, prefix: string) => ReturnType<Setup>; uri: (dir: string, prefix: string, table: string) => string }> = {
  "local dir": { open: (dir) => serviceSetups(sinkEnv).embedded(dir), uri: (dir, _prefix, table) => join(dir, "lake", table) },
  s3: {
    open: (dir, prefix) =>
      serviceSetups({ ...sinkEnv, LAKE_URL: `s3://${s3().bucket}/${prefix}`, S3_ENDPOINT: s3().endpoint, AWS_ACCESS_KEY_ID: s3().accessKeyId, AWS_SECRET_ACCESS_KEY: s3().secretAccessKey }).kafka(dir),
    uri: (_dir, prefix, table) => `s3://${s3().bucket}/${prefix}/${table}`,
  },
};

const HOUR = 3_600_000;

for (const [name, { open, uri }] of Object.entries(setups)) {
  describe(`lake sink on ${name}`, () => {
    const dir = tempDir("devpipe-lake-sink-");
    const prefix = uniqueName("lake");
    let services: Services;
    let drop: () => Promise<void>;
    let app: ReturnType<typeof createApp>;
    let stops: (() => Promise<void>)[] = [];
    const run = uniqueName("r");
    const hourA = Math.floor(Date.now() / HOUR) * HOUR - 3 * HOUR;
    const readings = Array.from({ length: 60 }, (_, i) => ({ type: "sensor.reading", event_id: `${run}-s${i}`, sensor_id: `${run}-sensor-${i % 6}`, temperature: 10 + (i % 20), humidity: 40, event_time: new Date(hourA + (i % 2) * HOUR + i * 1_000).toISOString() }));
    const fixes = Array.from({ length: 20 }, (_, i) => ({ type: "gps.fix", event_id: `${run}-g${i}`, device_id: `${run}-gps-${i % 4}`, latitude: 59.3, longitude: 18.0, speed: 40, direction: "North", vehicle_type: "bus", event_time: new Date(hourA + i * 1_000).toISOString() }));
    const table = (type: string) => uri(dir.path, prefix, eventTableOf(type));
    const s3Options = name === "s3" ? { s3: s3() } : {};
    const request = (path: string, body: unknown) => app.request(path, { method: "POST", body: JSON.stringify(body), headers: { "content-type": "application/json", authorization: "Bearer all-key" } });

    beforeAll(async () => {
      ({ services, drop } = await open(dir.path, prefix));
      app = createApp(services, { apiKeys });
      stops = await Promise.all([jobs.enrich, jobs.lake].map((job) => job?.start(services, { commitIntervalMs: 100 }) ?? Promise.reject(new Error("job missing"))));
      expect((await request("/v1/events", [...readings, ...fixes])).status).toBe(202);
      // A client retry of a few fixes, after the first copies are in the lake: stored once.
      await waitFor(async () => (await readDelta(table("gps.fix"), { ...s3Options, countDistinct: ["event_id"] }).catch(() => undefined))?.num_rows === fixes.length, { what: "the fixes in the lake" });
      expect((await request("/v1/events", fixes.slice(0, 5))).status).toBe(202);
      await waitFor(async () => (await readDelta(table("sensor.reading"), s3Options).catch(() => undefined))?.num_rows === readings.length, { what: "the readings in the lake" });
      await Bun.sleep(1_000);
    }, 90_000);
    afterAll(async () => {
      await Promise.all(stops.map((stop) => stop()));
      await closeServices(services);
      await drop();
      dir.remove();
    });

    test("delta-rs reads each accepted event once, with date and hour typed as declared", async () => {
      for (const [type, expected] of [["sensor.reading", readings.length], ["gps.fix", fixes.length]] as const) {
        const snapshot = await readDelta(table(type), { ...s3Options, countDistinct: ["event_id"], rowsByPartition: true });
        expect({ type, rows: snapshot.num_rows, distinct: snapshot.distinct.event_id }).toEqual({ type, rows: expected, distinct: expected });
        expect(snapshot.partition_columns).toEqual(["date", "hour"]);
        const types = Object.fromEntries(snapshot.schema.map((f) => [f.name, f.type]));
        expect(types).toMatchObject({ event_id: "string", key: "string", event_time: "timestamp", ingest_time: "timestamp", date: "date", hour: "integer" });
      }
      const hours = Object.keys((await readDelta(table("sensor.reading"), { ...s3Options, rowsByPartition: true })).rows_by_partition ?? {});
      const partitionOf = (ms: number) => `date=${new Date(ms).toISOString().slice(0, 10)}/hour=${new Date(ms).getUTCHours()}`;
      expect(hours.sort()).toEqual([partitionOf(hourA), partitionOf(hourA + HOUR)].sort());
      const counts = await lakeIdCounts(services, dir.path);
      expect([...counts.values()].every((n) => n === 1)).toBe(true);
    });

    test("each commit carries the input positions as txn actions and stats for skipping", async () => {
      const snapshot = await tableLogsOf(services.lake).snapshot(eventTableOf("sensor.reading"));
      expect(snapshot).not.toBeNull();
      const appIds = [...(snapshot?.txns.keys() ?? [])];
      expect(appIds.some((id) => id.startsWith(`devpipe.lake:${services.topics.raw}:`))).toBe(true);
      for (const add of snapshot?.files.values() ?? []) {
        const stats = JSON.parse(add.stats ?? "{}") as { numRecords: number; minValues: Record<string, string>; maxValues: Record<string, string> };
        expect(stats.numRecords).toBeGreaterThan(0);
        expect(Date.parse(stats.minValues.event_time ?? "")).toBeLessThanOrEqual(Date.parse(stats.maxValues.event_time ?? ""));
        expect((stats.minValues.key ?? "~") <= (stats.maxValues.key ?? "")).toBe(true);
        expect(add.path).toMatch(/^date=\d{4}-\d{2}-\d{2}\/hour=\d{1,2}\/part-\d{13}-[0-9a-f-]{36}\.zstd\.parquet$/);
      }
    });

    test("a stale owner flushing after the new owner committed its partition adds nothing", async () => {
      // A topic of its own: its txn appIds are apart from the running sink's.
      const topic = uniqueName("stale");
      const records: ChainRecord[] = Array.from({ length: 10 }, (_, i) => {
        const event: Envelope = { type: "sensor.reading", key: `${run}-stale-${i}`, event_id: `${run}-stale-${i}`, event_time: hourA + i, ingest_time: Date.now(), payload: { sensor_id: `${run}-stale-${i}`, temperature: 1, humidity: 1 } };
        const raw = { topic, partition: 0, offset: i, key: event.key, value: encodeEnvelope(event), headers: {}, timestamp: Date.now() };
        return { ...raw, raw, event };
      });
      const owners: Duck[] = [];
      const owner = async () => {
        const duck = await Duck.open();
        owners.push(duck);
        const job = createLakeJob({ sql: services.db.sql, store: services.lake, duck, workDir: join(dir.path, uniqueName("w")), topics: { ...services.topics, raw: topic }, logger: services.logger });
        await job.assigned?.([{ topic, partition: 0 }], services.db.sql, []);
        job.process({ topic, partition: 0, records }, () => undefined);
        return job;
      };
      const checkpoint = (job: Awaited<ReturnType<typeof owner>>) => services.db.sql.begin(async (tx) => (await job.checkpoint(tx))?.());
      try {
        // Both read the partition; the new owner commits first, the old one flushes late.
        const old = await owner();
        const fresh = await owner();
        const before = (await readDelta(table("sensor.reading"), s3Options)).num_rows;
        await checkpoint(fresh);
        await checkpoint(old);
        const after = await readDelta(table("sensor.reading"), { ...s3Options, countDistinct: ["event_id"] });
        expect(after.num_rows).toBe(before + records.length);
        expect(after.distinct.event_id).toBe(after.num_rows);
        expect(old.stats()).toMatchObject({ written: 0, replays_dropped: records.length });
        // A restarted worker resumes from the log: what the table holds is dropped on the way in.
        const restarted = await owner();
        expect(restarted.pending()).toBe(0);
      } finally {
        for (const duck of owners) duck.close();
      }
    });
  });
}

