import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createApp } from "../../api/app.ts";
import { alertIdFor } from "../../lib/alerts.ts";
import type { PartitionOffset } from "../../lib/bus/types.ts";
import { closeServices, type Services } from "../../lib/services.ts";
import { jobs } from "../../workers/jobs.ts";
import { readEnvelopesSince } from "../support/kafka.ts";
import { tempDir } from "../support/tmp.ts";
import { waitFor } from "../support/wait.ts";
import { serviceSetups } from "../support/setups.ts";

/** The enrich and alerts jobs on the embedded services and on real Kafka + Postgres. */
const apiKeys = [{ key: "all-key", scopes: ["ingest" as const, "query" as const, "admin" as const] }];

const setups = serviceSetups({});

type AlertRow = { alert_id: string; event_id: string; key: string; rules: string[]; event: Record<string, unknown> };

for (const [name, setup] of Object.entries(setups)) {
  describe(`enrich + alerts on ${name}`, () => {
    const dir = tempDir("devpipe-workers-");
    let services: Services;
    let drop: () => Promise<void>;
    let app: ReturnType<typeof createApp>;
    let enrichedSince: PartitionOffset[];
    let stops: (() => Promise<void>)[] = [];
    // A run-unique car id range keeps the shared Kafka topics' earlier records out of the way.
    const base = 1_000_000 + Math.floor(Math.random() * 1_000_000) * 10;

    const startJobs = async () => {
      stops = await Promise.all([jobs.enrich, jobs.alerts].map((job) => job?.start(services, { commitIntervalMs: 50 }) ?? Promise.reject(new Error("job missing"))));
    };
    const stopJobs = async () => {
      await Promise.all(stops.map((stop) => stop()));
      stops = [];
    };
    const post = (path: string, body: unknown, method = "POST") =>
      app.request(path, { method, body: JSON.stringify(body), headers: { "content-type": "application/json", authorization: "Bearer all-key" } });
    const alertsFor = async (eventIds: string[]) => services.db.sql<AlertRow[]>`select alert_id::text, event_id, key, rules, event from alerts where event_id = any(${eventIds}) order by event_id`;
    const now = () => new Date(Date.now() - 1_000).toISOString();

    beforeAll(async () => {
      ({ services, drop } = await setup(dir.path));
      app = createApp(services, { apiKeys });
      await post("/v1/dims/car_models", [{ model_id: 1, car_brand: "Volvo", car_model: "V60" }], "PUT");
      await post("/v1/dims/car_colors", [{ color_id: 1, color_name: "Black" }, { color_id: 2, color_name: "Silver" }], "PUT");
      await post("/v1/dims/cars", [{ car_id: base + 1, driver_id: 77, model_id: 1, color_id: 1 }], "PUT");
      enrichedSince = await services.bus.endOffsets(services.topics.enriched);
      await startJobs();
    });
    afterAll(async () => {
      await stopJobs();
      await closeServices(services);
      await drop();
      dir.remove();
    });

    test("telemetry is enriched from the dims (nulls for an unknown car) and each rule raises one alert per event", async () => {
      const events = [
        { event_id: `${base}-calm`, car_id: base + 1, speed: 60, rpm: 2000, gear: 2 },
        { event_id: `${base}-fast`, car_id: base + 1, speed: 150, rpm: 6500, gear: 5 },
        { event_id: `${base}-mismatch`, car_id: base + 1, speed: 90, rpm: 3000, gear: 4 },
        { event_id: `${base}-unknown`, car_id: base + 999, speed: 121, rpm: 1000, gear: 4 },
      ].map((e) => ({ type: "vehicle.telemetry", event_time: now(), ...e }));
      expect((await post("/v1/events", events)).status).toBe(202);
      const ids = events.map((e) => e.event_id);
      const alerts = await waitFor(async () => {
        const rows = await alertsFor(ids);
        return rows.length === 3 ? rows : undefined;
      }, { what: "three alerts" });
      expect(alerts.map((a) => [a.event_id, a.rules])).toEqual([
        [`${base}-fast`, ["speeding", "high_rpm"]],
        [`${base}-mismatch`, ["gear_mismatch"]],
        [`${base}-unknown`, ["speeding"]],
      ]);
      const fast = alerts[0];
      expect(fast?.alert_id).toBe(alertIdFor(`${base}-fast`));
      expect(fast?.key).toBe(String(base + 1));
      expect(fast?.event).toMatchObject({ car_id: base + 1, driver_id: 77, model_id: 1, color_id: 1, car_brand: "Volvo", car_model: "V60", color_name: "Black", expected_gear: 5 });
      expect(alerts[2]?.event).toMatchObject({ driver_id: null, car_brand: null, color_name: null, expected_gear: 4 });

      // events.enriched is the enrich operator's output, on its own cadence: the alerts may be committed first.
      const calm = await waitFor(async () => (await readEnvelopesSince(services.bus, services.topics.enriched, enrichedSince)).find((e) => e.event_id === `${base}-calm`), { what: "the calm reading enriched" });
      expect(calm.payload).toMatchObject({ expected_gear: 2, color_name: "Black" });
    });

    test("other types pass through enrichment unchanged and raise no alert", async () => {
      const reading = { type: "sensor.reading", event_id: `${base}-sensor`, sensor_id: `s-${base}`, temperature: 99, humidity: 10, event_time: now() };
      expect((await post("/v1/events", reading)).status).toBe(202);
      const envelope = await waitFor(async () => (await readEnvelopesSince(services.bus, services.topics.enriched, enrichedSince)).find((e) => e.event_id === reading.event_id), { what: "sensor reading enriched" });
      expect(envelope.payload).toEqual({ sensor_id: `s-${base}`, temperature: 99, humidity: 10 });
      expect(await alertsFor([reading.event_id])).toHaveLength(0);
    });

    test("a dims change is seen without a restart", async () => {
      await post("/v1/dims/cars", [{ car_id: base + 1, driver_id: 78, model_id: 1, color_id: 2 }], "PUT");
      const eventId = await waitFor(
        async () => {
          const id = `${base}-recolour-${crypto.randomUUID()}`;
          await post("/v1/events", { type: "vehicle.telemetry", event_id: id, car_id: base + 1, speed: 200, rpm: 100, gear: 7, event_time: now() });
          const [row] = await waitFor(async () => {
            const rows = await alertsFor([id]);
            return rows.length === 1 ? rows : undefined;
          }, { what: "alert for the probe" });
          return row?.event.color_name === "Silver" ? id : undefined;
        },
        { timeoutMs: 10_000, intervalMs: 500, what: "enrichment to use the new colour" },
      );
      expect((await alertsFor([eventId]))[0]?.event).toMatchObject({ driver_id: 78, color_name: "Silver" });
    });

    test("after a restart the jobs resume from their committed positions: repeats make no second alert", async () => {
      await stopJobs();
      const positions = await services.db.sql<{ job: string }[]>`select distinct job from job_offsets order by job`;
      expect(positions.map((p) => p.job)).toEqual(["alerts", "enrich"]);
      // The same event again (a client retry) and a new one, while no job runs.
      const again = { type: "vehicle.telemetry", event_id: `${base}-fast`, car_id: base + 1, speed: 150, rpm: 6500, gear: 5, event_time: now() };
      const fresh = { ...again, event_id: `${base}-after-restart` };
      expect((await post("/v1/events", [again, fresh])).status).toBe(202);
      await startJobs();
      await waitFor(async () => (await alertsFor([fresh.event_id])).length === 1, { what: "alert after restart" });
      expect(await alertsFor([again.event_id])).toHaveLength(1);
    });
  });
}
