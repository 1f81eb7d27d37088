import { parseArgs } from "node:util";
import { loadConfig } from "../lib/config.ts";
import { createLogger } from "../lib/log.ts";
import { exitOnStartupError, onShutdownSignal } from "../lib/process.ts";
import { closeServices, openServices } from "../lib/services.ts";
import { createApp } from "./app.ts";

/**
 * The gateway process. `--all` is the all-in-one of `bun run start`: the gateway plus every worker in
 * this process (embedded mode by default); `--demo` adds the device simulators.
 */
const { values: flags } = parseArgs({ options: { all: { type: "boolean", default: false }, demo: { type: "boolean", default: false } } });
const logger = createLogger({ process: flags.all ? "all-in-one" : "api" });

try {
  const config = loadConfig();
  const services = await openServices(config, logger);
  const app = createApp(services);
  const server = Bun.serve({ port: config.port, hostname: "0.0.0.0", fetch: app.fetch, idleTimeout: 60 });
  logger.info("listening", { url: `http://localhost:${server.port}`, mode: config.mode, bus: services.bus.kind, db: services.db.kind, lake: services.lake.root, all: flags.all, demo: flags.demo });
  onShutdownSignal(logger, async () => {
    await server.stop();
    await closeServices(services);
  });
} catch (error) {
  exitOnStartupError(logger, error);
}
