import { afterAll, expect, test } from "bun:test";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { openLake } from "../../lib/lake/index.ts";
import { localFiles } from "../../lib/lake/local-files.ts";
import { services as realServices, uniqueName } from "../support/services.ts";
import { tempDir } from "../support/tmp.ts";

/** The download cache of an S3 lake drops copies of files that left the live set, after a grace period. */
const dir = tempDir("devpipe-lake-cache-");
afterAll(() => dir.remove());

test("cached copies of files no longer live are dropped after the grace, live ones stay", async () => {
  const s3 = realServices().s3;
  const store = openLake({ lake: { kind: "s3", bucket: s3.bucket, prefix: uniqueName("cache") }, s3: { endpoint: s3.endpoint, region: s3.region, accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey } });
  const keys = ["events/t/a.parquet", "events/t/b.parquet", "events/u/c.parquet"];
  for (const key of keys) await store.put(key, new TextEncoder().encode(key));
  const files = localFiles(store, join(dir.path, "cache"), { retiredGraceMs: 0 });
  const slow = localFiles(store, join(dir.path, "slow"), { retiredGraceMs: 60_000 });
  const [a, b, c] = await files.paths(keys);
  await slow.paths(keys);
  // b left table t's live set: the first call marks it, a later one past the grace drops it; other tables are untouched.
  await files.retain("events/t/", new Set(["events/t/a.parquet"]));
  expect([a, b, c].map((p) => existsSync(p ?? ""))).toEqual([true, true, true]);
  await files.retain("events/t/", new Set(["events/t/a.parquet"]));
  expect([a, b, c].map((p) => existsSync(p ?? ""))).toEqual([true, false, true]);
  // Within the grace nothing goes.
  await slow.retain("events/t/", new Set());
  await slow.retain("events/t/", new Set());
  expect(keys.map((k) => existsSync(join(dir.path, "slow", k)))).toEqual([true, true, true]);
  // A fetch after the drop downloads it again.
  expect(existsSync((await files.paths(["events/t/b.parquet"]))[0] ?? "")).toBe(true);
});
