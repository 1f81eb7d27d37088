import { afterAll, beforeAll, expect, test } from "bun:test";
import { join } from "node:path";
import { createKafkaBus } from "../../lib/bus/kafka.ts";
import type { Bus, PartitionOffset } from "../../lib/bus/types.ts";
import { createLogger } from "../../lib/log.ts";
import { topicNames } from "../../lib/topics.ts";
import { GATEWAY_KEY, startServicesGateway } from "../support/gateway.ts";
import { readEnvelopesSince } from "../support/kafka.ts";
import { startProcess } from "../support/process.ts";
import { services } from "../support/services.ts";
import { tempDir } from "../support/tmp.ts";

/** The gateway under test runs without TOPIC_PREFIX. */
const topics = topicNames();

/** `bun run simulate` as a person runs it, against the gateway on real Kafka: what it counts is what Kafka holds. */
const scratch = tempDir("devpipe-simulate-e2e-");
let bus: Bus;
let since: PartitionOffset[];
let gateway: Awaited<ReturnType<typeof startServicesGateway>>;

beforeAll(async () => {
  bus = createKafkaBus({ brokers: services().kafkaBrokers, logger: createLogger({}, () => undefined) });
  await bus.ensureTopics([{ name: topics.raw, partitions: 4 }]);
  since = await bus.endOffsets(topics.raw);
  gateway = await startServicesGateway(join(scratch.path, "gw"));
});
afterAll(async () => {
  await bus.close();
  expect(await gateway.stop()).toBe(0);
  scratch.remove();
});

test("the iot simulator's accepted count equals the records in Kafka, with its faults rejected or repeated", async () => {
  const startTime = Date.now() - 5 * 60_000;
  const run = startProcess(
    ["simulate", "iot", "--devices", "20", "--rate", "1500", "--duration", "2", "--seed", "11", "--start-time", String(startTime), "--invalid-fraction", "0.1", "--duplicates", "0.05", "--url", gateway.url, "--key", GATEWAY_KEY, "--quiet", "--dims-dir", join(scratch.path, "dims")],
    {},
  );
  expect(await run.exited()).toBe(0);
  const summary = JSON.parse(run.output().trim().split("\n").pop() ?? "{}") as { generated: number; accepted: number; rejected: number; failed_events: number };
  expect(summary.failed_events).toBe(0);
  expect(summary.accepted + summary.rejected).toBe(summary.generated);
  expect(summary.rejected).toBeGreaterThan(0);

  const prefix = `iot-s11-t${startTime.toString(36)}-`;
  const ours = (await readEnvelopesSince(bus, topics.raw, since)).filter((e) => e.event_id.startsWith(prefix));
  expect(ours).toHaveLength(summary.accepted);
  expect(new Set(ours.map((e) => e.event_id)).size).toBeLessThan(ours.length);
  expect(ours.every((e) => e.type === "sensor.reading" && e.key.startsWith("sensor-"))).toBe(true);
}, 120_000);
