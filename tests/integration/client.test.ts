import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { startGateway } from "../../api/server.ts";
import { type Aggregate, ApiError, type AttemptReport, type Client, createClient, type FetchLike, type ReconnectInfo, type StreamedAlert } from "../../lib/client/index.ts";
import { closeServices, type Services } from "../../lib/services.ts";
import { startChain } from "../../workers/jobs.ts";
import { freePort } from "../support/process.ts";
import { serviceSetups } from "../support/setups.ts";
import { startTcpProxy } from "../support/tcp-proxy.ts";
import { tempDir } from "../support/tmp.ts";
import { waitFor } from "../support/wait.ts";

/**
 * The typed client (lib/client) against a real gateway on embedded services, with the alerts and
 * windows jobs running: ingest (gzip, NDJSON, 422s, problems), paging, and the alert stream across real
 * dropped connections; then a real 503 (a consumer group holding the bus at its retention cap).
 */
const KEY = "client-key";
const dir = tempDir("devpipe-client-");
let services: Services;
let gateway: Awaited<ReturnType<typeof startGateway>>;
let stopJobs: () => Promise<void>;
let client: Client;
const run = Date.now().toString(36);

beforeAll(async () => {
  const setup = serviceSetups({ PORT: String(freePort()), API_KEYS: `${KEY}:ingest+query` }).embedded;
  ({ services } = await setup(dir.path));
  stopJobs = await startChain(["alerts", "windows"], services, { commitIntervalMs: 25 });
  gateway = await startGateway(services);
  client = createClient({ url: gateway.url, key: KEY });
});
afterAll(async () => {
  await gateway.stop();
  await stopJobs();
  await closeServices(services);
  dir.remove();
});

const reading = (sensor: string, eventTime: number, temperature = 20) => ({ type: "sensor.reading", event_id: `${sensor}-${eventTime}-${temperature}`, sensor_id: sensor, temperature, humidity: 50, event_time: eventTime });
let sequence = 0;
/** A telemetry event that raises `speeding` for car `car`. */
const speeding = (car: number) => ({ type: "vehicle.telemetry", event_id: `client-${run}-${car}-${sequence++}`, car_id: car, speed: 150, rpm: 3000, gear: 5, event_time: Date.now() - 1_000 });

describe("sendEvents", () => {
  test("gzip-compressed JSON and NDJSON: the typed 202 body, a bad NDJSON line one rejected record", async () => {
    const now = Date.now() - 1_000;
    const events = [reading(`gz-${run}-a`, now), reading(`gz-${run}-b`, now), reading(`gz-${run}-c`, now)];
    const result = await client.sendEvents(events, { gzip: true });
    expect(result).toMatchObject({ status: 202, accepted: 3, rejected: 0, errors: [], attempts: 1 });
    expect(result.event_ids).toEqual(events.map((e) => e.event_id));

    const ndjson = `${JSON.stringify(reading(`gz-${run}-d`, now))}\n{not json\n${JSON.stringify(reading(`gz-${run}-e`, now))}\n`;
    const mixed = await client.sendEvents(ndjson, { gzip: true });
    expect(mixed).toMatchObject({ status: 202, accepted: 2, rejected: 1 });
    expect(mixed.errors.map((e) => e.index)).toEqual([1]);
  });

  test("a batch with no valid record is a 422 naming each field at fault; a refused key throws the problem", async () => {
    const bad = { ...speeding(1), speed: 999 };
    const result = await client.sendEvents([bad, { ...reading(`bad-${run}`, Date.now()), humidity: 101 }]);
    expect(result.status).toBe(422);
    expect(result.accepted).toBe(0);
    expect(result.errors.map((e) => [e.index, e.path])).toEqual([
      [0, "speed"],
      [1, "humidity"],
    ]);

    const stranger = createClient({ url: gateway.url, key: "not-a-key" });
    const error = await stranger.sendEvents([reading("s", Date.now())]).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ApiError);
    expect((error as ApiError).status).toBe(401);
    expect((error as ApiError).problem.title).toBe("Unauthorized");
  });
});

