import { afterAll, beforeAll, expect, test } from "bun:test";
import { createApp } from "../../api/app.ts";
import { loadConfig } from "../../lib/config.ts";
import { encodeEnvelope } from "../../lib/events/index.ts";
import { createLogger } from "../../lib/log.ts";
import { closeServices, openServices, type Services } from "../../lib/services.ts";
import { jobs } from "../../workers/jobs.ts";
import { freshDatabase } from "../support/pg.ts";
import { services as realServices, uniqueName } from "../support/services.ts";
import { startTcpProxy } from "../support/tcp-proxy.ts";
import { tempDir } from "../support/tmp.ts";
import { waitFor } from "../support/wait.ts";

/**
 * Postgres becomes unreachable (a real network cut) while the windows job has more results pending than
 * it may hold: consumption waits for a checkpoint instead of failing the batch, and once the database is
 * back every event has counted exactly once (a redelivered batch would have counted twice).
 */
const dir = tempDir("devpipe-db-outage-");
let database: Awaited<ReturnType<typeof freshDatabase>>;
let proxy: Awaited<ReturnType<typeof startTcpProxy>>;
let services: Services;
let stop: (() => Promise<void>) | undefined;
const sensor = uniqueName("outage-sensor");

beforeAll(async () => {
  database = await freshDatabase();
  const url = new URL(database.url);
  proxy = await startTcpProxy({ host: url.hostname, port: Number(url.port) });
  url.host = new URL(proxy.url).host;
  services = await openServices(
    loadConfig({ DATA_DIR: dir.path, KAFKA_BROKERS: realServices().kafkaBrokers.join(","), DATABASE_URL: url.toString(), TOPIC_PREFIX: `${uniqueName("o")}.`, LOG_LEVEL: "error" }),
    createLogger({ test: "db-outage" }, () => undefined),
  );
  stop = await jobs.windows?.start(services, { commitIntervalMs: 100, maxPending: 50 });
});
afterAll(async () => {
  await proxy.restore();
  await stop?.();
  await closeServices(services);
  await proxy.close();
  await database.drop();
  dir.remove();
});

test("a database outage stalls the windows job without counting any event twice", async () => {
  const minute = Math.floor((Date.now() - 5 * 60_000) / 60_000) * 60_000;
  const readings = (from: number, count: number) =>
    Array.from({ length: count }, (_, i) => {
      const n = from + i;
      const envelope = { type: "sensor.reading", key: sensor, event_id: `${sensor}-${n}`, event_time: minute + n * 10, ingest_time: Date.now(), payload: { sensor_id: sensor, temperature: 20, humidity: 50 } };
      return { key: sensor, value: encodeEnvelope(envelope), timestamp: envelope.event_time };
    });
  const app = createApp(services, { apiKeys: [{ key: "k", scopes: ["query"] }] });
  const counted = async () => {
    const response = await app.request(`/v1/aggregates/sensor_stats_1m?key=${sensor}&from=${minute}&to=${minute + 60_000}`, { headers: { authorization: "Bearer k" } });
    return ((await response.json()) as { items: { count: number }[] }).items.reduce((sum, w) => sum + w.count, 0);
  };

  await services.bus.produce(services.topics.raw, readings(0, 100));
  await waitFor(async () => (await counted()) === 100, { what: "the first 100 readings counted" });

  proxy.cut();
  for (let i = 0; i < 5; i++) {
    await services.bus.produce(services.topics.raw, readings(100 + i * 100, 100));
    await Bun.sleep(300);
  }
  await proxy.restore();

  await waitFor(async () => (await counted().catch(() => 0)) >= 600, { timeoutMs: 30_000, what: "all 600 readings counted after the outage" });
  // Settled: nothing more arrives, and nothing was applied twice.
  await Bun.sleep(1_000);
  expect(await counted()).toBe(600);
}, 60_000);
