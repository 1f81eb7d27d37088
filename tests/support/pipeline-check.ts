import { expect } from "bun:test";
import { views } from "../../lib/windows/views.ts";
import { MIN, type FlatEvent } from "./pipeline-data.ts";
import { type ReferenceRow, referenceViews } from "./oracle.ts";
import { waitFor } from "./wait.ts";

/** Talks to a gateway (in-process `app.request` or a real URL) with one key that can do everything. */
export type Request = (path: string, init?: RequestInit) => Promise<Response>;

export async function postEvents(request: Request, key: string, events: Record<string, unknown>[], chunk = 500) {
  for (let i = 0; i < events.length; i += chunk) {
    const response = await request("/v1/events", { method: "POST", body: JSON.stringify(events.slice(i, i + chunk)), headers: { "content-type": "application/json", authorization: `Bearer ${key}` } });
    expect(response.status).toBe(202);
  }
}

export async function putDims(request: Request, key: string, dims: Record<string, unknown[]>) {
  for (const [name, rows] of Object.entries(dims)) {
    const response = await request(`/v1/dims/${name}`, { method: "PUT", body: JSON.stringify(rows), headers: { "content-type": "application/json", authorization: `Bearer ${key}` } });
    expect(response.status).toBe(200);
  }
}

type Item = { key: string; window_start: string; window_end: string; final: boolean } & Record<string, unknown>;

async function windowsOf(request: Request, key: string, view: string, from: number, to: number): Promise<Item[]> {
  const response = await request(`/v1/aggregates/${view}?from=${from}&to=${to}&limit=10000`, { headers: { authorization: `Bearer ${key}` } });
  expect(response.status).toBe(200);
  return ((await response.json()) as { items: Item[] }).items;
}

const close = (a: unknown, b: unknown) => (typeof a === "number" && typeof b === "number" ? Math.abs(a - b) <= 0.0011 : a === b);

/** Waits until every view's windows over the data are final and as many as the reference, then compares each field. */
export async function expectViewsEqualReference(request: Request, key: string, unique: FlatEvent[], start: number, colourOfCar: (carId: number) => string | null, timeoutMs = 60_000) {
  const reference = await referenceViews(unique, colourOfCar);
  const from = start - 15 * MIN;
  const to = start + 11 * MIN;
  for (const [view, expected] of reference) {
    // A time window can only be final once event time has passed its end plus grace: the day-long window of
    // a data set that starts just after midnight is still open today, whatever the pipeline does.
    const spec = views.get(view)?.window;
    const closableBy = Date.now() - 2 * MIN;
    const canBeFinal = (r: ReferenceRow) => spec?.kind !== "time" || r.window_start + spec.sizeMs + spec.graceMs <= closableBy;
    const inRange = expected.filter((r) => r.window_start >= from && r.window_start < to && canBeFinal(r));
    const actual = await waitFor(
      async () => {
        const items = (await windowsOf(request, key, view, from, to)).filter((i) => canBeFinal({ key: i.key, window_start: Date.parse(i.window_start) }));
        return items.length === inRange.length && items.every((i) => i.final) ? items : undefined;
      },
      { timeoutMs, intervalMs: 250, what: `${inRange.length} final windows of ${view}` },
    );
    const byId = new Map(actual.map((i) => [`${i.key}@${Date.parse(i.window_start)}`, i]));
    for (const row of inRange) {
      const item = byId.get(`${row.key}@${row.window_start}`);
      if (!item) throw new Error(`${view}: no window for key ${row.key} at ${new Date(row.window_start).toISOString()}`);
      for (const [field, value] of Object.entries(row as ReferenceRow)) {
        if (field === "key" || field === "window_start") continue;
        if (!close(item[field], value)) throw new Error(`${view} ${row.key} @ ${new Date(row.window_start).toISOString()}: ${field} is ${String(item[field])}, the reference says ${String(value)}`);
      }
    }
  }
  return reference;
}
