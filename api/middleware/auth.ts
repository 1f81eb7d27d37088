import type { MiddlewareHandler } from "hono";
import type { Scope } from "../../lib/config.ts";
import type { Keyring } from "../auth/keyring.ts";
import type { AppEnv } from "../env.ts";
import { problem } from "../problem.ts";

const BEARER = /^Bearer[ ]+(\S+)\s*$/i;

/** 401 without a known `Authorization: Bearer <key>`; 403 when the key lacks `scope`. */
export function requireScope(keyring: Keyring, scope: Scope): MiddlewareHandler<AppEnv> {
  return async function requireScopeMiddleware(c, next) {
    const presented = BEARER.exec(c.req.header("authorization") ?? "")?.[1];
    const challenge = { "www-authenticate": 'Bearer realm="devpipe"' };
    if (!presented) return problem(c, 401, "Send an API key as 'Authorization: Bearer <key>'.", {}, challenge);
    const scopes = keyring.scopesOf(presented);
    if (!scopes) return problem(c, 401, "Unknown API key.", {}, challenge);
    if (!scopes.includes(scope)) return problem(c, 403, `This key lacks the '${scope}' scope.`);
    c.set("apiKey", presented);
    await next();
  };
}
