import { isRetriable } from "./errors.ts";

export interface RetryOptions {
  /** Attempts after the first one. */
  retries: number;
  initialDelayMs: number;
  maxDelayMs: number;
  /** Whether an error is worth another attempt; the default trusts `AppError.retriable`. */
  shouldRetry?: (error: unknown) => boolean;
  onRetry?: (error: unknown, attempt: number, delayMs: number) => void;
  signal?: AbortSignal;
}

export const defaultRetry: RetryOptions = { retries: 5, initialDelayMs: 100, maxDelayMs: 5_000 };

/** "Full jitter" backoff: a uniform delay in [0, min(max, initial * 2^attempt)). */
export function backoffDelay(attempt: number, options: Pick<RetryOptions, "initialDelayMs" | "maxDelayMs">, random = Math.random): number {
  const ceiling = Math.min(options.maxDelayMs, options.initialDelayMs * 2 ** attempt);
  return Math.floor(random() * ceiling);
}

/** Runs `task` until it succeeds, fails with an error not worth retrying, or runs out of attempts. */
export async function retry<T>(task: (attempt: number) => Promise<T>, options: RetryOptions = defaultRetry): Promise<T> {
  const shouldRetry = options.shouldRetry ?? isRetriable;
  for (let attempt = 0; ; attempt++) {
    try {
      return await task(attempt);
    } catch (error) {
      if (attempt >= options.retries || !shouldRetry(error) || options.signal?.aborted) throw error;
      const delayMs = backoffDelay(attempt, options);
      options.onRetry?.(error, attempt + 1, delayMs);
      await Bun.sleep(delayMs);
    }
  }
}
