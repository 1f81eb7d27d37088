import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";
import "./styles.css";
import { parseMetrics, type Sample } from "./metrics-text.ts";

/**
 * The live dashboard: polls the gateway's JSON endpoints and /metrics every few seconds and follows
 * GET /v1/alerts/stream. The API key is asked once and kept in localStorage.
 */
const REFRESH_MS = 2_000;
const KEY_STORAGE = "devpipe.apiKey";
const MINUTE = 60_000;

const $ = <T extends HTMLElement>(id: string) => {
  const element = document.getElementById(id);
  if (!element) throw new Error(`#${id} missing from the page`);
  return element as T;
};
const keyInput = $<HTMLInputElement>("key");
const status = $("status");
let apiKey = localStorage.getItem(KEY_STORAGE) ?? "";
keyInput.value = apiKey;

type Json = Record<string, unknown>;
async function api<T>(path: string): Promise<T> {
  const response = await fetch(path, { headers: { authorization: `Bearer ${apiKey}` } });
  if (!response.ok) throw new Error(`${path}: ${response.status} ${((await response.json().catch(() => ({}))) as { detail?: string }).detail ?? ""}`);
  return (await response.json()) as T;
}

// ---- charts
const palette = ["#4fb3ff", "#ffb454", "#7bd88f", "#ff6b6b", "#c792ea", "#f78c6c", "#89ddff", "#e6db74"];
function lineChart(id: string, labels: string[]) {
  const target = $(id);
  const chart = new uPlot(
    {
      width: target.clientWidth || 300,
      height: 180,
      legend: { show: labels.length > 1 },
      // With no or one point uPlot would span years: show the last 30 minutes instead.
      scales: { x: { time: true, range: (_u, min, max) => (Number.isFinite(min) && Number.isFinite(max) && max - min >= 60 ? [min, max] : [Date.now() / 1000 - 1_800, Date.now() / 1000]) } },
      axes: [{ stroke: "#8a96a3", grid: { stroke: "#26313d" } }, { stroke: "#8a96a3", grid: { stroke: "#26313d" } }],
      series: [{}, ...labels.map((label, i) => ({ label, stroke: palette[i % palette.length], width: 2 }))],
    },
    [[], ...labels.map(() => [])],
    target,
  );
  new ResizeObserver(() => chart.setSize({ width: target.clientWidth, height: 180 })).observe(target);
  return chart;
}

const ingestTypes = ["vehicle.telemetry", "vehicle.location", "gps.fix", "traffic.camera", "weather.observation", "emergency.incident", "sensor.reading", "user.activity"];
const ingestChart = lineChart("chart-ingest", ingestTypes);
const alertsChart = lineChart("chart-alerts", ["alerts"]);
const pagesChart = lineChart("chart-pages", ["page views"]);
const usersChart = lineChart("chart-users", ["active users"]);

// ---- tables
function table(id: string, header: string[], rows: (string | number)[][]) {
  const element = $<HTMLTableElement>(id);
  const cell = (tag: string, text: string | number) => {
    const node = document.createElement(tag);
    node.textContent = String(text);
    return node;
  };
  const head = document.createElement("tr");
  for (const h of header) head.append(cell("th", h));
  element.replaceChildren(head, ...rows.map((row) => {
    const tr = document.createElement("tr");
    for (const value of row) tr.append(cell("td", value));
    return tr;
  }));
}

// ---- ingest rate from successive /metrics scrapes
const ingestHistory: { t: number[]; byType: number[][] } = { t: [], byType: ingestTypes.map(() => []) };
let previousTotals: Map<string, number> | undefined;
let previousAt = 0;
function acceptedByType(samples: Sample[]) {
  const totals = new Map<string, number>();
  for (const s of samples) if (s.name === "devpipe_ingest_events_total" && s.labels.status === "accepted") totals.set(s.labels.type ?? "", (totals.get(s.labels.type ?? "") ?? 0) + s.value);
  return totals;
}

