import type { Domain, GeneratedEvent } from "./domains/index.ts";
import { createRandom } from "./random.ts";

export interface Faults {
  /** Share of events whose event_time lies 3–10 min back: behind the 2-minute watermark, so late. */
  lateFraction: number;
  /** Share of events whose event_time lies 0–60 s back: out of order, within the allowed lateness. */
  outOfOrder: number;
  /** Share of events that are an earlier event sent again, same event_id. */
  duplicates: number;
  /** Share of events with one field outside the contract. */
  invalidFraction: number;
}

export const noFaults: Faults = { lateFraction: 0, outOfOrder: 0, duplicates: 0, invalidFraction: 0 };

export interface StreamOptions {
  domain: Domain;
  devices: number;
  seed: number;
  /** Events per second, all devices together; spaces the event times when `startTime` is given. */
  rate: number;
  /** Simulated clock start (epoch ms): event times and ids no longer depend on the wall clock. */
  startTime?: number;
  faults: Faults;
}

/**
 * The events a simulation sends, in order. With the same options (and a `startTime`), the same
 * events, ids included, come out on every run and machine.
 */
export function createEventStream(options: StreamOptions) {
  const random = createRandom(options.seed);
  const instance = options.domain.create(random, options.devices);
  const runTag = `${options.domain.name}-s${options.seed}-${options.startTime !== undefined ? `t${options.startTime.toString(36)}` : Date.now().toString(36)}`;
  const recent: GeneratedEvent[] = [];
  let sequence = 0;

  const nextEvent = (wallClock: number): GeneratedEvent => {
    const { faults } = options;
    if (recent.length > 0 && random.chance(faults.duplicates)) return random.pick(recent);
    const now = options.startTime !== undefined ? Math.round(options.startTime + (sequence * 1000) / options.rate) : wallClock;
    let event: GeneratedEvent = { ...instance.next(sequence % options.devices, now), event_id: `${runTag}-${sequence}` };
    sequence++;
    if (random.chance(faults.lateFraction)) event.event_time -= random.int(3 * 60_000, 10 * 60_000);
    else if (random.chance(faults.outOfOrder)) event.event_time -= random.int(0, 60_000);
    if (random.chance(faults.invalidFraction)) event = instance.corrupt(event);
    recent.push(event);
    if (recent.length > 100) recent.shift();
    return event;
  };

  return {
    dims: instance.dims,
    take(count: number, wallClock = Date.now()): GeneratedEvent[] {
      return Array.from({ length: count }, () => nextEvent(wallClock));
    },
  };
}
