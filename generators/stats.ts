/** Latency buckets 2 % wide from 0.01 ms: the progress line reads percentiles every second, for hours. */
const BUCKET_RATIO = 1.02;
const MIN_MS = 0.01;
/** Up to 0.01 ms × 1.02^1500 (about two years); anything longer counts in the last bucket. */
const BUCKETS = 1_500;
const LOG_RATIO = Math.log(BUCKET_RATIO);

const bucketOf = (ms: number) => (ms <= MIN_MS ? 0 : Math.min(BUCKETS - 1, 1 + Math.floor(Math.log(ms / MIN_MS) / LOG_RATIO)));
/** A bucket's upper edge: a percentile is at most 2 % above the exact one. */
const upperEdgeOf = (bucket: number) => MIN_MS * BUCKET_RATIO ** bucket;

/**
 * Counters and latency percentiles of a simulation run. Latencies go into a fixed histogram, so recording
 * and reading percentiles cost the same after a minute or a month (sorting every sample each second made a
 * simulator's CPU double over an hour).
 */
export function createStats() {
  const counts = new Float64Array(BUCKETS);
  let recorded = 0;
  const totals = { requests: 0, accepted: 0, rejected: 0, failed_requests: 0, failed_events: 0, retries: 0 };
  /** The latency at rank ⌊p·n⌋ of the n recorded, to its bucket's upper edge. */
  const percentile = (p: number) => {
    if (recorded === 0) return 0;
    const rank = Math.min(recorded - 1, Math.floor(p * recorded));
    let bucket = 0;
    for (let seen = counts[0] as number; seen <= rank; seen += counts[bucket] as number) bucket++;
    return Math.round(upperEdgeOf(bucket) * 100) / 100;
  };
  return {
    totals,
    latency(ms: number) {
      const bucket = bucketOf(ms);
      counts[bucket] = (counts[bucket] as number) + 1;
      recorded++;
    },
    percentiles() {
      return { p50_ms: percentile(0.5), p99_ms: percentile(0.99) };
    },
  };
}

export type Stats = ReturnType<typeof createStats>;
