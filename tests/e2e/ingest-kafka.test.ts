import { afterAll, beforeAll, expect, test } from "bun:test";
import { join } from "node:path";
import { createKafkaBus } from "../../lib/bus/kafka.ts";
import type { Bus, PartitionOffset } from "../../lib/bus/types.ts";
import { createLogger } from "../../lib/log.ts";
import { topicNames } from "../../lib/topics.ts";
import { GATEWAY_KEY, startServicesGateway } from "../support/gateway.ts";
import { readEnvelopesSince } from "../support/kafka.ts";
import { services, uniqueName } from "../support/services.ts";
import { tempDir } from "../support/tmp.ts";
import { waitFor } from "../support/wait.ts";

/** The gateway under test runs without TOPIC_PREFIX. */
const topics = topicNames();

/**
 * The gateway process against the real Kafka broker: what it acknowledges is in events.raw, once;
 * with the broker stopped it answers 503 with Retry-After, and it recovers when the broker is back.
 */
const scratch = tempDir("devpipe-ingest-e2e-");
const servicesScript = join(import.meta.dir, "../../scripts/services.sh");
let bus: Bus;
let startOffsets: PartitionOffset[];
let gateway: Awaited<ReturnType<typeof startServicesGateway>>;

beforeAll(async () => {
  bus = createKafkaBus({ brokers: services().kafkaBrokers, logger: createLogger({}, () => undefined) });
  await bus.ensureTopics([{ name: topics.raw, partitions: 4 }]);
  startOffsets = await bus.endOffsets(topics.raw);
  gateway = await startServicesGateway(join(scratch.path, "gw"), { PRODUCE_TIMEOUT_MS: "1500" });
});
afterAll(async () => {
  await bus.close();
  expect(await gateway.stop()).toBe(0);
  scratch.remove();
});

const now = () => new Date(Date.now() - 500).toISOString();
const telemetry = (i: number) => ({ type: "vehicle.telemetry", car_id: i % 7, speed: (i * 13) % 300, rpm: (i * 977) % 10_000, gear: 1 + (i % 7), event_time: now() });

async function send(body: string, contentType = "application/json") {
  return fetch(`${gateway.url}/v1/events`, { method: "POST", body, headers: { "content-type": contentType, authorization: `Bearer ${GATEWAY_KEY}` }, signal: AbortSignal.timeout(30_000) });
}

test("acknowledged events are in Kafka exactly once; a stopped broker gives 503 + Retry-After, then ingest recovers", async () => {
  const acknowledged: string[] = [];
  const first = await send(JSON.stringify(Array.from({ length: 200 }, (_, i) => telemetry(i))));
  expect(first.status).toBe(202);
  acknowledged.push(...((await first.json()) as { event_ids: string[] }).event_ids);
  const ndjson = await send(Array.from({ length: 50 }, (_, i) => JSON.stringify({ ...telemetry(i), event_id: `nd-${uniqueName("e")}-${i}` })).join("\n"), "application/x-ndjson");
  expect(ndjson.status).toBe(202);
  acknowledged.push(...((await ndjson.json()) as { event_ids: string[] }).event_ids);

  const stop = Bun.spawnSync(["bash", servicesScript, "kafka-stop"]);
  expect(stop.exitCode).toBe(0);
  try {
    const during = await send(JSON.stringify([telemetry(1000)]));
    expect(during.status).toBe(503);
    expect(Number(during.headers.get("retry-after"))).toBeGreaterThan(0);
    expect(((await during.json()) as { detail: string }).detail).toContain("nothing from this request was accepted");
  } finally {
    const start = Bun.spawnSync(["bash", servicesScript, "kafka-start"]);
    expect(start.exitCode).toBe(0);
  }

  const recovered = await waitFor(
    async () => {
      const response = await send(JSON.stringify(Array.from({ length: 20 }, (_, i) => telemetry(2000 + i))));
      return response.status === 202 ? ((await response.json()) as { event_ids: string[] }) : undefined;
    },
    { timeoutMs: 60_000, intervalMs: 500, what: "ingest to recover after the broker restarts" },
  );
  acknowledged.push(...recovered.event_ids);
  expect((await fetch(`${gateway.url}/readyz`)).status).toBe(200);

  const inKafka = (await readEnvelopesSince(bus, topics.raw, startOffsets)).map((e) => e.event_id);
  const counts = new Map<string, number>();
  for (const id of inKafka) counts.set(id, (counts.get(id) ?? 0) + 1);
  expect(acknowledged).toHaveLength(270);
  // Named, so a failure says which of the three requests lost or doubled its events.
  const wrong = acknowledged.flatMap((id, i) => (counts.get(id) === 1 ? [] : [{ id, request: i < 200 ? "first" : i < 250 ? "ndjson" : "recovered", copies: counts.get(id) ?? 0 }]));
  expect(wrong).toEqual([]);
}, 180_000);
