import type { Batch, Bus, OutgoingRecord } from "../../lib/bus/types.ts";
import { decodeEnvelope, encodeEnvelope } from "../../lib/events/index.ts";
import type { Logger } from "../../lib/log.ts";
import type { Topics } from "../../lib/topics.ts";
import { SOURCE_HEADER } from "../../lib/windows/source.ts";
import type { StreamJob } from "../runner.ts";
import type { DimsCache } from "./dims-cache.ts";
import { enrich } from "./enrich.ts";

export interface EnrichStats {
  enriched: number;
  unknown_cars: number;
  undecodable: number;
}

/**
 * events.raw → events.enriched. Output is produced at the checkpoint, before the input positions
 * commit: a crash in between produces some records again (at least once), which downstream jobs
 * drop by event_id.
 */
export function createEnrichJob(deps: { bus: Bus; topics: Topics; dims: DimsCache; logger: Logger }): StreamJob & { stats: () => EnrichStats } {
  let out: OutgoingRecord[] = [];
  const stats: EnrichStats = { enriched: 0, unknown_cars: 0, undecodable: 0 };
  return {
    name: "enrich",
    input: deps.topics.raw,
    process(batch: Batch) {
      const dims = deps.dims.current();
      for (const record of batch.records) {
        let decoded: ReturnType<typeof decodeEnvelope>;
        try {
          decoded = decodeEnvelope(record.value);
        } catch (error) {
          // Only the gateway writes events.raw, so this is a bug or a foreign producer: skip it, loudly.
          stats.undecodable++;
          deps.logger.error("undecodable record in events.raw skipped", { partition: record.partition, offset: record.offset, error });
          continue;
        }
        const { envelope, knownCar } = enrich(decoded, dims);
        if (!knownCar) stats.unknown_cars++;
        // Where the record came from: a replay after a crash carries the same position, so consumers drop it.
        out.push({ key: envelope.key, value: encodeEnvelope(envelope), timestamp: envelope.event_time, headers: { [SOURCE_HEADER]: `${record.partition}:${record.offset}` } });
      }
    },
    pending: () => out.length,
    async checkpoint() {
      const sending = out;
      if (sending.length > 0) await deps.bus.produce(deps.topics.enriched, sending);
      return () => {
        stats.enriched += sending.length;
        out = out.slice(sending.length);
      };
    },
    stats: () => ({ ...stats }),
    close: async () => deps.dims.close(),
  };
}
