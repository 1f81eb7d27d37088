/**
 * `bun run start`: the whole pipeline in one process, embedded mode by default: the gateway and every
 * stream job. `bun run demo` (`--demo`) adds the device simulators, which reach the gateway over HTTP
 * like any device. This is the one place that composes api/ and workers/.
 */
import { parseArgs } from "node:util";
import { startGateway } from "./api/server.ts";
import { simulate } from "./generators/cli.ts";
import { loadConfig } from "./lib/config.ts";
import { createLogger } from "./lib/log.ts";
import { exitOnStartupError, onShutdownSignal } from "./lib/process.ts";
import { closeServices, openServices } from "./lib/services.ts";
import { chainGroupOf, defaultOperators, startChain } from "./workers/jobs.ts";
import { startMaintenance } from "./workers/maintenance/index.ts";
import { assertLakeUsable } from "./lib/lake/startup.ts";
import { formatFinalSummary, readSnapshot, startStatusLine } from "./lib/status-line.ts";

/** A modest load from every domain, so a newcomer sees every part of the pipeline fill. */
const demoLoad: [domain: string, devices: number, rate: number][] = [
  ["vehicle", 25, 50],
  ["location", 20, 20],
  ["smartcity", 5, 20],
  ["iot", 20, 40],
  ["activity", 30, 40],
];

function startSimulators(url: string, keys: { key: string; scopes: string[] }[]) {
  const key = keys.find((k) => k.scopes.includes("ingest") && k.scopes.includes("admin")) ?? keys.find((k) => k.scopes.includes("ingest"));
  if (!key) throw new Error("--demo needs an API key with the ingest scope");
  for (const [domain, devices, rate] of demoLoad) {
    simulate([domain, "--devices", String(devices), "--rate", String(rate), "--duration", "0", "--url", url, "--key", key.key, "--quiet"]).catch((error: unknown) =>
      logger.error("simulator stopped", { domain, error }),
    );
  }
  logger.info("simulators started", { domains: demoLoad.map(([d]) => d) });
}

const { values: flags } = parseArgs({ options: { demo: { type: "boolean", default: false } } });
const logger = createLogger({ process: "all-in-one" });
try {
  const services = await openServices(loadConfig(), logger);
  await assertLakeUsable(services.lake);
  // The gateway first: ingest only needs the bus, so a restart takes events at once while the chain loads its
  // dedupe state (seconds for an hour of ids). /readyz checks the bus, the database and the lake, and a job that
  // fails or stalls, as before.
  const gateway = await startGateway(services);
  const stopJobs: (() => Promise<void>)[] = [];
  const operators = defaultOperators(services.config);
  const jobsStarted = startChain(operators, services).then((stop) => {
    stopJobs.push(stop, startMaintenance(services));
  });
  let status: { stop: () => void } | undefined;
  let stopping = false;
  onShutdownSignal(logger, async () => {
    stopping = true;
    status?.stop();
    try {
      await gateway.stop();
      await jobsStarted.catch(() => undefined);
      await Promise.all(stopJobs.map((stop) => stop()));
      await closeServices(services);
    } finally {
      // After the final checkpoints, so the totals hold everything the run committed.
      process.stdout.write(formatFinalSummary(readSnapshot(null), process.uptime() * 1000));
    }
  }, services.config.shutdownGraceMs);
  logger.info("listening", { url: gateway.url, mode: services.config.mode, bus: services.bus.kind, db: services.db.kind, lake: services.lake.root, jobs: operators, demo: flags.demo });
  // Printed, not logged: what a person needs to open the dashboard.
  process.stdout.write(
    [
      "",
      `devpipe ${flags.demo ? "demo " : ""}is running (${services.config.mode} mode)`,
      `  dashboard: ${gateway.url}/`,
      `  API docs:  ${gateway.url}/docs`,
      `  API key:   ${gateway.generatedKey ?? "one of your API_KEYS"}  (paste it into the dashboard once)`,
      flags.demo ? "  simulators: vehicle, location, smartcity, iot, activity; alerts and windows fill within seconds" : "",
      "",
      "",
    ].join("\n"),
  );
  await jobsStarted;
  if (!stopping) {
    logger.info("stream jobs started", { jobs: operators });
    if (flags.demo) startSimulators(gateway.url, gateway.keys);
    // The chain's committed position is its slowest operator's.
    const group = chainGroupOf(operators, services.config);
    status = startStatusLine({
      tty: process.stderr.isTTY === true && process.env.TERM !== "dumb",
      columns: () => process.stderr.columns || 80,
      write: (text) => process.stderr.write(text),
      writeLog: (line) => process.stderr.write(line),
      logger,
      intervalMs: services.config.statusIntervalMs,
      lag: async () => Math.max(0, ...(await services.bus.lag(group, services.topics.raw)).map((p) => p.lag)),
    });
  }
} catch (error) {
  exitOnStartupError(logger, error);
}
