import { z } from "zod";
import { defineEventType, latitude, longitude, nonNegative, text } from "./define.ts";

export const weatherObservation = defineEventType({
  type: "weather.observation",
  description: "A weather station's observation (smart city).",
  keyField: "station_id",
  fields: {
    station_id: text("Weather station id"),
    latitude,
    longitude,
    temperature: z.number().min(-90).max(60).describe("Air temperature, °C, −90 to 60"),
    weather_condition: text("Condition, e.g. Sunny, Rain, Snow"),
    precipitation: nonNegative("Precipitation, mm, at least 0"),
    wind_speed: nonNegative("Wind speed, km/h, at least 0"),
    humidity: z.number().min(0).max(100).describe("Relative humidity, %, 0 to 100"),
    air_quality_index: nonNegative("Air quality index, at least 0"),
  },
  example: { station_id: "wx-birmingham", latitude: 52.48, longitude: -1.89, temperature: 11.5, weather_condition: "Cloudy", precipitation: 0.4, wind_speed: 18, humidity: 81, air_quality_index: 42, event_time: "2026-11-21T10:15:00Z" },
});
