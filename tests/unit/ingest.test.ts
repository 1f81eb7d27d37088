import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createApp } from "../../api/app.ts";
import { createEmbeddedBus } from "../../lib/bus/embedded/index.ts";
import type { DeliveredRecord } from "../../lib/bus/types.ts";
import { loadConfig } from "../../lib/config.ts";
import { decodeEnvelope } from "../../lib/events/index.ts";
import { createLogger } from "../../lib/log.ts";
import { closeServices, openServices, type Services } from "../../lib/services.ts";
import { tempDir } from "../support/tmp.ts";
import { waitFor } from "../support/wait.ts";

/** POST /v1/events in-process on real embedded services: every status of the contract. */
const dir = tempDir("devpipe-ingest-");
const apiKeys = [
  { key: "writer-key", scopes: ["ingest" as const] },
  { key: "reader-key", scopes: ["query" as const] },
];
let services: Services;
let app: ReturnType<typeof createApp>;
const quiet = createLogger({ test: "ingest" }, () => undefined);

beforeAll(async () => {
  services = await openServices(loadConfig({ DATA_DIR: dir.path, MAX_BODY_BYTES: String(64 * 1024), MAX_RECORDS_PER_REQUEST: "50" }), quiet);
  app = createApp(services, { apiKeys });
});
afterAll(async () => {
  await closeServices(services);
  dir.remove();
});

const NOW_ISO = () => new Date(Date.now() - 1_000).toISOString();
const reading = (i: number, extra: Record<string, unknown> = {}) => ({ type: "sensor.reading", sensor_id: `s-${i}`, temperature: 20 + (i % 10), humidity: 50, event_time: NOW_ISO(), ...extra });

function post(body: string | Uint8Array, { contentType = "application/json", key = "writer-key", path = "/v1/events", headers = {} as Record<string, string> } = {}) {
  return app.request(path, { method: "POST", body, headers: { "content-type": contentType, ...(key ? { authorization: `Bearer ${key}` } : {}), ...headers } });
}

type IngestBody = { accepted: number; rejected: number; event_ids: string[]; errors: { index: number; path: string; message: string }[] };
type ProblemBody = { type: string; title: string; status: number; detail: string; request_id: string };

async function rawRecords(): Promise<DeliveredRecord[]> {
  const seen: DeliveredRecord[] = [];
  const consumer = await services.bus.consume({ group: `reader-${crypto.randomUUID()}`, topics: [services.topics.raw], onBatch: async (b) => void seen.push(...b.records) });
  const total = (await services.bus.endOffsets(services.topics.raw)).reduce((s, p) => s + p.offset, 0);
  await waitFor(() => seen.length >= total, { what: "all raw records" });
  await consumer.stop();
  return seen;
}

describe("202 and 422", () => {
  test("one object, an array and NDJSON are accepted; each accepted record is on the bus with its id", async () => {
    const single = (await (await post(JSON.stringify(reading(1)))).json()) as IngestBody;
    expect(single).toMatchObject({ accepted: 1, rejected: 0, errors: [] });
    const array = await post(JSON.stringify([reading(2), reading(3, { event_id: "client-id-3" })]));
    expect(array.status).toBe(202);
    const arrayBody = (await array.json()) as IngestBody;
    expect(arrayBody.event_ids).toHaveLength(2);
    expect(arrayBody.event_ids[1]).toBe("client-id-3");
    const ndjson = await post(`${JSON.stringify(reading(4))}\n${JSON.stringify(reading(5))}\n`, { contentType: "application/x-ndjson" });
    expect(ndjson.status).toBe(202);
    const ids = [...single.event_ids, ...arrayBody.event_ids, ...((await ndjson.json()) as IngestBody).event_ids];

    const onBus = (await rawRecords()).map((r) => ({ record: r, envelope: decodeEnvelope(r.value) }));
    for (const id of ids) expect(onBus.filter((r) => r.envelope.event_id === id)).toHaveLength(1);
    const three = onBus.find((r) => r.envelope.event_id === "client-id-3");
    expect(three?.record.key).toBe("s-3");
    expect(three?.envelope).toMatchObject({ type: "sensor.reading", key: "s-3", payload: { sensor_id: "s-3", temperature: 23, humidity: 50 } });
  });

  test("NDJSON with a bad line in the middle: that line is one rejected record with its index", async () => {
    const body = [JSON.stringify(reading(10)), "{not json", "", JSON.stringify(reading(11, { humidity: 120 })), JSON.stringify(reading(12))].join("\r\n");
    const response = await post(body, { contentType: "application/x-ndjson; charset=utf-8" });
    expect(response.status).toBe(202);
    const result = (await response.json()) as IngestBody;
    expect(result).toMatchObject({ accepted: 2, rejected: 2 });
    expect(result.errors).toEqual([
      { index: 1, path: "", message: expect.stringContaining("invalid JSON") },
      { index: 2, path: "humidity", message: expect.stringContaining("<=100") },
    ]);
  });

  test("a body where nothing is valid is 422 with the same shape", async () => {
    const response = await post(JSON.stringify([{ type: "sensor.reading" }, { type: "no.such.type" }]));
    expect(response.status).toBe(422);
    const result = (await response.json()) as IngestBody;
    expect(result).toMatchObject({ accepted: 0, rejected: 2, event_ids: [] });
    expect(result.errors.filter((e) => e.index === 0).map((e) => e.path).sort()).toEqual(["event_time", "humidity", "sensor_id", "temperature"]);
    expect(result.errors.find((e) => e.index === 1)?.path).toBe("type");
  });

  test("POST /v1/events/{type} takes records without a type field; an unknown type is 404", async () => {
    const { type: _t, ...fields } = reading(20);
    expect((await post(JSON.stringify([fields]), { path: "/v1/events/sensor.reading" })).status).toBe(202);
    const unknown = await post(JSON.stringify([fields]), { path: "/v1/events/sensor.readings" });
    expect(unknown.status).toBe(404);
    expect(((await unknown.json()) as ProblemBody).detail).toContain("sensor.reading");
  });

  test("unicode survives the trip to the bus", async () => {
    const response = await post(JSON.stringify({ type: "user.activity", user_id: "ユーザー-ü-🚗", session_id: "s", action: "page_view", page: "/café/日本", event_time: NOW_ISO() }));
    const [id] = ((await response.json()) as IngestBody).event_ids;
    const found = (await rawRecords()).map((r) => decodeEnvelope(r.value)).find((e) => e.event_id === id);
    expect(found?.payload).toMatchObject({ user_id: "ユーザー-ü-🚗", page: "/café/日本" });
    expect(found?.key).toBe("ユーザー-ü-🚗");
  });
});

