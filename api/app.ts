import { OpenAPIHono } from "@hono/zod-openapi";
import type { Services } from "../lib/services.ts";
import type { AppEnv } from "./env.ts";
import { requestContext } from "./middleware/request-context.ts";
import { problem } from "./problem.ts";
import { registerHealth } from "./routes/health.ts";

export const openApiInfo = {
  openapi: "3.1.0",
  info: {
    title: "devpipe",
    version: "0.1.0",
    description: "Real-time device-event pipeline: ingest device events, query alerts, aggregates and the Parquet lake.",
  },
} as const;

/** The gateway, built around already-open services so tests can call `app.request()` in-process. */
export function createApp(services: Services) {
  const app = new OpenAPIHono<AppEnv>();
  app.use(requestContext(services));
  registerHealth(app);
  app.doc31("/openapi.json", openApiInfo);
  app.notFound((c) => problem(c, 404, `No route for ${c.req.method} ${new URL(c.req.url).pathname}`));
  app.onError((error, c) => {
    c.get("log").error("unhandled error", { error });
    return problem(c, 500, "The server failed to handle this request; it has been logged with the request id.");
  });
  return app;
}

export type App = ReturnType<typeof createApp>;
