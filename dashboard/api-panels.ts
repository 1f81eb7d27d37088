import type { AlertFeed } from "./alert-feed.ts";
import type { ApiClient } from "./api-client.ts";
import type { Alert, List, Run, Window } from "./api-types.ts";
import { BucketSeries } from "./bucket-series.ts";
import { type FailedCheckpoint, fromRun } from "./checkpoint-failures.ts";
import type { TimeChart } from "./chart.ts";
import { byId, clock, fillTable, setEmpty } from "./dom.ts";

/** The panels fed by the query API: alerts, page views and active users per minute, colours, sensors, runs. */
const MINUTE = 60_000;
const DAY = 24 * 60 * MINUTE;
const LIMIT = 10_000;

export class ApiPanels {
  readonly alerts: BucketSeries<Alert>;
  private readonly pages: BucketSeries<Window>;
  private readonly users: BucketSeries<Window>;
  lastFailedRun: FailedCheckpoint | undefined;

  constructor(private readonly api: ApiClient, feed: AlertFeed, private readonly charts: { alerts: TimeChart; pages: TimeChart; users: TimeChart }) {
    const windowPoint = (metric: string) => (w: Window) => ({ t: Date.parse(w.window_start), value: Number(w[metric] ?? 0) });
    // Alerts can still arrive for the last minutes (processing takes a moment); windows change until final
    // (2 min allowed lateness after their end): those spans are re-read on every refresh.
    this.alerts = new BucketSeries<Alert>({
      bucketMs: MINUTE,
      keepMs: DAY,
      recentMs: 3 * MINUTE,
      point: (a) => ({ t: Date.parse(a.event_time), value: 1 }),
      load: api.pages("/v1/alerts", LIMIT),
      observe: (items) => feed.offer(items),
    });
    this.pages = new BucketSeries<Window>({ bucketMs: MINUTE, keepMs: DAY, recentMs: 10 * MINUTE, point: windowPoint("views"), load: api.pages("/v1/aggregates/page_views_1m", LIMIT) });
    this.users = new BucketSeries<Window>({ bucketMs: MINUTE, keepMs: DAY, recentMs: 10 * MINUTE, point: windowPoint("active_users"), load: api.pages("/v1/aggregates/active_users_5m", LIMIT) });
  }

  /** Reads everything; resolves the errors of the reads that failed (the others still show). */
  async refresh(from: number, now: number): Promise<string[]> {
    const results = await Promise.allSettled([
      this.alerts.refresh(from, now),
      this.pages.refresh(from, now),
      this.users.refresh(from, now),
      this.colours(now),
      this.sensors(now),
      this.runs(),
    ]);
    return results.flatMap((r) => (r.status === "rejected" ? [r.reason instanceof Error ? r.reason.message : String(r.reason)] : []));
  }

  draw(from: number, now: number) {
    const draw = (series: BucketSeries<Alert> | BucketSeries<Window>, chart: TimeChart, label: string, panel: string) => {
      const { t, values } = series.columns(from, now);
      chart.update([label], [t.map((x) => x / 1000), values]);
      setEmpty(panel, !values.some((v) => v > 0));
    };
    draw(this.alerts, this.charts.alerts, "alerts", "alerts-chart");
    draw(this.pages, this.charts.pages, "page views", "pages");
    draw(this.users, this.charts.users, "active users", "users");
  }

  /** The sliding 15-minute window that ends with the current minute (the one before, if not written yet). */
  private async colours(now: number) {
    const current = Math.floor(now / MINUTE) * MINUTE - 14 * MINUTE;
    const { items } = await this.api.get<List<Window>>("/v1/aggregates/vehicle_alerts_15m", { from: current - 2 * MINUTE, to: current + 1, limit: 10 });
    const latest = items.reduce<Window | undefined>((best, w) => (!best || w.window_start > best.window_start ? w : best), undefined);
    const n = (name: string) => Number(latest?.[name] ?? 0);
    const total = n("total_alerts");
    const other = total - n("black_cars") - n("white_cars") - n("silver_cars");
    fillTable(byId<HTMLTableElement>("colours"), ["total", "black", "white", "silver", "other"], total > 0 ? [[total, n("black_cars"), n("white_cars"), n("silver_cars"), other]] : []);
    const extremes = byId("colours-max");
    extremes.textContent = total > 0 ? `max ${n("max_speed")} km/h · ${n("max_rpm")} rpm · gear ${n("max_gear")}` : "";
    setEmpty("colours", total === 0);
  }

  private async sensors(now: number) {
    const { items } = await this.api.get<List<Window>>("/v1/aggregates/sensor_stats_1m", { from: now - 3 * MINUTE, limit: 1_000 });
    const newest = new Map<string, Window>();
    for (const w of items) if ((newest.get(w.key)?.window_start ?? "") < w.window_start) newest.set(w.key, w);
    const rows = [...newest.values()].sort((a, b) => a.key.localeCompare(b.key, undefined, { numeric: true })).slice(0, 8);
    const n = (w: Window, name: string) => Number(w[name] ?? 0);
    fillTable(
      byId<HTMLTableElement>("sensors"),
      ["sensor", "n", "avg °C", "min", "max", "avg %RH"],
      rows.map((w) => [w.key, n(w, "count"), n(w, "avg_temperature").toFixed(1), n(w, "min_temperature"), n(w, "max_temperature"), n(w, "avg_humidity").toFixed(0)]),
    );
    setEmpty("sensors", rows.length === 0);
  }

  private async runs() {
    const [recent, failed] = await Promise.all([this.api.get<List<Run>>("/v1/pipeline/runs", { limit: 8 }), this.api.get<List<Run>>("/v1/pipeline/runs", { status: "failed", limit: 1 })]);
    fillTable(
      byId<HTMLTableElement>("runs"),
      ["job", "started", "took", "status", "records", "error"],
      recent.items.map((r) => [
        r.job,
        clock(Date.parse(r.started_at)),
        r.finished_at ? `${((Date.parse(r.finished_at) - Date.parse(r.started_at)) / 1000).toFixed(2)} s` : "running",
        { text: r.status, className: `status-${r.status}` },
        r.records.toLocaleString(),
        { text: r.error ?? "", title: r.error ?? "", className: "error" },
      ]),
    );
    setEmpty("runs", recent.items.length === 0);
    this.lastFailedRun = fromRun(failed.items[0]);
  }
}
