import { describe, expect, test } from "bun:test";
import { INSTANT_RANGE, MAX_INSTANT_MS, MIN_INSTANT_MS, parseInstant } from "../../lib/time.ts";

/** Instants of the contract: one range every store holds, years 0001 to 9999 UTC. */
const ms = (value: unknown, numericStrings = false) => {
  const result = parseInstant(value, { numericStrings });
  return result.ok ? result.ms : result.message;
};

describe("parseInstant", () => {
  test("the range is years 0001 to 9999, UTC, and the bounds are included", () => {
    expect(MIN_INSTANT_MS).toBe(Date.parse("0001-01-01T00:00:00Z"));
    expect(MAX_INSTANT_MS).toBe(Date.parse("9999-12-31T23:59:59.999Z"));
    expect(ms("0001-01-01T00:00:00Z")).toBe(MIN_INSTANT_MS);
    expect(ms("9999-12-31T23:59:59.999Z")).toBe(MAX_INSTANT_MS);
    expect(ms(MIN_INSTANT_MS)).toBe(MIN_INSTANT_MS);
    expect(ms(String(MAX_INSTANT_MS), true)).toBe(MAX_INSTANT_MS);
  });

  test("outside it, as epoch ms (number or query string) or ISO, the message states the range", () => {
    for (const [value, numeric] of [
      [-8_640_000_000_000_000, false],
      ["-8640000000000000", true],
      [MAX_INSTANT_MS + 1, false],
      [String(MIN_INSTANT_MS - 1), true],
      ["99999999999999999999999", true],
      ["9".repeat(400), true],
      [Number.MAX_VALUE, false],
      ["0000-12-31T23:59:59Z", false],
      ["0001-01-01T00:30:00+01:00", false],
      ["9999-12-31T23:30:00-01:00", false],
    ] as const) {
      expect([value, ms(value, numeric)]).toEqual([value, `outside the accepted range ${INSTANT_RANGE}`]);
    }
  });

  test("ISO-8601 needs a zone and a real calendar date; numeric strings count only where asked", () => {
    expect(ms("2026-11-21T10:15:30+01:00")).toBe(Date.parse("2026-11-21T09:15:30Z"));
    expect(ms("2026-11-21 10:15Z")).toBe(Date.parse("2026-11-21T10:15:00Z"));
    expect(ms("2026-11-21T10:15:30.9999Z")).toBe(Date.parse("2026-11-21T10:15:30.999Z"));
    expect(ms("2026-11-21T10:15:30")).toContain("expected ISO-8601 with a zone");
    expect(ms("2026-02-29T00:00:00Z")).toContain("not a valid date-time");
    expect(ms("2026-11-21T10:15:30+25:00")).toContain("not a valid date-time");
    expect(ms("1795262400000")).toContain("expected ISO-8601");
    expect(ms("1795262400000", true)).toBe(1795262400000);
    expect(ms(1.5)).toBe("epoch milliseconds must be a whole number");
    expect(ms(null)).toContain("expected an ISO-8601 string");
  });
});

test("the canonical form (toISOString's) and the general path agree, invalid dates included", () => {
  const canonical = ["2026-11-21T10:15:30.250Z", "2024-02-29T23:59:60.999Z", "2025-02-29T00:00:00.000Z", "0100-01-01T00:00:00.000Z", "9999-12-31T23:59:59.999Z", "2026-13-01T00:00:00.000Z", "2026-04-31T00:00:00.000Z", "2026-01-01T24:00:00.000Z", "2026-01-01T00:00:61.000Z"];
  for (const value of canonical) {
    // The same instant with "+00:00" instead of "Z" takes the regex path.
    const general = parseInstant(value.replace(/Z$/, "+00:00"));
    const fast = parseInstant(value);
    expect(fast.ok).toBe(general.ok);
    if (fast.ok && general.ok) expect(fast.ms).toBe(general.ms);
  }
  expect(parseInstant("2026-11-21T10:15:30.250Z")).toEqual({ ok: true, ms: Date.parse("2026-11-21T10:15:30.250Z") });
  expect(parseInstant("2024-02-29T23:59:60.999Z")).toEqual({ ok: true, ms: Date.parse("2024-03-01T00:00:00.999Z") });
});
