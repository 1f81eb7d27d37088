import { z } from "zod";
import { defineEventType } from "./define.ts";
import { bigintId } from "./storable.ts";

export const vehicleTelemetry = defineEventType({
  type: "vehicle.telemetry",
  description: "A car's sensors, about once a second: speed, engine revolutions and gear. Enriched with the car's driver, model and colour; source of the speeding, gear and rpm alerts.",
  keyField: "car_id",
  fields: {
    // The same range as `cars.car_id` (bigint) so that every car the dimension can hold can be enriched.
    car_id: bigintId("Car id, as in the `cars` dimension"),
    speed: z.number().min(0).max(300).describe("Speed, km/h, 0 to 300"),
    rpm: z.number().min(0).max(10_000).describe("Engine revolutions per minute, 0 to 10000"),
    gear: z.number().int().min(1).max(7).describe("Gear engaged, 1 to 7"),
  },
  example: { car_id: 42, speed: 128.5, rpm: 6400, gear: 4, event_time: "2026-11-21T10:15:30.250Z" },
});
