import type { EventType } from "./define.ts";
import { emergencyIncident } from "./emergency-incident.ts";
import { gpsFix } from "./gps-fix.ts";
import { sensorReading } from "./sensor-reading.ts";
import { trafficCamera } from "./traffic-camera.ts";
import { userActivity } from "./user-activity.ts";
import { vehicleLocation } from "./vehicle-location.ts";
import { vehicleTelemetry } from "./vehicle-telemetry.ts";
import { weatherObservation } from "./weather-observation.ts";

export type { EventType } from "./define.ts";
export { type Envelope, EnvelopeSchema, decodeEnvelope, decodeTrustedEnvelope, encodeEnvelope } from "./envelope.ts";
export { type EventTimePolicy, defaultEventTimePolicy, parseEventTime } from "./event-time.ts";
export { type RecordError, type ValidationResult, validateRecord } from "./validate.ts";

/** Every event type, by name. Adding a type is one file in lib/events/ and one entry here. */
export const eventTypes: ReadonlyMap<string, EventType> = new Map(
  [vehicleTelemetry, vehicleLocation, gpsFix, trafficCamera, weatherObservation, emergencyIncident, sensorReading, userActivity].map((t): [string, EventType] => [t.type, t]),
);
