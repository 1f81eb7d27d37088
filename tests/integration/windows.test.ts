import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createApp } from "../../api/app.ts";
import type { PartitionOffset } from "../../lib/bus/types.ts";
import { closeServices, type Services } from "../../lib/services.ts";
import { jobs } from "../../workers/jobs.ts";
import { readEnvelopesSince } from "../support/kafka.ts";
import { tempDir } from "../support/tmp.ts";
import { waitFor } from "../support/wait.ts";
import { serviceSetups } from "../support/setups.ts";

/** enrich → windows → GET /v1/aggregates, on the embedded services and on real Kafka + Postgres. */
const apiKeys = [{ key: "all-key", scopes: ["ingest" as const, "query" as const, "admin" as const] }];
const MIN = 60_000;

const setups = serviceSetups({ WATERMARK_IDLE_TIMEOUT_MS: "1000" });

type Item = { key: string; window_start: string; window_end: string; final: boolean } & Record<string, unknown>;

for (const [name, setup] of Object.entries(setups)) {
  describe(`windows on ${name}`, () => {
    const dir = tempDir("devpipe-windows-");
    let services: Services;
    let drop: () => Promise<void>;
    let app: ReturnType<typeof createApp>;
    let stops: (() => Promise<void>)[] = [];
    let lateSince: PartitionOffset[];
    // A whole minute 20 minutes ago: its windows close as soon as a current event moves the watermark.
    const T0 = Math.floor((Date.now() - 20 * MIN) / MIN) * MIN;
    const iso = (ms: number) => new Date(ms).toISOString();

    const startJobs = async () => {
      stops = await Promise.all([jobs.enrich, jobs.windows].map((job) => job?.start(services, { commitIntervalMs: 50 }) ?? Promise.reject(new Error("job missing"))));
    };
    const stopJobs = async () => {
      await Promise.all(stops.map((stop) => stop()));
      stops = [];
    };
    const post = async (events: Record<string, unknown>[]) => {
      const response = await app.request("/v1/events", { method: "POST", body: JSON.stringify(events), headers: { "content-type": "application/json", authorization: "Bearer all-key" } });
      expect(response.status).toBe(202);
    };
    const aggregates = async (view: string, query: string) => {
      const response = await app.request(`/v1/aggregates/${view}${query}`, { headers: { authorization: "Bearer all-key" } });
      expect(response.status).toBe(200);
      return ((await response.json()) as { items: Item[] }).items;
    };
    const reading = (sensor: string, t: number, temperature: number, id?: string) => ({ type: "sensor.reading", sensor_id: sensor, temperature, humidity: 50, event_time: iso(t), ...(id ? { event_id: id } : {}) });
    const activity = (user: string, t: number, action: string, page = "/home") => ({ type: "user.activity", user_id: user, session_id: `${user}-s`, action, page, event_time: iso(t) });

    beforeAll(async () => {
      ({ services, drop } = await setup(dir.path));
      app = createApp(services, { apiKeys });
      lateSince = await services.bus.endOffsets(services.topics.late);
      await startJobs();
    });
    afterAll(async () => {
      await stopJobs();
      await closeServices(services);
      await drop();
      dir.remove();
    });

    test("windows fill from events, become final behind the watermark, and late events are counted and sent to events.late", async () => {
      await post([
        reading("s1", T0 + 10_000, 20, "r1"),
        reading("s1", T0 + 20_000, 30, "r2"),
        reading("s1", T0 + MIN + 5_000, 10),
        reading("s2", T0 + 30_000, -5),
        activity("u1", T0, "session_start"),
        activity("u1", T0 + 30_000, "page_view", "/a"),
        activity("u2", T0 + 40_000, "page_view", "/a"),
        activity("u1", T0 + 3 * MIN, "session_end"),
        { type: "vehicle.location", vehicle_id: "v1", user_id: "u9", latitude: 1, longitude: 1, speed: 130, fine_amount: 250, make: "Kia", model: "Niro", year: 2024, event_time: iso(T0) },
      ]);
      // A current event moves the watermark to about now − 2 min: every window above is now closed.
      await post([reading("driver", Date.now() - 1_000, 21)]);

      const s1 = await waitFor(async () => {
        const items = await aggregates("sensor_stats_1m", `?key=s1&from=${T0}&to=${T0 + 2 * MIN}`);
        return items.length === 2 && items.every((i) => i.final) ? items : undefined;
      }, { what: "two final sensor windows" });
      expect(s1[0]).toEqual({ view: "sensor_stats_1m", key: "s1", window_start: iso(T0), window_end: iso(T0 + MIN), final: true, count: 2, avg_temperature: 25, min_temperature: 20, max_temperature: 30, avg_humidity: 50 });
      expect(s1[1]).toMatchObject({ count: 1, avg_temperature: 10 });

      expect((await aggregates("page_views_1m", `?from=${T0}&to=${T0 + MIN}`)).map((i) => [i.key, i.views, i.final])).toEqual([["/a", 2, true]]);
      expect((await aggregates("active_users_5m", `?from=${T0}&to=${T0 + MIN}`))[0]).toMatchObject({ key: "all", active_users: 2 });
      expect((await aggregates("user_sessions", "?key=u1"))[0]).toMatchObject({ window_start: iso(T0), session_start: iso(T0), session_end: iso(T0 + 3 * MIN), duration_s: 180, events: 3, final: true });
      expect((await aggregates("fines_by_user_1d", "?key=u9"))[0]).toMatchObject({ total_fine: 250, events: 1 });

      // Too late for a final window: not applied, counted, and on events.late.
      await post([reading("s1", T0 + 30_000, 99, "too-late")]);
      const late = await waitFor(async () => (await readEnvelopesSince(services.bus, services.topics.late, lateSince)).find((e) => e.event_id === "too-late"), { what: "late event on events.late" });
      expect(late.payload).toMatchObject({ temperature: 99 });
      expect((await aggregates("sensor_stats_1m", `?key=s1&from=${T0}&to=${T0 + MIN}`))[0]).toMatchObject({ count: 2, max_temperature: 30 });
      const [progress] = await services.db.sql<{ late: number }[]>`select sum(late_events)::int as late from window_progress where job = 'windows'`;
      expect(progress?.late).toBe(1);
    });

    test("a repeated event_id counts once, whether repeated in one request or across requests", async () => {
      const minute = Math.floor(Date.now() / MIN) * MIN;
      const id = `dup-${crypto.randomUUID()}`;
      await post([reading("s-dup", Date.now() - 300, 10, id), reading("s-dup", Date.now() - 300, 10, id)]);
      await waitFor(async () => (await aggregates("sensor_stats_1m", `?key=s-dup&from=${minute}`))[0]?.count === 1, { what: "first copy counted" });
      await post([reading("s-dup", Date.now() - 300, 10, id), reading("s-dup", Date.now() - 200, 30)]);
      const [window] = await waitFor(async () => {
        const items = await aggregates("sensor_stats_1m", `?key=s-dup&from=${minute}`);
        return items[0]?.count === 2 ? items : undefined;
      }, { what: "the new reading counted" });
      expect(window).toMatchObject({ count: 2, avg_temperature: 20 });
    });

    test("a record in events.raw that is not an envelope is skipped and counted; the batch around it counts once", async () => {
      const minute = Math.floor(Date.now() / MIN) * MIN;
      const sensor = `s-junk-${crypto.randomUUID().slice(0, 8)}`;
      await post([reading(sensor, Date.now() - 300, 10)]);
      await waitFor(async () => (await aggregates("sensor_stats_1m", `?key=${sensor}&from=${minute}`))[0]?.count === 1, { what: "the reading before the junk" });
      // A foreign producer writes garbage to the key's partition, then valid readings follow it.
      await services.bus.produce(services.topics.raw, [{ key: sensor, value: new TextEncoder().encode("not an envelope") }]);
      await post([reading(sensor, Date.now() - 200, 20), reading(sensor, Date.now() - 100, 30)]);
      const [window] = await waitFor(async () => {
        const items = await aggregates("sensor_stats_1m", `?key=${sensor}&from=${minute}`);
        return items[0]?.count === 3 ? items : undefined;
      }, { what: "the readings after the junk" });
      expect(window).toMatchObject({ count: 3, avg_temperature: 20 });
      const metrics = await (await app.request("/metrics")).text();
      expect(Number(/^devpipe_undecodable_records_total\{job="chain"\} (\d+)$/m.exec(metrics)?.[1] ?? 0)).toBeGreaterThanOrEqual(1);
    });

    test("open windows survive a restart: their state is reloaded and counting goes on", async () => {
      const now = Date.now();
      const minute = Math.floor(now / MIN) * MIN;
      await post([reading("s-open", now - 500, 10)]);
      await waitFor(async () => (await aggregates("sensor_stats_1m", `?key=s-open&from=${minute}`))[0]?.count === 1, { what: "first reading counted" });
      await stopJobs();
      await startJobs();
      await post([reading("s-open", now - 400, 20)]);
      const [window] = await waitFor(async () => {
        const items = await aggregates("sensor_stats_1m", `?key=s-open&from=${minute}`);
        return items[0]?.count === 2 ? items : undefined;
      }, { what: "second reading counted with the first" });
      expect(window).toMatchObject({ final: false, count: 2, avg_temperature: 15, min_temperature: 10, max_temperature: 20 });
    });

    test("GET /v1/aggregates: unknown view 404, bad parameters 400, paging by cursor", async () => {
      expect((await app.request("/v1/aggregates/nope", { headers: { authorization: "Bearer all-key" } })).status).toBe(404);
      expect((await app.request("/v1/aggregates/sensor_stats_1m?limit=0&from=soon", { headers: { authorization: "Bearer all-key" } })).status).toBe(400);
      const all = await aggregates("sensor_stats_1m", "?limit=10000");
      const walked: Item[] = [];
      let cursor: string | null = null;
      do {
        const response = await app.request(`/v1/aggregates/sensor_stats_1m?limit=2${cursor ? `&cursor=${cursor}` : ""}`, { headers: { authorization: "Bearer all-key" } });
        const page = (await response.json()) as { items: Item[]; next_cursor: string | null };
        walked.push(...page.items);
        cursor = page.next_cursor;
      } while (cursor);
      expect(walked.length).toBeGreaterThan(3);
      expect(walked).toEqual(all);
    });
  });
}
