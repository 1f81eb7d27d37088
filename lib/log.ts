/** Structured JSON logs, one object per line: `{ time, level, msg, ...fields }`. */
export type LogLevel = "debug" | "info" | "warn" | "error";
export type LogFields = Record<string, unknown>;

const LEVELS: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export interface Logger {
  debug(msg: string, fields?: LogFields): void;
  info(msg: string, fields?: LogFields): void;
  warn(msg: string, fields?: LogFields): void;
  error(msg: string, fields?: LogFields): void;
  child(fields: LogFields): Logger;
}

function minimumLevel(): LogLevel {
  const wanted = process.env.LOG_LEVEL;
  if (wanted === "debug" || wanted === "info" || wanted === "warn" || wanted === "error") return wanted;
  return process.env.NODE_ENV === "test" ? "warn" : "info";
}

/** Error objects do not serialise with JSON.stringify; keep their name, message and stack. */
function serialise(value: unknown): unknown {
  if (value instanceof Error) return { name: value.name, message: value.message, stack: value.stack };
  if (typeof value === "bigint") return value.toString();
  return value;
}

export type LogSink = (line: string) => void;

let processSink: LogSink = (line) => process.stderr.write(line);

/**
 * Replaces where loggers without a sink of their own write (stderr by default), for the live status line
 * of `bun run start`: it clears its line, writes the log line, and draws it again. Returns the restore.
 */
export function setProcessLogSink(sink: LogSink): () => void {
  const previous = processSink;
  processSink = sink;
  return () => {
    processSink = previous;
  };
}

export function createLogger(base: LogFields = {}, sink: LogSink = (line) => processSink(line)): Logger {
  const threshold = LEVELS[minimumLevel()];
  const write = (level: LogLevel, msg: string, fields?: LogFields) => {
    if (LEVELS[level] < threshold) return;
    const record = { time: new Date().toISOString(), level, msg, ...base, ...fields };
    sink(`${JSON.stringify(record, (_key, value: unknown) => serialise(value))}\n`);
  };
  return {
    debug: (msg, fields) => write("debug", msg, fields),
    info: (msg, fields) => write("info", msg, fields),
    warn: (msg, fields) => write("warn", msg, fields),
    error: (msg, fields) => write("error", msg, fields),
    child: (fields) => createLogger({ ...base, ...fields }, sink),
  };
}

export const log = createLogger();
