/**
 * Prometheus metrics: a small registry of counters, gauges and histograms with labels, rendered in
 * the text exposition format (version 0.0.4). Values that live elsewhere (consumer lag in the bus,
 * runs in Postgres) are collected at scrape time by `collect` callbacks.
 */
type Labels = Record<string, string>;

const escapeLabel = (value: string) => value.replaceAll("\\", "\\\\").replaceAll("\n", "\\n").replaceAll('"', '\\"');
const labelText = (labels: Labels) => {
  const entries = Object.entries(labels);
  return entries.length === 0 ? "" : `{${entries.map(([k, v]) => `${k}="${escapeLabel(v)}"`).join(",")}}`;
};
const keyOf = (labels: Labels) => JSON.stringify(Object.entries(labels).sort(([a], [b]) => a.localeCompare(b)));
const number = (value: number) => (Number.isFinite(value) ? String(value) : value > 0 ? "+Inf" : value < 0 ? "-Inf" : "NaN");

interface Metric {
  render(): string[];
}

export class Counter implements Metric {
  private readonly values = new Map<string, { labels: Labels; value: number }>();
  constructor(readonly name: string, readonly help: string) {}
  inc(labels: Labels = {}, by = 1) {
    const key = keyOf(labels);
    const entry = this.values.get(key) ?? { labels, value: 0 };
    entry.value += by;
    this.values.set(key, entry);
  }
  /** The sum of the series whose labels include `match` (what the status line of `bun run start` reads). */
  total(match: Labels = {}): number {
    let sum = 0;
    for (const { labels, value } of this.values.values()) if (Object.entries(match).every(([k, v]) => labels[k] === v)) sum += value;
    return sum;
  }
  render() {
    return [`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} counter`, ...[...this.values.values()].map((v) => `${this.name}${labelText(v.labels)} ${number(v.value)}`)];
  }
}

export class Gauge implements Metric {
  private values = new Map<string, { labels: Labels; value: number }>();
  constructor(readonly name: string, readonly help: string) {}
  set(labels: Labels, value: number) {
    this.values.set(keyOf(labels), { labels, value });
  }
  inc(labels: Labels = {}, by = 1) {
    const entry = this.values.get(keyOf(labels));
    this.set(labels, (entry?.value ?? 0) + by);
  }
  /** Replaces every series at once (for values collected at scrape time). */
  replace(series: { labels: Labels; value: number }[]) {
    this.values = new Map(series.map((s) => [keyOf(s.labels), s]));
  }
  render() {
    return [`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} gauge`, ...[...this.values.values()].map((v) => `${this.name}${labelText(v.labels)} ${number(v.value)}`)];
  }
}

export class Histogram implements Metric {
  private readonly values = new Map<string, { labels: Labels; counts: number[]; sum: number; count: number }>();
  constructor(readonly name: string, readonly help: string, readonly buckets: readonly number[]) {}
  observe(labels: Labels, value: number) {
    this.record(this.entryOf(labels), value);
  }
  /** The observer of one label set, for a hot path that would otherwise key its labels on every call. */
  series(labels: Labels): (value: number) => void {
    const entry = this.entryOf(labels);
    return (value) => this.record(entry, value);
  }
  private entryOf(labels: Labels) {
    const key = keyOf(labels);
    let entry = this.values.get(key);
    if (!entry) {
      entry = { labels, counts: this.buckets.map(() => 0), sum: 0, count: 0 };
      this.values.set(key, entry);
    }
    return entry;
  }
  private record(entry: { counts: number[]; sum: number; count: number }, value: number) {
    const { buckets } = this;
    for (let i = 0; i < buckets.length; i++) if (value <= (buckets[i] as number)) entry.counts[i] = (entry.counts[i] ?? 0) + 1;
    entry.sum += value;
    entry.count++;
  }
  render() {
    const lines = [`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} histogram`];
    for (const v of this.values.values()) {
      this.buckets.forEach((bound, i) => lines.push(`${this.name}_bucket${labelText({ ...v.labels, le: String(bound) })} ${v.counts[i] ?? 0}`));
      lines.push(`${this.name}_bucket${labelText({ ...v.labels, le: "+Inf" })} ${v.count}`);
      lines.push(`${this.name}_sum${labelText(v.labels)} ${number(v.sum)}`);
      lines.push(`${this.name}_count${labelText(v.labels)} ${v.count}`);
    }
    return lines;
  }
}

