/**
 * Enriched envelopes for the lake benchmarks (bench/lake.ts, bench/lake-fill.ts): what the enrich job
 * puts in events.enriched. `vehicle.telemetry` carries the enrichment fields; other types repeat their
 * registry example with a device key of their own.
 */
import { type Envelope, eventTypes } from "../lib/events/index.ts";

export const TELEMETRY = "vehicle.telemetry";
const COLORS = ["Black", "White", "Silver", "Red"];

/** The i-th event of `type`: device `i % devices`, event time `timeMs`, ingested 150 ms later. */
export function lakeEvent(type: string, i: number, timeMs: number, devices: number, idPrefix = "e"): Envelope {
  const device = i % devices;
  const base = { type, event_id: `${idPrefix}${i}`, event_time: timeMs, ingest_time: timeMs + 150 };
  if (type === TELEMETRY) {
    const speed = (i * 7) % 180;
    return {
      ...base,
      key: String(device),
      payload: { car_id: device, speed, rpm: (i * 131) % 7_000, gear: 1 + (i % 6), driver_id: 5_000 + device, model_id: 1 + (device % 5), color_id: 1 + (device % 4), car_brand: "Volvo", car_model: "V60", color_name: COLORS[device % 4] ?? null, expected_gear: Math.round(speed / 30) },
    };
  }
  const spec = eventTypes.get(type);
  if (!spec) throw new Error(`unknown event type ${type}`);
  const { event_time: _time, ...example } = spec.example;
  const keyValue = typeof example[spec.keyField] === "number" ? device : `${spec.keyField}-${device}`;
  return { ...base, key: String(keyValue), payload: { ...example, [spec.keyField]: keyValue } };
}

/** `--name value` / `--name=value` flags, each falling back to an environment variable, then to a default. */
export function flags(argv: string[] = process.argv.slice(2)) {
  const given = new Map<string, string>();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] ?? "";
    if (!arg.startsWith("--")) throw new Error(`unexpected argument ${arg}`);
    const eq = arg.indexOf("=");
    if (eq > 0) given.set(arg.slice(2, eq), arg.slice(eq + 1));
    else given.set(arg.slice(2), argv[++i] ?? "");
  }
  const raw = (name: string, env: string) => given.get(name) ?? process.env[env];
  return {
    number(name: string, env: string, fallback: number): number {
      const value = raw(name, env);
      if (value === undefined || value === "") return fallback;
      const n = Number(value.replaceAll("_", ""));
      if (!Number.isFinite(n) || n < 0) throw new Error(`--${name} (${env}): a non-negative number, got ${value}`);
      return n;
    },
    string(name: string, env: string, fallback: string): string {
      return raw(name, env) || fallback;
    },
    list(name: string, env: string, fallback: string[]): string[] {
      const value = raw(name, env);
      return value ? value.split(",").map((s) => s.trim()).filter((s) => s.length > 0) : fallback;
    },
  };
}
