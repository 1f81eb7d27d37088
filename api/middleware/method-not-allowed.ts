import type { Hono, NotFoundHandler } from "hono";
import type { AppEnv } from "../env.ts";
import { problem } from "../problem.ts";

const METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"] as const;
/** How Hono registers `app.use()` middleware: it matches every path, so it says nothing about routes. */
const MIDDLEWARE = "ALL";

/** The methods the app's routes serve on `path`; HEAD wherever GET is, since Hono answers HEAD with the GET route. */
function allowedMethods(app: Hono<AppEnv>, path: string): string[] {
  const serves = (method: string) => app.router.match(method, path)[0].some(([[, route]]) => route.method !== MIDDLEWARE);
  return METHODS.filter(serves).flatMap((method) => (method === "GET" ? ["GET", "HEAD"] : [method]));
}

/** 404 for a path no route serves; 405 with `Allow` for a known path asked with a method it does not take. */
export function notFoundOrNotAllowed(app: Hono<AppEnv>): NotFoundHandler<AppEnv> {
  return function notFoundOrNotAllowedHandler(c) {
    const allowed = allowedMethods(app, c.req.path);
    // A route that serves this method and still ends here (`c.notFound()`) found nothing: that stays a 404.
    if (allowed.length > 0 && !allowed.includes(c.req.method)) return problem(c, 405, `${c.req.method} is not supported on ${c.req.path}; it takes ${allowed.join(", ")}.`, {}, { allow: allowed.join(", ") });
    return problem(c, 404, `No route for ${c.req.method} ${c.req.path}`);
  };
}
