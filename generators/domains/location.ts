import type { Domain } from "./types.ts";

const MAKES: [string, string][] = [["Tesla", "Model 3"], ["Volvo", "XC40"], ["Skoda", "Octavia"], ["Peugeot", "208"], ["Kia", "Niro"]];
const FUELS = ["petrol", "diesel", "electric", "hybrid"];

/** Vehicle location and fines: each vehicle's position and speed with its driver; a fine when speeding. */
export const location: Domain = {
  name: "location",
  description: "vehicle.location with fines from N vehicles driven by users",
  create(random, devices) {
    const vehicles = Array.from({ length: devices }, (_, i) => {
      const [make, model] = random.pick(MAKES);
      return { vehicle_id: `veh-${String(i + 1).padStart(4, "0")}`, user_id: `user-${random.int(1, Math.max(2, Math.ceil(devices / 2)))}`, make, model, year: random.int(2012, 2026), fuel_type: random.pick(FUELS), lat: random.float(51.3, 51.7, 5), lon: random.float(-0.5, 0.2, 5) };
    });
    return {
      dims: {},
      next(device, now) {
        const v = vehicles[device % vehicles.length] ?? vehicles[0];
        if (!v) throw new Error("no vehicles");
        v.lat = Math.min(90, Math.max(-90, v.lat + random.float(-0.002, 0.002, 6)));
        v.lon = Math.min(180, Math.max(-180, v.lon + random.float(-0.002, 0.002, 6)));
        const speed = random.float(0, 140, 1);
        const fine = speed > 112 ? { fine_amount: speed > 130 ? 250 : 100 } : {};
        return { type: "vehicle.location", vehicle_id: v.vehicle_id, user_id: v.user_id, latitude: v.lat, longitude: v.lon, speed, ...fine, make: v.make, model: v.model, year: v.year, fuel_type: v.fuel_type, event_time: now };
      },
      corrupt: (event) => ({ ...event, latitude: 123.4 }),
    };
  },
};
