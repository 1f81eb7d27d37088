import type { Http, QueryParams } from "./http.ts";

/** A page of a list endpoint (`GET /v1/aggregates/{view}`, `GET /v1/alerts`). */
export interface Page<T> {
  items: T[];
  next_cursor: string | null;
}

/**
 * Every item of a list endpoint, page after page, following `next_cursor` until it is null. A page is
 * requested only once the items before it have been taken, so breaking out of the loop stops the reads.
 */
export async function* pagedItems<T>(http: Http, path: string, query: QueryParams, signal?: AbortSignal): AsyncGenerator<T, void, undefined> {
  let cursor: string | undefined;
  do {
    const page = await http.getJson<Page<T>>(path, { query: { ...query, cursor }, signal });
    yield* page.items;
    cursor = page.next_cursor ?? undefined;
  } while (cursor !== undefined);
}
