import { parseInstant } from "../lib/time.ts";

/** Query-string rules shared by the list endpoints: time ranges, limits and opaque cursors. */
export interface ParamError {
  path: string;
  message: string;
}

export const DEFAULT_LIMIT = 100;
export const MAX_LIMIT = 10_000;

export function parseTimeParam(name: string, value: string | undefined, errors: ParamError[]): number | undefined {
  if (value === undefined || value === "") return undefined;
  const parsed = parseInstant(value, { numericStrings: true });
  if (parsed.ok) return parsed.ms;
  errors.push({ path: name, message: parsed.message });
  return undefined;
}

/** `[from, to)`; both optional; `from` must come before `to`. */
export function parseRange(query: Record<string, string | undefined>, errors: ParamError[]): { from?: number; to?: number } {
  const from = parseTimeParam("from", query.from, errors);
  const to = parseTimeParam("to", query.to, errors);
  if (from !== undefined && to !== undefined && from >= to) errors.push({ path: "to", message: "must be after from (the range is [from, to))" });
  return { from, to };
}

export function parseLimit(value: string | undefined, errors: ParamError[]): number {
  if (value === undefined || value === "") return DEFAULT_LIMIT;
  const limit = Number(value);
  if (!/^\d+$/.test(value) || limit < 1 || limit > MAX_LIMIT) {
    errors.push({ path: "limit", message: `an integer from 1 to ${MAX_LIMIT}` });
    return DEFAULT_LIMIT;
  }
  return limit;
}

/** Cursors are opaque to clients: base64url of a small JSON position. */
export function encodeCursor(position: unknown): string {
  return Buffer.from(JSON.stringify(position)).toString("base64url");
}

export function decodeCursor<T>(value: string | undefined, isValid: (position: unknown) => position is T, errors: ParamError[]): T | undefined {
  if (value === undefined || value === "") return undefined;
  try {
    const position: unknown = JSON.parse(Buffer.from(value, "base64url").toString("utf8"));
    if (isValid(position)) return position;
  } catch {
    // falls through to the error below
  }
  errors.push({ path: "cursor", message: "not a cursor this endpoint returned" });
  return undefined;
}
