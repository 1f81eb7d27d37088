import type { MiddlewareHandler } from "hono";
import { httpRequestSeconds } from "../../lib/metrics.ts";
import type { Services } from "../../lib/services.ts";
import type { AppEnv } from "../env.ts";

const CLIENT_REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

/**
 * Puts the services, a request id (the client's `x-request-id` when well-formed, else a UUIDv7) and a
 * logger carrying it on the context; echoes the id in the response and logs one line per request.
 */
export function requestContext(services: Services): MiddlewareHandler<AppEnv> {
  return async function requestContextMiddleware(c, next) {
    const given = c.req.header("x-request-id");
    const requestId = given && CLIENT_REQUEST_ID.test(given) ? given : Bun.randomUUIDv7();
    const log = services.logger.child({ request_id: requestId });
    c.set("services", services);
    c.set("requestId", requestId);
    c.set("log", log);
    const started = performance.now();
    await next();
    c.header("x-request-id", requestId);
    // The route pattern, not the path, keeps the label set small (/v1/dims/:name, not every name).
    httpRequestSeconds.observe({ method: c.req.method, route: c.req.routePath, status: String(c.res.status) }, (performance.now() - started) / 1000);
    log.info("request", { method: c.req.method, path: c.req.path, status: c.res.status, duration_ms: Math.round((performance.now() - started) * 100) / 100 });
  };
}
