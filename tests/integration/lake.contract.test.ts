import { afterAll, describe, expect, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { LakeError } from "../../lib/errors.ts";
import { createDirStore } from "../../lib/lake/dir-store.ts";
import { createS3Store } from "../../lib/lake/s3-store.ts";
import type { ObjectStore } from "../../lib/lake/types.ts";
import { services, uniqueName } from "../support/services.ts";
import { tempDir } from "../support/tmp.ts";

/** The same object-store contract on a local directory and on the real S3 server. */
const scratch = tempDir("devpipe-lake-");
afterAll(() => scratch.remove());

const MiB = 1024 * 1024;
const implementations: { name: string; open: () => ObjectStore }[] = [
  { name: "dir", open: () => createDirStore(join(scratch.path, uniqueName("lake"))) },
  {
    name: "s3",
    open: () => {
      const { s3 } = services();
      return createS3Store({ ...s3, prefix: uniqueName("contract"), partSizeBytes: 5 * MiB });
    },
  },
];

const text = (s: string) => new TextEncoder().encode(s);
const decode = (bytes: Uint8Array | null) => (bytes === null ? null : new TextDecoder().decode(bytes));

for (const impl of implementations) {
  describe(`lake contract: ${impl.name}`, () => {
    const store = impl.open();

    test("put then get returns the same bytes; a missing key is null", async () => {
      await store.put("type=sensor.reading/date=2026-11-21/hour=19/part-0-0-99.parquet", text("hello"));
      expect(new TextDecoder().decode((await store.get("type=sensor.reading/date=2026-11-21/hour=19/part-0-0-99.parquet")) ?? undefined)).toBe("hello");
      expect(await store.get("type=sensor.reading/none.parquet")).toBeNull();
    });

    test("put replaces an object whole (a retried write rewrites the same file)", async () => {
      await store.put("retry/a.bin", text("first attempt, longer"));
      await store.put("retry/a.bin", text("second"));
      expect(new TextDecoder().decode((await store.get("retry/a.bin")) ?? undefined)).toBe("second");
      expect(await store.list("retry/")).toEqual([{ key: "retry/a.bin", size: 6 }]);
    });

    test("list returns every object under a prefix, sorted, with sizes, and nothing outside it; startAfter skips ahead", async () => {
      for (const key of ["l/b/2.txt", "l/a/1.txt", "l/a/3.txt", "lx/4.txt"]) await store.put(key, text(key));
      expect(await store.list("l/")).toEqual([
        { key: "l/a/1.txt", size: 9 },
        { key: "l/a/3.txt", size: 9 },
        { key: "l/b/2.txt", size: 9 },
      ]);
      expect((await store.list("l/a/")).map((o) => o.key)).toEqual(["l/a/1.txt", "l/a/3.txt"]);
      // startAfter is exclusive and need not be a key that exists (a Delta log is listed from its checkpoint on).
      expect((await store.list("l/", { startAfter: "l/a/1.txt" })).map((o) => o.key)).toEqual(["l/a/3.txt", "l/b/2.txt"]);
      expect((await store.list("l/", { startAfter: "l/a/2" })).map((o) => o.key)).toEqual(["l/a/3.txt", "l/b/2.txt"]);
      expect(await store.list("l/", { startAfter: "l/z" })).toEqual([]);
    });

    test("delete removes objects and ignores missing ones", async () => {
      await store.put("d/1", text("1"));
      await store.put("d/2", text("2"));
      await store.delete(["d/1", "d/never-existed"]);
      expect((await store.list("d/")).map((o) => o.key)).toEqual(["d/2"]);
    });

    test("putFile uploads a large file intact (in parts on S3)", async () => {
      const size = 11 * MiB + 123;
      const bytes = new Uint8Array(size);
      for (let i = 0; i < size; i += 4096) bytes[i] = (i / 4096) % 251;
      const path = join(scratch.path, `${impl.name}-large.bin`);
      writeFileSync(path, bytes);
      await store.putFile("large/file.bin", path);
      const back = await store.get("large/file.bin");
      expect(back?.length).toBe(size);
      expect(Bun.hash.crc32(back ?? new Uint8Array(0))).toBe(Bun.hash.crc32(bytes));
    });

    test("keys that escape the lake are refused", async () => {
      for (const key of ["../etc/passwd", "/abs", "a//b", "a/./b", "a/../../b", ""]) await expect(store.put(key, text("x"))).rejects.toBeInstanceOf(LakeError);
      expect(await store.list("")).not.toContainEqual(expect.objectContaining({ key: expect.stringContaining("passwd") }));
    });

    test("ping answers", async () => {
      expect(await store.ping()).toBeUndefined();
    });

    test("putIfAbsent creates once; a second call returns false and keeps the first bytes", async () => {
      const key = "t/_delta_log/00000000000000000000.json";
      expect(await store.putIfAbsent(key, text("first"))).toBe(true);
      expect(await store.putIfAbsent(key, text("second, longer"))).toBe(false);
      expect(decode(await store.get(key))).toBe("first");
      expect(await store.list("t/_delta_log/")).toEqual([{ key, size: 5 }]);
      await expect(store.putIfAbsent("../escape.json", text("x"))).rejects.toBeInstanceOf(LakeError);
    });

    test("20 concurrent putIfAbsent calls for one key: exactly one wins and its bytes are stored", async () => {
      const key = "race/_delta_log/00000000000000000001.json";
      const results = await Promise.all(Array.from({ length: 20 }, (_, i) => store.putIfAbsent(key, text(`writer-${i}`))));
      const winners = results.flatMap((won, i) => (won ? [i] : []));
      expect(winners).toHaveLength(1);
      expect(decode(await store.get(key))).toBe(`writer-${winners[0]}`);
      expect((await store.list("race/")).map((o) => o.key)).toEqual([key]);
    });

    test("checkConditionalWrites passes and leaves nothing behind", async () => {
      expect(await store.checkConditionalWrites()).toBeUndefined();
      expect(await store.list("_devpipe/")).toEqual([]);
    });
  });
}

test("dir putIfAbsent: 4 processes racing on one key, exactly one wins", async () => {
  const root = join(scratch.path, uniqueName("race"));
  const key = "t/_delta_log/00000000000000000007.json";
  const startAt = String(Date.now() + 1500);
  const racers = Array.from({ length: 4 }, (_, i) =>
    Bun.spawn(["bun", new URL("../support/lake-put-if-absent.ts", import.meta.url).pathname, root, key, `process-${i}`, startAt], { stdout: "pipe", stderr: "inherit" }),
  );
  const outputs = await Promise.all(racers.map(async (racer) => ((await racer.exited) === 0 ? (await new Response(racer.stdout).text()).trim() : "failed")));
  expect(outputs.filter((o) => o === "true")).toHaveLength(1);
  expect(outputs.filter((o) => o === "false")).toHaveLength(3);
  expect(decode(await createDirStore(root).get(key))).toBe(`process-${outputs.indexOf("true")}`);
  expect((await createDirStore(root).list("")).map((o) => o.key)).toEqual([key]);
});

test("an S3 bucket that does not exist fails ping with a LakeError", async () => {
  const { s3 } = services();
  const store = createS3Store({ ...s3, bucket: uniqueName("no-such-bucket"), prefix: "" });
  await expect(store.ping()).rejects.toBeInstanceOf(LakeError);
});