export class Registry {
  private readonly metrics: Metric[] = [];
  private readonly collectors: (() => Promise<void>)[] = [];
  counter(name: string, help: string) {
    return this.add(new Counter(name, help));
  }
  gauge(name: string, help: string) {
    return this.add(new Gauge(name, help));
  }
  histogram(name: string, help: string, buckets: readonly number[]) {
    return this.add(new Histogram(name, help, buckets));
  }
  /** Runs before every render; a failing collector leaves its metrics as they were. */
  collect(collector: () => Promise<void>) {
    this.collectors.push(collector);
  }
  async render(): Promise<string> {
    await Promise.allSettled(this.collectors.map((c) => c()));
    return `${this.metrics.flatMap((m) => m.render()).join("\n")}\n`;
  }
  private add<M extends Metric>(metric: M): M {
    this.metrics.push(metric);
    return metric;
  }
}

/** What GET /metrics answers with. */
export const PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";

/** Seconds buckets from 1 ms to 30 s. */
const LATENCY_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30] as const;

/**
 * The process's metrics. Stream jobs and the gateway record into it; GET /metrics renders it, so in
 * one process (`bun run start`) every job's figures are there, and a worker process shows its own.
 */
export const registry = new Registry();

export const lakeFlushSeconds = registry.histogram("devpipe_lake_flush_duration_seconds", "Time to write, upload and commit one lake flush", LATENCY_BUCKETS);
export const lakeFlushRecords = registry.counter("devpipe_lake_flushed_records_total", "Events written to the lake");
export const lakeFlushFailures = registry.counter("devpipe_lake_flush_failures_total", "Lake flushes that failed (retried at the next checkpoint)");
export const lakeFlushFiles = registry.counter("devpipe_lake_flushed_files_total", "Parquet files the lake sink wrote and committed");
export const deltaCommits = registry.counter("devpipe_lake_delta_commits_total", "Delta log commits by operation and outcome (committed; retried: lost the race to a compatible commit and moved on; conflict: refused)");

export const ingestEvents = registry.counter("devpipe_ingest_events_total", "Ingested records by event type and outcome (accepted, rejected, unavailable)");
export const httpRequestSeconds = registry.histogram("devpipe_http_request_duration_seconds", "Gateway request latency by method, route and status", LATENCY_BUCKETS);
export const produceSeconds = registry.histogram("devpipe_produce_duration_seconds", "Time for the bus to confirm a produced batch, by topic and outcome", LATENCY_BUCKETS);
export const alertsRaised = registry.counter("devpipe_alerts_total", "Alerts the alerts job committed (new ones; a repeated event raises none)");
export const windowsFinalised = registry.counter("devpipe_windows_finalised_total", "Window rows (view, key, window, input partition) the windows job committed as final");
export const lateEvents = registry.counter("devpipe_windows_late_events_total", "Events the windows job committed as late (behind the watermark: sent to events.late, never applied)");
export const windowOpen = registry.gauge("devpipe_window_open_windows", "Open (not yet final) windows held in this process's window state");
export const undecodableRecords = registry.counter("devpipe_undecodable_records_total", "Records a stream job skipped because they were not an event envelope, by job");
export const deadRecords = registry.counter("devpipe_dead_records_total", "Records a stream job moved to events.dead because a sink rejects them deterministically, by job");
export const dedupeIds = registry.gauge("devpipe_dedupe_ids", "Event ids the chain's dedupe state holds in memory, by input topic and horizon class (seconds)");
export const dedupeTableBytes = registry.gauge("devpipe_dedupe_bytes", "Memory of the chain's dedupe state (hash tables and ids not yet persisted), by input topic and horizon class (seconds)");
export const checkpointAge = registry.gauge("devpipe_checkpoint_age_seconds", "Seconds since each job's last successful checkpoint in this process, by job");
export const checkpointFailures = registry.counter("devpipe_checkpoint_failures_total", "Checkpoints that failed (their results stay pending and are retried), by job");
export const queryOutcomes = registry.counter("devpipe_lake_queries_total", "Lake queries by kind (sql, events) and outcome (ok, invalid, timeout, rejected)");
export const queryRunning = registry.gauge("devpipe_lake_queries_running", "Lake queries running (and waiting for a slot) in this gateway");
export const sseRejected = registry.counter("devpipe_sse_rejected_total", "Alert streams refused or ended by the gateway, by reason (per_key_limit, slow_client)");

const processMemory = registry.gauge("devpipe_process_memory_bytes", "This process's memory by part: rss, js_heap (the JS heap), js_external (memory JS objects hold outside it: buffers, WASM memories)");
registry.collect(async () => {
  const usage = process.memoryUsage();
  processMemory.replace([
    { labels: { part: "rss" }, value: usage.rss },
    { labels: { part: "js_heap" }, value: usage.heapTotal },
    { labels: { part: "js_external" }, value: usage.external },
  ]);
});
