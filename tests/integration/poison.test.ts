import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createApp } from "../../api/app.ts";
import type { OutgoingRecord, PartitionOffset } from "../../lib/bus/types.ts";
import { type Envelope, encodeEnvelope } from "../../lib/events/index.ts";
import { failingJobs } from "../../lib/job-health.ts";
import { closeServices, readiness, type Services } from "../../lib/services.ts";
import { DEAD_HEADERS } from "../../workers/dead-letters.ts";
import { startChain } from "../../workers/jobs.ts";
import { lakeIdCounts } from "../support/lake.ts";
import { serviceSetups } from "../support/setups.ts";
import { readRecordsSince } from "../support/kafka.ts";
import { services as realServices, uniqueName } from "../support/services.ts";
import { tempDir } from "../support/tmp.ts";
import { waitFor } from "../support/wait.ts";

/**
 * Records that a sink refuses, produced straight onto events.raw (past the gateway's validation): each lands in events.dead with its job, error and source position, and every other
 * record reaches every view and the lake exactly once.
 */
const apiKeys = [{ key: "all-key", scopes: ["ingest" as const, "query" as const, "admin" as const] }];
const s3 = () => realServices().s3;
/** Embedded (file bus, PGlite, lake dir) and the real services: Kafka, Postgres and the lake on MinIO. */
const setups = {
  embedded: serviceSetups({}).embedded,
  kafka: (dir: string) => serviceSetups({ LAKE_URL: `s3://${s3().bucket}/${uniqueName("poison")}`, S3_ENDPOINT: s3().endpoint, AWS_ACCESS_KEY_ID: s3().accessKeyId, AWS_SECRET_ACCESS_KEY: s3().secretAccessKey }).kafka(dir),
};

