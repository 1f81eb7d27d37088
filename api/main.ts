import { parseArgs } from "node:util";
import { loadConfig } from "../lib/config.ts";
import { createLogger } from "../lib/log.ts";
import { exitOnStartupError, onShutdownSignal } from "../lib/process.ts";
import { closeServices, openServices } from "../lib/services.ts";
import { createApp } from "./app.ts";
import { resolveApiKeys } from "./auth/bootstrap-key.ts";

/**
 * The gateway process. `--all` is the all-in-one of `bun run start`: the gateway plus every worker in
 * this process (embedded mode by default); `--demo` adds the device simulators.
 */
const { values: flags } = parseArgs({ options: { all: { type: "boolean", default: false }, demo: { type: "boolean", default: false } } });
const logger = createLogger({ process: flags.all ? "all-in-one" : "api" });

try {
  const config = loadConfig();
  const { keys, generated } = await resolveApiKeys(config);
  const services = await openServices(config, logger);
  const app = createApp(services, { apiKeys: keys });
  const server = Bun.serve({ port: config.port, hostname: "0.0.0.0", fetch: app.fetch, idleTimeout: 60 });
  logger.info("listening", { url: `http://localhost:${server.port}`, mode: config.mode, bus: services.bus.kind, db: services.db.kind, lake: services.lake.root, all: flags.all, demo: flags.demo });
  if (generated) {
    // Printed, not logged: the one place a person sees the key they need.
    process.stdout.write(`\nNo API_KEYS set: use this admin key (stored in ${generated.path}):\n\n  ${generated.key}\n\n`);
  }
  onShutdownSignal(logger, async () => {
    await server.stop();
    await closeServices(services);
  });
} catch (error) {
  exitOnStartupError(logger, error);
}
