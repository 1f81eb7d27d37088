import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { readFileSync, writeFileSync } from "node:fs";
import { zstdCompressSync } from "node:zlib";
import { createApp } from "../../api/app.ts";
import { readEncodedBodyWithLimit } from "../../api/ingest/read-body.ts";
import { gatewayFetch } from "../../api/server.ts";
import { loadConfig } from "../../lib/config.ts";
import { createLogger } from "../../lib/log.ts";
import { closeServices, openServices, type Services } from "../../lib/services.ts";
import { tempDir } from "../support/tmp.ts";

/**
 * Compressed ingest bodies (issue 14): `Content-Encoding: gzip` or `zstd` on both ingest routes, decoded as
 * they stream with MAX_BODY_BYTES applied to the decompressed bytes; other codings are a 415, data that does
 * not decode a 400. The real gateway app on embedded services, in process, plus one real listener.
 */
const LIMIT = 256 * 1024;
const dir = tempDir("devpipe-ingest-encoding-");
const auth = { authorization: "Bearer admin-key" };
let services: Services;
let app: ReturnType<typeof createApp>;
let server: ReturnType<typeof Bun.serve>;

type IngestBody = { accepted: number; rejected: number; event_ids: string[]; errors: { index: number; path: string; message: string }[] };
type ProblemBody = { type: string; title: string; status: number; detail: string };

beforeAll(async () => {
  services = await openServices(loadConfig({ DATA_DIR: dir.path, MAX_BODY_BYTES: String(LIMIT) }), createLogger({ test: "ingest-encoding" }, () => undefined));
  app = createApp(services, { apiKeys: [{ key: "admin-key", scopes: ["ingest", "query", "admin"] }] });
  server = Bun.serve({ port: 0, hostname: "127.0.0.1", fetch: gatewayFetch(app, services.logger) });
});
afterAll(async () => {
  await server.stop(true);
  await closeServices(services);
  dir.remove();
});

const recent = () => new Date(Date.now() - 1_000).toISOString();
const reading = (i: number, extra: Record<string, unknown> = {}) => ({ event_id: `enc-${i}`, sensor_id: `s-${i}`, temperature: 20 + (i % 10), humidity: 50, event_time: recent(), ...extra });
const encoder = new TextEncoder();
const gzip = (text: string) => Bun.gzipSync(encoder.encode(text));
const zstd = (text: string) => new Uint8Array(zstdCompressSync(encoder.encode(text)));

/** POSTs bytes with a declared length (as curl and fetch send a buffer). */
const post = (body: Uint8Array | string, { path = "/v1/events", contentType = "application/json", encoding = undefined as string | undefined } = {}) => {
  const bytes = typeof body === "string" ? encoder.encode(body) : body;
  const headers: Record<string, string> = { ...auth, "content-type": contentType, "content-length": String(bytes.byteLength) };
  if (encoding !== undefined) headers["content-encoding"] = encoding;
  return app.request(path, { method: "POST", body: bytes, headers });
};

/** A body with no declared length, delivered in `chunkSize` pieces on demand; `pulled()` says how many bytes were asked for. */
function chunked(bytes: Uint8Array, chunkSize = 1024) {
  let at = 0;
  const stream = new ReadableStream<Uint8Array>(
    {
      pull(controller) {
        if (at >= bytes.byteLength) return controller.close();
        controller.enqueue(bytes.slice(at, at + chunkSize));
        at += chunkSize;
      },
    },
    { highWaterMark: 0 },
  );
  return { stream, pulled: () => Math.min(at, bytes.byteLength) };
}

const result = async (response: Response) => ({ status: response.status, body: (await response.json()) as IngestBody });

async function expectProblem(response: Response, status: number, ...detailParts: string[]) {
  expect(response.status).toBe(status);
  expect(response.headers.get("content-type")).toBe("application/problem+json");
  const body = (await response.json()) as ProblemBody;
  expect(body.status).toBe(status);
  for (const part of detailParts) expect(body.detail).toContain(part);
  return body;
}

