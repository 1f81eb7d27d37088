import type { Random } from "../random.ts";

/** A generated event as a device would send it (flat, with `type` and `event_time`). */
export type GeneratedEvent = Record<string, unknown> & { type: string; event_time: number };

export interface DomainInstance {
  /** Reference data to load before the events (PUT /v1/dims/{name}). */
  dims: Record<string, Record<string, unknown>[]>;
  /** The next event of device `device` at time `now` (epoch ms). */
  next(device: number, now: number): GeneratedEvent;
  /** Makes a copy of `event` that breaks the contract in one field (fault injection). */
  corrupt(event: GeneratedEvent): GeneratedEvent;
}

export interface Domain {
  name: string;
  description: string;
  create(random: Random, devices: number): DomainInstance;
}
