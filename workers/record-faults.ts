import { BusRequestError, RecordRejectedError } from "../lib/errors.ts";

/**
 * Whether a failed checkpoint was refused because of what some record holds (trying the same records
 * again fails the same way), as opposed to a transient failure (a database or S3 that is down, a
 * broker that moved) that a retry can outlive. Only the first kind is worth isolating records for:
 * a transient failure must never send good records to events.dead.
 */
export function isRecordFault(error: unknown): boolean {
  if (error instanceof RecordRejectedError || error instanceof BusRequestError) return true;
  if (!(error instanceof Error)) return false;
  const code = (error as Error & { code?: unknown }).code;
  // Postgres SQLSTATE classes: 22 data exception (bad text, number out of range), 23 integrity
  // constraint, 54 program limit exceeded. Connection, resource and syntax errors are not the data's fault.
  if (error.name === "PostgresError" && typeof code === "string") return /^(22|23|54)/.test(code);
  // DuckDB (the lake writer) rejecting the values it reads.
  return /^(Invalid Input Error|Conversion Error|Out of Range Error): /.test(error.message);
}
