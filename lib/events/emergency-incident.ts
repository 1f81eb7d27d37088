import { z } from "zod";
import { defineEventType, latitude, longitude, text } from "./define.ts";

export const emergencyIncident = defineEventType({
  type: "emergency.incident",
  description: "An emergency incident report and its status changes (smart city).",
  keyField: "incident_id",
  fields: {
    incident_id: text("Incident id"),
    incident_type: text("Kind of incident, e.g. Accident, Fire, Medical, Police"),
    status: z.enum(["active", "resolved"]).describe("`active` or `resolved`"),
    description: text("Free-text description, at most 4096 characters", 4096),
    latitude,
    longitude,
  },
  example: { incident_id: "inc-2026-0042", incident_type: "Accident", status: "active", description: "Two-car collision, lane 2 blocked", latitude: 52.2, longitude: -1.5, event_time: 1795279200000 },
});