async function refreshMetrics() {
  const samples = parseMetrics(await (await fetch("/metrics")).text());
  const now = Date.now();
  const totals = acceptedByType(samples);
  if (previousTotals) {
    const seconds = (now - previousAt) / 1000;
    ingestHistory.t.push(now / 1000);
    ingestTypes.forEach((type, i) => ingestHistory.byType[i]?.push(Math.max(0, ((totals.get(type) ?? 0) - (previousTotals?.get(type) ?? 0)) / seconds)));
    if (ingestHistory.t.length > 150) {
      ingestHistory.t.shift();
      for (const series of ingestHistory.byType) series.shift();
    }
    ingestChart.setData([ingestHistory.t, ...ingestHistory.byType]);
  }
  previousTotals = totals;
  previousAt = now;
  const lagByJob = new Map<string, { total: number; worst: number; partitions: number }>();
  for (const s of samples.filter((x) => x.name === "devpipe_consumer_lag")) {
    const entry = lagByJob.get(s.labels.job ?? "") ?? { total: 0, worst: 0, partitions: 0 };
    lagByJob.set(s.labels.job ?? "", { total: entry.total + s.value, worst: Math.max(entry.worst, s.value), partitions: entry.partitions + 1 });
  }
  table("lag", ["job", "behind", "worst", "partitions"], [...lagByJob].map(([job, l]) => [job, l.total, l.worst, l.partitions]));
  $("late").textContent = String(samples.find((s) => s.name === "devpipe_late_events")?.value ?? 0);
  $("dead").textContent = String(samples.filter((s) => s.name === "devpipe_dead_lettered_records").reduce((sum, s) => sum + s.value, 0));
}

// ---- aggregates, alerts history, runs
type Window = Json & { key: string; window_start: string };
const perMinute = (items: Window[], value: (w: Window) => number): uPlot.AlignedData => {
  const sums = new Map<number, number>();
  for (const w of items) sums.set(Date.parse(w.window_start), (sums.get(Date.parse(w.window_start)) ?? 0) + value(w));
  const times = [...sums.keys()].sort((a, b) => a - b);
  return [times.map((t) => t / 1000), times.map((t) => sums.get(t) ?? 0)] as uPlot.AlignedData;
};

let alertTimes: number[] = [];
async function refreshData() {
  const from = Date.now() - 30 * MINUTE;
  const [pages, users, colours, sensors, runs, alerts] = await Promise.all([
    api<{ items: Window[] }>(`/v1/aggregates/page_views_1m?from=${from}&limit=10000`),
    api<{ items: Window[] }>(`/v1/aggregates/active_users_5m?from=${from}&limit=10000`),
    api<{ items: Window[] }>(`/v1/aggregates/vehicle_alerts_15m?from=${Date.now() - 16 * MINUTE}&limit=100`),
    api<{ items: Window[] }>(`/v1/aggregates/sensor_stats_1m?from=${Date.now() - 3 * MINUTE}&limit=1000`),
    api<{ items: Json[] }>("/v1/pipeline/runs?limit=8"),
    api<{ items: FeedAlert[] }>(`/v1/alerts?from=${from}&limit=10000`),
  ]);
  pagesChart.setData(perMinute(pages.items, (w) => Number(w.views ?? 0)));
  usersChart.setData(perMinute(users.items, (w) => Number(w.active_users ?? 0)));
  alertTimes = alerts.items.map((a) => Date.parse(a.event_time));
  // On first load the feed starts with the latest alerts already stored; the stream adds the new ones.
  if (feed.children.length === 0) for (const alert of alerts.items.slice(-30)) showAlert(alert);
  drawAlertsPerMinute();
  // The 15-minute window that ends last (the most recent, possibly still filling).
  const latest = colours.items.reduce<Window | undefined>((best, w) => (!best || w.window_start > best.window_start ? w : best), undefined);
  table("colours", ["total", "black", "white", "silver"], latest ? [[Number(latest.total_alerts ?? 0), Number(latest.black_cars ?? 0), Number(latest.white_cars ?? 0), Number(latest.silver_cars ?? 0)]] : []);
  const newestSensors = new Map<string, Window>();
  for (const w of sensors.items) if (!newestSensors.has(w.key) || (newestSensors.get(w.key)?.window_start ?? "") < w.window_start) newestSensors.set(w.key, w);
  table("sensors", ["sensor", "n", "avg °C", "min", "max"], [...newestSensors.values()].slice(0, 8).map((w) => [w.key, Number(w.count ?? 0), Number(w.avg_temperature ?? 0).toFixed(1), Number(w.min_temperature ?? 0), Number(w.max_temperature ?? 0)]));
  table("runs", ["job", "started", "status", "records", "error"], runs.items.map((r) => [String(r.job), new Date(String(r.started_at)).toLocaleTimeString(), String(r.status), Number(r.records), String(r.error ?? "")]));
}

