import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createApp } from "../../api/app.ts";
import { alertIdFor } from "../../lib/alerts.ts";
import { closeServices, type Services } from "../../lib/services.ts";
import { tempDir } from "../support/tmp.ts";
import { serviceSetups } from "../support/setups.ts";

/** GET /v1/alerts: half-open ranges, filters, limits and cursors, on PGlite and on the real Postgres. */
const apiKeys = [{ key: "q-key", scopes: ["query" as const] }, { key: "i-key", scopes: ["ingest" as const] }];
const T0 = Date.parse("2026-11-21T10:00:00Z");
const RULES = [["speeding"], ["gear_mismatch"], ["high_rpm", "speeding"]];

const setups = serviceSetups({});

type Page = { items: { event_id: string; key: string; event_time: string; rules: string[] }[]; next_cursor: string | null };

for (const [name, setup] of Object.entries(setups)) {
  describe(`GET /v1/alerts on ${name}`, () => {
    const dir = tempDir("devpipe-alerts-");
    let services: Services;
    let drop: () => Promise<void>;
    let app: ReturnType<typeof createApp>;
    beforeAll(async () => {
      ({ services, drop } = await setup(dir.path));
      app = createApp(services, { apiKeys });
      // 30 alerts, one a minute, two of them sharing a time so the cursor must break ties.
      for (let i = 0; i < 30; i++) {
        const time = new Date(T0 + Math.min(i, 28) * 60_000).toISOString();
        await services.db.sql`insert into alerts (alert_id, event_id, type, key, event_time, rules, event)
          values (${alertIdFor(`e${i}`)}, ${`e${i}`}, 'vehicle.telemetry', ${String(i % 3)}, ${time}, ${RULES[i % 3] ?? []}, ${services.db.sql.json({ car_id: i % 3, speed: 130 })})`;
      }
    });
    afterAll(async () => {
      await closeServices(services);
      await drop();
      dir.remove();
    });

    const get = async (query: string, key = "q-key") => app.request(`/v1/alerts${query}`, { headers: { authorization: `Bearer ${key}` } });
    const page = async (query: string) => {
      const response = await get(query);
      expect(response.status).toBe(200);
      return (await response.json()) as Page;
    };

    test("without filters: oldest first, at most 100, with the enriched event", async () => {
      const { items, next_cursor } = await page("");
      expect(items).toHaveLength(30);
      expect(next_cursor).toBeNull();
      expect(items.map((a) => a.event_id).slice(0, 3)).toEqual(["e0", "e1", "e2"]);
      expect(items[0]).toMatchObject({ alert_id: alertIdFor("e0"), type: "vehicle.telemetry", key: "0", event_time: "2026-11-21T10:00:00.000Z", rules: ["speeding"], event: { car_id: 0, speed: 130 } });
    });

    test("[from, to) is half-open on event_time and takes ISO-8601 or epoch ms", async () => {
      const iso = await page("?from=2026-11-21T10:05:00Z&to=2026-11-21T10:10:00Z");
      expect(iso.items.map((a) => a.event_id)).toEqual(["e5", "e6", "e7", "e8", "e9"]);
      const epoch = await page(`?from=${T0 + 5 * 60_000}&to=${T0 + 10 * 60_000}`);
      expect(epoch.items).toEqual(iso.items);
      expect((await page("?from=2026-11-21T11:05:00%2B01:00&to=2026-11-21T10:06:00Z")).items.map((a) => a.event_id)).toEqual(["e5"]);
    });

    test("key and rule filter, alone and together", async () => {
      expect((await page("?key=1")).items.every((a) => a.key === "1")).toBe(true);
      expect((await page("?key=1")).items).toHaveLength(10);
      const speeding = (await page("?rule=speeding")).items;
      expect(speeding).toHaveLength(20);
      expect(speeding.every((a) => a.rules.includes("speeding"))).toBe(true);
      expect((await page("?rule=high_rpm&key=2")).items).toHaveLength(10);
      expect((await page("?rule=high_rpm&key=0")).items).toHaveLength(0);
    });

    test("cursors walk every alert exactly once, ties on event_time included", async () => {
      const seen: string[] = [];
      let cursor: string | null = null;
      for (let pages = 0; pages < 20; pages++) {
        const result: Page = await page(`?limit=7${cursor ? `&cursor=${cursor}` : ""}`);
        seen.push(...result.items.map((a) => a.event_id));
        cursor = result.next_cursor;
        if (!cursor) break;
      }
      expect(seen).toEqual(Array.from({ length: 30 }, (_, i) => `e${i}`));
    });

    test("invalid parameters are 400 problem+json naming each one", async () => {
      const response = await get("?from=yesterday&limit=0&rule=fast&cursor=bm90LWEtY3Vyc29y");
      expect(response.status).toBe(400);
      const body = (await response.json()) as { errors: { path: string }[] };
      expect(body.errors.map((e) => e.path).sort()).toEqual(["cursor", "from", "limit", "rule"]);
      expect((await get("?limit=10001")).status).toBe(400);
      expect((await get("?from=2026-11-21T10:10:00Z&to=2026-11-21T10:05:00Z")).status).toBe(400);
      // [t, t) is empty, not a mistake; an empty value is the same as no value.
      const empty = await get("?from=2026-11-21T10:10:00Z&to=2026-11-21T10:10:00Z&key=&cursor=");
      expect(empty.status).toBe(200);
      expect(await empty.json()).toEqual({ items: [], next_cursor: null });
    });

    test("needs the query scope", async () => {
      expect((await get("", "i-key")).status).toBe(403);
      expect((await get("", "none")).status).toBe(401);
    });
  });
}
