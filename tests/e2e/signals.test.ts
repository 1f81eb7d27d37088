import { afterAll, describe, expect, test } from "bun:test";
import { freshDatabase } from "../support/pg.ts";
import { freePort, startProcess } from "../support/process.ts";
import { services, uniqueName } from "../support/services.ts";
import { tempDir } from "../support/tmp.ts";
import { waitFor } from "../support/wait.ts";

/**
 * A supervisor (systemd, docker, a shell) signals the whole process group: `bun run` and its child both
 * get SIGTERM, so the child sees it twice. The shutdown must still finish its final checkpoint and exit 0.
 */
const scratch = tempDir("devpipe-signals-");
afterAll(() => scratch.remove());

const signalGroup = (pid: number, signal: NodeJS.Signals) => process.kill(-pid, signal);

describe("SIGTERM to the process group", () => {
  test("bun run start (embedded) finishes its final checkpoints and exits 0", async () => {
    const port = freePort();
    const app = startProcess(["start"], { DATA_DIR: `${scratch.path}/start`, PORT: String(port), API_KEYS: "signal-key:ingest+query+admin" }, { detached: true });
    await waitFor(async () => (await fetch(`http://127.0.0.1:${port}/readyz`).catch(() => undefined))?.status === 200, { timeoutMs: 60_000, intervalMs: 100, what: "/readyz 200" });
    const event = { type: "sensor.reading", sensor_id: "s-signal", temperature: 20, humidity: 40, event_time: Date.now() - 1_000 };
    const posted = await fetch(`http://127.0.0.1:${port}/v1/events`, { method: "POST", body: JSON.stringify(event), headers: { "content-type": "application/json", authorization: "Bearer signal-key" } });
    expect(posted.status).toBe(202);
    signalGroup(app.child.pid, "SIGTERM");
    expect(await app.exited()).toBe(0);
    const output = app.output();
    for (const job of ["enrich", "windows", "lake", "alerts"]) expect(output).toMatch(new RegExp(`"msg":"final checkpoint committed"[^\\n]*"job":"${job}"|"job":"${job}"[^\\n]*"msg":"final checkpoint committed"`));
    expect(output).toContain('"msg":"stopped"');
    expect(output).not.toContain("exiting now");
  }, 90_000);

  test("bun run worker all (Kafka + Postgres + S3) finishes its final checkpoints and exits 0", async () => {
    const database = await freshDatabase();
    const { kafkaBrokers, s3 } = services();
    try {
      const worker = startProcess(
        ["worker", "all"],
        {
          DATA_DIR: `${scratch.path}/worker`,
          KAFKA_BROKERS: kafkaBrokers.join(","),
          DATABASE_URL: database.url,
          TOPIC_PREFIX: `${uniqueName("sig")}.`,
          LAKE_URL: `s3://${s3.bucket}/${uniqueName("signals")}`,
          S3_ENDPOINT: s3.endpoint,
          AWS_ACCESS_KEY_ID: s3.accessKeyId,
          AWS_SECRET_ACCESS_KEY: s3.secretAccessKey,
          AWS_REGION: s3.region,
        },
        { detached: true },
      );
      await waitFor(() => worker.output().includes('"msg":"worker started"') && (worker.output().match(/"msg":"partitions assigned"/g) ?? []).length >= 4, { timeoutMs: 60_000, intervalMs: 100, what: "worker started with every job assigned" });
      signalGroup(worker.child.pid, "SIGTERM");
      expect(await worker.exited()).toBe(0);
      const output = worker.output();
      expect((output.match(/"msg":"final checkpoint committed"/g) ?? []).length).toBe(4);
      expect(output).toContain('"msg":"stopped"');
      expect(output).not.toContain("exiting now");
    } finally {
      await database.drop();
    }
  }, 90_000);
});
