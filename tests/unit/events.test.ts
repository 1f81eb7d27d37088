import { describe, expect, test } from "bun:test";
import { z } from "zod";
import { defaultEventTimePolicy, eventTypes, parseEventTime, validateRecord } from "../../lib/events/index.ts";
import { parseInstant } from "../../lib/time.ts";

const NOW = Date.parse("2026-11-21T12:00:00Z");
const context = (pathType?: string) => ({ types: eventTypes, pathType, now: NOW, policy: defaultEventTimePolicy, newEventId: () => "generated-id" });
const validate = (raw: unknown, pathType?: string) => validateRecord(raw, context(pathType));
const errorsOf = (raw: unknown, pathType?: string) => {
  const result = validate(raw, pathType);
  if (result.ok) throw new Error(`expected errors for ${JSON.stringify(raw)}`);
  return result.errors;
};

/** One out-of-contract value per field rule of ARCHITECTURE.md, per type. */
const invalid: Record<string, [field: string, value: unknown][]> = {
  "vehicle.telemetry": [["car_id", 4.5], ["speed", 300.1], ["speed", -1], ["rpm", 10_001], ["gear", 0], ["gear", 8], ["gear", 2.5]],
  "vehicle.location": [["vehicle_id", ""], ["latitude", 90.5], ["longitude", -181], ["speed", -0.1], ["fine_amount", -5], ["year", "2020"]],
  "gps.fix": [["device_id", 12], ["speed", -3], ["direction", ""], ["latitude", -91]],
  "traffic.camera": [["snapshot", "x".repeat(256 * 1024 + 1)], ["longitude", 180.01]],
  "weather.observation": [["temperature", 60.5], ["temperature", -90.5], ["humidity", 101], ["precipitation", -1], ["wind_speed", -1], ["air_quality_index", -1]],
  "emergency.incident": [["status", "open"], ["incident_type", ""], ["latitude", 100]],
  "sensor.reading": [["temperature", 100.5], ["temperature", -50.5], ["humidity", -0.1], ["humidity", 100.1]],
  "user.activity": [["action", "scroll"], ["page", ""], ["session_id", null]],
};

describe.each([...eventTypes.values()].map((t) => [t.type, t] as const))("%s", (type, eventType) => {
  const example: Record<string, unknown> = { type, ...eventType.example, event_time: "2026-11-21T11:59:00Z" };

  test("its documented example is valid and becomes an envelope keyed by the device field", () => {
    const result = validate(example);
    if (!result.ok) throw new Error(JSON.stringify(result.errors));
    expect(result.envelope).toMatchObject({ type, key: String(eventType.example[eventType.keyField]), event_id: "generated-id", event_time: Date.parse("2026-11-21T11:59:00Z"), ingest_time: NOW });
    expect(Object.keys(result.envelope.payload)).not.toContain("type");
  });

  test("each out-of-range or wrongly typed field is reported at its path", () => {
    for (const [field, value] of invalid[type] ?? []) {
      expect(errorsOf({ ...example, [field]: value }).map((e) => e.path)).toEqual([field]);
    }
  });

  test("the device key field is required", () => {
    const { [eventType.keyField]: _omitted, ...withoutKey } = example;
    expect(errorsOf(withoutKey)).toEqual([{ path: eventType.keyField, message: expect.stringContaining("expected") }]);
  });

  test("every text field refuses U+0000 and unpaired surrogates, naming the field", () => {
    const textFields = Object.keys(eventType.fields).filter((field) => typeof example[field] === "string");
    for (const field of textFields) {
      for (const bad of [`bad\u0000`, `s-\uD800`, `\uDC00`]) {
        const errors = errorsOf({ ...example, [field]: bad });
        expect(errors.map((e) => e.path)).toEqual([field]);
      }
    }
  });

  test("every integer field declares a range its lake column (BIGINT) holds exactly", () => {
    for (const [field, schema] of Object.entries(eventType.fields)) {
      const json = z.toJSONSchema(schema as z.ZodType, { io: "input" }) as { type?: string; minimum?: number; maximum?: number };
      if (json.type !== "integer") continue;
      expect([field, Number.isSafeInteger(json.minimum), Number.isSafeInteger(json.maximum)]).toEqual([field, true, true]);
    }
  });

  test("the type in the path replaces the type field", () => {
    const { type: _omitted, ...fields } = example;
    expect(validate(fields, type).ok).toBe(true);
  });
});

