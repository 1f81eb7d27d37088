import type { Bus, PartitionOffset } from "../../lib/bus/types.ts";
import { type Envelope, decodeEnvelope } from "../../lib/events/index.ts";
import { uniqueName } from "./services.ts";
import { waitFor } from "./wait.ts";

/** Every envelope written to `topic` after `since`, read back with a throwaway consumer group. */
export async function readEnvelopesSince(bus: Bus, topic: string, since: PartitionOffset[]): Promise<Envelope[]> {
  const seen: Envelope[] = [];
  const consumer = await bus.consume({
    group: uniqueName("readback"),
    topics: [topic],
    onAssign: async () => since,
    onBatch: async (batch) => void seen.push(...batch.records.map((r) => decodeEnvelope(r.value))),
  });
  const ends = await bus.endOffsets(topic);
  const total = ends.reduce((sum, e) => sum + e.offset - (since.find((s) => s.partition === e.partition)?.offset ?? 0), 0);
  await waitFor(() => seen.length >= total, { timeoutMs: 30_000, what: `${total} records read back from ${topic}` });
  await consumer.stop();
  return seen;
}
