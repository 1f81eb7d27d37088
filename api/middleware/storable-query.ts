import type { MiddlewareHandler } from "hono";
import type { AppEnv } from "../env.ts";
import { invalidParams, queryTextErrors } from "../query-params.ts";

/**
 * 400 when any query parameter is not percent-encoded UTF-8 or holds U+0000 or an unpaired surrogate,
 * for every route at once: such a value can only fail (or mean nothing) where it meets SQL.
 */
export function storableQuery(): MiddlewareHandler<AppEnv> {
  return async function storableQueryMiddleware(c, next) {
    const url = c.req.url;
    const start = url.indexOf("?");
    if (start !== -1) {
      const end = url.indexOf("#", start);
      const errors = queryTextErrors(url.slice(start + 1, end === -1 ? undefined : end));
      if (errors.length > 0) return invalidParams(c, errors);
    }
    await next();
  };
}
