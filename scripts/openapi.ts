/**
 * Writes openapi/openapi.json from the routes (`bun run openapi`). The document depends only on the
 * route definitions, so the app is built on placeholder services that are never called.
 */
import { resolve } from "node:path";
import { openApiDocument } from "../api/openapi.ts";

const path = resolve(import.meta.dir, "../openapi/openapi.json");
await Bun.write(path, `${JSON.stringify(openApiDocument(), null, 2)}\n`);
console.log(`wrote ${path}`);
