import type { MiddlewareHandler } from "hono";
import type { LogFields, Logger } from "../../lib/log.ts";
import { httpRequestSeconds } from "../../lib/metrics.ts";
import type { Services } from "../../lib/services.ts";
import type { AppEnv } from "../env.ts";

const CLIENT_REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

/** The request's logger: the child carrying its request id is made only if something is logged. */
class RequestLog implements Logger {
  private logger: Logger | undefined;
  constructor(
    private readonly base: Logger,
    private readonly requestId: string,
  ) {}
  private get log(): Logger {
    this.logger ??= this.base.child({ request_id: this.requestId });
    return this.logger;
  }
  debug(msg: string, fields?: LogFields) {
    this.log.debug(msg, fields);
  }
  info(msg: string, fields?: LogFields) {
    this.log.info(msg, fields);
  }
  warn(msg: string, fields?: LogFields) {
    this.log.warn(msg, fields);
  }
  error(msg: string, fields?: LogFields) {
    this.log.error(msg, fields);
  }
  child(fields: LogFields): Logger {
    return this.log.child(fields);
  }
}

/**
 * Puts the services, a request id (the client's `x-request-id` when well-formed, else a UUIDv7) and a
 * logger carrying it on the context, and echoes the id in the response. One log line per request only
 * with ACCESS_LOG=1: failures are logged where they happen (unhandled errors by app.onError, refused
 * writes by the ingest route), each with the request id.
 */
export function requestContext(services: Services): MiddlewareHandler<AppEnv> {
  const accessLog = services.config.accessLog;
  // One latency series per method, route and status: looked up by a string rather than keyed per request.
  const series = new Map<string, (seconds: number) => void>();
  const observe = (method: string, route: string, status: number, seconds: number) => {
    const key = `${method} ${route} ${status}`;
    let observer = series.get(key);
    if (!observer) {
      // The route pattern, not the path, keeps the label set small (/v1/dims/:name, not every name).
      observer = httpRequestSeconds.series({ method, route, status: String(status) });
      series.set(key, observer);
    }
    observer(seconds);
  };
  return async function requestContextMiddleware(c, next) {
    const given = c.req.header("x-request-id");
    const requestId = given && CLIENT_REQUEST_ID.test(given) ? given : Bun.randomUUIDv7();
    const log = new RequestLog(services.logger, requestId);
    c.set("services", services);
    c.set("requestId", requestId);
    c.set("log", log);
    const started = performance.now();
    await next();
    c.header("x-request-id", requestId);
    const elapsedMs = performance.now() - started;
    const status = c.res.status;
    observe(c.req.method, c.req.routePath, status, elapsedMs / 1000);
    if (accessLog) log.info("request", { method: c.req.method, path: c.req.path, status, duration_ms: Math.round(elapsedMs * 100) / 100 });
  };
}
