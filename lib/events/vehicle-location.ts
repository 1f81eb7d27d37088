import { z } from "zod";
import { defineEventType, latitude, longitude, nonNegative, text } from "./define.ts";

export const vehicleLocation = defineEventType({
  type: "vehicle.location",
  description: "A vehicle's position and speed with the driving user, and a fine when one was issued; `total_fine` per user sums them by day.",
  keyField: "vehicle_id",
  fields: {
    vehicle_id: text("Vehicle id"),
    user_id: text("User (driver) id"),
    latitude,
    longitude,
    speed: nonNegative("Speed, km/h, at least 0"),
    fine_amount: nonNegative("Fine issued with this record, at least 0").optional(),
    make: text("Manufacturer"),
    model: text("Model"),
    year: z.number().int().min(1886).max(2100).describe("Model year"),
    fuel_type: text("Fuel type, e.g. petrol, diesel, electric").optional(),
  },
  example: { vehicle_id: "veh-0007", user_id: "user-314", latitude: 51.5072, longitude: -0.1276, speed: 64.2, fine_amount: 120, make: "Volvo", model: "XC40", year: 2023, fuel_type: "electric", event_time: "2026-11-21T10:15:30Z" },
});
