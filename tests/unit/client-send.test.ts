import { describe, expect, test } from "bun:test";
import { type AttemptReport, ApiError, ConnectionError, createClient, type FetchLike } from "../../lib/client/index.ts";
import { problemOf } from "../../lib/client/errors.ts";
import { retryAfterMs } from "../../lib/client/wait.ts";

/** The client's retry policy against scripted answers (the real gateway's are in tests/integration/client.test.ts). */
const accepted = { accepted: 1, rejected: 0, event_ids: ["e1"], errors: [] };
const problem = (status: number, detail: string, extra: Record<string, unknown> = {}) => ({ type: "about:blank", title: "Error", status, detail, ...extra });
const json = (status: number, body: unknown, headers: Record<string, string> = {}) => new Response(JSON.stringify(body), { status, headers: { "content-type": "application/json", ...headers } });

function scripted(answers: (() => Response)[]) {
  const requests: { url: string; init: RequestInit }[] = [];
  const fetch: FetchLike = async (url, init) => {
    requests.push({ url, init });
    const next = answers[Math.min(requests.length, answers.length) - 1];
    if (!next) throw new Error("no answer scripted");
    return next();
  };
  return { requests, client: createClient({ url: "http://gateway.test/", key: "k1", fetch }) };
}
const event = { type: "sensor.reading", sensor_id: "s-1", temperature: 20, humidity: 40, event_time: 1_795_255_200_000 };

describe("sendEvents", () => {
  test("retries a 503 after its Retry-After and returns the typed 202 body", async () => {
    const { client, requests } = scripted([() => json(503, problem(503, "bus full"), { "retry-after": "0" }), () => json(202, accepted)]);
    const reports: AttemptReport[] = [];
    const result = await client.sendEvents([event], { onAttempt: (r) => reports.push(r) });
    expect(result).toEqual({ ...accepted, status: 202, attempts: 2 });
    expect(reports.map((r) => [r.attempt, r.status, r.retryInMs])).toEqual([
      [1, 503, 0],
      [2, 202, undefined],
    ]);
    expect(requests[0]?.url).toBe("http://gateway.test/v1/events");
    expect(new Headers(requests[0]?.init.headers).get("authorization")).toBe("Bearer k1");
  });

  test("stops after maxAttempts with the last 503 as an ApiError", async () => {
    const { client, requests } = scripted([() => json(503, problem(503, "bus full"), { "retry-after": "0" })]);
    const error = await client.sendEvents([event], { maxAttempts: 3 }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ApiError);
    expect((error as ApiError).status).toBe(503);
    expect((error as ApiError).detail).toBe("bus full");
    expect(requests).toHaveLength(3);
  });

  test("an abort during the Retry-After wait ends the send at once", async () => {
    const { client } = scripted([() => json(503, problem(503, "bus full"), { "retry-after": "30" })]);
    const controller = new AbortController();
    const started = performance.now();
    setTimeout(() => controller.abort(), 50);
    const error = await client.sendEvents([event], { signal: controller.signal }).catch((e: unknown) => e);
    expect((error as DOMException).name).toBe("AbortError");
    expect(performance.now() - started).toBeLessThan(2_000);
  });

  test("a 422 is returned, not thrown; a 4xx problem is thrown at once with its field paths", async () => {
    const rejected = { accepted: 0, rejected: 1, event_ids: [], errors: [{ index: 0, path: "speed", message: "Too big" }] };
    expect(await scripted([() => json(422, rejected)]).client.sendEvents([event])).toEqual({ ...rejected, status: 422, attempts: 1 });

    const { client, requests } = scripted([() => json(400, problem(400, "limit: an integer", { errors: [{ path: "limit", message: "an integer" }] }))]);
    const error = await client.sendEvents([event]).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ApiError);
    expect((error as ApiError).fieldErrors.map((e) => e.path)).toEqual(["limit"]);
    expect(requests).toHaveLength(1);
  });

  test("no answer is retried too, then thrown as a ConnectionError", async () => {
    const { client, requests } = scripted([
      () => {
        throw new TypeError("connection refused");
      },
    ]);
    const error = await client.sendEvents("{}\n", { maxAttempts: 2, retryDelayMs: 1 }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ConnectionError);
    expect(requests).toHaveLength(2);
    expect(new Headers(requests[0]?.init.headers).get("content-type")).toBe("application/x-ndjson");
  });
});

describe("answers the client reads", () => {
  test("Retry-After as seconds or an HTTP-date", () => {
    const now = Date.parse("2026-11-21T10:00:00Z");
    expect(retryAfterMs("2", now)).toBe(2_000);
    expect(retryAfterMs("Sat, 21 Nov 2026 10:00:05 GMT", now)).toBe(5_000);
    expect(retryAfterMs("Sat, 21 Nov 2026 09:00:00 GMT", now)).toBe(0);
    expect(retryAfterMs("soon", now)).toBeUndefined();
    expect(retryAfterMs(null, now)).toBeUndefined();
  });

  test("a body that is not problem+json still gives a problem with the status", () => {
    expect(problemOf(502, "Bad Gateway", "<html>upstream down</html>")).toEqual({ type: "about:blank", title: "Bad Gateway", status: 502, detail: "<html>upstream down</html>" });
    expect(problemOf(400, "", JSON.stringify({ title: "Bad Request", detail: "x", errors: [{ path: "p", message: "m" }, { nope: 1 }] })).errors).toEqual([{ path: "p", message: "m" }]);
  });
});
