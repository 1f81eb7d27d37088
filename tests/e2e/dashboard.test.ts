import { afterAll, beforeAll, expect, test } from "bun:test";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { type Browser, chromium, type Page } from "playwright-core";
import { startGateway } from "../../api/server.ts";
import { closeServices, type Services } from "../../lib/services.ts";
import { jobInputs } from "../../lib/topics.ts";
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

const EVENT_TYPES = ["vehicle.telemetry", "vehicle.location", "gps.fix", "traffic.camera", "weather.observation", "emergency.incident", "sensor.reading", "user.activity"];
const PANELS = ["ingest", "alerts-chart", "feed", "colours", "pages", "users", "sensors", "lag", "runs"];
const CHARTS = ["ingest", "alerts", "pages", "users", "lag"];
const RANGES = { "5m": 5 * 60, "1h": 3_600, "24h": 86_400 } as const;

// Expressions evaluated in the page (as strings: the test itself is compiled without DOM types).
const STREAM_LIVE = 'document.getElementById("stream-state")?.textContent === "live"';
const REFRESHES = "window.devpipe?.refreshes ?? 0";
const X_SCALES = "Object.fromEntries(Object.entries(window.devpipe.charts()).map(([name, u]) => [name, { min: u.scales.x.min, max: u.scales.x.max }]))";
const EMPTY_SHOWN = `Object.fromEntries(${JSON.stringify(PANELS)}.map((p) => [p, !document.getElementById("empty-" + p).hidden && document.getElementById("empty-" + p).textContent.length > 20]))`;
const LEGEND_LABELS = '[...document.querySelectorAll(".u-legend .u-label")].map((l) => ({ text: l.textContent, title: l.title, scrollWidth: l.scrollWidth, clientWidth: l.clientWidth }))';
const PRESSED_RANGE = 'document.querySelector("#range button[aria-pressed=true]")?.dataset.range';
const NO_HORIZONTAL_SCROLL = "document.documentElement.scrollWidth <= document.documentElement.clientWidth + 1";
/** An alert row's content height in lines, and whether its parts sit on one baseline row. */
const rowLines = (eventId: string) => `(() => {
  const li = document.querySelector('li[data-event-id="${eventId}"]');
  const style = getComputedStyle(li);
  const content = li.getBoundingClientRect().height - parseFloat(style.paddingTop) - parseFloat(style.paddingBottom) - parseFloat(style.borderTopWidth) - parseFloat(style.borderBottomWidth);
  const tops = [...li.children].map((c) => Math.round(c.getBoundingClientRect().top));
  return { lines: content / parseFloat(style.lineHeight), sameRow: tops.every((t) => Math.abs(t - tops[0]) <= 2) };
})()`;

