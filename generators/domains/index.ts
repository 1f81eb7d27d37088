import { activity } from "./activity.ts";
import { iot } from "./iot.ts";
import { location } from "./location.ts";
import { smartcity } from "./smartcity.ts";
import type { Domain } from "./types.ts";
import { vehicle } from "./vehicle.ts";

export type { Domain, DomainInstance, GeneratedEvent } from "./types.ts";

export const domains: ReadonlyMap<string, Domain> = new Map([vehicle, location, smartcity, iot, activity].map((d) => [d.name, d]));
