import { afterAll, describe, expect, test } from "bun:test";
import { createKafkaBus } from "../../lib/bus/kafka.ts";
import { createLogger } from "../../lib/log.ts";
import { topicNames } from "../../lib/topics.ts";
import { startServicesGateway } from "../support/gateway.ts";
import { freePort, startProcess } from "../support/process.ts";
import { services } from "../support/services.ts";
import { tempDir } from "../support/tmp.ts";
import { waitFor } from "../support/wait.ts";

/** The gateway under test runs without TOPIC_PREFIX. */
const topics = topicNames();

/** `bun run start` as a user runs it: a real process, real ports, SIGTERM to stop. */
const scratch = tempDir("devpipe-e2e-");
afterAll(() => scratch.remove());

async function ready(port: number) {
  return waitFor(
    async () => {
      const response = await fetch(`http://127.0.0.1:${port}/readyz`);
      return response.status === 200 ? ((await response.json()) as { ready: boolean }) : undefined;
    },
    { timeoutMs: 60_000, intervalMs: 100, what: "/readyz 200" },
  );
}

describe("bun run start (embedded)", () => {
  test("boots with /healthz and /readyz, stops cleanly on SIGTERM, and starts again on the same data", async () => {
    const env = { DATA_DIR: `${scratch.path}/data`, PORT: "0" };
    for (const round of [1, 2]) {
      const port = freePort();
      const app = startProcess(["start"], { ...env, PORT: String(port) });
      expect(await ready(port)).toMatchObject({ ready: true });
      expect((await fetch(`http://127.0.0.1:${port}/healthz`)).status).toBe(200);
      app.child.kill("SIGTERM");
      expect(await app.exited()).toBe(0);
      expect(app.output()).toContain('"msg":"stopped"');
      // The run's summary, once, after the graceful shutdown.
      expect(app.output().match(/devpipe stopped after \S+/g)?.length).toBe(1);
      expect(app.output()).toMatch(/\n {2}events +\d+ accepted, \d+ rejected\n/);
      if (round === 2) expect(app.output()).not.toContain("migration applied");
    }
  });

  test("an invalid variable stops start-up with a message naming it", async () => {
    const app = startProcess(["start"], { DATA_DIR: `${scratch.path}/bad`, PORT: "not-a-port", LAKE_URL: "ftp://nowhere", STATUS_INTERVAL_MS: "500" });
    expect(await app.exited()).toBe(1);
    expect(app.output()).toContain("PORT: an integer from 1 to 65535");
    expect(app.output()).toContain("LAKE_URL: file:///path/to/dir or s3://bucket/prefix");
    expect(app.output()).toContain("STATUS_INTERVAL_MS: 0 (off) or an integer from 1000 to 86400000");
  });
});

describe("bun run api (services mode: real Kafka, Postgres, S3)", () => {
  test("is ready against the real services and has created the pipeline's topics", async () => {
    const gateway = await startServicesGateway(`${scratch.path}/services`);
    try {
      expect(gateway.app.output()).toContain('"mode":"services"');
      const bus = createKafkaBus({ brokers: services().kafkaBrokers, logger: createLogger({}, () => undefined) });
      for (const topic of Object.values(topics)) expect((await bus.partitions(topic)).length).toBeGreaterThan(0);
      await bus.close();
    } finally {
      expect(await gateway.stop()).toBe(0);
    }
  });
});
