import { createRandom } from "../../generators/random.ts";

/**
 * A deterministic data set for pipeline tests: ten minutes of sensor readings, user sessions, vehicle
 * locations with fines and car telemetry (with its dims), sent with repeats and out of order within
 * the allowed lateness. `unique` is what the views must count: each event_id once.
 */
export const MIN = 60_000;
export const COLOURS = ["Black", "White", "Silver", "Red"];

export type FlatEvent = Record<string, unknown> & { type: string; event_id: string; event_time: number };

export function pipelineData(start: number, seed = 7) {
  const random = createRandom(seed);
  const events: FlatEvent[] = [];
  let n = 0;
  const id = () => `pd-${seed}-${n++}`;

  for (let t = start; t < start + 10 * MIN; t += 10_000) {
    for (let s = 0; s < 8; s++) events.push({ type: "sensor.reading", event_id: id(), sensor_id: `sensor-${s}`, temperature: random.float(-10, 40, 1), humidity: random.float(20, 90, 1), event_time: t + s * 7 });
  }
  for (let u = 0; u < 12; u++) {
    let t = start + u * 1_000;
    const pages = ["/", "/a", "/b", "/c"];
    for (let session = 0; session < 3; session++) {
      events.push({ type: "user.activity", event_id: id(), user_id: `user-${u}`, session_id: `u${u}s${session}`, action: "session_start", page: "/", event_time: t });
      for (let i = 0; i < 8; i++) {
        t += random.int(5_000, 20_000);
        events.push({ type: "user.activity", event_id: id(), user_id: `user-${u}`, session_id: `u${u}s${session}`, action: random.chance(0.7) ? "page_view" : "click", page: random.pick(pages), event_time: t });
      }
      t += random.int(1_000, 5_000);
      events.push({ type: "user.activity", event_id: id(), user_id: `user-${u}`, session_id: `u${u}s${session}`, action: "session_end", page: "/", event_time: t });
      t += random.int(2_000, 10_000);
    }
  }
  for (let i = 0; i < 200; i++) {
    const speed = random.float(40, 140, 1);
    events.push({ type: "vehicle.location", event_id: id(), vehicle_id: `veh-${i % 9}`, user_id: `driver-${i % 5}`, latitude: 51.5, longitude: -0.1, speed, ...(speed > 112 ? { fine_amount: speed > 130 ? 250 : 100 } : {}), make: "Kia", model: "Niro", year: 2024, event_time: start + random.int(0, 10 * MIN - 1) });
  }
  const cars = Array.from({ length: 10 }, (_, i) => ({ car_id: 500 + i, driver_id: 900 + i, model_id: 1, color_id: 1 + (i % COLOURS.length) }));
  for (let i = 0; i < 500; i++) {
    const car = 500 + (i % 11); // car 510 is not in the dims: enriched with nulls, still alerted
    const speed = random.float(0, 200, 1);
    const gear = random.chance(0.2) ? random.int(1, 7) : Math.min(7, Math.max(1, Math.round(speed / 30)));
    events.push({ type: "vehicle.telemetry", event_id: id(), car_id: car, speed, rpm: random.int(800, 7_500), gear, event_time: start + random.int(0, 10 * MIN - 1) });
  }

  events.sort((a, b) => a.event_time - b.event_time);
  const unique = [...events];
  // Repeats (client retries) and arrival out of order by up to 50 s: within the 2-minute lateness.
  const sent: FlatEvent[] = [];
  for (const event of events) {
    sent.push(event);
    if (random.chance(0.05)) sent.push({ ...event });
  }
  for (let i = 0; i < sent.length; i++) {
    const j = Math.min(sent.length - 1, i + random.int(0, 40));
    const a = sent[i];
    const b = sent[j];
    if (a && b && Math.abs(a.event_time - b.event_time) < 50_000) {
      sent[i] = b;
      sent[j] = a;
    }
  }
  // One user's activity keeps its order: a session_end arriving before its session's own events would
  // make the session boundaries ambiguous, so the reference and the engine could rightly disagree.
  const slotsByUser = new Map<unknown, number[]>();
  sent.forEach((e, i) => {
    if (e.type === "user.activity") slotsByUser.set(e.user_id, [...(slotsByUser.get(e.user_id) ?? []), i]);
  });
  for (const slots of slotsByUser.values()) {
    const ordered = slots.map((i) => sent[i]).filter((e): e is FlatEvent => e !== undefined).sort((a, b) => a.event_time - b.event_time);
    slots.forEach((slot, k) => {
      const event = ordered[k];
      if (event) sent[slot] = event;
    });
  }
  return {
    sent,
    unique,
    dims: {
      car_models: [{ model_id: 1, car_brand: "Volvo", car_model: "V60" }],
      car_colors: COLOURS.map((color_name, i) => ({ color_id: i + 1, color_name })),
      cars,
    },
  };
}
