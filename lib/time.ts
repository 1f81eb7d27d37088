/** Instants in the contract: ISO-8601 with a zone ("2026-11-21T10:15:30.250Z", "…+01:00") or epoch milliseconds. */
const ISO_WITH_ZONE = /^(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2})(?::(\d{2}))?(\.\d+)?(Z|[+-]\d{2}:?\d{2})$/i;

/**
 * The instants every store can hold: years 0001 to 9999, UTC. A JS Date reaches further, but Postgres
 * `timestamptz`, DuckDB and ISO-8601's four-digit years meet here.
 */
export const MIN_INSTANT_MS = -62_135_596_800_000; // 0001-01-01T00:00:00.000Z
export const MAX_INSTANT_MS = 253_402_300_799_999; // 9999-12-31T23:59:59.999Z
export const INSTANT_RANGE = `0001-01-01T00:00:00Z to 9999-12-31T23:59:59.999Z (epoch ms ${MIN_INSTANT_MS} to ${MAX_INSTANT_MS})`;

export type InstantResult = { ok: true; ms: number } | { ok: false; message: string };

const outOfRange = (): InstantResult => ({ ok: false, message: `outside the accepted range ${INSTANT_RANGE}` });

export const isInstantInRange = (ms: number) => Number.isInteger(ms) && ms >= MIN_INSTANT_MS && ms <= MAX_INSTANT_MS;

function daysInMonth(year: number, month: number): number {
  if (month === 2) return year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0) ? 29 : 28;
  return [4, 6, 9, 11].includes(month) ? 30 : 31;
}

/** The digits of `value` from `at` to `at + width` as a number; -1 if any is not a digit. */
function digits(value: string, at: number, width: number): number {
  let n = 0;
  for (let i = at; i < at + width; i++) {
    const c = value.charCodeAt(i) - 48;
    if (c < 0 || c > 9) return -1;
    n = n * 10 + c;
  }
  return n;
}

/** "YYYY-MM-DDTHH:MM:SS.sssZ", what JSON.stringify and toISOString write (most devices' clocks): no regex. */
function parseCanonicalIso(value: string): InstantResult | undefined {
  if (value.length !== 24 || value.charCodeAt(23) !== 90 /* Z */ || value.charCodeAt(10) !== 84 /* T */ || value[4] !== "-" || value[7] !== "-" || value[13] !== ":" || value[16] !== ":" || value[19] !== ".") return undefined;
  const [y, mo, d, h, mi, s, millis] = [digits(value, 0, 4), digits(value, 5, 2), digits(value, 8, 2), digits(value, 11, 2), digits(value, 14, 2), digits(value, 17, 2), digits(value, 20, 3)];
  if (y < 100 || mo < 0 || d < 0 || h < 0 || mi < 0 || s < 0 || millis < 0) return undefined; // the general path decides
  if (mo < 1 || mo > 12 || d < 1 || d > daysInMonth(y, mo) || h > 23 || mi > 59 || s > 60) return { ok: false, message: `not a valid date-time: ${value}` };
  const ms = Date.UTC(y, mo - 1, d, h, mi, s, millis);
  return isInstantInRange(ms) ? { ok: true, ms } : outOfRange();
}

function parseIso(value: string): InstantResult {
  const canonical = parseCanonicalIso(value);
  if (canonical) return canonical;
  const match = ISO_WITH_ZONE.exec(value);
  if (!match) return { ok: false, message: "expected ISO-8601 with a zone (e.g. 2026-11-21T10:15:30Z) or epoch milliseconds" };
  const [, year = "", month = "", day = "", hour = "", minute = "", second = "00", fraction = "", zone = ""] = match;
  const [y, mo, d, h, mi, s] = [year, month, day, hour, minute, second].map(Number) as [number, number, number, number, number, number];
  // Date.parse rolls 2026-02-30 over into March; a date the calendar does not have is refused instead.
  // A leap second (:60) is accepted as the first instant of the next second, as Postgres does.
  if (mo < 1 || mo > 12 || d < 1 || d > daysInMonth(y, mo) || h > 23 || mi > 59 || s > 60) return { ok: false, message: `not a valid date-time: ${value}` };
  // Longer fractions are truncated to milliseconds, as Date.parse does.
  const millis = fraction === "" ? 0 : Number(fraction.slice(1, 4).padEnd(3, "0"));
  let offsetMinutes = 0;
  if (zone.toUpperCase() !== "Z") {
    const oh = Number(zone.slice(1, 3));
    const om = Number(zone.slice(zone.length - 2));
    if (oh > 23 || om > 59) return { ok: false, message: `not a valid date-time: ${value}` };
    offsetMinutes = (zone[0] === "-" ? -1 : 1) * (oh * 60 + om);
  }
  // Date.UTC reads years 0-99 as 1900-1999: set the full year apart.
  const utc = new Date(Date.UTC(2000, mo - 1, d, h, mi, s, millis));
  utc.setUTCFullYear(y);
  const ms = utc.getTime() - offsetMinutes * 60_000;
  return isInstantInRange(ms) ? { ok: true, ms } : outOfRange();
}

/** Parses a JSON value (number or string) or a query-string value ("1795262400000" counts as epoch ms). */
export function parseInstant(value: unknown, { numericStrings = false } = {}): InstantResult {
  if (typeof value === "number") {
    if (Number.isFinite(value) && !Number.isInteger(value)) return { ok: false, message: "epoch milliseconds must be a whole number" };
    return isInstantInRange(value) ? { ok: true, ms: value } : outOfRange();
  }
  if (typeof value !== "string") return { ok: false, message: "expected an ISO-8601 string or epoch milliseconds" };
  if (numericStrings && /^-?\d+$/.test(value)) return parseInstant(Number(value));
  return parseIso(value);
}
