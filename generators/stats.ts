/** Counters and latency percentiles of a simulation run. */
export function createStats() {
  const latencies: number[] = [];
  const MAX_SAMPLES = 200_000;
  let seen = 0;
  const totals = { requests: 0, accepted: 0, rejected: 0, failed_requests: 0, failed_events: 0, retries: 0 };
  const percentile = (sorted: number[], p: number) => Math.round((sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] ?? 0) * 100) / 100;
  return {
    totals,
    latency(ms: number) {
      // Reservoir sampling keeps memory bounded on long runs.
      seen++;
      if (latencies.length < MAX_SAMPLES) latencies.push(ms);
      else {
        const slot = Math.floor(Math.random() * seen);
        if (slot < MAX_SAMPLES) latencies[slot] = ms;
      }
    },
    percentiles() {
      const sorted = [...latencies].sort((a, b) => a - b);
      return { p50_ms: percentile(sorted, 0.5), p99_ms: percentile(sorted, 0.99) };
    },
  };
}

export type Stats = ReturnType<typeof createStats>;
