import { ConfigError } from "./errors.ts";
import type { Logger } from "./log.ts";

/**
 * Runs `shutdown` once on SIGTERM or SIGINT, then exits 0 (1 when shutdown fails or outlasts
 * `graceMs`). A supervisor that signals a whole process group (systemd, docker, a shell) makes a
 * child of `bun run` see SIGTERM twice, so a repeated SIGTERM never cuts a shutdown short; a second
 * SIGINT (Ctrl-C again) does, and so does the grace period. One Ctrl-C in a terminal reaches a child of
 * `bun run` twice too (from the terminal and forwarded by bun), within milliseconds: a SIGINT within
 * REPEATED_SIGNAL_MS of the first counts as the same one.
 */
const REPEATED_SIGNAL_MS = 500;

export function onShutdownSignal(logger: Logger, shutdown: (signal: string) => Promise<void>, graceMs = 30_000) {
  let stopping = false;
  let firstAt = 0;
  const handle = (signal: NodeJS.Signals) => {
    if (stopping) {
      if (signal === "SIGINT" && performance.now() - firstAt > REPEATED_SIGNAL_MS) {
        logger.warn("second interrupt; exiting now without finishing the shutdown", { signal });
        process.exit(1);
      }
      logger.info("already shutting down; signal ignored", { signal });
      return;
    }
    stopping = true;
    firstAt = performance.now();
    logger.info("shutting down", { signal, grace_ms: graceMs });
    const timer = setTimeout(() => {
      logger.error("shutdown took too long; exiting", { grace_ms: graceMs });
      process.exit(1);
    }, graceMs);
    shutdown(signal).then(
      () => {
        clearTimeout(timer);
        logger.info("stopped", { signal });
        process.exit(0);
      },
      (error: unknown) => {
        logger.error("shutdown failed", { error });
        process.exit(1);
      },
    );
  };
  process.on("SIGTERM", handle);
  process.on("SIGINT", handle);
}

/** Start-up failures: a configuration error prints its message alone, anything else is logged. */
export function exitOnStartupError(logger: Logger, error: unknown): never {
  if (error instanceof ConfigError) process.stderr.write(`${error.message}\n`);
  else logger.error("start-up failed", { error });
  process.exit(1);
}
