import type { Services } from "../../lib/services.ts";
import { startRetention } from "./retention.ts";

/**
 * The database's periodic maintenance a worker process runs besides its stream jobs: table retention
 * (retention.ts; every worker process, they take turns through an advisory lock). The embedded database's
 * checkpoints and VACUUM run inside the PGlite Db itself (lib/db/pglite-maintenance.ts), whatever process
 * opens it. Resolves a function that stops it.
 */
export function startMaintenance(services: Services): () => Promise<void> {
  const stopRetention = startRetention({ db: services.db, logger: services.logger, retention: services.config.retention });
  return async () => {
    await stopRetention();
  };
}
