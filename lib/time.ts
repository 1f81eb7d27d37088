/** Instants in the contract: ISO-8601 with a zone ("2026-11-21T10:15:30.250Z", "…+01:00") or epoch milliseconds. */
const ISO_WITH_ZONE = /^(\d{4}-\d{2}-\d{2})[T ](\d{2}:\d{2}(?::\d{2})?)(\.\d+)?(Z|[+-]\d{2}:?\d{2})$/i;

export type InstantResult = { ok: true; ms: number } | { ok: false; message: string };

/** Parses a JSON value (number or string) or a query-string value ("1795262400000" counts as epoch ms). */
export function parseInstant(value: unknown, { numericStrings = false } = {}): InstantResult {
  if (typeof value === "number") {
    return Number.isSafeInteger(value) ? { ok: true, ms: value } : { ok: false, message: "epoch milliseconds must be a whole number" };
  }
  if (typeof value !== "string") return { ok: false, message: "expected an ISO-8601 string or epoch milliseconds" };
  if (numericStrings && /^-?\d{1,16}$/.test(value)) return { ok: true, ms: Number(value) };
  const match = ISO_WITH_ZONE.exec(value);
  if (!match) return { ok: false, message: "expected ISO-8601 with a zone (e.g. 2026-11-21T10:15:30Z) or epoch milliseconds" };
  // Date.parse is only exact to milliseconds; longer fractions are truncated, not rounded.
  const fraction = (match[3] ?? "").slice(0, 4);
  const zone = match[4]?.toUpperCase() === "Z" ? "Z" : (match[4] ?? "").replace(/^([+-]\d{2})(\d{2})$/, "$1:$2");
  const ms = Date.parse(`${match[1]}T${match[2]}${fraction}${zone}`);
  return Number.isNaN(ms) ? { ok: false, message: `not a valid date-time: ${value}` } : { ok: true, ms };
}
