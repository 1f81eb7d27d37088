import { apiErrorOf, ConnectionError } from "./errors.ts";
import type { Instant } from "./types.ts";

/** `fetch` as the client calls it; pass your own to add tracing or a custom agent. */
export type FetchLike = (url: string, init: RequestInit) => Promise<Response>;

export interface HttpOptions {
  /** The gateway, e.g. http://localhost:3000. */
  url: string;
  /** An API key; sent as `Authorization: Bearer <key>`. */
  key: string;
  fetch?: FetchLike;
}

export type QueryParams = Record<string, Instant | undefined>;

export interface RequestOptions {
  method?: string;
  query?: QueryParams;
  headers?: Record<string, string>;
  body?: RequestInit["body"];
  signal?: AbortSignal;
  /** Gives up on the request (headers and body) after this long; 0: never. */
  timeoutMs?: number;
}

/** The gateway's base URL, key and fetch: builds requests and turns error answers into `ApiError`. */
export interface Http {
  /** Sends one request. Throws `ConnectionError` without an answer, or the signal's reason once it aborts. */
  request(path: string, options?: RequestOptions): Promise<Response>;
  /** The body of a 200 (typed by the caller from the route's schema), or an `ApiError`. */
  getJson<T>(path: string, options?: RequestOptions): Promise<T>;
}

const instantParam = (value: Instant) => (value instanceof Date ? value.toISOString() : String(value));

export function createHttp(options: HttpOptions): Http {
  const base = options.url.replace(/\/+$/, "");
  const fetchImpl: FetchLike = options.fetch ?? ((url, init) => fetch(url, init));
  const authorization = `Bearer ${options.key}`;

  const request = async (path: string, init: RequestOptions = {}): Promise<Response> => {
    const url = new URL(base + path);
    for (const [name, value] of Object.entries(init.query ?? {})) if (value !== undefined) url.searchParams.set(name, instantParam(value));
    const signals = [init.signal, init.timeoutMs ? AbortSignal.timeout(init.timeoutMs) : undefined].filter((s) => s !== undefined);
    const signal = signals.length > 1 ? AbortSignal.any(signals) : signals[0];
    try {
      return await fetchImpl(url.href, { method: init.method ?? "GET", headers: { ...init.headers, authorization }, body: init.body, signal });
    } catch (error) {
      if (init.signal?.aborted) throw init.signal.reason;
      throw new ConnectionError(url.href, error);
    }
  };

  return {
    request,
    async getJson<T>(path: string, init: RequestOptions = {}): Promise<T> {
      const response = await request(path, { ...init, headers: { accept: "application/json", ...init.headers } });
      if (response.status !== 200) throw await apiErrorOf(response);
      return (await response.json()) as T;
    },
  };
}