for (const [name, setup] of Object.entries(setups)) {
  describe(`poison records on ${name === "kafka" ? "Kafka + Postgres + MinIO" : name}`, () => {
    const dir = tempDir("devpipe-poison-");
    let services: Services;
    let drop: () => Promise<void>;
    let app: ReturnType<typeof createApp>;
    let stops: (() => Promise<void>)[] = [];
    let deadSince: PartitionOffset[];
    const run = crypto.randomUUID().slice(0, 8);
    const now = Date.now() - 2_000;

    const reading = (id: string, sensorId: string, extra: Record<string, unknown> = {}): Envelope => ({
      type: "sensor.reading",
      key: sensorId,
      event_id: `${run}-${id}`,
      event_time: now,
      ingest_time: now,
      payload: { sensor_id: sensorId, temperature: 20, humidity: 50, ...extra },
    });
    const asRecord = (e: Envelope): OutgoingRecord => ({ key: e.key, value: encodeEnvelope(e), timestamp: e.event_time });
    const good = Array.from({ length: 120 }, (_, i) => reading(`ok-${i}`, `s-${run}-${i % 4}`));
    // NUL: Postgres text refuses it (the windows job's key). A lone surrogate: DuckDB's JSON reader refuses it (the lake).
    const nulKey = reading("nul", `s-${run}-bad\u0000`);
    const loneSurrogate = reading("surrogate", `s-${run}-\ud800`);
    const telemetryNul: Envelope = {
      type: "vehicle.telemetry",
      key: "7",
      event_id: `${run}-alert-nul`,
      event_time: now,
      ingest_time: now,
      payload: { car_id: 7, speed: 200, rpm: 1000, gear: 7, expected_gear: 7, note: "x\u0000y" },
    };
    const garbage: OutgoingRecord = { key: "garbage", value: new TextEncoder().encode("this is not an envelope") };

    const drained = async () => {
      const [rawEnds, positions] = await Promise.all([
        services.bus.endOffsets(services.topics.raw),
        services.db.sql<{ job: string; topic: string; partition: number; next_offset: number }[]>`select job, topic, partition, next_offset from job_offsets`,
      ]);
      const reached = (job: string, topic: string, ends: PartitionOffset[]) =>
        ends.every((e) => e.offset === 0 || (positions.find((p) => p.job === job && p.topic === topic && p.partition === e.partition)?.next_offset ?? -1) >= e.offset);
      return ["enrich", "windows", "lake", "alerts"].every((job) => reached(job, services.topics.raw, rawEnds));
    };

    beforeAll(async () => {
      ({ services, drop } = await setup(dir.path));
      app = createApp(services, { apiKeys });
      deadSince = await services.bus.endOffsets(services.topics.dead);
      const half = good.length / 2;
      await services.bus.produce(services.topics.raw, [...good.slice(0, half).map(asRecord), asRecord(nulKey), garbage, asRecord(loneSurrogate), ...good.slice(half).map(asRecord)]);
      await services.bus.produce(services.topics.raw, [asRecord(telemetryNul)]);
      // One chain, as `bun run worker all` runs it: its first operator dead-letters what is no envelope.
      stops = [await startChain(["enrich", "windows", "lake", "alerts"], services, { commitIntervalMs: 100 })];
      await waitFor(drained, { timeoutMs: 60_000, intervalMs: 100, what: "every job past the poison records" });
    }, 90_000);

    afterAll(async () => {
      await Promise.all(stops.map((stop) => stop()));
      await closeServices(services);
      await drop();
      dir.remove();
    });

    test("each refused record is in events.dead with its job, the error and its source position", async () => {
      const dead = await readRecordsSince(services.bus, services.topics.dead, deadSince);
      const letters = dead.map((r) => ({ job: r.headers[DEAD_HEADERS.job], source: r.headers[DEAD_HEADERS.source] ?? "", error: r.headers[DEAD_HEADERS.error] ?? "", text: new TextDecoder().decode(r.value) }));
      const byJob = (job: string) => letters.filter((l) => l.job === job);
      expect(byJob("enrich").map((l) => l.text)).toEqual(["this is not an envelope"]);
      expect(byJob("enrich")[0]?.error).toBe("not an event envelope");
      expect(byJob("windows").map((l) => (JSON.parse(l.text) as Envelope).event_id)).toEqual([nulKey.event_id]);
      expect(byJob("windows")[0]?.error).toMatch(/0x00|invalid byte sequence/);
      expect(byJob("lake").map((l) => (JSON.parse(l.text) as Envelope).event_id)).toEqual([loneSurrogate.event_id]);
      expect(byJob("alerts").map((l) => (JSON.parse(l.text) as Envelope).event_id)).toEqual([telemetryNul.event_id]);
      for (const letter of letters) expect(letter.source).toMatch(/^.+:\d+:\d+$/);
    });

    test("every other record counts once in the view, lands once in the lake, and the runs log shows the dead letters", async () => {
      const counts = await waitFor(async () => {
        const response = await app.request(`/v1/aggregates/sensor_stats_1m?from=${now - 60_000}&to=${now + 60_000}&limit=10000`, { headers: { authorization: "Bearer all-key" } });
        const items = ((await response.json()) as { items: { key: string; count: number }[] }).items.filter((i) => i.key.startsWith(`s-${run}-`) && /-\d$/.test(i.key));
        const total = items.reduce((sum, i) => sum + i.count, 0);
        return total === good.length ? items : undefined;
      }, { what: `${good.length} readings counted` });
      expect(counts.map((c) => c.count).sort()).toEqual([30, 30, 30, 30]);

      const lake = await waitFor(async () => {
        const ids = await lakeIdCounts(services, dir.path);
        return good.every((e) => ids.has(e.event_id)) ? ids : undefined;
      }, { what: "every good reading in the lake" });
      for (const event of good) expect(lake.get(event.event_id)).toBe(1);
      expect(lake.has(loneSurrogate.event_id)).toBe(false);

      const runs = await services.db.sql<{ job: string; records: number }[]>`select job, records::int from pipeline_runs where status = 'dead_letter' order by job`;
      expect(runs.map((r) => r.job).sort()).toEqual(["alerts", "enrich", "lake", "windows"]);
      const metrics = await (await app.request("/metrics")).text();
      for (const job of ["alerts", "enrich", "lake", "windows"]) expect(metrics).toContain(`devpipe_dead_lettered_records{job="${job}"} 1`);
      expect(metrics).toMatch(/devpipe_dead_records_total\{job="windows"\} [1-9]/);
      expect(metrics).toMatch(/devpipe_checkpoint_age_seconds\{job="lake"\} \d/);
    });

    test("the jobs' checkpoints succeed again and readiness says so", async () => {
      expect(failingJobs(0)).toEqual([]);
      const ready = await readiness(services);
      expect(ready.checks.jobs).toEqual({ status: "ok" });
    });
  });
}
