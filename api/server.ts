import type { Services } from "../lib/services.ts";
import { createApp } from "./app.ts";
import { resolveApiKeys } from "./auth/bootstrap-key.ts";

/** Serves the gateway on the configured port; prints a generated admin key when API_KEYS is unset. */
export async function startGateway(services: Services) {
  const { keys, generated } = await resolveApiKeys(services.config);
  const app = createApp(services, { apiKeys: keys });
  const server = Bun.serve({ port: services.config.port, hostname: "0.0.0.0", fetch: app.fetch, idleTimeout: 60 });
  if (generated) {
    // Printed, not logged: the one place a person sees the key they need.
    process.stdout.write(`\nNo API_KEYS set: use this admin key (stored in ${generated.path}):\n\n  ${generated.key}\n\n`);
  }
  return { url: `http://localhost:${server.port}`, keys, stop: () => server.stop() };
}
