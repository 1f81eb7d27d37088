import { eventTypes } from "../../lib/events/index.ts";
import type { Sql } from "../../lib/db/index.ts";
import type { Logger } from "../../lib/log.ts";
import { dedupeIds, dedupeTableBytes } from "../../lib/metrics.ts";
import { dedupeHorizonMs } from "../../lib/windows/views.ts";
import { createDedupe, type Dedupe } from "./dedupe.ts";
import { createSpillDirectory } from "./dedupe-runs.ts";

/**
 * The chain's dedupe step over every event type. A type's horizon is DEDUPE_HORIZON_S, or longer when a
 * view reads the type over a longer span (fines_by_user_1d: a day plus grace), so that a repeat can never
 * count twice in an open window. Types sharing a horizon share one dedupe state (workers/chain/dedupe.ts);
 * each state hears of every record (judging its own types, passing over the others) so the ranges it
 * persists stay contiguous. A repeat is the same event_id, in the same partition (a retry carries the same
 * key) and horizon class (a retry carries the same type).
 */
export interface Repeats {
  /** Per partition, where the persisted state of every class covers the log to (see Dedupe.assigned). */
  assigned(partitions: number[]): Promise<Map<number, number>>;
  isRepeat(partition: number, offset: number, type: string, eventId: string, time: number): boolean;
  /** A record that is no envelope: every state notes it as read. */
  pass(partition: number, offset: number, time: number): void;
  persist(): Promise<void>;
  revoked(partitions: number[]): void;
  /** Forgets every partition and removes the frozen files (the chain stopped). */
  close(): void;
  size(): number;
}

export function createRepeats(options: {
  sql: Sql;
  topic: string;
  defaultHorizonMs: number;
  logger: Logger;
  /** Undefined: the states keep every id in memory; else a directory of the chain's own is made under `directory`. */
  spill?: { directory: string; hotLimit: number };
}): Repeats {
  const spillDirectory = options.spill && createSpillDirectory(options.spill.directory);
  const spill = options.spill && spillDirectory && { directory: spillDirectory.path, hotLimit: options.spill.hotLimit };
  const horizonOf = (type: string) => Math.max(options.defaultHorizonMs, dedupeHorizonMs(type) ?? 0);
  const horizons = [...new Set([options.defaultHorizonMs, ...[...eventTypes.keys()].map(horizonOf)])].sort((a, b) => a - b);
  // The default class keeps the topic's own rows; a longer one is persisted under a key of its own.
  const states: Dedupe[] = horizons.map((horizonMs) =>
    createDedupe({ sql: options.sql, topic: horizonMs === options.defaultHorizonMs ? options.topic : `${options.topic}~${horizonMs}ms`, horizonMs, logger: options.logger, spill }),
  );
  const classOf = new Map([...eventTypes.keys()].map((type) => [type, horizons.indexOf(horizonOf(type))]));
  const only = states.length === 1 ? states[0] : undefined;

  return {
    async assigned(partitions) {
      const coverages = await Promise.all(states.map((state) => state.assigned(partitions)));
      const coverage = new Map<number, number>();
      // A class without rows (a first start) has no history to rebuild and does not hold the others back.
      for (const partition of partitions) {
        const covered = coverages.flatMap((c) => (c.has(partition) ? [c.get(partition) ?? 0] : []));
        if (covered.length > 0) coverage.set(partition, Math.min(...covered));
      }
      return coverage;
    },
    isRepeat(partition, offset, type, eventId, time) {
      if (only) return only.isRepeat(partition, offset, eventId, time);
      const judge = classOf.get(type) ?? 0;
      let repeat = false;
      for (let i = 0; i < states.length; i++) {
        const state = states[i];
        if (!state) continue;
        if (i === judge) repeat = state.isRepeat(partition, offset, eventId, time);
        else state.pass(partition, offset, time);
      }
      return repeat;
    },
    pass(partition, offset, time) {
      for (const state of states) state.pass(partition, offset, time);
    },
    async persist() {
      await Promise.all(states.map((state) => state.persist()));
      states.forEach((state, i) => {
        const labels = { topic: options.topic, horizon_s: String(Math.round((horizons[i] ?? 0) / 1000)) };
        dedupeIds.set(labels, state.size());
        dedupeTableBytes.set(labels, state.bytes());
      });
    },
    revoked(partitions) {
      for (const state of states) state.revoked(partitions);
    },
    close() {
      for (const state of states) state.close();
      spillDirectory?.remove();
    },
    size: () => states.reduce((sum, state) => sum + state.size(), 0),
  };
}
