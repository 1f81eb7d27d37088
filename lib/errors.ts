/**
 * One error hierarchy for the whole codebase. `retriable` says whether trying the same thing again
 * may succeed; only the route layer turns these into HTTP responses.
 */
export class AppError extends Error {
  readonly code: string;
  readonly retriable: boolean;
  constructor(code: string, message: string, options: { retriable?: boolean; cause?: unknown } = {}) {
    super(message, { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
    this.retriable = options.retriable ?? false;
  }
}

/** Start-up configuration is invalid; the message names each variable and what it expects. */
export class ConfigError extends AppError {
  readonly issues: readonly { variable: string; message: string }[];
  constructor(issues: readonly { variable: string; message: string }[]) {
    super("config_invalid", `Invalid configuration:\n${issues.map((i) => `  ${i.variable}: ${i.message}`).join("\n")}`);
    this.issues = issues;
  }
}

/** The bus cannot take or serve records right now (broker down, disk full, closed). */
export class BusUnavailableError extends AppError {
  constructor(message: string, options: { cause?: unknown; retriable?: boolean } = {}) {
    super("bus_unavailable", message, { retriable: options.retriable ?? true, cause: options.cause });
  }
}

/** A request to the bus that can never succeed as made (unknown topic, bad partition). */
export class BusRequestError extends AppError {
  constructor(message: string, options: { cause?: unknown } = {}) {
    super("bus_request_invalid", message, { retriable: false, cause: options.cause });
  }
}

export class LakeError extends AppError {
  constructor(message: string, options: { cause?: unknown; retriable?: boolean } = {}) {
    super("lake_error", message, { retriable: options.retriable ?? false, cause: options.cause });
  }
}

export class DbError extends AppError {
  constructor(message: string, options: { cause?: unknown; retriable?: boolean } = {}) {
    super("db_error", message, { retriable: options.retriable ?? false, cause: options.cause });
  }
}

/** A lake query the caller got wrong: refused by the guard, failed in DuckDB, or over its time limit. */
export class QueryError extends AppError {
  constructor(message: string, options: { cause?: unknown } = {}) {
    super("query_invalid", message, { retriable: false, cause: options.cause });
  }
}

/** A stream job's sink refuses a record as it is: retrying cannot help; the record goes to events.dead. */
export class RecordRejectedError extends AppError {
  constructor(message: string, options: { cause?: unknown } = {}) {
    super("record_rejected", message, { retriable: false, cause: options.cause });
  }
}

/** The client closed the connection before its request body arrived whole; nobody is left to answer. */
export class RequestAbortedError extends AppError {
  constructor(options: { cause?: unknown } = {}) {
    super("request_aborted", "the client closed the connection before the whole body arrived", { retriable: false, cause: options.cause });
  }
}

/** A lake query ran past its deadline (QUERY_TIMEOUT_MS) and was stopped: a 400, like other query errors. */
export class QueryTimeoutError extends AppError {
  constructor(timeoutMs: number) {
    super("query_timeout", `the query ran past its time limit of ${timeoutMs} ms and was stopped`, { retriable: false });
  }
}

/** No lake query slot is free and the queue is full, or the wait for one ran out: a 429 with Retry-After. */
export class QueryRejectedError extends AppError {
  readonly retryAfterS: number;
  constructor(message: string, retryAfterS: number) {
    super("query_rejected", message, { retriable: true });
    this.retryAfterS = retryAfterS;
  }
}

/**
 * A Delta commit lost a race it cannot be reconciled with: a concurrent commit changed the table's
 * metadata or protocol, removed a file this one removes or read, or recorded the same `txn` appId at a
 * version at or past this one's. Retrying the same actions cannot help; the caller re-reads and re-plans.
 */
export class DeltaConflictError extends AppError {
  readonly table: string;
  readonly winningVersion: number;
  constructor(table: string, winningVersion: number, reason: string) {
    super("delta_conflict", `Delta commit to ${table} conflicts with version ${winningVersion}: ${reason}`, { retriable: false });
    this.table = table;
    this.winningVersion = winningVersion;
  }
}
