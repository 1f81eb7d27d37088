import type { List } from "./api-types.ts";
import type { PageLoader } from "./bucket-series.ts";

/** GETs the gateway's JSON endpoints with the dashboard's API key. */
export class ApiClient {
  constructor(private readonly key: () => string) {}

  async get<T>(path: string, params: Record<string, string | number | undefined> = {}): Promise<T> {
    const query = new URLSearchParams();
    for (const [name, value] of Object.entries(params)) if (value !== undefined) query.set(name, String(value));
    const url = query.size > 0 ? `${path}?${query}` : path;
    const response = await fetch(url, { headers: { authorization: `Bearer ${this.key()}` } });
    if (!response.ok) {
      const problem = (await response.json().catch(() => ({}))) as { detail?: string; title?: string };
      throw new Error(`${path}: ${response.status} ${problem.detail ?? problem.title ?? ""}`.trim());
    }
    return (await response.json()) as T;
  }

  /** A page loader over a list endpoint that takes from/to/limit/cursor. */
  pages<T>(path: string, limit: number): PageLoader<T> {
    return (from, to, cursor) => this.get<List<T>>(path, { from, to, limit, cursor });
  }
}