describe("request-level errors are problem+json", () => {
  const expectProblem = async (response: Response, status: number, detail: string) => {
    expect(response.status).toBe(status);
    expect(response.headers.get("content-type")).toBe("application/problem+json");
    const body = (await response.json()) as ProblemBody;
    expect(body).toMatchObject({ type: "about:blank", status });
    expect(body.detail).toContain(detail);
    expect(body.request_id).toBeTruthy();
  };

  test("400 for malformed JSON, invalid UTF-8 and a scalar body", async () => {
    await expectProblem(await post('{"type":"sensor.reading",'), 400, "Malformed JSON");
    await expectProblem(await post(new Uint8Array([0x7b, 0xff, 0xfe, 0x7d])), 400, "UTF-8");
    await expectProblem(await post("42"), 400, "event object or an array");
  });

  test("413 over the size limit, declared or streamed, and over the record limit", async () => {
    const big = JSON.stringify(Array.from({ length: 40 }, (_, i) => reading(i, { sensor_id: `s-${"x".repeat(2_000)}-${i}` })));
    await expectProblem(await post(big), 413, "larger than 65536 bytes");
    const stream = new ReadableStream<Uint8Array>({
      start(controller) {
        for (let i = 0; i < 20; i++) controller.enqueue(new TextEncoder().encode(" ".repeat(8 * 1024)));
        controller.close();
      },
    });
    await expectProblem(await app.request("/v1/events", { method: "POST", body: stream, headers: { "content-type": "application/json", authorization: "Bearer writer-key" } }), 413, "larger than");
    await expectProblem(await post(JSON.stringify(Array.from({ length: 51 }, (_, i) => reading(i)))), 413, "At most 50 records");
  });

  test("415 for an unsupported or missing content type", async () => {
    await expectProblem(await post(JSON.stringify(reading(1)), { contentType: "text/plain" }), 415, "application/json");
    await expectProblem(await app.request("/v1/events", { method: "POST", body: "{}", headers: { authorization: "Bearer writer-key" } }), 415, "application/x-ndjson");
  });
});

describe("auth", () => {
  test("401 without a key or with an unknown one, with a Bearer challenge; 403 without the ingest scope", async () => {
    const missing = await post(JSON.stringify(reading(1)), { key: "" });
    expect(missing.status).toBe(401);
    expect(missing.headers.get("www-authenticate")).toContain("Bearer");
    expect((await post(JSON.stringify(reading(1)), { key: "wrong-key" })).status).toBe(401);
    expect((await post(JSON.stringify(reading(1)), { headers: { authorization: "Basic d3JpdGVyLWtleTo=" }, key: "" })).status).toBe(401);
    expect((await post(JSON.stringify(reading(1)), { key: "reader-key" })).status).toBe(403);
  });

  test("the operations endpoints need no key", async () => {
    expect((await app.request("/healthz")).status).toBe(200);
    expect((await app.request("/openapi.json")).status).toBe(200);
    expect((await app.request("/docs")).status).toBe(200);
  });
});

test("503 with Retry-After when the bus cannot take writes, and nothing is reported accepted", async () => {
  const busDir = tempDir("devpipe-ingest-bus-");
  const bus = await createEmbeddedBus({ dir: busDir.path, logger: quiet });
  await bus.ensureTopics([{ name: services.topics.raw, partitions: 1 }]);
  await bus.close();
  const broken = createApp({ ...services, bus }, { apiKeys });
  const response = await broken.request("/v1/events", { method: "POST", body: JSON.stringify(reading(1)), headers: { "content-type": "application/json", authorization: "Bearer writer-key" } });
  expect(response.status).toBe(503);
  expect(response.headers.get("retry-after")).toBe("2");
  expect(((await response.json()) as ProblemBody).detail).toContain("nothing from this request was accepted");
  busDir.remove();
});

test("/docs serves the reference UI and its assets from the installed package", async () => {
  const page = await (await app.request("/docs")).text();
  expect(page).toContain("/openapi.json");
  const bundle = await app.request("/docs/assets/swagger-ui-bundle.js");
  expect(bundle.status).toBe(200);
  expect(bundle.headers.get("content-type")).toContain("javascript");
  expect((await app.request("/docs/assets/..%2Fpackage.json")).status).toBe(404);
});
