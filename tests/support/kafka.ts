import type { Bus, DeliveredRecord, PartitionOffset } from "../../lib/bus/types.ts";
import { type Envelope, decodeEnvelope } from "../../lib/events/index.ts";
import { uniqueName } from "./services.ts";
import { waitFor } from "./wait.ts";

/**
 * Every record written to `topic` after `since`, read back with a throwaway consumer group: each
 * record once by its position (a rebalance may deliver a record to the reader twice), and only once
 * every partition has been read up to its end.
 */
export async function readRecordsSince(bus: Bus, topic: string, since: PartitionOffset[]): Promise<DeliveredRecord[]> {
  const byPosition = new Map<string, DeliveredRecord>();
  const reached = new Map<number, number>();
  const consumer = await bus.consume({
    group: uniqueName("readback"),
    topics: [topic],
    onAssign: async () => since,
    onBatch: async (batch) => {
      for (const r of batch.records) byPosition.set(`${r.partition}:${r.offset}`, r);
      const last = batch.records[batch.records.length - 1];
      if (last) reached.set(batch.partition, Math.max(reached.get(batch.partition) ?? 0, last.offset + 1));
    },
  });
  const ends = await bus.endOffsets(topic);
  const start = (partition: number) => since.find((s) => s.partition === partition)?.offset ?? 0;
  await waitFor(() => ends.every((e) => e.offset <= start(e.partition) || (reached.get(e.partition) ?? 0) >= e.offset), { timeoutMs: 30_000, what: `every partition of ${topic} read to its end` });
  await consumer.stop();
  return [...byPosition.values()];
}

/** Every envelope written to `topic` after `since` (see readRecordsSince). */
export async function readEnvelopesSince(bus: Bus, topic: string, since: PartitionOffset[]): Promise<Envelope[]> {
  return (await readRecordsSince(bus, topic, since)).map((r) => decodeEnvelope(r.value));
}
