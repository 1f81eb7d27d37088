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

function parseIso(value: string): InstantResult {
  const match = ISO_WITH_ZONE.exec(value);
  if (!match) return { ok: false, message: "expected ISO-8601 with a zone (e.g. 2026-11-21T10:15:30Z) or epoch milliseconds" };
  const [, year = "", month = "", day = "", hour = "", minute = "", second = "00", fraction = "", zone = ""] = match;
  const [y, mo, d, h, mi, s] = [year, month, day, hour, minute, second].map(Number) as [number, number, number, number, number, number];
  // Date.parse rolls 2026-02-30 over into March; a date the calendar does not have is refused instead.
  // A leap second (:60) is accepted as the first instant of the next second, as Postgres does.
  if (mo < 1 || mo > 12 || d < 1 || d > daysInMonth(y, mo) || h > 23 || mi > 59 || s > 60) return { ok: false, message: `not a valid date-time: ${value}` };
  const leap = s === 60 ? 1000 : 0;
  // Date.parse is only exact to milliseconds; longer fractions are truncated, not rounded.
  const offset = zone.toUpperCase() === "Z" ? "Z" : zone.replace(/^([+-]\d{2})(\d{2})$/, "$1:$2");
  const ms = Date.parse(`${year}-${month}-${day}T${hour}:${minute}:${leap ? "59" : second}${fraction.slice(0, 4)}${offset}`);
  if (Number.isNaN(ms)) return { ok: false, message: `not a valid date-time: ${value}` };
  return isInstantInRange(ms + leap) ? { ok: true, ms: ms + leap } : outOfRange();
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
