import type { OpenAPIHono } from "@hono/zod-openapi";
import type { Keyring } from "../../auth/keyring.ts";
import type { AppEnv } from "../../env.ts";
import { registerGetDimension } from "./get.ts";
import { registerPutDimension } from "./put.ts";

export function registerDims(app: OpenAPIHono<AppEnv>, keyring: Keyring) {
  registerPutDimension(app, keyring);
  registerGetDimension(app, keyring);
}