/** `size` bytes of "0" inside a JSON string, gzip-compressed as it is produced (never held whole). */
async function gzipBomb(size: number): Promise<Uint8Array> {
  const piece = new Uint8Array(64 * 1024).fill(0x30);
  let left = size;
  let started = false;
  const source = new ReadableStream<Uint8Array>({
    pull(controller) {
      if (!started) {
        started = true;
        return controller.enqueue(encoder.encode('{"type":"traffic.camera","snapshot":"'));
      }
      if (left <= 0) {
        controller.enqueue(encoder.encode('"}'));
        return controller.close();
      }
      const n = Math.min(left, piece.byteLength);
      controller.enqueue(piece.subarray(0, n));
      left -= n;
    },
  });
  return new Uint8Array(await new Response(source.pipeThrough(new CompressionStream("gzip") as unknown as TransformStream<Uint8Array, Uint8Array>)).arrayBuffer());
}

/** Peak resident memory since the last reset (Linux); resetting makes it a peak over one request. */
const peakRss = () => Number(/VmHWM:\s+(\d+)/.exec(readFileSync("/proc/self/status", "utf8"))?.[1] ?? Number.NaN) * 1024;
const resetPeakRss = () => writeFileSync("/proc/self/clear_refs", "5");

describe("compressed bodies give the same result as plain ones", () => {
  const batch = [reading(1), reading(2, { humidity: 101 }), reading(3)];
  const json = JSON.stringify(batch.map((r) => ({ type: "sensor.reading", ...r })));
  const ndjson = `${batch.map((r) => JSON.stringify({ type: "sensor.reading", ...r })).join("\n")}\nnot json\n`;

  test("gzip JSON array: 202 with the same accepted, rejected, event_ids and errors as plain", async () => {
    const plain = await result(await post(json));
    expect(plain.status).toBe(202);
    expect(plain.body).toMatchObject({ accepted: 2, rejected: 1, event_ids: ["enc-1", "enc-3"] });
    expect(plain.body.errors).toEqual([{ index: 1, path: "humidity", message: expect.any(String) }]);
    expect(await result(await post(gzip(json), { encoding: "gzip" }))).toEqual(plain);
  });

  test("gzip NDJSON (with a line that is not JSON): the same as plain", async () => {
    const plain = await result(await post(ndjson, { contentType: "application/x-ndjson" }));
    expect(plain.body).toMatchObject({ accepted: 2, rejected: 2 });
    expect(plain.body.errors.map((e) => e.index)).toEqual([1, 3]);
    expect(await result(await post(gzip(ndjson), { contentType: "application/x-ndjson", encoding: "gzip" }))).toEqual(plain);
  });

  test("zstd JSON array and NDJSON: the same as plain", async () => {
    expect(await result(await post(zstd(json), { encoding: "zstd" }))).toEqual(await result(await post(json)));
    const ndPlain = await result(await post(ndjson, { contentType: "application/x-ndjson" }));
    expect(await result(await post(zstd(ndjson), { contentType: "application/x-ndjson", encoding: "zstd" }))).toEqual(ndPlain);
  });

  test("the typed route /v1/events/{type}, gzip and zstd, JSON and NDJSON", async () => {
    const path = "/v1/events/sensor.reading";
    const typedJson = JSON.stringify(batch);
    const typedNdjson = `${batch.map((r) => JSON.stringify(r)).join("\n")}\n`;
    const plain = await result(await post(typedJson, { path }));
    expect(plain.body).toMatchObject({ accepted: 2, rejected: 1 });
    for (const [encode, encoding] of [[gzip, "gzip"], [zstd, "zstd"]] as const) {
      expect(await result(await post(encode(typedJson), { path, encoding }))).toEqual(plain);
      expect(await result(await post(encode(typedNdjson), { path, encoding, contentType: "application/x-ndjson" }))).toEqual(plain);
    }
  });

  test("the coding is case-insensitive, x-gzip is gzip, identity is no coding; one event object works too", async () => {
    const one = JSON.stringify({ type: "sensor.reading", ...reading(4) });
    for (const [body, encoding] of [[gzip(one), "GZIP"], [gzip(one), " x-gzip "], [encoder.encode(one), "identity"], [zstd(one), "Zstd"]] as const) {
      const response = await post(body, { encoding });
      expect(await result(response)).toEqual({ status: 202, body: { accepted: 1, rejected: 0, event_ids: ["enc-4"], errors: [] } });
    }
  });

  test("a body with no declared length (chunked) is decoded as it streams", async () => {
    const { stream } = chunked(gzip(json), 7);
    const response = await app.request("/v1/events", { method: "POST", body: stream, headers: { ...auth, "content-type": "application/json", "content-encoding": "gzip" } });
    expect(await result(response)).toEqual(await result(await post(json)));
  });

  test("a gzip file of several members (cat a.gz b.gz) is one body", async () => {
    const [first = "", second = ""] = [JSON.stringify({ type: "sensor.reading", ...reading(5) }), JSON.stringify({ type: "sensor.reading", ...reading(6) })];
    const members = new Uint8Array([...gzip(`${first}\n`), ...gzip(`${second}\n`)]);
    const response = await post(members, { contentType: "application/x-ndjson", encoding: "gzip" });
    expect((await result(response)).body).toMatchObject({ accepted: 2, event_ids: ["enc-5", "enc-6"] });
  });
});

