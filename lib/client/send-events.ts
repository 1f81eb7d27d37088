import { ApiError, apiErrorOf, ConnectionError } from "./errors.ts";
import type { Http } from "./http.ts";
import type { IngestEvent, IngestResult } from "./types.ts";
import { sleep } from "./wait.ts";

export interface SendOptions {
  /** Compress the body with gzip (`Content-Encoding: gzip`). */
  gzip?: boolean;
  /** Attempts in all, the first included, while the answer is a 503 or there is none. Default 3. */
  maxAttempts?: number;
  /** Ends the attempts and waits at once; the promise rejects with the signal's reason. */
  signal?: AbortSignal;
  /** Each attempt gives up (and counts as unanswered) after this long. Default 30 s. */
  timeoutMs?: number;
  /** The wait before retrying after no answer, or a 503 without Retry-After. Default 1 s. */
  retryDelayMs?: number;
  /** A longer Retry-After is cut to this. Default 60 s. */
  maxRetryDelayMs?: number;
  /** Called after each attempt: for counters and latency histograms. */
  onAttempt?: (report: AttemptReport) => void;
}

export interface AttemptReport {
  attempt: number;
  /** The answer's status; undefined when none came. */
  status: number | undefined;
  /** From sending to the end of the answer (or the failure). */
  ms: number;
  /** Set when another attempt follows after this wait. */
  retryInMs: number | undefined;
}

/** The 202 or 422 body: `status` tells them apart (202 when at least one record was accepted). */
export type SendResult = IngestResult & { status: 202 | 422; attempts: number };

type Attempt = { done: SendResult } | { retryable: ApiError | ConnectionError; waitMs: number };

/**
 * POST /v1/events: one event, an array of them, or an NDJSON string. A 503 (the bus cannot take writes;
 * nothing was accepted) and a request that got no answer are retried, after Retry-After or
 * `retryDelayMs`, up to `maxAttempts`; then the last `ApiError` or `ConnectionError` is thrown. Any other
 * error status throws an `ApiError` at once. Retrying a request whose answer was lost can send its
 * records twice: give them an `event_id` and the gateway stores and counts them once.
 */
export async function sendEvents(http: Http, events: IngestEvent | readonly IngestEvent[] | string, options: SendOptions = {}): Promise<SendResult> {
  const maxAttempts = Math.max(1, options.maxAttempts ?? 3);
  const retryDelayMs = options.retryDelayMs ?? 1_000;
  const maxRetryDelayMs = options.maxRetryDelayMs ?? 60_000;
  const ndjson = typeof events === "string";
  const text = ndjson ? events : JSON.stringify(events);
  const headers: Record<string, string> = { "content-type": ndjson ? "application/x-ndjson" : "application/json", accept: "application/json" };
  if (options.gzip) headers["content-encoding"] = "gzip";
  const body = options.gzip ? Bun.gzipSync(text) : text;

  const attempt = async (n: number): Promise<Attempt> => {
    let response: Response;
    try {
      response = await http.request("/v1/events", { method: "POST", headers, body, signal: options.signal, timeoutMs: options.timeoutMs ?? 30_000 });
      if (response.status === 202 || response.status === 422) return { done: { ...((await response.json()) as IngestResult), status: response.status, attempts: n } };
    } catch (error) {
      if (options.signal?.aborted) throw options.signal.reason;
      // No answer, or one cut off before its body was read.
      return { retryable: error instanceof ConnectionError ? error : new ConnectionError("/v1/events", error), waitMs: retryDelayMs };
    }
    const error = await apiErrorOf(response);
    if (response.status !== 503) throw error;
    return { retryable: error, waitMs: Math.min(error.retryAfterMs ?? retryDelayMs, maxRetryDelayMs) };
  };

  for (let n = 1; ; n++) {
    const started = performance.now();
    const report = (status: number | undefined, retryInMs?: number) => options.onAttempt?.({ attempt: n, status, ms: performance.now() - started, retryInMs });
    let outcome: Attempt;
    try {
      outcome = await attempt(n);
    } catch (error) {
      report(error instanceof ApiError ? error.status : undefined);
      throw error;
    }
    if ("done" in outcome) {
      report(outcome.done.status);
      return outcome.done;
    }
    const status = outcome.retryable instanceof ApiError ? outcome.retryable.status : undefined;
    if (n >= maxAttempts) {
      report(status);
      throw outcome.retryable;
    }
    report(status, outcome.waitMs);
    await sleep(outcome.waitMs, options.signal);
  }
}
