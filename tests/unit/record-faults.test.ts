import { describe, expect, test } from "bun:test";
import { BusRequestError, BusUnavailableError, DbError, RecordRejectedError } from "../../lib/errors.ts";
import { isRecordFault } from "../../workers/record-faults.ts";

/** What sends records to events.dead (the data's fault) and what is retried (the infrastructure's). */
const postgresError = (code: string, message = "postgres said no") => Object.assign(Object.defineProperty(new Error(message), "name", { value: "PostgresError" }), { code });

describe("isRecordFault", () => {
  test("Postgres data, integrity and limit errors are the record's fault", () => {
    expect(isRecordFault(postgresError("22021", 'invalid byte sequence for encoding "UTF8": 0x00'))).toBe(true);
    expect(isRecordFault(postgresError("22P05", "unsupported Unicode escape sequence"))).toBe(true);
    expect(isRecordFault(postgresError("22003", "integer out of range"))).toBe(true);
    expect(isRecordFault(postgresError("23502", "null value in column"))).toBe(true);
    expect(isRecordFault(postgresError("54000", "index row size exceeds maximum"))).toBe(true);
  });

  test("connection, resource, syntax and serialisation errors are retried", () => {
    for (const code of ["08006", "57P01", "53300", "40001", "40P01", "42P01", "42601"]) expect(isRecordFault(postgresError(code))).toBe(false);
    expect(isRecordFault(Object.assign(new Error("connect ECONNREFUSED 127.0.0.1:5432"), { code: "ECONNREFUSED" }))).toBe(false);
    expect(isRecordFault(new DbError("database closed", { retriable: true }))).toBe(false);
    expect(isRecordFault(new BusUnavailableError("broker down"))).toBe(false);
  });

  test("DuckDB refusing the values it reads is the record's fault; an S3 failure is not", () => {
    expect(isRecordFault(new Error("Invalid Input Error: Malformed JSON in file x, at byte 12 in record/value 3: no low surrogate."))).toBe(true);
    expect(isRecordFault(new Error("Conversion Error: Could not convert string 'x' to INT32"))).toBe(true);
    expect(isRecordFault(new Error("IO Error: Could not write file"))).toBe(false);
    expect(isRecordFault(Object.assign(new Error("socket hang up"), { name: "TimeoutError" }))).toBe(false);
  });

  test("errors that say so are the record's fault", () => {
    expect(isRecordFault(new RecordRejectedError("too big"))).toBe(true);
    expect(isRecordFault(new BusRequestError("record larger than the broker accepts"))).toBe(true);
    expect(isRecordFault("a string")).toBe(false);
  });
});
