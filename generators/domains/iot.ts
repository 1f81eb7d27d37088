import type { Domain } from "./types.ts";

/** IoT sensors: temperature and humidity drifting around each sensor's own baseline. */
export const iot: Domain = {
  name: "iot",
  description: "sensor.reading from N temperature/humidity sensors",
  create(random, devices) {
    const sensors = Array.from({ length: devices }, (_, i) => ({ sensor_id: `sensor-${String(i + 1).padStart(4, "0")}`, temperature: random.float(15, 30, 1), humidity: random.float(30, 70, 1) }));
    return {
      dims: {},
      next(device, now) {
        const sensor = sensors[device % sensors.length] ?? sensors[0];
        if (!sensor) throw new Error("no sensors");
        sensor.temperature = Math.min(100, Math.max(-50, sensor.temperature + random.float(-0.5, 0.5, 2)));
        sensor.humidity = Math.min(100, Math.max(0, sensor.humidity + random.float(-1, 1, 2)));
        return { type: "sensor.reading", sensor_id: sensor.sensor_id, temperature: Math.round(sensor.temperature * 100) / 100, humidity: Math.round(sensor.humidity * 100) / 100, event_time: now };
      },
      corrupt: (event) => ({ ...event, humidity: 140 }),
    };
  },
};
