import { apiErrorOf } from "./errors.ts";
import type { Http } from "./http.ts";
import type { QueryResult } from "./types.ts";

/**
 * POST /v1/query: one read-only SELECT over the lake's views. A refused statement is an `ApiError` 400
 * whose detail names what was refused; busy query slots are a 429 with `retryAfterMs`.
 */
export async function query(http: Http, sql: string, options: { signal?: AbortSignal } = {}): Promise<QueryResult> {
  const response = await http.request("/v1/query", {
    method: "POST",
    headers: { "content-type": "application/json", accept: "application/json" },
    body: JSON.stringify({ sql }),
    signal: options.signal,
  });
  if (response.status !== 200) throw await apiErrorOf(response);
  return (await response.json()) as QueryResult;
}
