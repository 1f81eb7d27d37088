import type { Bus, OutgoingRecord } from "../../lib/bus/types.ts";
import type { Topics } from "../../lib/topics.ts";
import { type ChainBatch, enrichedValue, sourceHeaders } from "../chain/types.ts";
import type { StreamJob } from "../runner.ts";

/**
 * The chain's enriched records → topic events.enriched, for consumers outside the pipeline (no job of
 * ours reads it back). Produced at each checkpoint, before the positions commit: at least once, and a
 * copy produced again after a crash carries the same `devpipe-source` header (its events.raw position),
 * so a consumer can drop it. Switched off with ENRICHED_TOPIC=off.
 */
export function createEnrichedOutput(deps: { bus: Bus; topics: Topics }): StreamJob {
  let out: OutgoingRecord[] = [];
  return {
    name: "enrich",
    input: deps.topics.raw,
    process(batch: ChainBatch) {
      for (const record of batch.records) {
        if (record.event) out.push({ key: record.key, value: enrichedValue(record), timestamp: record.event.event_time, headers: sourceHeaders(record) });
      }
    },
    pending: () => out.length,
    reset() {
      out = [];
    },
    async checkpoint() {
      const sending = out;
      if (sending.length > 0) await deps.bus.produce(deps.topics.enriched, sending);
      return () => {
        out = out.slice(sending.length);
      };
    },
  };
}
