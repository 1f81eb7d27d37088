import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createApp } from "../../api/app.ts";
import { encodeCursor } from "../../api/query-params.ts";
import { closeServices, type Services } from "../../lib/services.ts";
import { INSTANT_RANGE } from "../../lib/time.ts";
import { serviceSetups } from "../support/setups.ts";
import { tempDir } from "../support/tmp.ts";

/**
 * A client's mistake is a 4xx, never a 500, and nothing a sink cannot store gets in: the tester's findings
 * of issue 10, route by route, on PGlite (embedded) and on the real Kafka and Postgres (services mode).
 */
const apiKeys = [{ key: "admin-key", scopes: ["ingest" as const, "query" as const, "admin" as const] }];
const auth = { authorization: "Bearer admin-key" };

type IngestBody = { accepted: number; rejected: number; event_ids: string[]; errors: { index: number; path: string; message: string }[] };
type ProblemBody = { type: string; title: string; status: number; detail: string; request_id: string; errors?: { path: string; message: string }[] };

const recent = () => new Date(Date.now() - 1_000).toISOString();

for (const [name, setup] of Object.entries(serviceSetups({}))) {
  describe(`bad input on ${name}`, () => {
    const dir = tempDir("devpipe-bad-input-");
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

    // Bodies are written by hand where they carry `\u0000` or `\ud800`: the JSON escapes, as a client sends them.
    const ingest = (body: string, { path = "/v1/events", contentType = "application/json" } = {}) => app.request(path, { method: "POST", body, headers: { ...auth, "content-type": contentType } });
    const putDim = (dimension: string, body: string) => app.request(`/v1/dims/${dimension}`, { method: "PUT", body, headers: { ...auth, "content-type": "application/json" } });
    const get = (url: string) => app.request(url, { headers: auth });
    const expectParamProblem = async (response: Response, path: string, message?: string) => {
      expect(response.status).toBe(400);
      expect(response.headers.get("content-type")).toBe("application/problem+json");
      const body = (await response.json()) as ProblemBody;
      expect(body.errors?.map((e) => e.path)).toContain(path);
      if (message) expect(body.errors?.find((e) => e.path === path)?.message).toContain(message);
    };

    describe("event text every sink can store", () => {
      test("an unpaired surrogate or U+0000 in a text field is a 422 naming the record and field; nothing is accepted", async () => {
        const surrogate = await ingest(`{"type":"sensor.reading","sensor_id":"s-\\ud800","temperature":20,"humidity":50,"event_time":"${recent()}"}`);
        expect(surrogate.status).toBe(422);
        expect(((await surrogate.json()) as IngestBody).errors).toEqual([{ index: 0, path: "sensor_id", message: expect.stringContaining("unpaired surrogate U+D800") }]);

        const nul = await ingest(`{"type":"user.activity","user_id":"bad\\u0000","session_id":"s","action":"click","page":"/","event_time":"${recent()}"}`);
        expect(nul.status).toBe(422);
        expect(((await nul.json()) as IngestBody).errors).toEqual([{ index: 0, path: "user_id", message: expect.stringContaining("U+0000") }]);
      });

      test("in a batch, only the bad record is rejected, at its index; NDJSON and the typed path alike", async () => {
        const good = `{"sensor_id":"s-ok","temperature":20,"humidity":50,"event_time":"${recent()}"}`;
        const bad = `{"sensor_id":"\\udc00","temperature":20,"humidity":50,"event_time":"${recent()}"}`;
        const response = await ingest(`${good}\n${bad}\n`, { path: "/v1/events/sensor.reading", contentType: "application/x-ndjson" });
        expect(response.status).toBe(202);
        const body = (await response.json()) as IngestBody;
        expect(body).toMatchObject({ accepted: 1, rejected: 1 });
        expect(body.errors).toEqual([{ index: 1, path: "sensor_id", message: expect.stringContaining("U+DC00") }]);
      });

      test("event_id null is refused (omit the field to have one assigned)", async () => {
        const response = await ingest(`{"type":"sensor.reading","event_id":null,"sensor_id":"s","temperature":20,"humidity":50,"event_time":"${recent()}"}`);
        expect(response.status).toBe(422);
        expect(((await response.json()) as IngestBody).errors.map((e) => e.path)).toEqual(["event_id"]);
      });

      test("a body with no records is a 422 that says so: an empty array, an NDJSON body of blank lines", async () => {
        for (const [body, contentType] of [["[]", "application/json"], ["", "application/x-ndjson"], ["\n \r\n", "application/x-ndjson"]] as const) {
          const response = await ingest(body, { contentType });
          expect(response.status).toBe(422);
          expect(await response.json()).toEqual({ accepted: 0, rejected: 0, event_ids: [], errors: [{ index: 0, path: "", message: expect.stringContaining("holds no records") }] });
        }
      });
    });

    describe("dims", () => {
      test("U+0000 or an unpaired surrogate in a name is a 422 at [i].field, and the table is unchanged", async () => {
        expect((await putDim("car_colors", '[{"color_id":1,"color_name":"Black"}]')).status).toBe(200);
        for (const name of ["x\\u0000", "\\ud800"]) {
          const response = await putDim("car_colors", `[{"color_id":1,"color_name":"Black"},{"color_id":2,"color_name":"${name}"}]`);
          expect(response.status).toBe(422);
          expect(((await response.json()) as ProblemBody).errors).toEqual([{ path: "[1].color_name", message: expect.stringMatching(/U\+0000|unpaired surrogate/) }]);
        }
        const models = await putDim("car_models", '[{"model_id":1,"car_brand":"To\\u0000yota","car_model":"\\udfff"}]');
        expect(((await models.json()) as ProblemBody).errors?.map((e) => e.path)).toEqual(["[0].car_brand", "[0].car_model"]);
        expect(await (await get("/v1/dims/car_colors")).json()).toMatchObject({ version: 1, items: [{ color_id: 1, color_name: "Black" }] });
      });

      test("ids beyond their integer column are a 422; the largest that fits is stored", async () => {
        const over = await putDim("car_colors", '[{"color_id":2147483648,"color_name":"x"}]');
        expect(over.status).toBe(422);
        expect(((await over.json()) as ProblemBody).errors).toEqual([{ path: "[0].color_id", message: expect.stringContaining("2147483647") }]);
        const cars = await putDim("cars", `[{"car_id":1,"driver_id":1,"model_id":2147483648,"color_id":-1}]`);
        expect(((await cars.json()) as ProblemBody).errors?.map((e) => e.path)).toEqual(["[0].model_id", "[0].color_id"]);
        expect((await putDim("car_colors", '[{"color_id":2147483647,"color_name":"Max"}]')).status).toBe(200);
        const bigCar = await putDim("cars", `[{"car_id":${Number.MAX_SAFE_INTEGER},"driver_id":${Number.MAX_SAFE_INTEGER},"model_id":2147483647,"color_id":0}]`);
        expect(bigCar.status).toBe(200);
        expect(await (await get("/v1/dims/cars")).json()).toMatchObject({ items: [{ car_id: Number.MAX_SAFE_INTEGER, driver_id: Number.MAX_SAFE_INTEGER, model_id: 2147483647 }] });
      });

      test("an empty array empties the table (PUT replaces it with what was sent) and bumps the version", async () => {
        expect((await putDim("car_models", '[{"model_id":7,"car_brand":"Ford","car_model":"Focus"}]')).status).toBe(200);
        const emptied = await putDim("car_models", "[]");
        expect(emptied.status).toBe(200);
        const version = (await emptied.json()) as { rows: number; version: number };
        expect(version.rows).toBe(0);
        expect(await (await get("/v1/dims/car_models")).json()).toMatchObject({ version: version.version, rows: 0, items: [] });
      });
    });

    describe("query parameters are 400s before they reach SQL", () => {
      test("from/to beyond years 0001–9999, on alerts, aggregates and lake events", async () => {
        for (const url of [
          "/v1/aggregates/sensor_stats_1m?from=-8640000000000000",
          "/v1/events?type=sensor.reading&from=-8640000000000000",
          "/v1/alerts?from=-8640000000000000",
          "/v1/alerts?to=8640000000000000",
          "/v1/aggregates/page_views_1m?to=0000-06-01T00:00:00Z",
        ]) {
          await expectParamProblem(await get(url), url.includes("to=") ? "to" : "from", `outside the accepted range ${INSTANT_RANGE}`);
        }
      });

      test("U+0000 in key, rule, job, status, type or cursor; percent-encoding that is not UTF-8", async () => {
        await expectParamProblem(await get("/v1/alerts?key=%00"), "key", "U+0000");
        await expectParamProblem(await get("/v1/alerts?rule=%00"), "rule");
        await expectParamProblem(await get("/v1/aggregates/sensor_stats_1m?key=a%00b"), "key", "U+0000");
        await expectParamProblem(await get("/v1/pipeline/runs?job=%00"), "job", "U+0000");
        await expectParamProblem(await get("/v1/pipeline/runs?status=%00"), "status");
        await expectParamProblem(await get("/v1/events?type=sensor.reading&key=%00"), "key");
        await expectParamProblem(await get("/v1/alerts?cursor=%00"), "cursor");
        await expectParamProblem(await get("/v1/alerts/stream?key=%00"), "key");
        await expectParamProblem(await get("/v1/alerts?key=%ED%A0%80"), "key", "not valid percent-encoded UTF-8");
        await expectParamProblem(await get("/v1/pipeline/runs?job=%FF"), "job", "not valid percent-encoded UTF-8");
      });

      test("limit, over-long text and cursors that are not ours, including positions SQL could not take", async () => {
        await expectParamProblem(await get("/v1/alerts?limit=0"), "limit");
        await expectParamProblem(await get("/v1/pipeline/runs?limit=10001"), "limit");
        await expectParamProblem(await get(`/v1/aggregates/sensor_stats_1m?key=${"k".repeat(257)}`), "key", "at most 256");
        await expectParamProblem(await get(`/v1/pipeline/runs?job=${"j".repeat(257)}`), "job");
        await expectParamProblem(await get("/v1/alerts?cursor=eyJ0IjoxLCJzIjox!!"), "cursor");
        await expectParamProblem(await get(`/v1/alerts?cursor=${encodeCursor({ t: 9e15, s: 1 })}`), "cursor");
        await expectParamProblem(await get(`/v1/aggregates/sensor_stats_1m?cursor=${encodeCursor({ w: 0, k: "a\u0000" })}`), "cursor");
        await expectParamProblem(await get(`/v1/pipeline/runs?cursor=${encodeCursor({ s: "-271821-04-20T00:00:00.000Z", r: 1 })}`), "cursor");
      });

      test("valid parameters still reach the stores and answer 200", async () => {
        for (const url of [
          "/v1/alerts?key=42&rule=speeding&from=0001-01-01T00:00:00Z&to=9999-12-31T23:59:59.999Z&limit=10000",
          `/v1/alerts?cursor=${encodeCursor({ t: 0, s: 0 })}`,
          "/v1/aggregates/sensor_stats_1m?key=caf%C3%A9+%F0%9F%9A%97&from=-62135596800000&to=253402300799999",
          `/v1/aggregates/sensor_stats_1m?cursor=${encodeCursor({ w: 0, k: "a" })}`,
          "/v1/pipeline/runs?job=lake&status=failed&limit=1",
          `/v1/pipeline/runs?cursor=${encodeCursor({ s: "2026-11-21T10:00:00.000Z", r: 1 })}`,
        ]) {
          const response = await get(url);
          expect([url, response.status]).toEqual([url, 200]);
        }
      });
    });

    describe("methods", () => {
      test("an unsupported method on a known path is a 405 problem with Allow; an unknown path stays 404", async () => {
        const cases: [string, string, string][] = [
          ["DELETE", "/v1/dims/cars", "GET, HEAD, PUT"],
          ["PATCH", "/v1/events", "GET, HEAD, POST"],
          ["GET", "/v1/events/sensor.reading", "POST"],
          ["POST", "/v1/aggregates/sensor_stats_1m", "GET, HEAD"],
          ["PUT", "/healthz", "GET, HEAD"],
        ];
        for (const [method, path, allow] of cases) {
          const response = await app.request(path, { method, headers: auth });
          expect([method, path, response.status, response.headers.get("allow")]).toEqual([method, path, 405, allow]);
          expect(response.headers.get("content-type")).toBe("application/problem+json");
          expect(((await response.json()) as ProblemBody).title).toBe("Method Not Allowed");
        }
        expect((await app.request("/v1/nothing", { method: "DELETE", headers: auth })).status).toBe(404);
      });
    });
  });
}
