import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createApp } from "../../api/app.ts";
import { openApiDocument } from "../../api/openapi.ts";
import { loadConfig } from "../../lib/config.ts";
import { eventTypes } from "../../lib/events/index.ts";
import { STORABLE_TEXT_PATTERN } from "../../lib/events/storable.ts";
import { createDirStore } from "../../lib/lake/dir-store.ts";
import { MAX_INSTANT_MS, MIN_INSTANT_MS } from "../../lib/time.ts";
import { createLogger } from "../../lib/log.ts";
import { RunStatusSchema } from "../../lib/store/runs.ts";
import { closeServices, openServices, type Services } from "../../lib/services.ts";
import { tempDir } from "../support/tmp.ts";

/** The gateway in-process (`app.request()`) on real embedded services in a temporary DATA_DIR. */
const dir = tempDir("devpipe-app-");
let services: Services;
beforeAll(async () => {
  services = await openServices(loadConfig({ DATA_DIR: dir.path }), createLogger({ test: "app" }, () => undefined));
});
afterAll(async () => {
  await closeServices(services);
  dir.remove();
});

describe("operations endpoints", () => {
  test("GET /healthz answers 200 without a key", async () => {
    const response = await createApp(services, { apiKeys: [] }).request("/healthz");
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({ status: "ok" });
  });

  test("GET /readyz is 200 when bus, db and lake answer", async () => {
    const response = await createApp(services, { apiKeys: [] }).request("/readyz");
    expect(response.status).toBe(200);
    // toMatchObject: /readyz may check more than these three (the jobs' stall check).
    expect(await response.json()).toMatchObject({ ready: true, checks: { bus: { status: "ok" }, db: { status: "ok" }, lake: { status: "ok" } } });
  });

  test("GET /readyz is 503 and names the failing dependency when the lake cannot be written", async () => {
    const broken = { ...services, lake: createDirStore("/dev/null/lake") };
    const response = await createApp(broken, { apiKeys: [] }).request("/readyz");
    expect(response.status).toBe(503);
    const body = (await response.json()) as { ready: boolean; checks: Record<string, { status: string; error?: string }> };
    expect(body.ready).toBe(false);
    expect(body.checks.lake?.status).toBe("failing");
    expect(body.checks.lake?.error).toContain("/dev/null/lake");
    expect(body.checks.db?.status).toBe("ok");
  });

  test("an unknown path is a problem+json 404 carrying the request id", async () => {
    const response = await createApp(services, { apiKeys: [] }).request("/v1/nothing-here", { headers: { "x-request-id": "client-req-1" } });
    expect(response.status).toBe(404);
    expect(response.headers.get("content-type")).toBe("application/problem+json");
    expect(response.headers.get("x-request-id")).toBe("client-req-1");
    expect(await response.json()).toEqual({ type: "about:blank", title: "Not Found", status: 404, detail: "No route for GET /v1/nothing-here", request_id: "client-req-1" });
  });

  test("a malformed client request id is replaced by a generated one", async () => {
    const response = await createApp(services, { apiKeys: [] }).request("/healthz", { headers: { "x-request-id": "bad id with spaces\u0007" } });
    expect(response.headers.get("x-request-id")).toMatch(/^[0-9a-f-]{36}$/);
  });

  test("GET /openapi.json serves the OpenAPI 3.1 document of the routes", async () => {
    const response = await createApp(services, { apiKeys: [] }).request("/openapi.json");
    const document = (await response.json()) as { openapi: string; paths: Record<string, unknown> };
    expect(document.openapi).toBe("3.1.0");
    expect(Object.keys(document.paths)).toEqual(expect.arrayContaining(["/healthz", "/readyz"]));
  });
});

test("the committed openapi/openapi.json equals the one the routes generate (run `bun run openapi`)", async () => {
  const committed: unknown = await Bun.file(new URL("../../openapi/openapi.json", import.meta.url)).json();
  expect(committed).toEqual(JSON.parse(JSON.stringify(openApiDocument())));
});

