import { z } from "@hono/zod-openapi";
import type { Context } from "hono";
import { MAX_TEXT } from "../lib/events/define.ts";
import { storableText, unstorableTextReason } from "../lib/events/storable.ts";
import { INSTANT_RANGE, isInstantInRange, MAX_INSTANT_MS, MIN_INSTANT_MS, parseInstant } from "../lib/time.ts";
import { problem } from "./problem.ts";

/** Query-string rules shared by the list endpoints: text, time ranges, limits and opaque cursors. */
export interface ParamError {
  path: string;
  message: string;
}

export const DEFAULT_LIMIT = 100;
export const MAX_LIMIT = 10_000;
/** Cursors are base64url of a small JSON position; anything longer or in another alphabet is not one of ours. */
const CURSOR = /^[A-Za-z0-9_-]{1,1024}$/;

/** The 400 every list endpoint answers for bad parameters: each one named in `errors`. */
export const invalidParams = (c: Context, errors: ParamError[]) => problem(c, 400, errors.map((e) => `${e.path}: ${e.message}`).join("; "), { errors });

/**
 * Each parameter of a raw query string (`a=1&b=%00`) that is not percent-encoded UTF-8 or holds text no
 * store can keep. Hono would hand such a value on undecoded, or with its U+0000, to the SQL behind it.
 */
export function queryTextErrors(search: string): ParamError[] {
  const errors: ParamError[] = [];
  for (const { name, value } of rawQueryPairs(search)) {
    const reason = value === undefined ? "not valid percent-encoded UTF-8" : unstorableTextReason(value);
    if (reason) errors.push({ path: name, message: reason });
  }
  return errors;
}

/** The pairs of a raw query string, percent-decoded; `value` is undefined when it is not percent-encoded UTF-8. */
export function rawQueryPairs(search: string): { name: string; value: string | undefined }[] {
  return search
    .replace(/^\?/, "")
    .split("&")
    .filter((pair) => pair !== "")
    .map((pair) => {
      const at = pair.indexOf("=");
      const rawName = at === -1 ? pair : pair.slice(0, at);
      return { name: decode(rawName) ?? rawName, value: decode(at === -1 ? "" : pair.slice(at + 1)) };
    });
}

function decode(component: string): string | undefined {
  try {
    return decodeURIComponent(component.replaceAll("+", " "));
  } catch {
    return undefined;
  }
}

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
  // [t, t) is a valid, empty range; only an inverted one is a mistake.
  if (from !== undefined && to !== undefined && from > to) errors.push({ path: "to", message: "must not be before from (the range is [from, to))" });
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

/** Free text compared with stored text (a device key, a job name); "" means not given. */
export function parseTextParam(name: string, value: string | undefined, errors: ParamError[], max = MAX_TEXT): string | undefined {
  if (value === undefined || value === "") return undefined;
  const reason = value.length > max ? `at most ${max} characters` : unstorableTextReason(value);
  if (!reason) return value;
  errors.push({ path: name, message: reason });
  return undefined;
}

/** Cursors are opaque to clients: base64url of a small JSON position. */
export function encodeCursor(position: unknown): string {
  return Buffer.from(JSON.stringify(position)).toString("base64url");
}

export function decodeCursor<T>(value: string | undefined, isValid: (position: unknown) => position is T, errors: ParamError[]): T | undefined {
  if (value === undefined || value === "") return undefined;
  if (CURSOR.test(value)) {
    try {
      const position: unknown = JSON.parse(Buffer.from(value, "base64url").toString("utf8"));
      if (isValid(position)) return position;
    } catch {
      // falls through to the error below
    }
  }
  errors.push({ path: "cursor", message: "not a cursor this endpoint returned" });
  return undefined;
}

/** A position's instant, as a cursor carries it: epoch ms a timestamp column can hold. */
export const isCursorInstant = (value: unknown): value is number => typeof value === "number" && isInstantInRange(value);

/** A position's text, as a cursor carries it: text a column can hold. */
export const isCursorText = (value: unknown): value is string => typeof value === "string" && value.length <= MAX_TEXT && unstorableTextReason(value) === undefined;

// ---- how the endpoints document these parameters (OpenAPI)

export const timeParamSchema = (description: string) =>
  z
    .union([
      z.string().openapi({ format: "date-time", description: "ISO-8601 with a zone", example: "2026-11-21T10:00:00Z" }),
      z.number().int().min(MIN_INSTANT_MS).max(MAX_INSTANT_MS).openapi({ description: "Epoch milliseconds", example: 1795255200000 }),
    ])
    .openapi({ description: `${description}: ISO-8601 with a zone, or epoch milliseconds; from ${INSTANT_RANGE}` }, { unionPreferredType: "oneOf" })
    .optional();

export const LimitParamSchema = z
  .number()
  .int()
  .min(1)
  .max(MAX_LIMIT)
  .optional()
  .openapi({ description: `Items per page, 1 to ${MAX_LIMIT}`, default: DEFAULT_LIMIT, example: DEFAULT_LIMIT });

export const CursorParamSchema = z
  .string()
  .regex(CURSOR)
  .optional()
  .openapi({ description: "The `next_cursor` of the previous page, as returned (opaque)" });

export const textParamSchema = (description: string, example: string) =>
  storableText(z.string().max(MAX_TEXT))
    .optional()
    .openapi({ description: `${description}; text without U+0000 or unpaired surrogates`, example });
