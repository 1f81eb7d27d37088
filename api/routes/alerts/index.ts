import type { OpenAPIHono } from "@hono/zod-openapi";
import type { Keyring } from "../../auth/keyring.ts";
import type { AppEnv } from "../../env.ts";
import type { AlertHub } from "../../streams/alert-hub.ts";
import { createStreamSlots } from "../../streams/stream-slots.ts";
import { registerListAlerts } from "./list.ts";
import { registerAlertStream } from "./stream.ts";

export function registerAlerts(app: OpenAPIHono<AppEnv>, deps: { keyring: Keyring; hub: () => AlertHub }) {
  registerListAlerts(app, deps.keyring);
  registerAlertStream(app, { ...deps, slots: createStreamSlots() });
}
