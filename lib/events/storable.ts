import { z } from "zod";

/**
 * Values every sink can store. Postgres `text` refuses U+0000, and the JSON and Parquet writers refuse
 * a UTF-16 surrogate without its pair; integers must fit the column that keeps them.
 */

/** Text every sink can store: well-formed UTF-16 (every surrogate in a pair) without U+0000. */
export const isStorableText = (value: string) => value.isWellFormed() && !value.includes("\u0000");

/**
 * The same rule as a JSON Schema `pattern`, for the OpenAPI document: it reads the same as an ECMA-262
 * regex with or without the `u` flag and as a Python one (a pair is either one astral code point or
 * matched by the second branch; a lone surrogate or U+0000 matches neither).
 */
export const STORABLE_TEXT_PATTERN = "^(?:[^\\u0000\\uD800-\\uDFFF]|[\\uD800-\\uDBFF][\\uDC00-\\uDFFF])*$";

const hex = (unit: number) => `U+${unit.toString(16).toUpperCase().padStart(4, "0")}`;

/** Why `value` cannot be stored, naming the first offending character and its position; undefined when it can. */
export function unstorableTextReason(value: string): string | undefined {
  for (let i = 0; i < value.length; i++) {
    const unit = value.charCodeAt(i);
    if (unit === 0) return `contains U+0000 (NUL) at index ${i}; text must be valid Unicode without U+0000`;
    if (unit < 0xd800 || unit > 0xdfff) continue;
    const next = value.charCodeAt(i + 1);
    if (unit <= 0xdbff && next >= 0xdc00 && next <= 0xdfff) {
      i++;
      continue;
    }
    return `contains an unpaired surrogate ${hex(unit)} at index ${i}; text must be valid Unicode`;
  }
  return undefined;
}

/** The refinement every text field of the contract carries (event fields, dims, query parameters). */
export function storableText<S extends z.ZodString>(schema: S): S {
  return schema.refine(isStorableText, { error: (issue) => (typeof issue.input === "string" ? unstorableTextReason(issue.input) : undefined) }).meta({ pattern: STORABLE_TEXT_PATTERN });
}

/** The largest value of a Postgres `integer` column. */
export const PG_INTEGER_MAX = 2_147_483_647;

/** An id kept in a Postgres `integer` column. */
export const integerId = (description: string) => z.number().int().min(0).max(PG_INTEGER_MAX).describe(`${description}, 0 to ${PG_INTEGER_MAX}`);

/**
 * An id kept in a Postgres `bigint` or a lake BIGINT column. Those hold more, but a JSON number is exact
 * only up to 2^53 − 1, so that is the bound.
 */
export const bigintId = (description: string) => z.number().int().min(0).max(Number.MAX_SAFE_INTEGER).describe(`${description}, 0 to ${Number.MAX_SAFE_INTEGER}`);
