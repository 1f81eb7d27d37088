import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createApp } from "../../api/app.ts";
import { closeServices, type Services } from "../../lib/services.ts";
import { jobs } from "../../workers/jobs.ts";
import { expectViewsEqualReference, postEvents, putDims, type Request } from "../support/pipeline-check.ts";
import { COLOURS, MIN, pipelineData } from "../support/pipeline-data.ts";
import { tempDir } from "../support/tmp.ts";
import { waitFor } from "../support/wait.ts";
import { serviceSetups } from "../support/setups.ts";

/**
 * The reference oracle: for events sent with repeats and out of order within the lateness, every view
 * equals what DuckDB SQL computes over the unique events; events beyond the lateness leave the final
 * windows unchanged and are counted as late.
 */
const KEY = "oracle-key";

const setups = serviceSetups({ WATERMARK_IDLE_TIMEOUT_MS: "1000" });

for (const [name, setup] of Object.entries(setups)) {
  describe(`views against the DuckDB reference on ${name}`, () => {
    const dir = tempDir("devpipe-oracle-");
    let services: Services;
    let drop: () => Promise<void>;
    let request: Request;
    let stops: (() => Promise<void>)[] = [];
    const start = Math.floor((Date.now() - 40 * MIN) / MIN) * MIN;
    const data = pipelineData(start);
    const colourOfCar = (carId: number) => {
      const car = data.dims.cars.find((c) => c.car_id === carId);
      return car ? (COLOURS[car.color_id - 1] ?? null) : null;
    };

    beforeAll(async () => {
      ({ services, drop } = await setup(dir.path));
      const app = createApp(services, { apiKeys: [{ key: KEY, scopes: ["ingest", "query", "admin"] }] });
      request = async (path, init) => app.request(path, init);
      await putDims(request, KEY, data.dims);
      stops = await Promise.all(["enrich", "windows", "alerts"].map((job) => jobs[job]?.start(services, { commitIntervalMs: 100 }) ?? Promise.reject(new Error(job))));
    });
    afterAll(async () => {
      await Promise.all(stops.map((stop) => stop()));
      await closeServices(services);
      await drop();
      dir.remove();
    });

    test("every window equals the reference; late events change nothing and are counted", async () => {
      await postEvents(request, KEY, data.sent);
      // A current event moves the watermark past the data (the other partitions go idle after 1 s).
      await postEvents(request, KEY, [{ type: "sensor.reading", sensor_id: "driver", temperature: 1, humidity: 1, event_time: Date.now() - 1_000 }]);
      await expectViewsEqualReference(request, KEY, data.unique, start, colourOfCar);

      const alerted = data.unique.filter((e) => e.type === "vehicle.telemetry" && ((e.speed as number) > 120 || (e.rpm as number) > 6000 || Math.round((e.speed as number) / 30) !== e.gear));
      const [alerts] = await services.db.sql<{ n: number }[]>`select count(*)::int as n from alerts where event_id like 'pd-%'`;
      expect(alerts?.n).toBe(alerted.length);

      const before = (await services.db.sql<{ late: number }[]>`select coalesce(sum(late_events), 0)::int as late from window_progress`)[0]?.late ?? 0;
      const late = [0, 1, 2].map((i) => ({ type: "sensor.reading", event_id: `beyond-${i}`, sensor_id: "sensor-0", temperature: 99, humidity: 1, event_time: start + MIN + i * 1_000 }));
      await postEvents(request, KEY, late);
      await waitFor(async () => ((await services.db.sql<{ late: number }[]>`select coalesce(sum(late_events), 0)::int as late from window_progress`)[0]?.late ?? 0) === before + 3, { what: "three more late events" });
      await expectViewsEqualReference(request, KEY, data.unique, start, colourOfCar);
    }, 120_000);
  });
}
