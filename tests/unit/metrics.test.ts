import { expect, test } from "bun:test";
import { Registry } from "../../lib/metrics.ts";
import { jobInputs } from "../../lib/topics.ts";
import { defaultOperators, jobs } from "../../workers/jobs.ts";
import { loadConfig } from "../../lib/config.ts";

test("the registry renders counters, gauges and histograms in the Prometheus text format", async () => {
  const registry = new Registry();
  registry.counter("c_total", "a counter").inc({ type: 'a"b' }, 2);
  registry.gauge("g", "a gauge").set({}, 1.5);
  const h = registry.histogram("h_seconds", "a histogram", [0.1, 1]);
  h.observe({ job: "x" }, 0.05);
  h.observe({ job: "x" }, 0.5);
  h.observe({ job: "x" }, 5);
  let collected = 0;
  registry.collect(async () => {
    collected++;
  });
  expect(await registry.render()).toBe(
    [
      "# HELP c_total a counter",
      "# TYPE c_total counter",
      'c_total{type="a\\"b"} 2',
      "# HELP g a gauge",
      "# TYPE g gauge",
      "g 1.5",
      "# HELP h_seconds a histogram",
      "# TYPE h_seconds histogram",
      'h_seconds_bucket{job="x",le="0.1"} 1',
      'h_seconds_bucket{job="x",le="1"} 2',
      'h_seconds_bucket{job="x",le="+Inf"} 3',
      'h_seconds_sum{job="x"} 5.55',
      'h_seconds_count{job="x"} 3',
      "",
    ].join("\n"),
  );
  expect(collected).toBe(1);
});

test("the lag metrics know every job and its input", () => {
  expect(Object.keys(jobInputs).sort()).toEqual(Object.keys(jobs).sort());
});

test("worker all chains every operator, less the events.enriched output when ENRICHED_TOPIC=off", () => {
  expect(defaultOperators(loadConfig({ DATA_DIR: "/tmp/x" })).sort()).toEqual(["alerts", "enrich", "lake", "windows"]);
  expect(defaultOperators(loadConfig({ DATA_DIR: "/tmp/x", ENRICHED_TOPIC: "off" })).sort()).toEqual(["alerts", "lake", "windows"]);
  expect(() => loadConfig({ DATA_DIR: "/tmp/x", ENRICHED_TOPIC: "no" })).toThrow(/ENRICHED_TOPIC/);
});
