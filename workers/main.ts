import { loadConfig } from "../lib/config.ts";
import { createLogger } from "../lib/log.ts";
import { exitOnStartupError, onShutdownSignal } from "../lib/process.ts";
import { closeServices, openServices } from "../lib/services.ts";
import { jobs } from "./jobs.ts";

/**
 * `bun run worker <job>` runs one stream job alone (services mode scales out this way);
 * `bun run worker all` hosts every registered job in this process.
 */
const name = process.argv[2];
const selected = name === "all" ? Object.values(jobs) : name && jobs[name] ? [jobs[name]] : undefined;
if (!selected) {
  const known = Object.keys(jobs);
  process.stderr.write(`usage: bun run worker <job>|all\n${name ? `unknown job "${name}". ` : ""}jobs: ${known.length > 0 ? known.join(", ") : "(none registered in this build)"}\n`);
  process.exit(2);
}

const logger = createLogger({ process: "worker", jobs: selected.map((j) => j.name) });
try {
  const services = await openServices(loadConfig(), logger);
  const stops = await Promise.all(selected.map((job) => job.start(services)));
  logger.info("worker started", { mode: services.config.mode, jobs: selected.map((j) => j.name) });
  onShutdownSignal(logger, async () => {
    await Promise.all(stops.map((stop) => stop()));
    await closeServices(services);
  });
} catch (error) {
  exitOnStartupError(logger, error);
}
