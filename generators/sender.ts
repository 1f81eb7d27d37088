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

/** POSTs batches to the gateway like a device fleet: keep-alive connections, retries on 503, gzip bodies on request. */
export function createSender(options: SenderOptions, stats: Stats) {
  const endpoint = `${options.url.replace(/\/$/, "")}/v1/events`;
  const headers: Record<string, string> = { "content-type": "application/json", authorization: `Bearer ${options.key}` };
  if (options.gzip) headers["content-encoding"] = "gzip";
  const maxAttempts = options.maxAttempts ?? 3;

  return async function send(batch: GeneratedEvent[]): Promise<void> {
    const json = JSON.stringify(batch);
    const body = options.gzip ? Bun.gzipSync(json) : json;
    for (let attempt = 1; ; attempt++) {
      const started = performance.now();
      let response: Response | undefined;
      try {
        response = await fetch(endpoint, { method: "POST", body, headers, signal: AbortSignal.timeout(30_000) });
      } catch {
        response = undefined;
      }
      stats.latency(performance.now() - started);
      stats.totals.requests++;
      if (response && (response.status === 202 || response.status === 422)) {
        const result = (await response.json()) as { accepted: number; rejected: number };
        stats.totals.accepted += result.accepted;
        stats.totals.rejected += result.rejected;
        return;
      }
      const retriable = !response || response.status === 503;
      if (!retriable || attempt >= maxAttempts) {
        if (response?.status === 401 || response?.status === 403) throw new Error(`the gateway refused the key (${response.status}); pass --key with an ingest key`);
        stats.totals.failed_requests++;
        stats.totals.failed_events += batch.length;
        await response?.body?.cancel();
        return;
      }
      stats.totals.retries++;
      await response?.body?.cancel();
      await Bun.sleep(Number(response?.headers.get("retry-after") ?? 1) * 1000);
    }
  };
}
