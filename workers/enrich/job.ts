import type { Batch, Bus, OutgoingRecord } from "../../lib/bus/types.ts";
import type { Tx } from "../../lib/db/index.ts";
import { encodeEnvelope, tryDecodeEnvelope } from "../../lib/events/index.ts";
import { undecodableRecords } from "../../lib/metrics.ts";
import type { Logger } from "../../lib/log.ts";
import type { Topics } from "../../lib/topics.ts";
import { SOURCE_HEADER } from "../../lib/windows/source.ts";
import { dedupeHorizonMs } from "../../lib/windows/views.ts";
import type { DeadLetterSink } from "../dead-letters.ts";
import type { StreamJob } from "../runner.ts";
import type { DimsCache } from "./dims-cache.ts";
import { enrich } from "./enrich.ts";

export interface EnrichStats {
  enriched: number;
  unknown_cars: number;
  duplicates_dropped: number;
  undecodable: number;
}

interface Pending {
  record: OutgoingRecord;
  eventId: string;
  /** Until when the id is remembered, epoch ms. */
  expiresAt: number;
}

const PURGE_EVERY_MS = 60_000;

/**
 * events.raw → events.enriched. At each checkpoint the ids of the events are claimed in seen_events
 * inside the transaction that commits the input positions; a repeat (client retry) finds its id claimed
 * and is dropped, so every consumer (views and the lake alike) sees an event once. Output is produced before the commit: a crash in between produces
 * records again with the same source position, which consumers drop.
 */
export function createEnrichJob(deps: { bus: Bus; topics: Topics; dims: DimsCache; logger: Logger; dedupeHorizonMs: number }): StreamJob & { stats: () => EnrichStats } {
  let out: Pending[] = [];
  const pendingIds = new Set<string>();
  const stats: EnrichStats = { enriched: 0, unknown_cars: 0, duplicates_dropped: 0, undecodable: 0 };
  let lastPurge = 0;
  return {
    name: "enrich",
    input: deps.topics.raw,
    process(batch: Batch, dead: DeadLetterSink) {
      const dims = deps.dims.current();
      for (const record of batch.records) {
        const decoded = tryDecodeEnvelope(record.value);
        if (!decoded) {
          // Only the gateway writes events.raw, so this is a bug or a foreign producer.
          stats.undecodable++;
          undecodableRecords.inc({ job: "enrich" });
          dead(record, "not an event envelope");
          continue;
        }
        const horizon = Math.max(dedupeHorizonMs(decoded.type) ?? 0, deps.dedupeHorizonMs);
        if (pendingIds.has(decoded.event_id)) {
          stats.duplicates_dropped++;
          continue;
        }
        pendingIds.add(decoded.event_id);
        const { envelope, knownCar } = enrich(decoded, dims);
        if (!knownCar) stats.unknown_cars++;
        out.push({
          eventId: envelope.event_id,
          // Kept for the horizon past the later of event time and now: replayed history (old event times)
          // still has open windows, and the watermark, not the wall clock, closes them.
          expiresAt: Math.max(envelope.event_time, Date.now()) + horizon,
          // Where the record came from: a replay after a crash carries the same position, so consumers drop it.
          record: { key: envelope.key, value: encodeEnvelope(envelope), timestamp: envelope.event_time, headers: { [SOURCE_HEADER]: `${record.partition}:${record.offset}` } },
        });
      }
    },
    pending: () => out.length,
    reset() {
      out = [];
      pendingIds.clear();
    },
    async checkpoint(tx: Tx) {
      const sending = out;
      const claimed = new Set<string>();
      for (let i = 0; i < sending.length; i += 5_000) {
        const slice = sending.slice(i, i + 5_000);
        const rows = await tx<{ event_id: string }[]>`
          insert into seen_events (event_id, expires_at)
          select event_id, to_timestamp(expires_ms / 1000.0)
          from unnest(${slice.map((p) => p.eventId)}::text[], ${slice.map((p) => p.expiresAt)}::float8[]) as claim(event_id, expires_ms)
          on conflict (event_id) do nothing
          returning event_id`;
        for (const row of rows) claimed.add(row.event_id);
      }
      const fresh = sending.filter((p) => claimed.has(p.eventId));
      if (fresh.length > 0) await deps.bus.produce(deps.topics.enriched, fresh.map((p) => p.record));
      const purge = Date.now() - lastPurge > PURGE_EVERY_MS;
      if (purge) await tx`delete from seen_events where expires_at < now()`;
      return () => {
        stats.enriched += fresh.length;
        stats.duplicates_dropped += sending.length - fresh.length;
        out = out.slice(sending.length);
        pendingIds.clear();
        if (purge) lastPurge = Date.now();
      };
    },
    stats: () => ({ ...stats }),
    close: async () => deps.dims.close(),
  };
}