describe("aggregates", () => {
  test("the iterator follows next_cursor through every page, in order, one request per page", async () => {
    const at = Date.now() - 1_000;
    const minute = Math.floor(at / 60_000) * 60_000;
    const sensors = Array.from({ length: 7 }, (_, i) => `page-${run}-${i}`);
    expect((await client.sendEvents(sensors.map((s) => reading(s, at)))).accepted).toBe(7);
    const range = { from: minute, to: new Date(minute + 60_000) };
    const whole = await waitFor(
      async () => {
        const items: Aggregate[] = [];
        for await (const item of client.aggregates("sensor_stats_1m", { ...range, limit: 1_000 })) items.push(item);
        return sensors.every((s) => items.some((w) => w.key === s)) ? items : undefined;
      },
      { what: "the seven sensors' windows" },
    );

    const pages: string[] = [];
    const counting: FetchLike = (url, init) => {
      pages.push(new URL(url).searchParams.get("cursor") ?? "first");
      return fetch(url, init);
    };
    const paged: Aggregate[] = [];
    for await (const item of createClient({ url: gateway.url, key: KEY, fetch: counting }).aggregates("sensor_stats_1m", { ...range, limit: 2 })) paged.push(item);
    expect(paged).toEqual(whole);
    expect(pages).toHaveLength(Math.ceil(whole.length / 2));
    expect(new Set(pages).size).toBe(pages.length);
    const ours = paged.filter((w) => sensors.includes(w.key));
    expect(ours.map((w) => [w.view, w.window_start, w.count])).toEqual(sensors.map(() => ["sensor_stats_1m", new Date(minute).toISOString(), 1]));

    // Parameter errors are problems naming the parameter.
    const error = await (async () => {
      for await (const _ of client.aggregates("sensor_stats_1m", { limit: 0 })) break;
    })().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ApiError);
    expect((error as ApiError).fieldErrors.map((e) => e.path)).toEqual(["limit"]);
  });
});

describe("followAlerts", () => {
  test("resumes across dropped connections with Last-Event-ID: every alert once, in order", async () => {
    const proxy = await startTcpProxy({ host: "127.0.0.1", port: Number(new URL(gateway.url).port) });
    const viaProxy = createClient({ url: proxy.url, key: KEY });
    const car = 7_000 + Math.floor(Math.random() * 1_000);
    const seen: StreamedAlert[] = [];
    const reconnects: ReconnectInfo[] = [];
    const controller = new AbortController();
    // `since` replays from a time first, so alerts committed before the stream subscribed are not missed.
    const following = (async () => {
      const alerts = viaProxy.followAlerts({ key: String(car), since: Date.now() - 60_000, reconnectDelayMs: 50, maxReconnectDelayMs: 200, signal: controller.signal, onReconnect: (info) => reconnects.push(info) });
      for await (const alert of alerts) seen.push(alert);
    })().catch((error: unknown) => error);

    const posted: string[] = [];
    const post = async (count: number) => {
      for (let i = 0; i < count; i++) {
        const event = speeding(car);
        expect((await client.sendEvents(event)).status).toBe(202);
        posted.push(event.event_id);
        await Bun.sleep(20);
      }
    };
    try {
      await post(5);
      await waitFor(() => seen.length >= 3, { what: "the first alerts on the stream" });
      // A drop with alerts in flight, and alerts committed while no connection is up.
      const sending = post(10);
      await waitFor(() => seen.length >= 6, { what: "more alerts" });
      proxy.cut();
      await Bun.sleep(300);
      await proxy.restore();
      await sending;
      await waitFor(() => seen.length >= 12, { what: "alerts after the first drop" });
      proxy.cut();
      await post(5);
      await waitFor(async () => (await services.db.sql`select 1 from alerts where event_id = ${posted.at(-1) ?? ""}`).length === 1, { what: "the alerts sent during the drop committed" });
      await proxy.restore();
      await waitFor(() => seen.length >= posted.length, { timeoutMs: 20_000, what: `all ${posted.length} alerts (seen ${seen.length})` });
      await Bun.sleep(300);

      expect(seen.map((s) => s.alert.event_id)).toEqual(posted);
      expect(new Set(seen.map((s) => s.id)).size).toBe(seen.length);
      expect(seen.every((s) => s.alert.key === String(car) && s.alert.rules.includes("speeding"))).toBe(true);
      // It did reconnect, each time after the last alert it had yielded.
      expect(reconnects.length).toBeGreaterThanOrEqual(2);
      const ids = new Set(seen.map((s) => s.id));
      expect(reconnects.every((r) => r.lastEventId !== undefined && ids.has(r.lastEventId))).toBe(true);
    } finally {
      controller.abort();
      expect(((await following) as DOMException).name).toBe("AbortError");
      await proxy.close();
    }
  }, 60_000);
});

