import { expect, test } from "bun:test";
import { LakeError } from "../../lib/errors.ts";
import { createS3Store } from "../../lib/lake/s3-store.ts";

/**
 * How the S3 store reads answers that a healthy MinIO never gives (a server that ignores If-None-Match,
 * 409 ConditionalRequestConflict, a 412 after the SDK's own retry), from a tiny HTTP server whose
 * answers each test scripts. The real behaviour against MinIO is in tests/integration/lake.contract.test.ts.
 */
const text = (s: string) => new TextEncoder().encode(s);

/** A stand-in S3 server whose answers a test scripts; it records each request's method and whether it was conditional. */
function fakeS3(answer: (request: Request, count: number) => Response) {
  const seen: { method: string; conditional: boolean }[] = [];
  const server = Bun.serve({
    port: 0,
    hostname: "127.0.0.1",
    fetch(request) {
      seen.push({ method: request.method, conditional: request.headers.get("if-none-match") === "*" });
      return answer(request, seen.length);
    },
  });
  const store = createS3Store({ bucket: "fake", prefix: "lake", endpoint: `http://127.0.0.1:${server.port}`, region: "us-east-1", accessKeyId: "k", secretAccessKey: "s" });
  return { store, seen, stop: () => server.stop(true) };
}
const s3Error = (status: number, code: string) => new Response(`<Error><Code>${code}</Code><Message>${code}</Message></Error>`, { status, headers: { "content-type": "application/xml" } });
const ok = () => new Response("<DeleteResult/>", { headers: { etag: '"0"', "content-type": "application/xml" } });

test("checkConditionalWrites refuses an S3 server that ignores If-None-Match: *", async () => {
  const fake = fakeS3(ok);
  try {
    const failure = await fake.store.checkConditionalWrites().then(() => undefined, (error: unknown) => error);
    expect(failure).toBeInstanceOf(LakeError);
    expect(String(failure)).toContain("ignores If-None-Match: * on PUT");
    expect(fake.seen.filter((r) => r.method === "PUT").map((r) => r.conditional)).toEqual([true, true]);
    expect(fake.seen.at(-1)?.method).toBe("POST"); // the probe is deleted
  } finally {
    fake.stop();
  }
});

test("S3 putIfAbsent retries 409 ConditionalRequestConflict, then reports", async () => {
  const flaky = fakeS3((_, count) => (count <= 2 ? s3Error(409, "ConditionalRequestConflict") : ok()));
  const stuck = fakeS3(() => s3Error(409, "ConditionalRequestConflict"));
  try {
    expect(await flaky.store.putIfAbsent("k.json", text("x"))).toBe(true);
    await expect(stuck.store.putIfAbsent("k.json", text("x"))).rejects.toMatchObject({ name: "LakeError", retriable: true });
    expect(stuck.seen.length).toBe(5);
  } finally {
    flaky.stop();
    stuck.stop();
  }
});

test("S3 putIfAbsent: a 412 on the SDK's retry of a PUT that did land counts as a win only when the bytes are ours", async () => {
  // Each key's first PUT answers 500 as if its answer were lost; the SDK's retry then finds the object there.
  const stored = { bytes: "" };
  const puts = new Map<string, number>();
  const fake = fakeS3((request) => {
    if (request.method === "GET") return new Response(stored.bytes);
    const path = new URL(request.url).pathname;
    puts.set(path, (puts.get(path) ?? 0) + 1);
    return puts.get(path) === 1 ? s3Error(500, "InternalError") : s3Error(412, "PreconditionFailed");
  });
  try {
    stored.bytes = "ours";
    expect(await fake.store.putIfAbsent("k.json", text("ours"))).toBe(true);
    stored.bytes = "theirs";
    expect(await fake.store.putIfAbsent("k2.json", text("ours"))).toBe(false);
    expect(fake.seen.map((r) => r.method)).toEqual(["PUT", "PUT", "GET", "PUT", "PUT", "GET"]);
  } finally {
    fake.stop();
  }
});