describe("limits on decompressed bytes", () => {
  test("a gzip bomb (64 MB of zeros in a JSON string, ~64 kB compressed) is a 413 and is never inflated whole", async () => {
    const inflated = 64 * 1024 * 1024;
    const bomb = await gzipBomb(inflated);
    expect(bomb.byteLength).toBeLessThan(LIMIT);
    Bun.gc(true);
    resetPeakRss();
    const before = peakRss();
    const response = await post(bomb, { encoding: "gzip" });
    await expectProblem(response, 413, `larger than ${LIMIT} bytes once decompressed`, "gzip");
    const growth = peakRss() - before;
    // Inflating it whole would take 64 MB at least; the reader stops a little past the 256 KiB limit.
    expect(growth).toBeLessThan(inflated / 4);
  });

  test("instrumented: the decoder stops pulling compressed input soon after the output passes the limit", async () => {
    const bomb = await gzipBomb(64 * 1024 * 1024);
    const { stream, pulled } = chunked(bomb, 1024);
    const read = await readEncodedBodyWithLimit(new Request("http://gateway/", { method: "POST", body: stream }), LIMIT, "gzip");
    expect(read).toMatchObject({ ok: false, reason: "too_large" });
    // 1 KiB of this input inflates to ~1 MB: a few chunks pass the 256 KiB limit; the other ~60 are never read.
    expect(pulled()).toBeLessThanOrEqual(8 * 1024);
    expect(bomb.byteLength).toBeGreaterThan(32 * 1024);

    const zstdBomb = zstd(`{"type":"traffic.camera","snapshot":"${"0".repeat(8 * 1024 * 1024)}"}`);
    const z = chunked(zstdBomb, 64);
    expect(await readEncodedBodyWithLimit(new Request("http://gateway/", { method: "POST", body: z.stream }), LIMIT, "zstd")).toMatchObject({ ok: false, reason: "too_large" });
    expect(z.pulled()).toBeLessThan(zstdBomb.byteLength);
  });

  test("a zstd body inflating past the limit is a 413 too", async () => {
    const big = zstd(JSON.stringify({ type: "traffic.camera", snapshot: "0".repeat(LIMIT * 4) }));
    await expectProblem(await post(big, { encoding: "zstd" }), 413, "once decompressed", "zstd");
  });

  test("the compressed body is bounded too: a declared length over the limit, or a chunked body that passes it", async () => {
    const noise = gzip(Buffer.from(crypto.getRandomValues(new Uint8Array(LIMIT / 2))).toString("base64") + Buffer.from(crypto.getRandomValues(new Uint8Array(LIMIT / 2))).toString("base64"));
    expect(noise.byteLength).toBeGreaterThan(LIMIT);
    await expectProblem(await post(noise, { encoding: "gzip" }), 413, `larger than ${LIMIT} bytes`);
    // Empty gzip members, one after another, inflate to nothing: the compressed count still stops them.
    const empty = Bun.gzipSync(new Uint8Array(0));
    let sent = 0;
    const endless = new ReadableStream<Uint8Array>({
      pull(controller) {
        sent += empty.byteLength;
        controller.enqueue(empty);
      },
    });
    const response = await app.request("/v1/events", { method: "POST", body: endless, headers: { ...auth, "content-type": "application/x-ndjson", "content-encoding": "gzip" } });
    await expectProblem(response, 413, `larger than ${LIMIT} bytes`);
    expect(sent).toBeLessThan(LIMIT * 2);
  });
});

