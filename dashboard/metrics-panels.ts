import { jobInputs } from "../lib/topics.ts";
import { FailureCounterWatch } from "./checkpoint-failures.ts";
import type { TimeChart } from "./chart.ts";
import { byId, fillTable, setEmpty } from "./dom.ts";
import { parseMetrics } from "./metrics-text.ts";
import { acceptedByType, type Health, healthOf, lagByJob, ratesBetween } from "./metrics-view.ts";
import { ScrapeHistory } from "./scrape-history.ts";

/**
 * The panels fed by GET /metrics: ingest rate by type, consumer lag, pipeline health. The gateway keeps
 * no history, so the rate and lag charts show what this page has scraped since it opened.
 */
const MINUTE = 60_000;
const KNOWN_TYPES = ["vehicle.telemetry", "vehicle.location", "gps.fix", "traffic.camera", "weather.observation", "emergency.incident", "sensor.reading", "user.activity"];
// Full resolution for the last 10 minutes (the 5 min range sees every scrape), 1-minute buckets up to 24 h.
const HISTORY = { fineMs: 10 * MINUTE, bucketMs: MINUTE, keepMs: 24 * 60 * MINUTE };

export class MetricsPanels {
  private readonly types = [...KNOWN_TYPES];
  private readonly jobs = Object.keys(jobInputs);
  private readonly rates = new ScrapeHistory({ reduce: "mean", ...HISTORY });
  // A bucket keeps each job's worst lag, so a spike is not averaged away at 24 h.
  private readonly lag = new ScrapeHistory({ reduce: "max", ...HISTORY });
  private previous: { at: number; totals: Map<string, number> } | undefined;
  readonly failures = new FailureCounterWatch();
  health: Health | undefined;

  constructor(private readonly charts: { ingest: TimeChart; lag: TimeChart }) {}

  async scrape(now: number) {
    const response = await fetch("/metrics");
    if (!response.ok) throw new Error(`/metrics: ${response.status}`);
    const samples = parseMetrics(await response.text());
    const totals = acceptedByType(samples);
    for (const type of totals.keys()) if (!this.types.includes(type)) this.types.push(type);
    if (this.previous) {
      const rates = ratesBetween(this.previous.totals, totals, (now - this.previous.at) / 1000);
      this.rates.add(now, this.types.map((t) => rates.get(t) ?? 0));
    }
    this.previous = { at: now, totals };
    const lag = lagByJob(samples);
    for (const job of lag.keys()) if (!this.jobs.includes(job)) this.jobs.push(job);
    if (lag.size > 0) this.lag.add(now, this.jobs.map((job) => lag.get(job)?.worst ?? null));
    fillTable(
      byId<HTMLTableElement>("lag"),
      ["job", "worst partition", "total behind", "partitions"],
      [...lag].map(([job, l]) => [job, l.worst.toLocaleString(), l.total.toLocaleString(), l.partitions]),
    );
    this.health = healthOf(samples);
    this.failures.observe(this.health.checkpointFailures, now);
  }

  draw(from: number) {
    const rates = this.rates.since(from, this.types.length);
    this.charts.ingest.update([...this.types], [rates.t.map((t) => t / 1000), ...rates.series]);
    setEmpty("ingest", !rates.series.some((column) => column.some((v) => v !== null && v > 0)));
    const lag = this.lag.since(from, this.jobs.length);
    this.charts.lag.update([...this.jobs], [lag.t.map((t) => t / 1000), ...lag.series]);
    setEmpty("lag", lag.t.length === 0);
  }
}