describe("the OpenAPI document is precise enough to generate valid requests from", () => {
  type Schema = { $ref?: string; type?: string; items?: Schema; anyOf?: Schema[]; oneOf?: Schema[]; minimum?: number; maximum?: number; minItems?: number; pattern?: string; maxLength?: number; format?: string; properties?: Record<string, Schema> };
  type Operation = { requestBody?: { content: Record<string, { schema: Schema }> }; parameters?: { name: string; in: string; schema: Schema }[] };
  const document = openApiDocument() as unknown as { paths: Record<string, Record<string, Operation>>; components: { schemas: Record<string, Schema> } };
  const jsonBody = (path: string, method: string) => document.paths[path]?.[method]?.requestBody?.content["application/json"]?.schema;
  const param = (path: string, name: string) => document.paths[path]?.get?.parameters?.find((p) => p.name === name)?.schema;

  test("each dimension is its own path with its own row schema; ids carry their column's bounds", () => {
    expect(Object.keys(document.paths).filter((p) => p.startsWith("/v1/dims/"))).toEqual(["/v1/dims/car_models", "/v1/dims/car_colors", "/v1/dims/cars"]);
    expect(jsonBody("/v1/dims/car_colors", "put")).toEqual({ type: "array", items: { $ref: "#/components/schemas/CarColor" } });
    expect(jsonBody("/v1/dims/cars", "put")?.items?.$ref).toBe("#/components/schemas/Car");
    expect(document.components.schemas.CarColor?.properties?.color_id).toMatchObject({ type: "integer", minimum: 0, maximum: 2_147_483_647 });
    expect(document.components.schemas.CarColor?.properties?.color_name).toMatchObject({ pattern: STORABLE_TEXT_PATTERN });
    expect(document.components.schemas.Car?.properties?.car_id).toMatchObject({ maximum: Number.MAX_SAFE_INTEGER });
  });

  test("each event type has its own ingest path whose body is that type's schema, one or a non-empty array", () => {
    for (const type of eventTypes.keys()) {
      const body = jsonBody(`/v1/events/${type}`, "post");
      const [one, many] = body?.anyOf ?? [];
      expect(one?.$ref).toMatch(/Fields$/);
      expect(many).toEqual({ type: "array", items: one, minItems: 1 });
    }
    expect(document.paths["/v1/events/{type}"]).toBeUndefined();
    expect(jsonBody("/v1/events", "post")?.anyOf?.at(-1)?.minItems).toBe(1);
  });

  test("the list endpoints declare the formats and bounds they validate", () => {
    for (const path of ["/v1/alerts", "/v1/aggregates/{view}"]) {
      for (const name of ["from", "to"]) {
        expect(param(path, name)?.oneOf).toEqual([expect.objectContaining({ type: "string", format: "date-time" }), expect.objectContaining({ type: "integer", minimum: MIN_INSTANT_MS, maximum: MAX_INSTANT_MS })]);
      }
      expect(param(path, "key")).toMatchObject({ type: "string", maxLength: 256, pattern: STORABLE_TEXT_PATTERN });
    }
    for (const path of ["/v1/alerts", "/v1/aggregates/{view}", "/v1/pipeline/runs"]) {
      expect(param(path, "limit")).toMatchObject({ type: "integer", minimum: 1, maximum: 10_000, default: 100 });
      expect(param(path, "cursor")).toMatchObject({ type: "string", pattern: "^[A-Za-z0-9_-]{1,1024}$" });
    }
    expect(param("/v1/pipeline/runs", "job")).toMatchObject({ maxLength: 256, pattern: STORABLE_TEXT_PATTERN });
    expect(param("/v1/pipeline/runs", "status")).toMatchObject({ enum: RunStatusSchema.options });
    expect(param("/v1/alerts", "rule")).toMatchObject({ enum: ["speeding", "gear_mismatch", "high_rpm"] });
  });
});
