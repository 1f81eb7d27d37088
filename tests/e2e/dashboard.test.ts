import { afterAll, beforeAll, expect, test } from "bun:test";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { type Browser, chromium } from "playwright-core";
import { startGateway } from "../../api/server.ts";
import { closeServices, type Services } from "../../lib/services.ts";
import { jobs } from "../../workers/jobs.ts";
import { freePort } from "../support/process.ts";
import { serviceSetups } from "../support/setups.ts";
import { tempDir } from "../support/tmp.ts";

/** The dashboard in Debian's Chromium (headless, driven by playwright-core) against a running gateway and jobs. */
const OUTPUT = new URL("../../.test-output/", import.meta.url).pathname;
const KEY = "dashboard-key";
const dir = tempDir("devpipe-dashboard-");
let services: Services;
let gateway: Awaited<ReturnType<typeof startGateway>>;
let stops: (() => Promise<void>)[] = [];
let browser: Browser;
// Expressions evaluated in the page (as strings: the test itself is compiled without DOM types).
const STREAM_LIVE = 'document.getElementById("stream-state")?.textContent === "live"';

beforeAll(async () => {
  mkdirSync(OUTPUT, { recursive: true });
  ({ services } = await serviceSetups({ PORT: String(freePort()), API_KEYS: `${KEY}:ingest+query` }).embedded(dir.path));
  stops = await Promise.all(["enrich", "alerts", "windows"].map((name) => jobs[name]?.start(services, { commitIntervalMs: 50 }) ?? Promise.reject(new Error(`no job ${name}`))));
  gateway = await startGateway(services);
  browser = await chromium.launch({
    executablePath: "/usr/bin/chromium",
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
});
afterAll(async () => {
  await browser?.close();
  await gateway?.stop();
  await Promise.all(stops.map((stop) => stop()));
  await closeServices(services);
  dir.remove();
});

test("the dashboard loads without console errors, shows a posted alert within 5 s, and fits a phone", async () => {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  const problems: string[] = [];
  page.on("console", (message) => {
    if (message.type() === "error") problems.push(message.text());
  });
  page.on("pageerror", (error) => problems.push(error.message));

  await page.goto(gateway.url.replace("localhost", "127.0.0.1"));
  await page.fill("#key", KEY);
  await page.click("#key-form button");
  await page.waitForFunction(STREAM_LIVE, undefined, { timeout: 10_000 });
  // The key is kept for the next visit.
  expect(await page.evaluate('localStorage.getItem("devpipe.apiKey")')).toBe(KEY);

  const eventId = `dash-${crypto.randomUUID()}`;
  const posted = Date.now();
  const response = await fetch(`${gateway.url}/v1/events`, {
    method: "POST",
    headers: { authorization: `Bearer ${KEY}`, "content-type": "application/json" },
    body: JSON.stringify([
      { type: "vehicle.telemetry", event_id: eventId, car_id: 7, speed: 150, rpm: 7000, gear: 5, event_time: new Date().toISOString() },
      { type: "user.activity", user_id: "u1", session_id: "s1", action: "page_view", page: "/home", event_time: new Date().toISOString() },
      { type: "sensor.reading", sensor_id: "s-1", temperature: 21.5, humidity: 40, event_time: new Date().toISOString() },
    ]),
  });
  expect(response.status).toBe(202);
  await page.waitForSelector(`li[data-event-id="${eventId}"]`, { timeout: 5_000 });
  const shownAfterMs = Date.now() - posted;
  expect(shownAfterMs).toBeLessThan(5_000);
  expect(await page.textContent(`li[data-event-id="${eventId}"]`)).toContain("speeding");
  // The periodic refresh fills the tables from the API (the sensor reading's window, the runs log…).
  await page.waitForFunction('document.querySelectorAll("#sensors tr").length > 1', undefined, { timeout: 10_000 });
  await page.screenshot({ path: join(OUTPUT, "dashboard.png"), fullPage: true });

  await page.setViewportSize({ width: 390, height: 844 });
  await page.reload();
  await page.waitForFunction(STREAM_LIVE, undefined, { timeout: 10_000 });
  expect(await page.evaluate("document.documentElement.scrollWidth <= document.documentElement.clientWidth + 1")).toBe(true);
  await page.screenshot({ path: join(OUTPUT, "dashboard-phone.png"), fullPage: true });
  expect(problems).toEqual([]);
}, 60_000);
