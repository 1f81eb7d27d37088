import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createApp } from "../../api/app.ts";
import { openApiDocument } from "../../api/openapi.ts";
import { loadConfig } from "../../lib/config.ts";
import { createDirStore } from "../../lib/lake/dir-store.ts";
import { createLogger } from "../../lib/log.ts";
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
    expect(await response.json()).toEqual({ ready: true, checks: { bus: { status: "ok" }, db: { status: "ok" }, lake: { status: "ok" } } });
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
