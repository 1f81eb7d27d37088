import { afterAll, expect, test } from "bun:test";
import { freePort, startProcess } from "../support/process.ts";
import { tempDir } from "../support/tmp.ts";
import { waitFor } from "../support/wait.ts";

/** `bun run demo` as a newcomer runs it on a fresh data directory: one command, then the dashboard fills. */
const scratch = tempDir("devpipe-demo-");
afterAll(() => scratch.remove());

test("bun run demo prints the dashboard URL and a key; within 30 s there are alerts and filling windows", async () => {
  const port = freePort();
  // The entry file directly (as `bun run demo` does), so SIGTERM reaches the process itself.
  const demo = startProcess(["start.ts", "--demo"], { DATA_DIR: `${scratch.path}/data`, PORT: String(port), LOG_LEVEL: "warn" });
  const started = Date.now();
  // One budget for everything: the dashboard must have alerts and windows within 30 s of the command.
  const remaining = () => Math.max(1, started + 30_000 - Date.now());
  try {
    const banner = await waitFor(() => {
      const output = demo.output();
      const url = /dashboard: (http:\/\/\S+)\//.exec(output)?.[1];
      const key = /API key: +(dp_[\w-]+)/.exec(output)?.[1];
      return url && key ? { url: url.replace("localhost", "127.0.0.1"), key } : undefined;
    }, { timeoutMs: remaining(), what: "the banner with the dashboard URL and the API key" });
    const get = async (path: string) => {
      const response = await fetch(`${banner.url}${path}`, { headers: { authorization: `Bearer ${banner.key}` } });
      expect(response.status).toBe(200);
      return response;
    };
    expect(await (await get("/")).text()).toContain("/dashboard/app.js");
    expect((await get("/dashboard/app.js")).headers.get("content-type")).toContain("javascript");
    const since = started - 60 * 60_000;
    await waitFor(async () => ((await (await get(`/v1/alerts?from=${since}&limit=10`)).json()) as { items: unknown[] }).items.length > 0, { timeoutMs: remaining(), intervalMs: 500, what: "alerts from the vehicle simulator" });
    for (const view of ["vehicle_alerts_15m", "page_views_1m", "active_users_5m", "sensor_stats_1m"]) {
      await waitFor(async () => ((await (await get(`/v1/aggregates/${view}?from=${since}&limit=10`)).json()) as { items: unknown[] }).items.length > 0, { timeoutMs: remaining(), intervalMs: 500, what: `windows of ${view}` });
    }
    const metrics = await (await fetch(`${banner.url}/metrics`)).text();
    expect(metrics).toMatch(/^devpipe_ingest_events_total\{type="vehicle.telemetry",status="accepted"\} [1-9]/m);
  } finally {
    demo.child.kill("SIGTERM");
    expect(await demo.exited()).toBe(0);
  }
}, 90_000);
