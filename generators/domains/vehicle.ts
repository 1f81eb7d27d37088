import type { Domain } from "./types.ts";

const BRANDS: [string, string[]][] = [
  ["Toyota", ["Corolla", "Yaris", "RAV4"]],
  ["Volkswagen", ["Golf", "Polo", "Passat"]],
  ["Ford", ["Focus", "Fiesta", "Kuga"]],
  ["BMW", ["3 Series", "X3", "i4"]],
  ["Renault", ["Clio", "Megane", "Zoe"]],
];
const COLOURS = ["Black", "White", "Silver", "Red", "Blue", "Grey", "Green"];

/** Vehicle telemetry: dims (models, colours, cars with drivers) and each car's speed, rpm and gear every tick. */
export const vehicle: Domain = {
  name: "vehicle",
  description: "vehicle.telemetry from N cars, with the car_models, car_colors and cars dimensions",
  create(random, devices) {
    const carModels = BRANDS.flatMap(([brand, models]) => models.map((model) => ({ car_brand: brand, car_model: model }))).map((m, i) => ({ model_id: i + 1, ...m }));
    const carColors = COLOURS.map((color_name, i) => ({ color_id: i + 1, color_name }));
    const cars = Array.from({ length: devices }, (_, i) => ({ car_id: i + 1, driver_id: 1000 + random.int(1, devices * 3), model_id: random.pick(carModels).model_id, color_id: random.pick(carColors).color_id }));
    // Each car keeps to a cruising speed of its own, some close enough to 120 km/h to pass it now and then.
    const cruise = cars.map(() => random.float(40, 108, 1));
    const speeds = [...cruise];
    return {
      dims: { car_models: carModels, car_colors: carColors, cars },
      next(device, now) {
        const index = device % cars.length;
        // A random walk pulled back to the car's cruising speed (one that drifted instead took every car past
        // 120 km/h within minutes, and a long run then raised an alert for nearly every reading); the gear
        // usually fits the speed, now and then not.
        const previous = speeds[index] ?? 50;
        const speed = Math.min(300, Math.max(0, previous + random.float(-8, 8, 1) + 0.15 * ((cruise[index] ?? 60) - previous)));
        speeds[index] = speed;
        const fitting = Math.min(7, Math.max(1, Math.round(speed / 30)));
        const gear = random.chance(0.01) ? random.int(1, 7) : fitting;
        const rpm = Math.min(10_000, Math.round(900 + (speed / gear) * 95 + random.int(-200, 200)));
        return { type: "vehicle.telemetry", car_id: cars[index]?.car_id ?? 1, speed: Math.round(speed * 10) / 10, rpm, gear, event_time: now };
      },
      corrupt: (event) => ({ ...event, speed: 999 }),
    };
  },
};