/**
 * A gateway of its own with a tiny bus and no jobs, as in bus-retention-gateway.test.ts: the one consumer
 * group is a job that stops committing, so the bus reaches its cap and ingest answers 503 + Retry-After
 * until the group catches up. (With the pipeline's jobs on such a small bus, the time they take to commit
 * would decide the outcome instead.)
 */
describe("503 from the bus", () => {
  const busDir = tempDir("devpipe-client-503-");
  let busServices: Services;
  let busGateway: Awaited<ReturnType<typeof startGateway>>;
  beforeAll(async () => {
    const setup = serviceSetups({ PORT: String(freePort()), API_KEYS: `${KEY}:ingest`, BUS_PARTITIONS: "1", BUS_RETENTION_BYTES: "8192", BUS_SEGMENT_BYTES: "2048" }).embedded;
    ({ services: busServices } = await setup(busDir.path));
    busGateway = await startGateway(busServices);
  });
  afterAll(async () => {
    await busGateway.stop();
    await closeServices(busServices);
    busDir.remove();
  });

  test("sendEvents waits out Retry-After and retries; the batch lands once the bus takes writes again", async () => {
    const busClient = createClient({ url: busGateway.url, key: KEY });
    const topic = busServices.topics.raw;
    const lagging = await busServices.bus.consume({ group: "lagging-job", topics: [topic], onBatch: async () => undefined });
    let refused: ApiError | undefined;
    for (let i = 0; i < 500 && !refused; i++) {
      refused = await busClient.sendEvents(reading(`fill-${run}`, Date.now() - 1_000, i % 50), { maxAttempts: 1 }).then(
        () => undefined,
        (error: unknown) => (error instanceof ApiError ? error : Promise.reject(error)),
      );
    }
    expect(refused?.status).toBe(503);
    expect(refused?.retryAfterMs).toBeGreaterThan(0);

    const reports: AttemptReport[] = [];
    const reportedAt: number[] = [];
    let released: Promise<void> | undefined;
    const batch = [reading(`retried-${run}`, Date.now() - 1_000)];
    const result = await busClient.sendEvents(batch, {
      maxAttempts: 3,
      onAttempt: (report) => {
        reports.push(report);
        reportedAt.push(performance.now());
        // While the client waits out the first 503, the lagging job catches up and commits.
        if (report.status === 503) released ??= busServices.bus.endOffsets(topic).then((ends) => lagging.commit(ends));
      },
    });
    await released;
    await lagging.stop();
    expect(result).toMatchObject({ status: 202, accepted: 1, attempts: 2, event_ids: [batch[0]?.event_id] });
    expect(reports.map((r) => [r.attempt, r.status])).toEqual([
      [1, 503],
      [2, 202],
    ]);
    expect(reports[0]?.retryInMs).toBe(refused?.retryAfterMs);
    // The second attempt went out only once Retry-After had passed.
    expect((reportedAt[1] ?? 0) - (reportedAt[0] ?? 0) - (reports[1]?.ms ?? 0)).toBeGreaterThanOrEqual((refused?.retryAfterMs ?? 0) - 20);
  }, 30_000);
});
