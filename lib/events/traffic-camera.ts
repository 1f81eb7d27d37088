import { defineEventType, latitude, longitude, text } from "./define.ts";

export const SNAPSHOT_MAX_CHARS = 256 * 1024;

export const trafficCamera = defineEventType({
  type: "traffic.camera",
  description: "A traffic camera's snapshot (smart city), e.g. base64-encoded JPEG or a URL.",
  keyField: "camera_id",
  fields: {
    camera_id: text("Camera id"),
    latitude,
    longitude,
    snapshot: text("Snapshot, at most 256 KiB of text (base64 image or URL)", SNAPSHOT_MAX_CHARS),
  },
  example: { camera_id: "cam-m6-12", latitude: 52.4, longitude: -1.9, snapshot: "data:image/jpeg;base64,/9j/4AAQSkZJRg==", event_time: "2026-11-21T10:15:30Z" },
});
