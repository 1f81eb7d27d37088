import { ApiError, ConnectionError, createClient, type SendOptions } from "../lib/client/index.ts";
import type { GeneratedEvent } from "./domains/index.ts";
import type { Stats } from "./stats.ts";

export interface SenderOptions {
  url: string;
  key: string;
  /** Attempts for a batch answered 503 or not answered at all, honouring Retry-After. */
  maxAttempts?: number;
  /** Compress each request body with gzip and send `Content-Encoding: gzip`. */
  gzip?: boolean;
}

/**
 * POSTs batches to the gateway like a device fleet, through the typed client: keep-alive connections,
 * retries on 503 (after Retry-After) and on no answer, gzip bodies on request. Every attempt counts as a
 * request (latency included); a batch that still fails counts as failed rather than stopping the run,
 * except a refused key, which no retry can fix.
 */
export function createSender(options: SenderOptions, stats: Stats) {
  const client = createClient({ url: options.url, key: options.key });
  const sendOptions: SendOptions = {
    gzip: options.gzip,
    maxAttempts: options.maxAttempts ?? 3,
    onAttempt: ({ ms, retryInMs }) => {
      stats.latency(ms);
      stats.totals.requests++;
      if (retryInMs !== undefined) stats.totals.retries++;
    },
  };

  return async function send(batch: GeneratedEvent[]): Promise<void> {
    try {
      const result = await client.sendEvents(batch, sendOptions);
      stats.totals.accepted += result.accepted;
      stats.totals.rejected += result.rejected;
    } catch (error) {
      if (error instanceof ApiError && (error.status === 401 || error.status === 403)) throw new Error(`the gateway refused the key (${error.status}); pass --key with an ingest key`);
      if (!(error instanceof ApiError || error instanceof ConnectionError)) throw error;
      stats.totals.failed_requests++;
      stats.totals.failed_events += batch.length;
    }
  };
}
