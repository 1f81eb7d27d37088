import type { Domain, GeneratedEvent } from "./types.ts";

const LONDON = { lat: 51.5074, lon: -0.1278 };
const BIRMINGHAM = { lat: 52.4862, lon: -1.8904 };
const CONDITIONS = ["Sunny", "Cloudy", "Rain", "Mist", "Snow"];
const INCIDENTS = ["Accident", "Fire", "Medical", "Police"];
const DIRECTIONS = ["North", "North-West", "West"];

/**
 * Smart city: each device is a vehicle driving from London to Birmingham. Per tick it emits mostly
 * vehicle and GPS records, and now and then a traffic-camera snapshot, a weather observation or an incident.
 */
export const smartcity: Domain = {
  name: "smartcity",
  description: "vehicles driving London → Birmingham emitting vehicle.location, gps.fix, traffic.camera, weather.observation, emergency.incident",
  create(random, devices) {
    const progress = Array.from({ length: devices }, () => random.float(0, 0.2, 4));
    const incidents = new Map<string, boolean>();
    return {
      dims: {},
      next(device, now): GeneratedEvent {
        const index = device % progress.length;
        const done = Math.min(1, (progress[index] ?? 0) + random.float(0.0005, 0.002, 5));
        progress[index] = done >= 1 ? 0 : done;
        const latitude = Math.round((LONDON.lat + (BIRMINGHAM.lat - LONDON.lat) * done + random.float(-0.01, 0.01, 5)) * 1e5) / 1e5;
        const longitude = Math.round((LONDON.lon + (BIRMINGHAM.lon - LONDON.lon) * done + random.float(-0.01, 0.01, 5)) * 1e5) / 1e5;
        const id = `sc-${index + 1}`;
        const roll = random.next();
        if (roll < 0.4) return { type: "vehicle.location", vehicle_id: id, user_id: `driver-${index + 1}`, latitude, longitude, speed: random.float(30, 120, 1), make: "BMW", model: "C500", year: 2024, fuel_type: "hybrid", event_time: now };
        if (roll < 0.8) return { type: "gps.fix", device_id: `gps-${index + 1}`, latitude, longitude, speed: random.float(30, 120, 1), direction: random.pick(DIRECTIONS), vehicle_type: "private", event_time: now };
        if (roll < 0.9) return { type: "traffic.camera", camera_id: `cam-${random.int(1, 40)}`, latitude, longitude, snapshot: `data:image/jpeg;base64,${btoa(String.fromCharCode(...Array.from({ length: 48 }, () => random.int(0, 255))))}`, event_time: now };
        if (roll < 0.97) return { type: "weather.observation", station_id: `wx-${random.int(1, 10)}`, latitude, longitude, temperature: random.float(-5, 26, 1), weather_condition: random.pick(CONDITIONS), precipitation: random.float(0, 12, 1), wind_speed: random.float(0, 60, 1), humidity: random.float(30, 100, 1), air_quality_index: random.float(5, 180, 0), event_time: now };
        const incidentId = `inc-${random.int(1, 30)}`;
        const status = incidents.get(incidentId) ? "resolved" : "active";
        incidents.set(incidentId, status === "active");
        return { type: "emergency.incident", incident_id: incidentId, incident_type: random.pick(INCIDENTS), status, description: `${status === "active" ? "Reported" : "Cleared"} near ${latitude.toFixed(3)},${longitude.toFixed(3)}`, latitude, longitude, event_time: now };
      },
      corrupt: (event) => ({ ...event, longitude: -200 }),
    };
  },
};
