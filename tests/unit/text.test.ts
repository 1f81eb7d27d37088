import { describe, expect, test } from "bun:test";
import { z } from "zod";
import { CarColorSchema, CarModelSchema, CarSchema, dimensions } from "../../lib/dims.ts";
import { bigintId, integerId, isStorableText, PG_INTEGER_MAX, STORABLE_TEXT_PATTERN, storableText, unstorableTextReason } from "../../lib/events/storable.ts";

/** The one refinement every text field carries: valid Unicode without U+0000; and the id ranges of the columns. */
const storable = ["", "plain", "café 東京", "🚗 emoji pair", "\uD83D\uDE97", "tab\tand\nnewline", "\u0001 control but not NUL", "\uFFFF"];
const unstorable: [string, RegExp][] = [
  ["bad\u0000", /U\+0000 \(NUL\) at index 3/],
  ["\u0000", /U\+0000/],
  ["s-\uD800", /unpaired surrogate U\+D800 at index 2/],
  ["\uDC00x", /unpaired surrogate U\+DC00 at index 0/],
  ["\uDE97\uD83D", /unpaired surrogate U\+DE97 at index 0/],
  // The index counts UTF-16 code units, as a JS or Java string does: the emoji before it takes two.
  ["ok 🚗 then \uD83D", /unpaired surrogate U\+D83D at index 11/],
];

describe("storable text", () => {
  test("accepts well-formed text, emoji pairs and every other control character", () => {
    for (const value of storable) {
      expect(isStorableText(value)).toBe(true);
      expect(unstorableTextReason(value)).toBeUndefined();
    }
  });

  test("refuses U+0000 and unpaired surrogates, naming the character and where it is", () => {
    for (const [value, reason] of unstorable) {
      expect(isStorableText(value)).toBe(false);
      expect(unstorableTextReason(value)).toMatch(reason);
    }
  });

  test("as a zod refinement: the issue carries that reason; other checks still apply", () => {
    const schema = storableText(z.string().max(5));
    expect(schema.safeParse("fine").success).toBe(true);
    const nul = schema.safeParse("a\u0000");
    expect(nul.success).toBe(false);
    expect(nul.error?.issues[0]?.message).toMatch(/U\+0000 \(NUL\) at index 1/);
    expect(schema.safeParse("toolong").error?.issues[0]?.code).toBe("too_big");
  });

  test("the documented pattern says the same as the check, read with or without the u flag", () => {
    for (const flags of ["", "u"]) {
      const pattern = new RegExp(STORABLE_TEXT_PATTERN, flags);
      for (const value of storable) expect(pattern.test(value)).toBe(true);
      for (const [value] of unstorable) expect(pattern.test(value)).toBe(false);
    }
    expect(z.toJSONSchema(storableText(z.string()).describe("a name"))).toMatchObject({ type: "string", pattern: STORABLE_TEXT_PATTERN, description: "a name" });
  });

  test("every text field of every dimension refuses U+0000 and lone surrogates at its own path", () => {
    const rows: Record<keyof typeof dimensions, Record<string, unknown>> = {
      car_models: { model_id: 1, car_brand: "Toyota", car_model: "Corolla" },
      car_colors: { color_id: 1, color_name: "Black" },
      cars: { car_id: 1, driver_id: 1, model_id: 1, color_id: 1 },
    };
    let checked = 0;
    for (const [name, { schema }] of Object.entries(dimensions)) {
      const row = rows[name as keyof typeof dimensions];
      expect(schema.safeParse(row).success).toBe(true);
      for (const [field, value] of Object.entries(row)) {
        if (typeof value !== "string") continue;
        for (const bad of ["x\u0000", "x\uD800"]) {
          expect(schema.safeParse({ ...row, [field]: bad }).error?.issues.map((i) => i.path.join("."))).toEqual([field]);
          checked++;
        }
      }
    }
    expect(checked).toBe(6);
  });
});

describe("integer ids fit their columns", () => {
  test("integer columns: 0 to 2147483647; bigint columns: 0 to 2^53 − 1 (exact in JSON)", () => {
    expect(integerId("x").safeParse(PG_INTEGER_MAX).success).toBe(true);
    expect(integerId("x").safeParse(PG_INTEGER_MAX + 1).success).toBe(false);
    expect(integerId("x").safeParse(-1).success).toBe(false);
    expect(bigintId("x").safeParse(Number.MAX_SAFE_INTEGER).success).toBe(true);
    expect(bigintId("x").safeParse(Number.MAX_SAFE_INTEGER + 1).success).toBe(false);
  });

  test("each dimension id is bounded by its column in sql/002_dims.sql", async () => {
    const ddl = await Bun.file(new URL("../../sql/002_dims.sql", import.meta.url)).text();
    const columnType = (table: string, column: string) => new RegExp(`create table if not exists ${table} \\(([^;]*?)\\);`, "s").exec(ddl)?.[1]?.match(new RegExp(`\\b${column}\\s+(integer|bigint)\\b`))?.[1];
    const bounds = { integer: PG_INTEGER_MAX, bigint: Number.MAX_SAFE_INTEGER };
    const schemas = { car_models: CarModelSchema, car_colors: CarColorSchema, cars: CarSchema };
    for (const [table, schema] of Object.entries(schemas)) {
      for (const [column, field] of Object.entries(schema.shape)) {
        const type = columnType(table, column);
        if (type !== "integer" && type !== "bigint") continue;
        expect([table, column, z.toJSONSchema(field as z.ZodType)]).toEqual([table, column, expect.objectContaining({ type: "integer", minimum: 0, maximum: bounds[type] })]);
      }
    }
    expect(columnType("car_colors", "color_id")).toBe("integer");
    expect(columnType("cars", "car_id")).toBe("bigint");
  });
});
