import type { OpenAPIHono } from "@hono/zod-openapi";
import type { Keyring } from "../../auth/keyring.ts";
import type { AppEnv } from "../../env.ts";
import { registerListAlerts } from "./list.ts";

export function registerAlerts(app: OpenAPIHono<AppEnv>, keyring: Keyring) {
  registerListAlerts(app, keyring);
}
