import { loadConfig } from "../lib/config.ts";
import { createLogger } from "../lib/log.ts";
import { exitOnStartupError, onShutdownSignal } from "../lib/process.ts";
import { closeServices, openServices } from "../lib/services.ts";
import { jobs } from "./jobs.ts";

/** `bun run worker <job>`: runs one stream job alone (services mode scales out this way). */
const name = process.argv[2];
const job = name ? jobs[name] : undefined;
if (!job) {
  const known = Object.keys(jobs);
  process.stderr.write(`usage: bun run worker <job>\n${name ? `unknown job "${name}". ` : ""}jobs: ${known.length > 0 ? known.join(", ") : "(none registered in this build)"}\n`);
  process.exit(2);
}

const logger = createLogger({ process: "worker", job: job.name });
try {
  const services = await openServices(loadConfig(), logger);
  const stop = await job.start(services);
  logger.info("job started", { mode: services.config.mode });
  onShutdownSignal(logger, async () => {
    await stop();
    await closeServices(services);
  });
} catch (error) {
  exitOnStartupError(logger, error);
}
