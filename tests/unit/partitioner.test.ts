import { expect, test } from "bun:test";
// kafkajs's own Java-compatible murmur2 is the reference: Kafka clients in any language agree on it.
// @ts-expect-error kafkajs ships no types for its internal modules
import kafkajsMurmur2 from "kafkajs/src/producer/partitioners/default/murmur2.js";
import { murmur2, partitionFor } from "../../lib/bus/partitioner.ts";

const reference = kafkajsMurmur2 as (key: string) => number;
const encoder = new TextEncoder();

test("murmur2 equals Kafka's default partitioner hash for ASCII, unicode and every tail length", () => {
  const keys = ["", "a", "ab", "abc", "abcd", "car-42", "capteur-température-7", "日本語キー", ...Array.from({ length: 500 }, (_, i) => `device-${i * 7919}`)];
  for (const key of keys) expect(murmur2(encoder.encode(key))).toBe(reference(key));
});

test("partitionFor is stable and spreads keys over every partition", () => {
  const counts = new Array<number>(8).fill(0);
  for (let i = 0; i < 8000; i++) {
    const partition = partitionFor(`sensor-${i}`, 8);
    expect(partition).toBe(partitionFor(`sensor-${i}`, 8));
    counts[partition] = (counts[partition] ?? 0) + 1;
  }
  for (const count of counts) expect(count).toBeGreaterThan(800);
});
