import { expect, test } from "bun:test";
import { FailureCounterWatch, fromRun, newest } from "../../dashboard/checkpoint-failures.ts";
import { parseMetrics } from "../../dashboard/metrics-text.ts";
import { acceptedByType, healthOf, lagByJob, ratesBetween } from "../../dashboard/metrics-view.ts";
import { takeEvents } from "../../dashboard/sse.ts";
import { checkpointAge, checkpointFailures, deadRecords, ingestEvents, Registry } from "../../lib/metrics.ts";
import { METRIC } from "../../dashboard/metrics-view.ts";

test("the metric names the dashboard reads are the ones the gateway defines", async () => {
  expect<string[]>([METRIC.ingested, METRIC.deadRecords, METRIC.checkpointFailures, METRIC.checkpointAge]).toEqual([ingestEvents.name, deadRecords.name, checkpointFailures.name, checkpointAge.name]);
  // Collected at scrape time by the /metrics route (from the jobs' positions, the runs log, the window progress).
  const route = await Bun.file(new URL("../../api/routes/metrics.ts", import.meta.url)).text();
  for (const name of [METRIC.lag, METRIC.late, METRIC.deadLettered]) expect(route).toContain(`"${name}"`);
});

test("the dashboard reads the gateway's metric names: ingest, lag, late events, dead letters, checkpoints", async () => {
  // The names as the gateway renders them (lib/metrics.ts and api/routes/metrics.ts).
  const registry = new Registry();
  registry.counter("devpipe_ingest_events_total", "").inc({ type: "gps.fix", status: "accepted" }, 10);
  registry.counter("devpipe_ingest_events_total", "").inc({ type: "gps.fix", status: "rejected" }, 4);
  const lag = registry.gauge("devpipe_consumer_lag", "");
  lag.set({ job: "windows", topic: "events.raw", partition: "0" }, 3);
  lag.set({ job: "windows", topic: "events.raw", partition: "1" }, 9);
  lag.set({ job: "alerts", topic: "events.raw", partition: "0" }, 0);
  registry.gauge("devpipe_late_events", "").set({}, 2);
  registry.gauge("devpipe_dead_lettered_records", "").set({ job: "lake" }, 5);
  registry.counter("devpipe_dead_records_total", "").inc({ job: "lake" }, 1);
  registry.counter("devpipe_checkpoint_failures_total", "").inc({ job: "lake" }, 2);
  registry.gauge("devpipe_checkpoint_age_seconds", "").set({ job: "lake" }, 1.5);
  const samples = parseMetrics(await registry.render());

  expect(acceptedByType(samples)).toEqual(new Map([["gps.fix", 10]]));
  expect(lagByJob(samples)).toEqual(
    new Map([
      ["windows", { worst: 9, total: 12, partitions: 2 }],
      ["alerts", { worst: 0, total: 0, partitions: 1 }],
    ]),
  );
  const health = healthOf(samples);
  expect(health.lateEvents).toBe(2);
  expect(health.deadLettered).toBe(5);
  expect(health.checkpointFailures).toEqual(new Map([["lake", 2]]));
  expect(health.checkpointAge).toEqual(new Map([["lake", 1.5]]));
  // Without the runs-log series, this process's counters.
  const bare = parseMetrics('devpipe_dead_records_total{job="alerts"} 4\ndevpipe_windows_late_events_total 7\n');
  expect(healthOf(bare).deadLettered).toBe(4);
  expect(healthOf(bare).lateEvents).toBe(7);
});

test("rates between two scrapes; a counter that restarted counts from zero", () => {
  const rates = ratesBetween(new Map([["a", 10], ["b", 100]]), new Map([["a", 30], ["b", 4], ["c", 2]]), 2);
  expect(rates).toEqual(new Map([["a", 10], ["b", 2], ["c", 1]]));
});

test("the last failed checkpoint is the newest of the runs log and a rise of the failure counter", () => {
  const watch = new FailureCounterWatch();
  watch.observe(new Map([["lake", 1]]), 1_000);
  expect(watch.seen).toBeUndefined();
  watch.observe(new Map([["lake", 1]]), 3_000);
  expect(watch.seen).toBeUndefined();
  watch.observe(new Map([["lake", 1], ["windows", 2]]), 5_000);
  expect(watch.seen).toMatchObject({ at: 5_000, job: "windows" });
  const run = fromRun({ job: "lake", started_at: "2026-11-28T10:00:00.000Z", finished_at: "2026-11-28T10:00:01.000Z", error: "disk full" });
  expect(run).toEqual({ at: Date.parse("2026-11-28T10:00:01.000Z"), job: "lake", error: "disk full" });
  expect(newest(run, watch.seen)).toBe(run);
  expect(newest(undefined, undefined)).toBeUndefined();
});

test("server-sent events are taken whole from a growing buffer, comments skipped", () => {
  const first = takeEvents(': heartbeat\n\nevent: alert\nid: c1\ndata: {"a":1}\n\nevent: al');
  expect(first.events).toEqual([{ event: "alert", id: "c1", data: '{"a":1}' }]);
  const second = takeEvents(`${first.rest}ert\r\ndata: x\r\ndata: y\r\n\r\n`);
  expect(second.events).toEqual([{ event: "alert", data: "x\ny" }]);
  expect(second.rest).toBe("");
});
