import { describe, expect, test } from "bun:test";
import { decodeCursor, encodeCursor, isCursorInstant, isCursorText, type ParamError, parseLimit, parseRange, parseTextParam, queryTextErrors } from "../../api/query-params.ts";
import { INSTANT_RANGE } from "../../lib/time.ts";

/** The query-string rules every list endpoint shares. */
const collect = <T>(parse: (errors: ParamError[]) => T) => {
  const errors: ParamError[] = [];
  const value = parse(errors);
  return { value, errors };
};

describe("query text", () => {
  test("U+0000 and percent-encoding that is not UTF-8 (a lone surrogate, an overlong NUL, a stray byte) are named", () => {
    expect(queryTextErrors("key=%00&rule=speeding")).toEqual([{ path: "key", message: expect.stringContaining("U+0000") }]);
    expect(queryTextErrors("job=%ED%A0%80&status=%C0%80&cursor=%FF&type=a%00b").map((e) => e.path)).toEqual(["job", "status", "cursor", "type"]);
    expect(queryTextErrors("job=%ED%A0%80")[0]?.message).toBe("not valid percent-encoded UTF-8");
  });

  test("ordinary values, pluses, empty values and encoded unicode pass", () => {
    expect(queryTextErrors("key=caf%C3%A9+%F0%9F%9A%97&from=&flag&to=2026-11-21T10%3A00%3A00%2B01%3A00&&")).toEqual([]);
  });

  test("a free-text parameter: empty means absent; too long or unstorable is an error", () => {
    expect(collect((e) => parseTextParam("key", "", e))).toEqual({ value: undefined, errors: [] });
    expect(collect((e) => parseTextParam("key", "42", e))).toEqual({ value: "42", errors: [] });
    expect(collect((e) => parseTextParam("key", "x".repeat(257), e)).errors).toEqual([{ path: "key", message: "at most 256 characters" }]);
    expect(collect((e) => parseTextParam("job", "a\u0000", e)).errors[0]?.path).toBe("job");
  });
});

describe("time range and limit", () => {
  test("from/to outside years 0001–9999 are 400s that state the range, never values handed to SQL", () => {
    const { value, errors } = collect((e) => parseRange({ from: "-8640000000000000", to: "8640000000000000" }, e));
    expect(value).toEqual({ from: undefined, to: undefined });
    expect(errors).toEqual([
      { path: "from", message: `outside the accepted range ${INSTANT_RANGE}` },
      { path: "to", message: `outside the accepted range ${INSTANT_RANGE}` },
    ]);
    expect(collect((e) => parseRange({ from: "2026-11-21T11:00:00Z", to: "2026-11-21T10:00:00Z" }, e)).errors[0]?.path).toBe("to");
  });

  test("limit is an integer from 1 to 10000", () => {
    for (const bad of ["0", "10001", "-1", "1.5", "1e3", "ten", " 5"]) expect([bad, collect((e) => parseLimit(bad, e)).errors.length]).toEqual([bad, 1]);
    expect(collect((e) => parseLimit("10000", e))).toEqual({ value: 10_000, errors: [] });
    expect(collect((e) => parseLimit(undefined, e)).value).toBe(100);
  });
});

describe("cursors", () => {
  type Position = { t: number; k: string };
  const isPosition = (value: unknown): value is Position => typeof value === "object" && value !== null && isCursorInstant((value as Position).t) && isCursorText((value as Position).k);
  const decode = (value: string) => collect((e) => decodeCursor(value, isPosition, e));

  test("a cursor this endpoint issued round-trips", () => {
    expect(decode(encodeCursor({ t: 1795262400000, k: "sensor-1" }))).toEqual({ value: { t: 1795262400000, k: "sensor-1" }, errors: [] });
  });

  test("anything else is refused: other alphabets, junk that base64 would half-decode, positions SQL cannot take", () => {
    const refused = [
      "not a cursor!",
      `${encodeCursor({ t: 1, k: "a" })}!!`,
      "x".repeat(1025),
      encodeCursor({ t: 9e15, k: "a" }),
      encodeCursor({ t: -8_640_000_000_000_000, k: "a" }),
      encodeCursor({ t: 1, k: "a\u0000" }),
      encodeCursor({ t: 1, k: "\uD800" }),
      encodeCursor([1, 2]),
      encodeCursor(null),
    ];
    for (const cursor of refused) expect([cursor, decode(cursor).errors]).toEqual([cursor, [{ path: "cursor", message: "not a cursor this endpoint returned" }]]);
  });
});
