import { loadConfig } from "../lib/config.ts";
import { createLogger } from "../lib/log.ts";
import { exitOnStartupError, onShutdownSignal } from "../lib/process.ts";
import { closeServices, openServices } from "../lib/services.ts";
import { startGateway } from "./server.ts";
import { assertLakeUsable } from "../lib/lake/startup.ts";

/** `bun run api`: the gateway alone (services mode scales it out; the workers run elsewhere). */
const logger = createLogger({ process: "api" });
try {
  const services = await openServices(loadConfig(), logger);
  await assertLakeUsable(services.lake);
  const gateway = await startGateway(services);
  logger.info("listening", { url: gateway.url, mode: services.config.mode, bus: services.bus.kind, db: services.db.kind, lake: services.lake.root });
  onShutdownSignal(logger, async () => {
    await gateway.stop();
    await closeServices(services);
  }, services.config.shutdownGraceMs);
} catch (error) {
  exitOnStartupError(logger, error);
}
