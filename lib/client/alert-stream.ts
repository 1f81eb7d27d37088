import { ApiError, apiErrorOf } from "./errors.ts";
import type { Http } from "./http.ts";
import { SseParser } from "./sse.ts";
import type { Alert, AlertRule, Instant } from "./types.ts";
import { sleep } from "./wait.ts";

export interface FollowAlertsOptions {
  /** Only alerts of this device key. */
  key?: string;
  /** Only alerts that matched this rule. */
  rule?: AlertRule;
  /** Replay first: alerts with event_time from this time on, or after a cursor (an `id` yielded earlier). */
  since?: Instant;
  /** Resume after this alert: the `id` of the last one handled (e.g. kept across restarts). */
  lastEventId?: string;
  /** Stops following: the iterator throws the signal's reason. Breaking out of the loop stops it too. */
  signal?: AbortSignal;
  /** The wait before reconnecting, doubled on each failure in a row up to `maxReconnectDelayMs`. Default 1 s; the server's `retry:` replaces it. */
  reconnectDelayMs?: number;
  /** Default 30 s. */
  maxReconnectDelayMs?: number;
  /** Failed connection attempts in a row before giving up with the last error. Default: no limit. */
  maxFailures?: number;
  /** A connection silent this long is taken as dropped (heartbeats come at least every 15 s). Default 45 s. */
  idleTimeoutMs?: number;
  /** Called before each reconnection. */
  onReconnect?: (info: ReconnectInfo) => void;
}

export interface ReconnectInfo {
  /** Why the last connection ended: "ended", "shutdown", "error" (the server's final frames), "idle", "failed". */
  reason: string;
  /** Where the next connection resumes (its Last-Event-ID). */
  lastEventId: string | undefined;
  delayMs: number;
  /** Failed connection attempts in a row so far. */
  failures: number;
}

/** An alert and its stream cursor: keep `id` to resume after this alert later (`lastEventId`). */
export interface StreamedAlert {
  id: string;
  alert: Alert;
}

class IdleError extends Error {}

/** How a connection attempt failed. */
interface Failure {
  error: unknown;
  reason: "failed" | "idle";
  /** The answer's Retry-After (429, 503). */
  waitMs?: number;
}

/**
 * GET /v1/alerts/stream as an async iterator that outlives its connections. After a drop (or the
 * server's final `shutdown` / `error` event) it reconnects with `Last-Event-ID` set to the last alert it
 * yielded, so the gateway replays exactly what came after it: across reconnections no alert is repeated
 * or skipped. Only before the first alert (and without `since` or `lastEventId`) does a drop leave no
 * position to resume from; the next connection then starts live.
 *
 * 429 and 503 answers are retried after Retry-After; any other error status throws an `ApiError`.
 */
export async function* followAlerts(http: Http, options: FollowAlertsOptions = {}): AsyncGenerator<StreamedAlert, void, undefined> {
  const { signal } = options;
  const query = { key: options.key, rule: options.rule, since: options.since };
  const idleTimeoutMs = options.idleTimeoutMs ?? 45_000;
  const maxDelayMs = options.maxReconnectDelayMs ?? 30_000;
  let baseDelayMs = options.reconnectDelayMs ?? 1_000;
  let lastEventId = options.lastEventId || undefined;
  let failures = 0;

  for (;;) {
    signal?.throwIfAborted();
    const connection = new AbortController();
    let ended = "ended";
    let failure: Failure | undefined;
    try {
      const response = await http.request("/v1/alerts/stream", {
        query,
        headers: lastEventId ? { accept: "text/event-stream", "last-event-id": lastEventId } : { accept: "text/event-stream" },
        signal: signal ? AbortSignal.any([signal, connection.signal]) : connection.signal,
      });
      if (response.status !== 200 || !response.body) {
        const error = await apiErrorOf(response);
        if (error.status !== 429 && error.status !== 503) throw error;
        failure = { error, reason: "failed", waitMs: error.retryAfterMs };
      } else {
        failures = 0;
        const parser = new SseParser(lastEventId);
        const decoder = new TextDecoder();
        const watchIdle = () => setTimeout(() => connection.abort(new IdleError()), idleTimeoutMs);
        let idle = watchIdle();
        try {
          for await (const chunk of response.body) {
            clearTimeout(idle);
            idle = watchIdle();
            for (const event of parser.push(decoder.decode(chunk, { stream: true }))) {
              if (event.event === "alert" && event.id) {
                const alert = JSON.parse(event.data) as Alert;
                lastEventId = event.id;
                // The time the caller takes over an alert is not the server's silence.
                clearTimeout(idle);
                yield { id: event.id, alert };
                idle = watchIdle();
              } else if (event.event === "shutdown" || event.event === "error") {
                // The final frame's id is the cursor to resume from; the server closes the stream next.
                if (event.id) lastEventId = event.id;
                ended = event.event;
              }
            }
            baseDelayMs = parser.retryMs ?? baseDelayMs;
          }
        } finally {
          clearTimeout(idle);
          connection.abort();
        }
      }
    } catch (error) {
      if (signal?.aborted) throw signal.reason;
      // An error answer, or an alert that is not JSON: reconnecting would not help.
      if (error instanceof ApiError || error instanceof SyntaxError) throw error;
      failure = { error, reason: connection.signal.reason instanceof IdleError ? "idle" : "failed" };
    }
    if (failure) {
      failures++;
      if (options.maxFailures !== undefined && failures >= options.maxFailures) throw failure.error;
    }
    const delayMs = failure?.waitMs ?? Math.min(maxDelayMs, baseDelayMs * 2 ** Math.max(0, failures - 1));
    options.onReconnect?.({ reason: failure?.reason ?? ended, lastEventId, delayMs, failures });
    await sleep(delayMs, signal);
  }
}
