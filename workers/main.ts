import { loadConfig } from "../lib/config.ts";
import { createLogger } from "../lib/log.ts";
import { PROMETHEUS_CONTENT_TYPE, registry } from "../lib/metrics.ts";
import { exitOnStartupError, onShutdownSignal } from "../lib/process.ts";
import { closeServices, openServices } from "../lib/services.ts";
import { assertLakeUsable } from "../lib/lake/startup.ts";
import { defaultOperators, jobs, startChain } from "./jobs.ts";
import { startMaintenance } from "./maintenance/index.ts";

/**
 * `bun run worker all` chains every operator on one consumer of events.raw (less events.enriched when
 * ENRICHED_TOPIC=off); `bun run worker <job>[,<job>…]` chains only those. Services mode scales out by
 * running more processes with the same selection: they share the partitions.
 */
const name = process.argv[2];
const names = name === "all" ? undefined : name?.split(",");
if (!name || (names && (names.length === 0 || names.some((n) => !jobs[n])))) {
  const known = Object.keys(jobs);
  process.stderr.write(`usage: bun run worker <job>[,<job>…]|all\n${name ? `unknown job "${name}". ` : ""}jobs: ${known.length > 0 ? known.join(", ") : "(none registered in this build)"}\n`);
  process.exit(2);
}

const logger = createLogger({ process: "worker", jobs: names ?? "all" });
try {
  const services = await openServices(loadConfig(), logger);
  await assertLakeUsable(services.lake);
  const selected = names ?? defaultOperators(services.config);
  const stops = [await startChain(selected, services), startMaintenance(services)];
  // This process's own figures (flush durations, open windows); consumer lag is on the gateway's /metrics.
  const metricsPort = services.config.metricsPort;
  const metrics = metricsPort === undefined ? undefined : Bun.serve({ port: metricsPort, fetch: async (request) => (new URL(request.url).pathname === "/metrics" ? new Response(await registry.render(), { headers: { "content-type": PROMETHEUS_CONTENT_TYPE } }) : new Response("not found", { status: 404 })) });
  logger.info("worker started", { mode: services.config.mode, jobs: selected, metrics_port: metrics?.port });
  onShutdownSignal(logger, async () => {
    await metrics?.stop();
    await Promise.all(stops.map((stop) => stop()));
    await closeServices(services);
  }, services.config.shutdownGraceMs);
} catch (error) {
  exitOnStartupError(logger, error);
}