function drawAlertsPerMinute() {
  const counts = new Map<number, number>();
  for (const t of alertTimes) counts.set(Math.floor(t / MINUTE) * MINUTE, (counts.get(Math.floor(t / MINUTE) * MINUTE) ?? 0) + 1);
  const times = [...counts.keys()].sort((a, b) => a - b);
  alertsChart.setData([times.map((t) => t / 1000), times.map((t) => counts.get(t) ?? 0)]);
}

type FeedAlert = { event_id: string; key: string; rules: string[]; event_time: string; event: Json };
const feed = $<HTMLUListElement>("alerts");
function showAlert(alert: FeedAlert) {
  if (feed.querySelector(`li[data-event-id="${CSS.escape(alert.event_id)}"]`)) return;
  const item = document.createElement("li");
  item.dataset.eventId = alert.event_id;
  const part = (className: string, text: string) => {
    const span = document.createElement("span");
    span.className = className;
    span.textContent = text;
    return span;
  };
  item.append(
    part("rules", alert.rules.join(", ")),
    part("key", `car ${alert.key}${alert.event.color_name ? ` (${String(alert.event.color_name)})` : ""} · ${String(alert.event.speed ?? "?")} km/h`),
    part("muted", new Date(alert.event_time).toLocaleTimeString()),
  );
  feed.prepend(item);
  while (feed.children.length > 30) feed.lastElementChild?.remove();
}

// ---- live alerts over SSE (fetch, so the key goes in a header; EventSource cannot send one)
let streamAbort: AbortController | undefined;
let lastEventId = "";
async function followAlerts() {
  streamAbort?.abort();
  const abort = new AbortController();
  streamAbort = abort;
  const state = $("stream-state");
  while (!abort.signal.aborted) {
    try {
      const headers: Record<string, string> = { authorization: `Bearer ${apiKey}` };
      if (lastEventId) headers["last-event-id"] = lastEventId;
      const response = await fetch("/v1/alerts/stream", { headers, signal: abort.signal });
      if (!response.ok || !response.body) throw new Error(`stream: ${response.status}`);
      state.textContent = "live";
      state.className = "pill live";
      const decoder = new TextDecoder();
      let buffer = "";
      for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) {
        buffer += decoder.decode(chunk, { stream: true });
        for (let end = buffer.indexOf("\n\n"); end >= 0; end = buffer.indexOf("\n\n")) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          const fields = Object.fromEntries(block.split("\n").filter((l) => !l.startsWith(":")).map((l) => [l.slice(0, l.indexOf(":")), l.slice(l.indexOf(":") + 1).trim()]));
          if (fields.id) lastEventId = fields.id;
          if (fields.event !== "alert" || !fields.data) continue;
          const alert = JSON.parse(fields.data) as FeedAlert;
          showAlert(alert);
          alertTimes.push(Date.parse(alert.event_time));
          drawAlertsPerMinute();
        }
      }
    } catch (error) {
      if (abort.signal.aborted) return;
      status.textContent = String(error instanceof Error ? error.message : error);
    }
    state.textContent = "reconnecting";
    state.className = "pill";
    await new Promise((resolve) => setTimeout(resolve, 2_000));
  }
}

// ---- start
let timer: ReturnType<typeof setInterval> | undefined;
async function tick() {
  await refreshMetrics().catch((error: unknown) => (status.textContent = `metrics: ${String(error)}`));
  if (!apiKey) return;
  try {
    await refreshData();
    status.textContent = `updated ${new Date().toLocaleTimeString()}`;
  } catch (error) {
    status.textContent = error instanceof Error ? error.message : String(error);
  }
}
function start() {
  if (timer) clearInterval(timer);
  void tick();
  timer = setInterval(() => void tick(), REFRESH_MS);
  if (apiKey) void followAlerts();
  else status.textContent = "enter an API key with the query scope";
}
$<HTMLFormElement>("key-form").addEventListener("submit", (event) => {
  event.preventDefault();
  apiKey = keyInput.value.trim();
  localStorage.setItem(KEY_STORAGE, apiKey);
  start();
});
start();
