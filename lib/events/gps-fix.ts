import { defineEventType, latitude, longitude, nonNegative, text } from "./define.ts";

export const gpsFix = defineEventType({
  type: "gps.fix",
  description: "A GPS fix from a vehicle's tracker (smart city).",
  keyField: "device_id",
  fields: {
    device_id: text("GPS device id"),
    latitude,
    longitude,
    speed: nonNegative("Speed, km/h, at least 0"),
    direction: text("Heading, e.g. North-East"),
    vehicle_type: text("Kind of vehicle, e.g. private, bus, truck"),
  },
  example: { device_id: "gps-17", latitude: 52.4862, longitude: -1.8904, speed: 48, direction: "North-East", vehicle_type: "private", event_time: "2026-11-21T10:15:30+01:00" },
});
