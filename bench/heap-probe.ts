/**
 * A preload for finding what the server's memory grows with: `bun --preload ./bench/heap-probe.ts start.ts`
 * with HEAP_PROBE_FILE set (bench/soak.ts does this with --heap-probe FILE). Every HEAP_PROBE_INTERVAL_S
 * (60) it runs a full collection and appends a JSON line: RSS, the JS heap and the memory outside it that
 * JS objects hold (array buffers, strings' backing stores), and the count of live objects of every type.
 * The forced collection changes what is measured a little; use it to compare types between two times,
 * not as the RSS figure of a run. HEAP_PROBE_SNAPSHOTS (minutes, e.g. "4,14") also writes a V8-format heap
 * snapshot at each of those minutes next to the file (`FILE.min4.heapsnapshot`), for Chrome's DevTools.
 */
import { heapStats } from "bun:jsc";
import { appendFileSync, writeFileSync } from "node:fs";

const file = process.env.HEAP_PROBE_FILE;
const intervalMs = Number(process.env.HEAP_PROBE_INTERVAL_S ?? 60) * 1_000;
const started = performance.now();
const snapshotMinutes = new Set((process.env.HEAP_PROBE_SNAPSHOTS ?? "").split(",").filter(Boolean).map(Number));
let probes = 0;

function probe() {
  if (!file) return;
  Bun.gc(true);
  const stats = heapStats();
  const memory = process.memoryUsage();
  appendFileSync(
    file,
    `${JSON.stringify({
      minute: Math.round((performance.now() - started) / 600) / 100,
      rss_mb: Math.round(memory.rss / 1_048_576),
      heap_mb: Math.round(stats.heapSize / 1_048_576),
      heap_capacity_mb: Math.round(stats.heapCapacity / 1_048_576),
      extra_mb: Math.round(stats.extraMemorySize / 1_048_576),
      array_buffers_mb: Math.round(memory.arrayBuffers / 1_048_576),
      objects: stats.objectCount,
      protected: stats.protectedObjectCount,
      types: stats.objectTypeCounts,
      protected_types: stats.protectedObjectTypeCounts,
    })}\n`,
  );
  const minute = Math.round((++probes * intervalMs) / 60_000);
  if (snapshotMinutes.has(minute)) writeFileSync(`${file}.min${minute}.heapsnapshot`, Bun.generateHeapSnapshot("v8"));
}

if (file) setInterval(probe, intervalMs).unref();