describe("codings refused, data that does not decode", () => {
  const one = JSON.stringify({ type: "sensor.reading", ...reading(7) });

  test("Content-Encoding br, deflate, compress, an empty value or a list of several: 415 naming it and the supported ones", async () => {
    for (const encoding of ["br", "deflate", "compress", "", "gzip, identity", "gzip, gzip"]) {
      const body = await expectProblem(await post(gzip(one), { encoding }), 415, "gzip", "zstd");
      expect(body.detail).toContain(JSON.stringify(encoding));
    }
    await expectProblem(await post(gzip(one), { encoding: "gzip, gzip" }), 415, "Send one content coding");
    await expectProblem(await post(JSON.stringify(reading(7)), { path: "/v1/events/sensor.reading", encoding: "br" }), 415, '"br"');
  });

  test("corrupt, truncated or plain data labelled gzip or zstd: 400 problem+json saying the body is not valid gzip/zstd data", async () => {
    const good = gzip(one);
    const flipped = good.slice();
    flipped[12] = (flipped[12] ?? 0) ^ 0x55;
    flipped[flipped.length - 6] = (flipped[flipped.length - 6] ?? 0) ^ 0xff;
    for (const body of [flipped, good.slice(0, good.length - 5), encoder.encode(one), new Uint8Array(0), new Uint8Array([...good, 1, 2, 3])]) {
      await expectProblem(await post(body, { encoding: "gzip" }), 400, "not valid gzip data");
    }
    await expectProblem(await post(encoder.encode(one), { encoding: "zstd" }), 400, "not valid zstd data");
    await expectProblem(await post(zstd(one).slice(0, 8), { path: "/v1/events/sensor.reading", encoding: "zstd" }), 400, "not valid zstd data");
  });

  test("gzip of malformed JSON is the same 400 as the plain body", async () => {
    const plain = await expectProblem(await post("{nope"), 400, "Malformed JSON");
    const compressed = await expectProblem(await post(gzip("{nope"), { encoding: "gzip" }), 400, "Malformed JSON");
    expect(compressed.detail).toBe(plain.detail);
  });
});

describe("over a real listener", () => {
  const url = () => `http://127.0.0.1:${server.port}`;

  test("a gzip body reaches the route compressed and is accepted; a streamed (chunked) gzip bomb is a 413", async () => {
    const body = gzip(JSON.stringify([{ type: "sensor.reading", ...reading(8) }]));
    const response = await fetch(`${url()}/v1/events`, { method: "POST", body, headers: { ...auth, "content-type": "application/json", "content-encoding": "gzip" } });
    expect(await result(response)).toEqual({ status: 202, body: { accepted: 1, rejected: 0, event_ids: ["enc-8"], errors: [] } });

    const { stream } = chunked(await gzipBomb(64 * 1024 * 1024), 4096);
    const bombed = await fetch(`${url()}/v1/events`, { method: "POST", body: stream, headers: { ...auth, "content-type": "application/json", "content-encoding": "gzip" } });
    await expectProblem(bombed, 413, "once decompressed");
  });
});
