import { afterAll, beforeAll, expect, test } from "bun:test";
import { createApp } from "../../api/app.ts";
import { TableLog } from "../../lib/lake/delta/log.ts";
import { openLake } from "../../lib/lake/index.ts";
import { eventTableOf } from "../../lib/lake/tables.ts";
import { closeServices, readiness, type Services } from "../../lib/services.ts";
import { jobs } from "../../workers/jobs.ts";
import { lakeIdCounts } from "../support/lake.ts";
import { services as realServices, uniqueName } from "../support/services.ts";
import { serviceSetups } from "../support/setups.ts";
import { startTcpProxy } from "../support/tcp-proxy.ts";
import { tempDir } from "../support/tmp.ts";
import { waitFor } from "../support/wait.ts";

/**
 * The S3 server becomes unreachable (a real network cut between the sink and MinIO) while events keep
 * arriving: flushes fail and are logged as failed runs, nothing is committed, and once the network is back
 * every event reaches the lake exactly once.
 */
const dir = tempDir("devpipe-lake-outage-");
let services: Services;
let drop: () => Promise<void>;
let app: ReturnType<typeof createApp>;
let stops: (() => Promise<void>)[] = [];
let proxy: Awaited<ReturnType<typeof startTcpProxy>>;
const run = uniqueName("o");

const post = (body: unknown) => app.request("/v1/events", { method: "POST", body: JSON.stringify(body), headers: { "content-type": "application/json", authorization: "Bearer all-key" } });
const readings = (from: number, count: number) =>
  Array.from({ length: count }, (_, i) => ({ type: "gps.fix", event_id: `${run}-${from + i}`, device_id: `${run}-d${(from + i) % 5}`, latitude: 1, longitude: 2, speed: 3, direction: "North", vehicle_type: "bus", event_time: Date.now() - 60_000 + i }));
const failedRuns = async () => (await services.db.sql<{ n: number }[]>`select count(*)::int as n from pipeline_runs where job = 'lake' and status = 'failed'`)[0]?.n ?? 0;

beforeAll(async () => {
  const s3 = realServices().s3;
  const endpoint = new URL(s3.endpoint);
  proxy = await startTcpProxy({ host: endpoint.hostname, port: Number(endpoint.port) });
  ({ services, drop } = await serviceSetups({
    LAKE_FLUSH_INTERVAL_MS: "200",
    READY_STALL_MS: "1000",
    LAKE_URL: `s3://${s3.bucket}/${uniqueName("outage")}`,
    S3_ENDPOINT: proxy.url,
    AWS_ACCESS_KEY_ID: s3.accessKeyId,
    AWS_SECRET_ACCESS_KEY: s3.secretAccessKey,
  }).kafka(dir.path));
  app = createApp(services, { apiKeys: [{ key: "all-key", scopes: ["ingest", "query", "admin"] }] });
  stops = await Promise.all([jobs.enrich, jobs.lake].map((job) => job?.start(services, { commitIntervalMs: 100 }) ?? Promise.reject(new Error("job missing"))));
});
afterAll(async () => {
  await proxy.restore();
  await Promise.all(stops.map((stop) => stop()));
  await closeServices(services);
  await drop();
  await proxy.close();
  dir.remove();
});

test("S3 unreachable: flushes fail and are retried; afterwards every event is in the lake once", async () => {
  expect((await post(readings(0, 50))).status).toBe(202);
  await waitFor(async () => (await lakeIdCounts(services, dir.path)).size === 50, { what: "the first 50 events in the lake" });
  // The table as seen past the proxy, straight from MinIO.
  const direct = openLake({ lake: services.config.lake, s3: { ...services.config.s3, endpoint: realServices().s3.endpoint } });
  const committed = async () => (await new TableLog(direct, eventTableOf("gps.fix")).refresh()).version;
  const versionBefore = await committed();

  proxy.cut();
  expect((await post(readings(50, 70))).status).toBe(202);
  await waitFor(async () => (await failedRuns()) >= 2, { timeoutMs: 30_000, what: "failed lake flushes in the runs log" });
  // Nothing from the failed flushes is committed for readers.
  expect(await committed()).toBe(versionBefore);
  const [failure] = await services.db.sql<{ error: string | null; records: number }[]>`select error, records::int from pipeline_runs where job = 'lake' and status = 'failed' limit 1`;
  expect(failure?.error).toBeTruthy();
  expect(failure?.records).toBeGreaterThan(0);
  // Readiness names the stalled job once its checkpoints have failed for longer than READY_STALL_MS.
  const stalled = await waitFor(async () => {
    const { checks } = await readiness(services);
    return checks.jobs.status === "failing" ? checks.jobs.error : undefined;
  }, { timeoutMs: 15_000, intervalMs: 200, what: "/readyz to name the stalled lake job" });
  expect(stalled).toMatch(/^lake: /);

  await proxy.restore();
  expect((await post(readings(120, 30))).status).toBe(202);
  const counts = await waitFor(async () => {
    const found = await lakeIdCounts(services, dir.path);
    return found.size === 150 ? found : undefined;
  }, { timeoutMs: 60_000, what: "all 150 events in the lake after the outage" });
  expect([...counts.values()].every((n) => n === 1)).toBe(true);
  expect([...counts.keys()].every((id) => id.startsWith(run))).toBe(true);
  expect((await readiness(services)).checks.jobs).toEqual({ status: "ok" });
}, 120_000);
