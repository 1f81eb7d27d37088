import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createApp } from "../../api/app.ts";
import { loadConfig } from "../../lib/config.ts";
import { createLogger } from "../../lib/log.ts";
import { closeServices, openServices, type Services } from "../../lib/services.ts";
import { freshDatabase } from "../support/pg.ts";
import { expectViewsEqualReference, postEvents, putDims, type Request } from "../support/pipeline-check.ts";
import { COLOURS, MIN, pipelineData } from "../support/pipeline-data.ts";
import { freePort, startProcess } from "../support/process.ts";
import { services as realServices, uniqueName } from "../support/services.ts";
import { lakeIdCounts } from "../support/lake.ts";
import { tempDir } from "../support/tmp.ts";
import { waitFor } from "../support/wait.ts";

/**
 * Exactly-once under crashes: the worker process (every job) is SIGKILLed several times while events
 * stream in over real Kafka and Postgres; afterwards every view equals the DuckDB reference, every
 * alert exists once, and the lake (a local directory, then MinIO) holds every accepted event once.
 */
const quiet = createLogger({ test: "kill" }, () => undefined);
const KEY = "kill-key";
const s3 = () => realServices().s3;
const lakes: Record<string, () => Record<string, string>> = {
  "local dir": () => ({}),
  s3: () => ({ LAKE_URL: `s3://${s3().bucket}/${uniqueName("kill-lake")}`, S3_ENDPOINT: s3().endpoint, AWS_ACCESS_KEY_ID: s3().accessKeyId, AWS_SECRET_ACCESS_KEY: s3().secretAccessKey }),
};

for (const [lakeKind, lakeEnv] of Object.entries(lakes)) {
  describe(`SIGKILL with the lake on ${lakeKind}`, () => {
    const scratch = tempDir("devpipe-kill-");
    let database: Awaited<ReturnType<typeof freshDatabase>>;
    let services: Services;
    let request: Request;
    let env: Record<string, string>;

    beforeAll(async () => {
      database = await freshDatabase();
      env = {
        DATA_DIR: `${scratch.path}/data`,
        KAFKA_BROKERS: realServices().kafkaBrokers.join(","),
        DATABASE_URL: database.url,
        TOPIC_PREFIX: `${uniqueName("k")}.`,
        WATERMARK_IDLE_TIMEOUT_MS: "1000",
        LAKE_FLUSH_INTERVAL_MS: "700",
        METRICS_PORT: String(freePort()),
        LOG_LEVEL: "warn",
        ...lakeEnv(),
      };
      services = await openServices(loadConfig(env), quiet);
      const app = createApp(services, { apiKeys: [{ key: KEY, scopes: ["ingest", "query", "admin"] }] });
      request = async (path, init) => app.request(path, init);
    });
    afterAll(async () => {
      await closeServices(services);
      await database.drop();
      scratch.remove();
    });

    test("every view, every alert and the lake are exact after the worker is SIGKILLed three times mid-stream", async () => {
      const start = Math.floor((Date.now() - 40 * MIN) / MIN) * MIN;
      const data = pipelineData(start, 11);
      const colourOfCar = (carId: number) => {
        const car = data.dims.cars.find((c) => c.car_id === carId);
        return car ? (COLOURS[car.color_id - 1] ?? null) : null;
      };
      await putDims(request, KEY, data.dims);

      // The entry file itself, not the package script: `bun run worker` would put a second process in between,
      // and SIGKILL must hit the worker.
      let worker = startProcess(["workers/main.ts", "all"], env);
      const chunks = 12;
      const size = Math.ceil(data.sent.length / chunks);
      let kills = 0;
      for (let c = 0; c < chunks; c++) {
        await postEvents(request, KEY, data.sent.slice(c * size, (c + 1) * size), 200);
        if (c % 4 === 2) {
          // Let it work on what just arrived, then kill it in the middle of that.
          await Bun.sleep(300 + 200 * kills);
          worker.child.kill("SIGKILL");
          expect(await worker.exited()).not.toBe(0);
          kills++;
          worker = startProcess(["workers/main.ts", "all"], env);
        }
      }
      expect(kills).toBe(3);
      await postEvents(request, KEY, [{ type: "sensor.reading", event_id: "driver", sensor_id: "driver", temperature: 1, humidity: 1, event_time: Date.now() - 1_000 }]);
      try {
        // After the last kill Kafka waits for the dead member's session to time out before reassigning.
        await expectViewsEqualReference(request, KEY, data.unique, start, colourOfCar, 150_000);
        const alerted = data.unique.filter((e) => e.type === "vehicle.telemetry" && ((e.speed as number) > 120 || (e.rpm as number) > 6000 || Math.round((e.speed as number) / 30) !== e.gear));
        const [alerts] = await services.db.sql<{ n: number; distinct_events: number }[]>`select count(*)::int as n, count(distinct event_id)::int as distinct_events from alerts`;
        expect(alerts).toEqual({ n: alerted.length, distinct_events: alerted.length });
        // The lake: every accepted event once, in the files themselves (readers deduplicate nothing here).
        const accepted = new Set([...data.unique.map((e) => e.event_id), "driver"]);
        const counts = await waitFor(async () => {
          const found = await lakeIdCounts(services, scratch.path);
          return found.size >= accepted.size ? found : undefined;
        }, { timeoutMs: 30_000, what: `${accepted.size} events in the lake` });
        expect([...counts.keys()].filter((id) => !accepted.has(id))).toEqual([]);
        expect([...accepted].filter((id) => !counts.has(id))).toEqual([]);
        expect([...counts].filter(([, n]) => n !== 1)).toEqual([]);
        // The worker serves its own metrics: the lake flushes it made since its last restart.
        const workerMetrics = await (await fetch(`http://127.0.0.1:${env.METRICS_PORT}/metrics`)).text();
        expect(Number(/^devpipe_lake_flush_duration_seconds_count (\d+)$/m.exec(workerMetrics)?.[1] ?? 0)).toBeGreaterThan(0);
      } catch (error) {
        // What a person would look at first: the worker's last words and how far each job got.
        console.error("worker output:", worker.output().slice(-3_000));
        console.error("window progress:", JSON.stringify(await services.db.sql`select * from window_progress order by partition`));
        console.error("job positions:", JSON.stringify(await services.db.sql`select * from job_offsets order by job, partition`));
        throw error;
      } finally {
        worker.child.kill("SIGTERM");
        const code = await worker.exited();
        if (code !== 0) console.error(worker.output().slice(-2_000));
        expect(code).toBe(0);
      }
    }, 300_000);
  });
}
