import type { Logger } from "../log.ts";
import { backoffDelay } from "../retry.ts";
import type { PartitionOffset } from "./types.ts";

/**
 * Runs a partition assignment handler (onAssign) until it succeeds, with a jittered backoff between
 * attempts, for as long as `current()` holds: a later rebalance (or a stop) replaces the assignment, and
 * its own handler runs instead. Both buses use it, so that no record of an assignment is delivered before
 * its handler has said where each partition starts, whatever the handler's error.
 *
 * Resolves with the positions the handler chose, or undefined when the assignment stopped being current
 * before it succeeded (the caller then applies nothing).
 */
export async function runAssignmentHandler(
  handler: () => Promise<PartitionOffset[]>,
  options: { current: () => boolean; logger: Logger; group: string },
): Promise<PartitionOffset[] | undefined> {
  for (let attempt = 1; options.current(); attempt++) {
    try {
      return await handler();
    } catch (error) {
      const delayMs = backoffDelay(Math.min(attempt, 8), { initialDelayMs: 100, maxDelayMs: 5_000 });
      options.logger.error("partition assignment handler failed; it runs again", { group: options.group, attempt, delay_ms: delayMs, error });
      await Bun.sleep(delayMs);
    }
  }
  return undefined;
}
