import "uplot/dist/uPlot.min.css";
import "./styles.css";
import { AlertFeed } from "./alert-feed.ts";
import { followAlerts } from "./alert-stream.ts";
import { ApiClient } from "./api-client.ts";
import { ApiPanels } from "./api-panels.ts";
import { newest } from "./checkpoint-failures.ts";
import { TimeChart } from "./chart.ts";
import { byId, clock } from "./dom.ts";
import { writeEmptyStates } from "./empty-states.ts";
import { renderHealth } from "./health-panel.ts";
import { MetricsPanels } from "./metrics-panels.ts";
import { rangePicker } from "./range-picker.ts";
import { expose } from "./test-hooks.ts";
import { rangeById, type TimeRange, xWindow } from "./time-range.ts";

/**
 * The live dashboard: reads /metrics and the query API every 2 s, follows GET /v1/alerts/stream, and
 * draws every chart over the selected range ending now. The API key and the range are kept in localStorage.
 */
const REFRESH_MS = 2_000;
const KEY_STORAGE = "devpipe.apiKey";
const RANGE_STORAGE = "devpipe.range";

let apiKey = localStorage.getItem(KEY_STORAGE) ?? "";
let range: TimeRange = rangeById(localStorage.getItem(RANGE_STORAGE));
const keyInput = byId<HTMLInputElement>("key");
const status = byId("status");
keyInput.value = apiKey;
writeEmptyStates();

const xRange = () => xWindow(range, Date.now());
// Series named by the panel's title show no legend; the ingest and lag charts get theirs from /metrics.
const chart = (id: string, labels: string[], legend: boolean, height = 170, integer = true) => new TimeChart(byId(id), labels, { height, legend, integer, window: xRange });
const charts = {
  ingest: chart("chart-ingest", [], true, 200, false),
  alerts: chart("chart-alerts", ["alerts"], false),
  pages: chart("chart-pages", ["page views"], false),
  users: chart("chart-users", ["active users"], false),
  lag: chart("chart-lag", [], true, 150),
};
const feed = new AlertFeed(byId<HTMLUListElement>("alerts"));
feed.render();
const metrics = new MetricsPanels(charts);
const api = new ApiPanels(new ApiClient(() => apiKey), feed, charts);

const handle = {
  charts: () => Object.fromEntries(Object.entries(charts).map(([name, c]) => [name, c.instance])),
  range: () => range.id,
  refreshes: 0,
};
expose(handle);

function draw() {
  const now = Date.now();
  metrics.draw(now - range.ms);
  api.draw(now - range.ms, now);
  renderHealth(metrics.health, newest(api.lastFailedRun, metrics.failures.seen));
}

// One refresh at a time; a request for another while one runs (a range change) makes it run again after.
let refreshing = false;
let again = false;
async function refresh() {
  if (refreshing) {
    again = true;
    return;
  }
  refreshing = true;
  try {
    do {
      again = false;
      await refreshOnce();
    } while (again);
  } finally {
    refreshing = false;
  }
}
async function refreshOnce() {
  const now = Date.now();
  const problems: string[] = [];
  await metrics.scrape(now).catch((error: unknown) => problems.push(error instanceof Error ? error.message : String(error)));
  if (apiKey) problems.push(...(await api.refresh(now - range.ms, now)));
  draw();
  status.textContent = problems.length > 0 ? problems.join(" · ") : apiKey ? `updated ${clock(now)}` : "enter an API key with the query scope";
  status.classList.toggle("bad", problems.length > 0);
  handle.refreshes++;
}

rangePicker(byId("range"), range, (selected) => {
  range = selected;
  localStorage.setItem(RANGE_STORAGE, selected.id);
  draw();
  void refresh();
});

// ---- live alerts
const streamState = byId("stream-state");
let stopStream: (() => void) | undefined;
function startStream() {
  stopStream?.();
  stopStream = undefined;
  if (!apiKey) return;
  stopStream = followAlerts(
    apiKey,
    (alert) => {
      feed.offer([alert]);
      api.alerts.add(alert);
      api.draw(Date.now() - range.ms, Date.now());
    },
    (state, error) => {
      streamState.textContent = state;
      streamState.className = state === "live" ? "pill live" : "pill";
      if (error) status.textContent = error;
    },
  );
}

byId<HTMLFormElement>("key-form").addEventListener("submit", (event) => {
  event.preventDefault();
  apiKey = keyInput.value.trim();
  localStorage.setItem(KEY_STORAGE, apiKey);
  startStream();
  void refresh();
});

startStream();
void refresh();
setInterval(() => void refresh(), REFRESH_MS);
