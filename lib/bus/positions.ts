import type { PartitionOffset } from "./types.ts";

/**
 * The next offset a consumer expects per partition. Records before it were delivered already or
 * lie before a seek; they are dropped so a re-fetch after a rebalance or a seek delivers none twice.
 */
export class PositionTracker {
  private readonly next = new Map<string, number>();

  private static id(topic: string, partition: number) {
    return `${topic}\u0000${partition}`;
  }

  set(position: PartitionOffset) {
    this.next.set(PositionTracker.id(position.topic, position.partition), position.offset);
  }

  advance(topic: string, partition: number, offset: number) {
    this.next.set(PositionTracker.id(topic, partition), offset);
  }

  get(topic: string, partition: number): number | undefined {
    return this.next.get(PositionTracker.id(topic, partition));
  }

  accepts(topic: string, partition: number, offset: number): boolean {
    const expected = this.get(topic, partition);
    return expected === undefined || offset >= expected;
  }

  forget(position: { topic: string; partition: number }) {
    this.next.delete(PositionTracker.id(position.topic, position.partition));
  }
}