describe("record rules shared by all types", () => {
  const reading = { type: "sensor.reading", sensor_id: "s-1", temperature: 20, humidity: 50, event_time: "2026-11-21T11:00:00Z" };

  test("unknown fields, including __proto__ and constructor from JSON.parse, are rejected by name", () => {
    const raw = JSON.parse('{"type":"sensor.reading","sensor_id":"s","temperature":1,"humidity":2,"event_time":1795262400000,"__proto__":{"polluted":true},"constructor":{"x":1},"colour":"red"}');
    expect(errorsOf(raw).map((e) => e.path).sort()).toEqual(["__proto__", "colour", "constructor"]);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  test("numbers sent as strings are rejected, not coerced", () => {
    expect(errorsOf({ ...reading, temperature: "20" })).toEqual([{ path: "temperature", message: "Invalid input: expected number, received string" }]);
  });

  test("a missing event_time is required; a missing or unknown type says so", () => {
    const { event_time: _t, ...noTime } = reading;
    expect(errorsOf(noTime)).toEqual([{ path: "event_time", message: "required" }]);
    const { type: _type, ...noType } = reading;
    expect(errorsOf(noType)).toEqual([{ path: "type", message: "required" }]);
    expect(errorsOf({ ...reading, type: "sensor.readings" })[0]?.message).toContain("unknown event type");
  });

  test("a type field that contradicts the path is an error", () => {
    expect(errorsOf(reading, "user.activity")[0]).toEqual({ path: "type", message: '"sensor.reading" differs from the type in the path, "user.activity"' });
  });

  test("a client event_id is kept; a malformed one is rejected", () => {
    const kept = validate({ ...reading, event_id: "client:42.a-b_c" });
    expect(kept.ok && kept.envelope.event_id).toBe("client:42.a-b_c");
    expect(errorsOf({ ...reading, event_id: "has spaces" })[0]?.path).toBe("event_id");
    expect(errorsOf({ ...reading, event_id: "x".repeat(129) })[0]?.path).toBe("event_id");
  });

  test("event_id null is refused like any other optional field sent as null; absent means assigned", () => {
    expect(errorsOf({ ...reading, event_id: null })).toEqual([{ path: "event_id", message: expect.stringContaining("omit the field (not null)") }]);
    const { event_id: _none, ...absent } = { ...reading, event_id: undefined };
    const assigned = validate(absent);
    expect(assigned.ok && assigned.envelope.event_id).toBe("generated-id");
  });

  test("vehicle.telemetry car_id is bounded like cars.car_id (bigint, exact in JSON)", () => {
    const telemetry = { type: "vehicle.telemetry", speed: 50, rpm: 2000, gear: 2, event_time: "2026-11-21T11:00:00Z" };
    expect(validate({ ...telemetry, car_id: Number.MAX_SAFE_INTEGER }).ok).toBe(true);
    for (const carId of [Number.MAX_SAFE_INTEGER + 1, -1]) expect(new Set(errorsOf({ ...telemetry, car_id: carId }).map((e) => e.path))).toEqual(new Set(["car_id"]));
  });

  test("unicode text is kept as sent", () => {
    const result = validate({ ...reading, sensor_id: "capteur-température-東京-🌡" });
    expect(result.ok && result.envelope.key).toBe("capteur-température-東京-🌡");
  });

  test("non-object records are rejected as a whole", () => {
    for (const raw of [null, 42, "text", [reading]]) expect(errorsOf(raw)[0]?.path).toBe("");
  });
});

describe("event_time", () => {
  const ok = (value: unknown) => {
    const result = parseEventTime(value, NOW);
    if (!result.ok) throw new Error(result.message);
    return result.ms;
  };

  test("ISO-8601 with Z, offsets with and without colon, fractions, and epoch milliseconds", () => {
    expect(ok("2026-11-21T10:15:30Z")).toBe(Date.parse("2026-11-21T10:15:30Z"));
    expect(ok("2026-11-21T11:15:30+01:00")).toBe(Date.parse("2026-11-21T10:15:30Z"));
    expect(ok("2026-11-21T05:15:30-0500")).toBe(Date.parse("2026-11-21T10:15:30Z"));
    expect(ok("2026-11-21T10:15:30.123456789Z")).toBe(Date.parse("2026-11-21T10:15:30.123Z"));
    expect(ok(1795262400000)).toBe(1795262400000);
  });

  test("a time without a zone, an impossible date, or a fractional epoch is rejected", () => {
    for (const value of ["2026-11-21T10:15:30", "2026-13-45T10:15:30Z", "yesterday", 1795262400000.5, true]) expect(parseEventTime(value, NOW).ok).toBe(false);
  });

  test("a date the calendar lacks is rejected rather than rolled over; a leap second is the next second", () => {
    for (const value of ["2026-02-30T10:00:00Z", "2025-02-29T10:00:00Z", "2026-04-31T10:00:00Z", "2026-11-21T24:00:00Z", "2026-11-21T10:60:00Z", "2026-11-21T10:15:61Z"]) {
      expect([value, parseEventTime(value, NOW).ok]).toEqual([value, false]);
    }
    expect(parseInstant("2024-02-29T10:00:00Z")).toEqual({ ok: true, ms: Date.parse("2024-02-29T10:00:00Z") });
    expect(ok("2026-11-21T10:59:60Z")).toBe(Date.parse("2026-11-21T11:00:00Z"));
  });

  test("epoch milliseconds beyond what a Date can show are rejected with a message, not a crash", () => {
    for (const value of [9e15, -8_640_000_000_000_000, Number.MAX_SAFE_INTEGER, 1e300]) {
      const result = parseEventTime(value, NOW);
      expect(!result.ok && result.message).toContain("outside the accepted range");
    }
  });

  test("more than an hour ahead or a year behind is rejected, with a hint for epoch seconds", () => {
    expect(parseEventTime(NOW + 61 * 60_000, NOW).ok).toBe(false);
    expect(parseEventTime(NOW + 59 * 60_000, NOW).ok).toBe(true);
    const seconds = parseEventTime(Math.floor(NOW / 1000), NOW);
    expect(!seconds.ok && seconds.message).toContain("epoch seconds sent instead of milliseconds?");
    expect(parseEventTime(NOW - 364 * 86_400_000, NOW).ok).toBe(true);
  });
});
