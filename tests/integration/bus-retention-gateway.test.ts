import { afterAll, beforeAll, expect, test } from "bun:test";
import { createApp } from "../../api/app.ts";
import type { Consumer } from "../../lib/bus/types.ts";
import { loadConfig } from "../../lib/config.ts";
import { createLogger } from "../../lib/log.ts";
import { closeServices, openServices, type Services } from "../../lib/services.ts";
import { tempDir } from "../support/tmp.ts";

/**
 * The gateway on an embedded bus with tiny retention limits: past the cap, while a consumer group lags,
 * ingest answers 503 with Retry-After (nothing is dropped), /readyz names the group holding the topic,
 * /metrics shows it; once the group commits, old segments go and ingest recovers by itself.
 */
const dir = tempDir("devpipe-bus-retention-gateway-");
const auth = { authorization: "Bearer admin-key" };
let services: Services;
let app: ReturnType<typeof createApp>;
let lagging: Consumer;

beforeAll(async () => {
  const config = loadConfig({ DATA_DIR: dir.path, BUS_PARTITIONS: "1", BUS_RETENTION_BYTES: "8192", BUS_SEGMENT_BYTES: "2048" });
  services = await openServices(config, createLogger({ test: "bus-retention-gateway" }, () => undefined));
  app = createApp(services, { apiKeys: [{ key: "admin-key", scopes: ["ingest", "query", "admin"] }] });
  // A job that reads events.raw but never gets to commit: it holds every record.
  lagging = await services.bus.consume({ group: "lagging-job", topics: [services.topics.raw], onBatch: async () => undefined });
});
afterAll(async () => {
  await lagging.stop();
  await closeServices(services);
  dir.remove();
});

const ingest = (i: number) =>
  app.request("/v1/events", {
    method: "POST",
    headers: { ...auth, "content-type": "application/json" },
    body: JSON.stringify({ type: "sensor.reading", sensor_id: `s-${i}`, temperature: 20, humidity: 50, event_time: Date.now() - 1_000 }),
  });
const busBlockedMetric = async () => {
  const text = await (await app.request("/metrics", { headers: auth })).text();
  const line = text.split("\n").find((l) => l.startsWith(`devpipe_bus_blocked{topic="${services.topics.raw}"}`));
  return { text, blocked: line?.split(" ")[1] };
};

test("past the cap with a lagging group: 503 + Retry-After, /readyz and /metrics say why; ingest recovers after the group commits", async () => {
  expect((await app.request("/readyz")).status).toBe(200);
  expect((await busBlockedMetric()).blocked).toBe("0");

  let accepted = 0;
  let refusal: Response | undefined;
  for (let i = 0; i < 500 && !refusal; i++) {
    const response = await ingest(i);
    if (response.status === 202) accepted++;
    else refusal = response;
  }
  expect(refusal?.status).toBe(503);
  expect(Number(refusal?.headers.get("retry-after"))).toBeGreaterThan(0);
  expect(accepted).toBeGreaterThan(10);
  // Every accepted event is still in the bus: nothing was dropped to make room.
  const [end] = await services.bus.endOffsets(services.topics.raw);
  expect(end?.offset).toBe(accepted);
  const [storage] = (await services.bus.storage()).filter((t) => t.topic === services.topics.raw);
  expect(storage?.partitions[0]?.startOffset).toBe(0);
  expect(storage?.blocked).toMatchObject({ group: "lagging-job", partition: 0, offset: null });

  const ready = await app.request("/readyz");
  expect(ready.status).toBe(503);
  const readiness = (await ready.json()) as { ready: boolean; checks: { bus: { status: string; error?: string } } };
  expect(readiness.ready).toBe(false);
  expect(readiness.checks.bus.status).toBe("failing");
  expect(readiness.checks.bus.error).toContain(services.topics.raw);
  expect(readiness.checks.bus.error).toContain('consumer group "lagging-job"');
  expect(readiness.checks.bus.error).toContain("8192");

  const metrics = await busBlockedMetric();
  expect(metrics.blocked).toBe("1");
  expect(metrics.text).toContain(`devpipe_bus_retention_bytes{topic="${services.topics.raw}"} 8192`);
  const bytesLine = metrics.text.split("\n").find((l) => l.startsWith(`devpipe_bus_topic_bytes{topic="${services.topics.raw}"}`));
  expect(Number(bytesLine?.split(" ")[1])).toBeGreaterThan(8192);

  // Still refused while the group lags.
  expect((await ingest(1_000)).status).toBe(503);

  // The job catches up: its commit releases the old segments and ingest goes on by itself.
  await lagging.commit(await services.bus.endOffsets(services.topics.raw));
  const after = await ingest(1_001);
  expect(after.status).toBe(202);
  expect((await app.request("/readyz")).status).toBe(200);
  expect((await busBlockedMetric()).blocked).toBe("0");
  const [kept] = (await services.bus.storage()).filter((t) => t.topic === services.topics.raw);
  expect(kept?.partitions[0]?.startOffset).toBeGreaterThan(0);
  expect(kept?.partitions[0]?.endOffset).toBe(accepted + 1);
});
