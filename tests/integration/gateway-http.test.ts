import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { connect } from "node:net";
import { createApp } from "../../api/app.ts";
import { gatewayFetch } from "../../api/server.ts";
import { loadConfig } from "../../lib/config.ts";
import { createLogger } from "../../lib/log.ts";
import { closeServices, openServices, type Services } from "../../lib/services.ts";
import { tempDir } from "../support/tmp.ts";
import { waitFor } from "../support/wait.ts";

/**
 * What only a real listener shows: requests Bun cannot turn into a URL (HTTP/1.0 without a Host, a Host
 * that is not one) and clients that hang up mid-body. Raw sockets, the gateway's own fetch wrapper, and
 * the log lines it writes (info and up).
 */
const dir = tempDir("devpipe-gateway-http-");
const logs: Record<string, unknown>[] = [];
const previousLogLevel = process.env.LOG_LEVEL;
let services: Services;
let server: ReturnType<typeof Bun.serve>;

beforeAll(async () => {
  process.env.LOG_LEVEL = "info";
  const logger = createLogger({ test: "gateway-http" }, (line) => void logs.push(JSON.parse(line) as Record<string, unknown>));
  services = await openServices(loadConfig({ DATA_DIR: dir.path, ACCESS_LOG: "1" }), logger);
  const app = createApp(services, { apiKeys: [{ key: "admin-key", scopes: ["ingest", "query", "admin"] }] });
  server = Bun.serve({ port: 0, hostname: "127.0.0.1", fetch: gatewayFetch(app, services.logger) });
});
afterAll(async () => {
  await server.stop(true);
  await closeServices(services);
  if (previousLogLevel === undefined) delete process.env.LOG_LEVEL;
  else process.env.LOG_LEVEL = previousLogLevel;
  dir.remove();
});

/** Sends raw bytes and reads until the server closes (HTTP/1.0) or `idleMs` pass without data. */
function exchange(payload: string, idleMs = 1_000): Promise<{ status: number; headers: Record<string, string>; body: string }> {
  return new Promise((resolve, reject) => {
    const socket = connect(server.port ?? 0, "127.0.0.1", () => socket.write(payload));
    let raw = "";
    let idle = setTimeout(() => socket.end(), idleMs);
    socket.setEncoding("utf8");
    socket.on("data", (chunk: string) => {
      raw += chunk;
      clearTimeout(idle);
      idle = setTimeout(() => socket.end(), idleMs);
    });
    socket.on("error", reject);
    socket.on("close", () => {
      clearTimeout(idle);
      const [head = "", body = ""] = raw.split("\r\n\r\n", 2);
      const [statusLine = "", ...headerLines] = head.split("\r\n");
      const headers = Object.fromEntries(headerLines.map((line) => [line.slice(0, line.indexOf(":")).toLowerCase(), line.slice(line.indexOf(":") + 1).trim()]));
      resolve({ status: Number(statusLine.split(" ")[1]), headers, body });
    });
  });
}

/** Opens a request, sends part of its body, and hangs up. */
function abandon(head: string, partialBody: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const socket = connect(server.port ?? 0, "127.0.0.1", () => {
      socket.write(head + partialBody, () => setTimeout(() => socket.destroy(), 100));
    });
    socket.on("error", reject);
    socket.on("close", () => resolve());
  });
}

describe("requests without a usable URL", () => {
  test("HTTP/1.0 without a Host header is a 400 problem, not a 500", async () => {
    for (const target of ["/healthz", "/v1/nothing", "/v1/alerts?key=1"]) {
      const response = await exchange(`GET ${target} HTTP/1.0\r\n\r\n`);
      expect([target, response.status]).toEqual([target, 400]);
      expect(response.headers["content-type"]).toBe("application/problem+json");
      expect(JSON.parse(response.body)).toMatchObject({ type: "about:blank", title: "Bad Request", status: 400, detail: expect.stringContaining("Host") });
    }
  });

  test("a malformed Host header is a 400 problem too, on HTTP/1.0 and 1.1", async () => {
    for (const host of ["exa%mple", "[::1", "h:99999", "a b", ""]) {
      for (const version of ["1.0", "1.1"]) {
        const response = await exchange(`GET /healthz HTTP/${version}\r\nHost: ${host}\r\nConnection: close\r\n\r\n`);
        expect([host, version, response.status]).toEqual([host, version, 400]);
      }
    }
  });

  test("HTTP/1.0 with a good Host header is served as before", async () => {
    const response = await exchange("GET /healthz HTTP/1.0\r\nHost: localhost\r\n\r\n");
    expect(response.status).toBe(200);
    expect(JSON.parse(response.body)).toEqual({ status: "ok" });
  });

  test("no request ever logged a 500 or an unhandled error", () => {
    expect(logs.filter((l) => l.level === "error" || l.status === 500)).toEqual([]);
    expect(logs.some((l) => l.msg === "request refused: no usable Host header" && l.status === 400)).toBe(true);
  });
});

describe("access log", () => {
  test("ACCESS_LOG=1 logs one line per request; by default none, and the request id is still echoed", async () => {
    const quiet = createApp({ ...services, config: { ...services.config, accessLog: false } }, { apiKeys: [{ key: "admin-key", scopes: ["ingest", "query", "admin"] }] });
    const before = logs.length;
    const response = await quiet.request("/healthz", { headers: { "x-request-id": "quiet-1" } });
    expect(response.status).toBe(200);
    expect(response.headers.get("x-request-id")).toBe("quiet-1");
    const loud = await fetch(`http://127.0.0.1:${server.port}/healthz`, { headers: { "x-request-id": "loud-1" } });
    expect(loud.status).toBe(200);
    const line = await waitFor(() => logs.slice(before).find((l) => l.msg === "request" && l.request_id === "loud-1"), { what: "the access log line" });
    expect(line).toMatchObject({ level: "info", method: "GET", path: "/healthz", status: 200 });
    expect(logs.slice(before).filter((l) => l.request_id === "quiet-1")).toEqual([]);
  });
});

describe("clients that hang up mid-body", () => {
  const cases: [string, string, string][] = [
    ["ingest, declared length", "POST /v1/events HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer admin-key\r\nContent-Type: application/json\r\nContent-Length: 10000\r\n\r\n", '[{"type":"sensor.reading",'],
    ["ingest, chunked", "POST /v1/events HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer admin-key\r\nContent-Type: application/x-ndjson\r\nTransfer-Encoding: chunked\r\n\r\n", '5\r\n{"a":\r\n'],
    ["dims", "PUT /v1/dims/cars HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer admin-key\r\nContent-Type: application/json\r\nContent-Length: 5000\r\n\r\n", '[{"car_id":1,'],
  ];

  for (const [name, head, partial] of cases) {
    test(`${name}: logged as "request aborted" at info, never as an unhandled error or a 500`, async () => {
      const before = logs.length;
      await abandon(head, partial);
      const aborted = await waitFor(() => logs.slice(before).find((l) => l.msg === "request aborted"), { what: "the request aborted log line" });
      expect(aborted.level).toBe("info");
      const request = await waitFor(() => logs.slice(before).find((l) => l.msg === "request"), { what: "the request log line" });
      expect(request.status).toBe(400);
      expect(logs.slice(before).filter((l) => l.level === "error" || l.msg === "unhandled error" || l.status === 500)).toEqual([]);
    });
  }
});
