import { z } from "zod";
import { defineEventType, text } from "./define.ts";

export const sensorReading = defineEventType({
  type: "sensor.reading",
  description: "An IoT sensor's temperature and humidity reading, validated by range.",
  keyField: "sensor_id",
  fields: {
    sensor_id: text("Sensor id"),
    temperature: z.number().min(-50).max(100).describe("Temperature, °C, −50 to 100"),
    humidity: z.number().min(0).max(100).describe("Relative humidity, %, 0 to 100"),
  },
  example: { sensor_id: "sensor-0001", temperature: 21.4, humidity: 48.5, event_time: "2026-11-21T10:15:30.000Z" },
});
