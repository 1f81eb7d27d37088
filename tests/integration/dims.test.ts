import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createApp } from "../../api/app.ts";
import { closeServices, type Services } from "../../lib/services.ts";
import { tempDir } from "../support/tmp.ts";
import { serviceSetups } from "../support/setups.ts";

/** PUT/GET /v1/dims/{name} on PGlite (embedded) and on the real Postgres (services mode). */
const apiKeys = [
  { key: "admin-key", scopes: ["admin" as const, "query" as const] },
  { key: "query-key", scopes: ["query" as const] },
];

const setups = serviceSetups({});

for (const [name, setup] of Object.entries(setups)) {
  describe(`dims on ${name}`, () => {
    const dir = tempDir("devpipe-dims-");
    let services: Services;
    let drop: () => Promise<void>;
    let app: ReturnType<typeof createApp>;
    beforeAll(async () => {
      ({ services, drop } = await setup(dir.path));
      app = createApp(services, { apiKeys });
    });
    afterAll(async () => {
      await closeServices(services);
      await drop();
      dir.remove();
    });

    const put = (dimension: string, body: unknown, key = "admin-key") =>
      app.request(`/v1/dims/${dimension}`, { method: "PUT", body: typeof body === "string" ? body : JSON.stringify(body), headers: { "content-type": "application/json", authorization: `Bearer ${key}` } });
    const get = (dimension: string, key = "query-key") => app.request(`/v1/dims/${dimension}`, { headers: { authorization: `Bearer ${key}` } });

    test("a dimension never loaded is empty at version 0", async () => {
      const response = await get("cars");
      expect(response.status).toBe(200);
      expect(await response.json()).toMatchObject({ name: "cars", version: 0, rows: 0, items: [] });
    });

    test("PUT replaces the whole table and bumps the version; GET returns the rows by key", async () => {
      const first = await put("car_colors", [{ color_id: 2, color_name: "White" }, { color_id: 1, color_name: "Black" }, { color_id: 3, color_name: "Silver" }]);
      expect(first.status).toBe(200);
      expect(await first.json()).toMatchObject({ name: "car_colors", version: 1, rows: 3 });
      const second = await put("car_colors", [{ color_id: 9, color_name: "Red" }]);
      expect(await second.json()).toMatchObject({ version: 2, rows: 1 });
      expect(await (await get("car_colors")).json()).toMatchObject({ version: 2, items: [{ color_id: 9, color_name: "Red" }] });

      const cars = Array.from({ length: 2_500 }, (_, i) => ({ car_id: 2_500 - i, driver_id: 1_000 + i, model_id: 1 + (i % 15), color_id: 1 + (i % 7) }));
      expect((await put("cars", cars)).status).toBe(200);
      const stored = (await (await get("cars")).json()) as { items: { car_id: number }[] };
      expect(stored.items).toHaveLength(2_500);
      expect(stored.items[0]).toEqual(cars[cars.length - 1]);
      expect(stored.items.map((c) => c.car_id)).toEqual(cars.map((c) => c.car_id).reverse());
    });

    test("invalid rows and repeated keys are 422 with each problem's path, and nothing changes", async () => {
      await put("car_models", [{ model_id: 1, car_brand: "Toyota", car_model: "Corolla" }]);
      const response = await put("car_models", [{ model_id: 1, car_brand: "Ford", car_model: "Focus" }, { model_id: "2", car_brand: "" }, { model_id: 1, car_brand: "VW", car_model: "Golf", extra: true }, { model_id: 1, car_brand: "VW", car_model: "Polo" }]);
      expect(response.status).toBe(422);
      expect(response.headers.get("content-type")).toBe("application/problem+json");
      const body = (await response.json()) as { errors: { path: string; message: string }[] };
      expect(body.errors.map((e) => e.path)).toEqual(["[1].model_id", "[1].car_brand", "[1].car_model", "[2].extra", "[3].model_id"]);
      expect(body.errors[4]?.message).toBe("duplicate model_id 1 (first at [0])");
      expect(await (await get("car_models")).json()).toMatchObject({ version: 1, items: [{ model_id: 1, car_brand: "Toyota" }] });
    });

    test("errors: unknown dimension 404, malformed JSON or a non-array 400, wrong content type 415, scopes 401/403", async () => {
      expect((await put("trucks", [])).status).toBe(404);
      expect((await get("trucks")).status).toBe(404);
      expect((await put("cars", "[{")).status).toBe(400);
      expect((await put("cars", { car_id: 1 })).status).toBe(400);
      expect((await app.request("/v1/dims/cars", { method: "PUT", body: "[]", headers: { "content-type": "text/csv", authorization: "Bearer admin-key" } })).status).toBe(415);
      expect((await put("cars", [], "query-key")).status).toBe(403);
      expect((await put("cars", [], "nobody")).status).toBe(401);
      expect((await get("cars", "")).status).toBe(401);
    });
  });
}
