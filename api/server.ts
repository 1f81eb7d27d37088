import type { Services } from "../lib/services.ts";
import { createApp } from "./app.ts";
import { dashboardBundle } from "./routes/dashboard.ts";
import { createAlertHub } from "./streams/alert-hub.ts";
import { resolveApiKeys } from "./auth/bootstrap-key.ts";

/** Serves the gateway on the configured port; prints a generated admin key when API_KEYS is unset. */
export async function startGateway(services: Services) {
  const { keys, generated } = await resolveApiKeys(services.config);
  await dashboardBundle(); // a broken dashboard build stops start-up rather than the first page view
  const alertHub = createAlertHub(services.db.sql, { pollMs: services.config.sse.pollMs, logger: services.logger.child({ component: "alert-streams" }) });
  const app = createApp(services, { apiKeys: keys, alertHub });
  const server = Bun.serve({ port: services.config.port, hostname: "0.0.0.0", fetch: app.fetch, idleTimeout: services.config.httpIdleTimeoutS });
  if (generated) {
    // Printed, not logged: the one place a person sees the key they need.
    process.stdout.write(`\nNo API_KEYS set: use this admin key (stored in ${generated.path}):\n\n  ${generated.key}\n\n`);
  }
  return {
    url: `http://localhost:${server.port}`,
    keys,
    /** The admin key generated on first start (API_KEYS unset), for banners. */
    generatedKey: generated?.key,
    /** Ends the alert streams with a final event, then stops accepting and finishes open requests. */
    async stop() {
      alertHub.close();
      await server.stop();
    },
  };
}