beforeAll(async () => {
  mkdirSync(OUTPUT, { recursive: true });
  ({ services } = await serviceSetups({ PORT: String(freePort()), API_KEYS: `${KEY}:ingest+query` }).embedded(dir.path));
  // The lake sink too, so the runs log (and its panel) fills.
  stops = await Promise.all(["enrich", "alerts", "windows", "lake"].map((name) => jobs[name]?.start(services, { commitIntervalMs: 50 }) ?? Promise.reject(new Error(`no job ${name}`))));
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

/** Waits for `count` more completed refreshes of the page. */
async function refreshes(page: Page, count = 1) {
  const now = (await page.evaluate(REFRESHES)) as number;
  await page.waitForFunction(`${REFRESHES} >= ${now + count}`, undefined, { timeout: 10_000 });
}

/** Every chart's x scale is [now - range, now], whatever its data. */
async function expectXScales(page: Page, range: keyof typeof RANGES) {
  const scales = (await page.evaluate(X_SCALES)) as Record<string, { min: number; max: number }>;
  expect(Object.keys(scales).sort()).toEqual([...CHARTS].sort());
  const now = Date.now() / 1000;
  for (const [name, { min, max }] of Object.entries(scales)) {
    expect({ name, range, span: Math.round((max - min) * 100) / 100 }).toEqual({ name, range, span: RANGES[range] });
    expect(Math.abs(max - now)).toBeLessThan(5);
  }
}

test("the dashboard: empty states, a posted alert within 5 s, every chart on the selected range, full legends, one-line alerts, a phone", async () => {
  const page = await browser.newPage({ viewport: { width: 1400, height: 1300 } });
  const problems: string[] = [];
  page.on("console", (message) => {
    if (message.type() === "error") problems.push(message.text());
  });
  page.on("pageerror", (error) => problems.push(error.message));

  await page.goto(gateway.url.replace("localhost", "127.0.0.1"));
  // A fresh start shows the last 5 minutes.
  expect(await page.evaluate(PRESSED_RANGE)).toBe("5m");
  await page.fill("#key", KEY);
  await page.click("#key-form button");
  await page.waitForFunction(STREAM_LIVE, undefined, { timeout: 10_000 });
  // The key is kept for the next visit.
  expect(await page.evaluate('localStorage.getItem("devpipe.apiKey")')).toBe(KEY);
  await refreshes(page, 2);

  // Nothing posted yet: every panel says what fills it (the alert rules as the alerts job applies them).
  expect(await page.evaluate(EMPTY_SHOWN)).toEqual(Object.fromEntries(PANELS.map((p) => [p, true])));
  expect(await page.textContent("#empty-alerts-chart")).toContain("speed > 120 km/h");
  expect(await page.textContent("#empty-alerts-chart")).toContain("rpm > 6000");
  expect(await page.textContent("#ckpt-last")).toContain("none");
  await expectXScales(page, "5m");
  await page.screenshot({ path: join(OUTPUT, "dashboard-empty.png"), fullPage: true });

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
  // The periodic refresh fills the rest from the API and /metrics (the sensor reading's window, the runs log…).
  await page.waitForFunction('document.querySelectorAll("#sensors tr").length > 1', undefined, { timeout: 10_000 });
  await page.waitForFunction(`${JSON.stringify(PANELS)}.every((p) => document.getElementById("empty-" + p).hidden)`, undefined, { timeout: 20_000 }).catch(async () => {
    throw new Error(`empty states still shown: ${JSON.stringify(await page.evaluate(EMPTY_SHOWN))}`);
  });

  // Each range: the buttons, the stored choice, and every chart's x scale, data or not.
  for (const range of ["1h", "24h", "5m"] as const) {
    await page.click(`#range button[data-range="${range}"]`);
    expect(await page.evaluate(PRESSED_RANGE)).toBe(range);
    expect(await page.evaluate('localStorage.getItem("devpipe.range")')).toBe(range);
    await expectXScales(page, range);
    await refreshes(page);
    await expectXScales(page, range);
  }

  // Legends: full names, nothing cut, the name also as a tooltip.
  const labels = (await page.evaluate(LEGEND_LABELS)) as { text: string; title: string; scrollWidth: number; clientWidth: number }[];
  expect(labels.map((l) => l.text).sort()).toEqual([...EVENT_TYPES, ...Object.keys(jobInputs)].sort());
  for (const label of labels) {
    expect(label.title).toBe(label.text);
    expect(label.scrollWidth).toBeLessThanOrEqual(label.clientWidth);
    expect(label.text).not.toContain("…");
  }

  // An alert is one line on a desktop.
  const row = (await page.evaluate(rowLines(eventId))) as { lines: number; sameRow: boolean };
  expect(row.sameRow).toBe(true);
  expect(row.lines).toBeLessThan(1.5);
  await page.screenshot({ path: join(OUTPUT, "dashboard.png"), fullPage: true });

  // The range choice survives a reload; a phone gets no horizontal scroll.
  await page.click('#range button[data-range="1h"]');
  await page.setViewportSize({ width: 390, height: 844 });
  await page.reload();
  await page.waitForFunction(STREAM_LIVE, undefined, { timeout: 10_000 });
  expect(await page.evaluate(PRESSED_RANGE)).toBe("1h");
  await expectXScales(page, "1h");
  await page.click('#range button[data-range="5m"]');
  await refreshes(page, 2);
  await page.waitForSelector(`li[data-event-id="${eventId}"]`, { timeout: 5_000 });
  expect(await page.evaluate(NO_HORIZONTAL_SCROLL)).toBe(true);
  await page.screenshot({ path: join(OUTPUT, "dashboard-phone.png"), fullPage: true });
  expect(problems).toEqual([]);
}, 90_000);
